"""A unit of work: one transaction, its role and its tenant, committed or rolled back as one.

The role and the tenant are set with `set_config(..., true)` (transaction-local) in a single
round trip at the start, so a pooled connection never carries them into the next request.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.storage.roles import TENANT_SETTING, DbRole

_BEGIN = text(
    f"SELECT set_config('role', :role, true), set_config('{TENANT_SETTING}', :tenant, true)"
)


class UnitOfWork:
    """`async with UnitOfWork(sessions, tenant_id=t) as uow: ...; await uow.commit()`.

    Leaving the block without `commit()` rolls back. `tenant_id=None` under the app role
    sees no tenant-owned rows at all (the policy compares with NULL). After `commit()` the
    session is closed to further use: a new statement would autobegin a transaction without
    the role and the tenant.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        tenant_id: UUID | None,
        role: DbRole = DbRole.APP,
    ) -> None:
        self._sessions = sessions
        self.tenant_id = tenant_id
        self.role = role
        self._session: AsyncSession | None = None
        self._finished = False

    @property
    def session(self) -> AsyncSession:
        if self._session is None or self._finished:
            raise RuntimeError("UnitOfWork used outside its `async with` block or after commit")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        tenant = "" if self.tenant_id is None else str(self.tenant_id)
        await self._session.execute(_BEGIN, {"role": self.role.value, "tenant": tenant})
        return self

    async def commit(self) -> None:
        await self.session.commit()
        self._finished = True

    async def rollback(self) -> None:
        await self.session.rollback()
        self._finished = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            if not self._finished:
                await session.rollback()
        finally:
            await session.close()
