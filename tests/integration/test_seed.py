"""`rustok-ref seed`, as a load run uses it: skewed tenants, usable keys, clear refusals."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from api_support import settings_env
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from rustok_ref.api.auth import ApiKeys, Role
from rustok_ref.bootstrap import services, wire
from rustok_ref.cli import app
from rustok_ref.commerce import OrderStatus, ProductStatus
from rustok_ref.config import Settings
from rustok_ref.features.model import Feature
from rustok_ref.lab.seed import SeedError, zipf_sizes
from rustok_ref.storage import UnitOfWork
from rustok_ref.storage.tables import orders, products

pytestmark = pytest.mark.integration


@pytest.fixture
def seed_env(app_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in settings_env(app_settings).items():
        monkeypatch.setenv(name, value)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["seed", *args])


def unique_prefix() -> str:
    return f"s{uuid.uuid4().hex[:8]}"


async def tenant_facts(settings: Settings, tenant_id: uuid.UUID, keys: dict[str, str]) -> Any:
    """What the database says of a seeded tenant: product and order counts by status, whether
    commerce is on, and the role each key verifies as."""
    async with wire(settings) as container, services(container) as built:
        async with UnitOfWork(container.sessions, tenant_id=tenant_id) as uow:
            by_status: dict[str, int] = dict(
                (
                    await uow.session.execute(
                        select(products.c.status, func.count()).group_by(products.c.status)
                    )
                ).all()
            )
            order_statuses: dict[str, int] = dict(
                (
                    await uow.session.execute(
                        select(orders.c.status, func.count()).group_by(orders.c.status)
                    )
                ).all()
            )
        commerce = await built.flags.is_enabled(tenant_id, Feature.COMMERCE)
        api_keys = ApiKeys(container.sessions)
        roles = {name: await api_keys.verify(token) for name, token in keys.items()}
    return by_status, order_statuses, commerce, roles


def test_seed_creates_zipf_sized_tenants_with_working_keys(
    seed_env: None, app_settings: Settings, tmp_path: Path
) -> None:
    prefix, keys_file = unique_prefix(), tmp_path / "seed.json"
    result = invoke(
        "--tenants", "4", "--products", "40", "--orders", "8", "--seed", "7",
        "--prefix", prefix, "--keys-file", str(keys_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    seeded = json.loads(keys_file.read_text())
    assert json.loads(result.stdout) == seeded
    assert [shop["slug"] for shop in seeded] == [f"{prefix}-7-{i}" for i in range(1, 5)]
    sizes = [len(shop["product_ids"]) for shop in seeded]
    assert sum(sizes) == 40
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert sum(shop["weight"] for shop in seeded) == pytest.approx(1.0, abs=1e-5)
    assert sum(len(shop["order_ids"]) for shop in seeded) == 8
    for shop in seeded:
        by_status, order_statuses, commerce, principals = asyncio.run(
            tenant_facts(app_settings, uuid.UUID(shop["tenant_id"]), shop["keys"])
        )
        assert by_status == {ProductStatus.PUBLISHED.value: len(shop["product_ids"])}
        assert sum(order_statuses.values()) == len(shop["order_ids"])
        assert set(order_statuses) <= {OrderStatus.PENDING_PAYMENT.value}
        assert commerce is True
        assert {name: p.role for name, p in principals.items()} == {r.value: r for r in Role}
        assert all(str(p.tenant_id) == shop["tenant_id"] for p in principals.values())


def test_seeding_the_same_slugs_twice_fails_before_writing(seed_env: None) -> None:
    prefix = unique_prefix()
    assert invoke("--tenants", "2", "--products", "2", "--prefix", prefix).exit_code == 0
    again = invoke("--tenants", "3", "--products", "3", "--prefix", prefix)
    assert again.exit_code == 1
    assert f"tenant slug '{prefix}-0-1' already exists" in again.stderr
    assert again.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenants", "5", "--products", "3"], "--products (3) must be at least --tenants (5)"),
        (["--tenants", "0", "--products", "3"], "--tenants"),
        (["--tenants", "1", "--products", "1", "--prefix", "Not A Slug!"], "error:"),
        (["--products", "3"], "--tenants"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_message(
    seed_env: None, args: list[str], message: str
) -> None:
    result = invoke(*args)
    assert result.exit_code != 0
    assert message in result.stderr


def test_zipf_sizes_are_exact_non_increasing_and_skewed() -> None:
    sizes = zipf_sizes(10, 1_000, 1.1)
    assert sum(sizes) == 1_000
    assert all(a >= b for a, b in itertools.pairwise(sizes))
    assert sizes[0] > 3 * sizes[-1] and min(sizes) >= 1
    assert zipf_sizes(3, 2, 1.1, minimum=0) == [1, 1, 0]
    with pytest.raises(SeedError):
        zipf_sizes(3, 2, 1.1)
