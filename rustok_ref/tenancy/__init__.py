"""Tenancy: identifiers, resolution, the tenant cache (moka and the hand-written baseline)."""

from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier, TenantLookup

__all__ = ["IdentifierKind", "Tenant", "TenantIdentifier", "TenantLookup"]
