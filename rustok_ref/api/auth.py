"""API keys, roles and permissions (the review's RBAC crate, reduced to what the API needs).

A key reads `rk_<key id>_<secret>`: the key id (public, 12 hex digits) finds the row in one
indexed lookup, and the secret (32 random bytes, base64url) is checked against its stored
SHA-256 in constant time. A random 256-bit secret needs no slow password hash: nothing can
be guessed, so a fast hash costs an attacker as much as a slow one. Verified rows are kept
in moka for `ttl_s`, so a request pays no database round trip for its key; revoking takes
effect within that TTL in every process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from uuid import UUID

from moka_py import Moka
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.errors import NotFoundError, UnauthenticatedError
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import api_keys

__all__ = [
    "ROLE_PERMISSIONS",
    "ApiKeys",
    "IssuedKey",
    "Permission",
    "Principal",
    "Role",
]

KEY_PREFIX: Final = "rk_"
_KEY_ID_BYTES: Final = 6
_SECRET_BYTES: Final = 32


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    CUSTOMER = "customer"


class Permission(StrEnum):
    TENANT_READ = "tenant:read"
    TENANT_MANAGE = "tenant:manage"
    PRODUCTS_READ = "products:read"
    PRODUCTS_WRITE = "products:write"
    ORDERS_READ = "orders:read"
    ORDERS_PLACE = "orders:place"
    ORDERS_FULFIL = "orders:fulfil"
    FLAGS_MANAGE = "flags:manage"
    EVENTS_MANAGE = "events:manage"
    LAB_CONTROL = "lab:control"


_SHOPPING: Final = frozenset(
    {
        Permission.TENANT_READ,
        Permission.PRODUCTS_READ,
        Permission.ORDERS_READ,
        Permission.ORDERS_PLACE,
    }
)
ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.ADMIN: frozenset(Permission),
    Role.STAFF: _SHOPPING | {Permission.PRODUCTS_WRITE, Permission.ORDERS_FULFIL},
    Role.CUSTOMER: _SHOPPING,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, tenant and role."""

    key_id: str
    tenant_id: UUID
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: `token` is shown once and stored nowhere."""

    principal: Principal
    token: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str]:
    """(key id, secret) of a well-formed token; UnauthenticatedError otherwise."""
    if token.startswith(KEY_PREFIX):
        key_id, sep, secret = token[len(KEY_PREFIX) :].partition("_")
        if sep and len(key_id) == 2 * _KEY_ID_BYTES and secret:
            return key_id, secret
    raise UnauthenticatedError("invalid API key")  # one message for every bad key


class ApiKeys:
    """`await keys.create(tenant, role)`, `await keys.verify(token)`, `await keys.revoke(id)`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        capacity: int = 10_000,
        ttl_s: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self._verified: Moka[str, tuple[str, Principal]] = Moka(capacity, ttl=ttl_s)

    async def create(self, tenant_id: UUID, role: Role, *, label: str | None = None) -> IssuedKey:
        """A new key for the tenant; the token is returned once, only its hash is stored."""
        key_id = secrets.token_hex(_KEY_ID_BYTES)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).decode().rstrip("=")
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            await uow.session.execute(
                insert(api_keys).values(
                    key_id=key_id,
                    tenant_id=tenant_id,
                    role=role.value,
                    secret_sha256=_digest(secret),
                    label=label,
                )
            )
            await uow.commit()
        return IssuedKey(Principal(key_id, tenant_id, role), f"{KEY_PREFIX}{key_id}_{secret}")

    async def verify(self, token: str) -> Principal:
        """The key's principal; UnauthenticatedError for a malformed, unknown, revoked or
        wrong key (one message for all, so a caller learns nothing about which)."""
        key_id, secret = parse_token(token)
        found = self._verified.get(key_id)
        if found is None:
            found = await self._load(key_id)
            if found is None:
                raise UnauthenticatedError("invalid API key")
            self._verified.set(key_id, found)
        digest, principal = found
        if not hmac.compare_digest(digest, _digest(secret)):
            raise UnauthenticatedError("invalid API key")
        return principal

    async def revoke(self, tenant_id: UUID, key_id: str) -> None:
        async with UnitOfWork(self._sessions, tenant_id=tenant_id) as uow:
            result = await uow.session.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
            await uow.commit()
        self._verified.remove(key_id)
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFoundError(f"no active API key {key_id}")

    async def _load(self, key_id: str) -> tuple[str, Principal] | None:
        # Cross-tenant by nature (the key names its tenant), so it runs as the worker role.
        async with UnitOfWork(self._sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            row = (
                await uow.session.execute(
                    select(api_keys.c.secret_sha256, api_keys.c.tenant_id, api_keys.c.role).where(
                        api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None)
                    )
                )
            ).first()
        if row is None:
            return None
        return row.secret_sha256, Principal(key_id, row.tenant_id, Role(row.role))
