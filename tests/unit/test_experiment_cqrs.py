"""The CQRS-lite (read index) and A2 (GraphQL) measurements: the SQL classification and the
resolver reading, and (integration) the read index catching up, every GraphQL field run on
the real product, and the subscription feed delivering committed changes."""

from __future__ import annotations

import pytest

from rustok_ref.config import Settings
from rustok_ref.lab.experiments import cqrs, readindex, shop


def test_statement_tables_names_reads_and_writes() -> None:
    read, written = cqrs.statement_tables(
        "INSERT INTO outbox (id) SELECT id FROM products JOIN order_lines ON true"
    )
    assert read == {"outbox", "products", "order_lines"}
    assert written == {"outbox"}
    assert cqrs.statement_tables('UPDATE "orders" SET status = 1') == ({"orders"}, {"orders"})
    assert cqrs.statement_tables("SELECT 1 FROM pg_class") == (set(), set())


def test_query_violations_are_queries_touching_the_write_model() -> None:
    fields = {
        "products": cqrs.FieldSql("query", read={"product_view", "tenants"}),
        "leaky": cqrs.FieldSql("query", read={"product_view", "products"}),
        "create_product": cqrs.FieldSql("mutation", read={"products"}),
    }
    assert cqrs.query_violations(fields) == ["leaky"]


async def _writes_sql_itself(uow: object) -> None:
    await uow.session.execute("DELETE FROM products")  # type: ignore[attr-defined]


async def _calls_the_domain(caller: object) -> None:
    await caller.services.checkout.pay(1, 2)  # type: ignore[attr-defined]


def test_mutation_resolver_calls_tell_domain_calls_from_own_sql() -> None:
    assert cqrs.mutation_resolver_calls(_writes_sql_itself) == (set(), {"execute"})
    domain, sql = cqrs.mutation_resolver_calls(_calls_the_domain)
    assert domain == {"caller.services.checkout.pay"} and not sql


def test_every_mutation_resolver_writes_through_the_domain() -> None:
    assert cqrs.mutation_violations() == {}


@pytest.mark.integration
async def test_the_index_catches_up_and_queries_read_only_it(app_settings: Settings) -> None:
    async with shop.open_shop(app_settings) as built:
        shops, _ = await shop.seed_paid(built, tenants=1, products=3, orders=1, seed=9)
        tenants = [s.tenant_id for s in shops]
        sessions = built.container.sessions
        assert (await readindex.index_agreement(sessions, tenants)).total == 4
        samples = await shop.drain_until(
            built, lambda: readindex.indexed_percent(sessions, tenants), bound_s=60.0
        )
        assert (await readindex.index_agreement(sessions, tenants)).percent == 100
    assert samples[-1][1] == 100
    fields = await cqrs.graphql_tables(app_settings, shops[0])
    assert set(fields) == set(cqrs.schema_fields())
    assert cqrs.query_violations(fields) == [], {n: f.read for n, f in fields.items()}
    assert "product_view" in fields["products"].read
    assert "products" in fields["create_product"].written
    assert not any(f.index_written for f in fields.values())


@pytest.mark.integration
async def test_an_open_feed_delivers_each_committed_cancellation(app_settings: Settings) -> None:
    async with shop.open_shop(app_settings) as built:
        shops, _ = await shop.seed_paid(built, tenants=1, products=2, orders=3, seed=10)
        tenants = [s.tenant_id for s in shops]
        sessions = built.container.sessions
        await shop.drain_until(
            built, lambda: readindex.indexed_percent(sessions, tenants), bound_s=60.0
        )
    pending = shops[0].order_ids[1:]
    delivered = await cqrs.subscription_deliveries(app_settings, shops[0], pending, bound_s=60.0)
    assert delivered == {order_id: True for order_id in pending}
