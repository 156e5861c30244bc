"""The tenant repository: each change bumps the version, is refused on a stale version or a
taken slug or domain, and is published to the caches after its commit, never before and
never when it rolls back. The loaders find a tenant by uuid, slug and host."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator

import pytest
import redis.asyncio as aioredis
import sqlalchemy
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.config import Settings, async_database_url
from rustok_ref.errors import ConflictError, TenantNotFoundError, ValidationError
from rustok_ref.lab import infra
from rustok_ref.tenancy.invalidation import RedisInvalidationPublisher
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier
from rustok_ref.tenancy.repository import (
    TenantRepository,
    identifiers_of,
    load_tenant,
    load_tenant_sync,
)

pytestmark = pytest.mark.integration


class CommitWitness:
    """The real publisher, which first reads, on a connection of its own, what each
    published identifier resolves to: a publish before the commit would see the old row."""

    def __init__(
        self, publisher: RedisInvalidationPublisher, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self._publisher = publisher
        self._sessions = sessions
        self.published: list[dict[TenantIdentifier, Tenant | None]] = []

    async def publish(self, identifiers: Collection[TenantIdentifier]) -> None:
        seen = {i: await load_tenant(self._sessions, i) for i in identifiers}
        self.published.append(seen)
        await self._publisher.publish(identifiers)


@pytest.fixture
def witness(
    sessions: async_sessionmaker[AsyncSession],
    redis_client: aioredis.Redis,
    run_ns: infra.RunNamespace,
) -> CommitWitness:
    return CommitWitness(RedisInvalidationPublisher(redis_client, run_ns.redis_prefix), sessions)


@pytest.fixture
def repository(
    sessions: async_sessionmaker[AsyncSession], witness: CommitWitness
) -> TenantRepository:
    return TenantRepository(sessions, witness)


def new_slug(label: str = "t") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def uuid_of(tenant: Tenant) -> TenantIdentifier:
    return TenantIdentifier(IdentifierKind.UUID, str(tenant.id))


def slug(value: str) -> TenantIdentifier:
    return TenantIdentifier(IdentifierKind.SLUG, value)


def host(value: str) -> TenantIdentifier:
    return TenantIdentifier(IdentifierKind.HOST, value)


async def test_create_normalises_and_publishes_every_identifier_after_commit(
    repository: TenantRepository, witness: CommitWitness
) -> None:
    name = new_slug()
    created = await repository.create(f"  {name.upper()} ", "Acme", domain=f"{name}.Example.TEST")
    assert (created.slug, created.domain) == (name, f"{name}.example.test")
    assert (created.version, created.is_active) == (1, True)
    assert witness.published == [
        {
            uuid_of(created): created,
            slug(name): created,
            host(f"{name}.example.test"): created,
        }
    ]


async def test_rename_bumps_the_version_and_publishes_old_and_new_slug(
    repository: TenantRepository, witness: CommitWitness
) -> None:
    created = await repository.create(new_slug(), "Acme")
    renamed = await repository.rename(created.id, new_slug("r"), name="Acme Two")
    assert (renamed.version, renamed.name) == (2, "Acme Two")
    assert witness.published[-1] == {
        uuid_of(created): renamed,
        slug(created.slug): None,  # committed: the old slug resolves to nothing
        slug(renamed.slug): renamed,
    }


async def test_change_domain_publishes_old_and_new_host(
    repository: TenantRepository, witness: CommitWitness
) -> None:
    name = new_slug()
    created = await repository.create(name, "Acme", domain=f"{name}.example.test")
    moved = await repository.change_domain(created.id, f"shop.{name}.example.test")
    assert witness.published[-1].keys() == {
        uuid_of(created),
        slug(name),
        host(f"{name}.example.test"),
        host(f"shop.{name}.example.test"),
    }
    assert witness.published[-1][host(f"{name}.example.test")] is None
    removed = await repository.change_domain(created.id, None)
    assert (moved.version, removed.version, removed.domain) == (2, 3, None)


async def test_disable_and_enable(repository: TenantRepository, witness: CommitWitness) -> None:
    created = await repository.create(new_slug(), "Acme")
    disabled = await repository.disable(created.id)
    assert (disabled.is_active, disabled.version) == (False, 2)
    assert witness.published[-1][uuid_of(created)] == disabled
    enabled = await repository.enable(created.id, expected_version=2)
    assert (enabled.is_active, enabled.version) == (True, 3)


async def test_a_stale_version_is_a_conflict_and_publishes_nothing(
    repository: TenantRepository, witness: CommitWitness
) -> None:
    created = await repository.create(new_slug(), "Acme")
    await repository.rename(created.id, new_slug("r"))
    published = len(witness.published)
    with pytest.raises(ConflictError, match="version 2, not 1"):
        await repository.disable(created.id, expected_version=1)
    assert len(witness.published) == published


@pytest.mark.parametrize("field", ["slug", "domain"])
async def test_a_taken_slug_or_domain_is_a_conflict_rolled_back_unpublished(
    field: str,
    repository: TenantRepository,
    witness: CommitWitness,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first_name, second_name = new_slug(), new_slug()
    first = await repository.create(first_name, "One", domain=f"{first_name}.example.test")
    second = await repository.create(second_name, "Two")
    published = len(witness.published)
    change = (
        repository.rename(second.id, first_name)
        if field == "slug"
        else repository.change_domain(second.id, f"{first_name}.example.test")
    )
    with pytest.raises(ConflictError, match=f"already has this {field}"):
        await change
    with pytest.raises(ConflictError, match="already has this slug"):
        await repository.create(first_name, "Copy")
    assert len(witness.published) == published
    assert await load_tenant(sessions, uuid_of(second)) == second, "rolled back"
    assert await load_tenant(sessions, slug(first_name)) == first


async def test_an_unknown_tenant_cannot_change(repository: TenantRepository) -> None:
    with pytest.raises(TenantNotFoundError):
        await repository.rename(uuid.uuid4(), new_slug())


async def test_identifiers_are_validated_before_any_write(
    repository: TenantRepository, witness: CommitWitness
) -> None:
    with pytest.raises(ValidationError):
        await repository.create("admin", "Reserved")
    with pytest.raises(ValidationError):
        await repository.create(new_slug(), "Bad host", domain="exa mple.com")
    assert witness.published == []


@pytest.fixture
def sync_engine(app_settings: Settings) -> Iterator[Engine]:
    assert app_settings.database_url is not None
    created = sqlalchemy.create_engine(async_database_url(app_settings.database_url))
    yield created
    created.dispose()


async def test_both_loaders_find_a_tenant_by_each_identifier(
    repository: TenantRepository, sessions: async_sessionmaker[AsyncSession], sync_engine: Engine
) -> None:
    name = new_slug()
    created = await repository.create(
        name, "Acme", domain=f"{name}.example.test", settings={"locale": "en"}
    )
    for identifier in identifiers_of(created):
        assert await load_tenant(sessions, identifier) == created
        assert load_tenant_sync(sync_engine, identifier) == created
    missing = slug(new_slug("nobody"))
    assert await load_tenant(sessions, missing) is None
    assert load_tenant_sync(sync_engine, missing) is None
