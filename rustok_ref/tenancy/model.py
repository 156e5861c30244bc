"""The tenancy domain model: what a tenant is and how a request names one. No I/O here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID


class IdentifierKind(StrEnum):
    """How a request names its tenant (the real code's kinds, also its cache-key words)."""

    UUID = "uuid"
    SLUG = "slug"
    HOST = "host"


@dataclass(frozen=True, slots=True)
class TenantIdentifier:
    """A validated, normalised identifier: the key of every tenant cache."""

    kind: IdentifierKind
    value: str


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant as the resolver hands it to a request (the real `TenantContext`)."""

    id: UUID
    slug: str
    name: str
    domain: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    is_active: bool = True
    version: int = 1


TenantLoader = Callable[[TenantIdentifier], Awaitable[Tenant | None]]
"""Loads one tenant from the database; None when no tenant has that identifier."""

SyncTenantLoader = Callable[[TenantIdentifier], Tenant | None]


class TenantLookup(Protocol):
    """What the resolver needs from a tenant cache."""

    async def get_or_load(self, identifier: TenantIdentifier) -> Tenant | None: ...
