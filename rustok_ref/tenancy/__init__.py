"""Tenancy: identifiers, resolution, the tenant cache (moka and the hand-written baseline)."""

from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.cache_api import CacheStats, TenantCacheAPI
from rustok_ref.tenancy.cache_v1 import HandWrittenTenantCache
from rustok_ref.tenancy.identifiers import (
    TenantValidationError,
    validate_any,
    validate_host,
    validate_slug,
    validate_uuid,
)
from rustok_ref.tenancy.invalidation import (
    InvalidationListener,
    RedisInvalidationPublisher,
    ResilientInvalidationPublisher,
)
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier, TenantLookup
from rustok_ref.tenancy.repository import TenantRepository, load_tenant, load_tenant_sync
from rustok_ref.tenancy.resolver import TenantResolver, identifier_from_request

__all__ = [
    "CacheStats",
    "HandWrittenTenantCache",
    "IdentifierKind",
    "InvalidationListener",
    "RedisInvalidationPublisher",
    "ResilientInvalidationPublisher",
    "Tenant",
    "TenantCache",
    "TenantCacheAPI",
    "TenantIdentifier",
    "TenantLookup",
    "TenantRepository",
    "TenantResolver",
    "TenantValidationError",
    "identifier_from_request",
    "load_tenant",
    "load_tenant_sync",
    "validate_any",
    "validate_host",
    "validate_slug",
    "validate_uuid",
]
