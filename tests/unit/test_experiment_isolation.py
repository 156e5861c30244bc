"""Tenant isolation measured table by table on a shop seeded through the product's services
(integration: the real database, row-level security on)."""

from __future__ import annotations

import pytest

from rustok_ref.config import Settings
from rustok_ref.lab.experiments import isolation, shop
from rustok_ref.storage.tables import metadata

pytestmark = pytest.mark.integration


def test_owned_tables_are_the_metadata_marks() -> None:
    names = {table.name for table in isolation.owned_tables()}
    assert {"products", "orders", "product_view", "tenants"} <= names
    assert not names & {t.name for t in metadata.sorted_tables if t.info["tenancy"] == "global"}


def test_foreign_rows_sums_every_table_and_tenant() -> None:
    results = [
        isolation.TableIsolation("a", (3, 2), (0, 1)),
        isolation.TableIsolation("b", (1, 0), (2, 0)),
    ]
    assert isolation.foreign_rows(results) == 3
    assert [r.seeded_for_all for r in results] == [True, False]


async def test_a_seeded_shop_leaks_no_row_across_tenants(app_settings: Settings) -> None:
    async with shop.open_shop(app_settings) as built:
        shops, paid = await shop.seed_paid(built, tenants=2, products=4, orders=2, seed=5)
        results = await isolation.table_isolation(
            built.container.sessions, [s.tenant_id for s in shops]
        )
    by_name = {result.table: result for result in results}
    assert all(outcome.order_id in {s.order_ids[0] for s in shops} for outcome in paid)
    for name in ("products", "orders", "order_lines", "outbox", "tenants"):
        assert by_name[name].seeded_for_all, name
    assert isolation.foreign_rows(results) == 0
