"""The review's A2, command/query separation in GraphQL, checked on the real schema.

- `graphql_tables`: every Query and Mutation field of the schema run once through the real
  application (in process, its lifespan and middleware included), recording each request's
  SQL on the engine and the tables it reads and writes.
- `mutation_resolver_calls`: what each Mutation resolver calls, read from its source, to see
  that it writes through a domain function (rustok_ref.commerce, or the services' checkout)
  and issues no SQL of its own.
- `subscription_deliveries`: the `orderStatusChanged` feed the subscription resolver
  iterates, opened on orders, each then cancelled through the REST API: was it delivered?
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import textwrap
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any, cast

from sqlalchemy import event
from strawberry.types.base import get_object_definition

from rustok_ref.api.context import resolve_context
from rustok_ref.api.graphql.feed import order_status_changes
from rustok_ref.api.graphql.schema import Mutation, Query
from rustok_ref.api.graphql.types import OrderStatusChange
from rustok_ref.commerce.states import OrderStatus
from rustok_ref.config import Settings
from rustok_ref.lab.experiments.inprocess import api_client
from rustok_ref.lab.seed import SeededTenant
from rustok_ref.storage.tables import metadata

READ_INDEX = frozenset({"product_view", "order_view", "tenant_view"})
REQUEST_SETUP = frozenset({"tenants", "api_keys", "tenant_features"})
"""What resolving the caller reads before a resolver runs: the tenant, its key, the feature
guard. Neither the index nor the commerce write model."""
WRITE_MODEL = frozenset(metadata.tables) - READ_INDEX - REQUEST_SETUP
DOMAIN_MODULES = ("rustok_ref.commerce", "rustok_ref.saga")
SQL_NAMES = frozenset({"execute", "scalar", "scalars", "insert", "update", "delete", "text"})

_FIELD: ContextVar[str | None] = ContextVar("graphql_field", default=None)
"""The field whose request runs: set per request, so SQL of the application's own background
tasks (started before it) is never counted, while the request's child tasks inherit it."""
_TABLE = re.compile(r'\b(?:FROM|JOIN|INTO|UPDATE)\s+"?([a-z_]+)"?', re.IGNORECASE)
_WRITE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?([a-z_]+)"?', re.IGNORECASE)


def statement_tables(statement: str) -> tuple[set[str], set[str]]:
    """The known tables a SQL statement names, and those it writes."""
    named = {name for name in _TABLE.findall(statement) if name in metadata.tables}
    written = {name for name in _WRITE.findall(statement) if name in metadata.tables}
    return named, written


@dataclass
class FieldSql:
    """The tables one GraphQL field's request named and wrote, and any errors it returned."""

    kind: str
    read: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def write_model_read(self) -> set[str]:
        return self.read & WRITE_MODEL

    @property
    def index_written(self) -> set[str]:
        return self.written & READ_INDEX


def query_violations(fields: Mapping[str, FieldSql]) -> list[str]:
    """Query fields whose request touched a write-model table."""
    return [name for name, f in fields.items() if f.kind == "query" and f.write_model_read]


def schema_fields() -> dict[str, str]:
    """Every Query and Mutation field of the schema (python names) with its kind."""
    found = {f.python_name: "query" for f in get_object_definition(Query, strict=True).fields}
    found.update(
        {f.python_name: "mutation" for f in get_object_definition(Mutation, strict=True).fields}
    )
    return found


async def _exercise(
    post: Callable[[str, str], Awaitable[dict[str, Any]]], shop: SeededTenant
) -> None:
    """Every field once: the queries over the seeded data, then a product made and
    published, an order placed, submitted and paid, another placed and cancelled."""
    product, order = shop.product_ids[0], shop.order_ids[0]
    await post("products", "{ products { items { id } } }")
    await post("product", f'{{ product(id: "{product}") {{ id }} }}')
    await post("orders", "{ orders { items { id } } }")
    await post("order", f'{{ order(id: "{order}") {{ id }} }}')
    await post("tenant", "{ tenant { id } }")
    sku = f"cqrs-{uuid.uuid4().hex[:8]}"
    created = (
        await post(
            "create_product",
            f'mutation {{ createProduct(input: {{sku: "{sku}", title: "CQRS probe", '
            f'price: {{amount: 500, currency: "EUR"}}, stock: 10}}) {{ id }} }}',
        )
    )["createProduct"]["id"]
    await post("publish_product", f'mutation {{ publishProduct(id: "{created}") {{ id }} }}')
    place = (
        f'mutation {{ createOrder(input: {{lines: [{{sku: "{sku}", quantity: 1}}]}}) {{ id }} }}'
    )
    paid = (await post("create_order", place))["createOrder"]["id"]
    await post("submit_order", f'mutation {{ submitOrder(id: "{paid}") {{ id }} }}')
    await post("pay_order", f'mutation {{ payOrder(id: "{paid}") {{ status }} }}')
    cancelled = (await post("create_order", place))["createOrder"]["id"]
    await post(
        "cancel_order", f'mutation {{ cancelOrder(id: "{cancelled}", reason: "probe") {{ id }} }}'
    )


class GraphQLCallError(RuntimeError):
    """A field the check runs answered with errors: its SQL would not be the resolver's."""


async def graphql_tables(settings: Settings, shop: SeededTenant) -> dict[str, FieldSql]:
    """Run every schema field through the in-process application (workers and saga
    recovery off) with `shop`'s admin key, and classify each request's SQL (`_FIELD`).
    GraphQLCallError if a field answers with errors."""
    found = {name: FieldSql(kind) for name, kind in schema_fields().items()}

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        name = _FIELD.get()
        if name is not None:
            named, written = statement_tables(statement)
            found[name].read |= named
            found[name].written |= written

    async with api_client(settings, shop) as (app, client):

        async def post(name: str, document: str) -> dict[str, Any]:
            token = _FIELD.set(name)
            try:
                body = (await client.post("/graphql", json={"query": document})).json()
            finally:
                _FIELD.reset(token)
            if body.get("errors"):
                raise GraphQLCallError(f"{name}: {body['errors'][0]['message']}")
            data: dict[str, Any] = body["data"]
            return data

        engine = app.state.api.services.container.engine.sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            await _exercise(post, shop)
        finally:
            event.remove(engine, "before_cursor_execute", record)
    return found


def mutation_resolver_calls(resolver: Callable[..., Any]) -> tuple[set[str], set[str]]:
    """The domain functions a resolver calls (by module: DOMAIN_MODULES, or a method of
    `caller.services`) and the SQL-making names it calls itself, read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(resolver)))
    scope = vars(inspect.getmodule(resolver))
    domain, sql = set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = node.func
        name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
        if name in SQL_NAMES:
            sql.add(name)
        target = scope.get(name) if isinstance(called, ast.Name) else None
        if target is not None and getattr(target, "__module__", "").startswith(DOMAIN_MODULES):
            domain.add(name)
        if isinstance(called, ast.Attribute) and "services" in ast.unparse(called.value):
            domain.add(ast.unparse(called))
    return domain, sql


def mutation_violations() -> dict[str, str]:
    """Mutation fields whose resolver calls no domain function or issues SQL itself."""
    found = {}
    for definition in get_object_definition(Mutation, strict=True).fields:
        resolver = definition.base_resolver
        assert resolver is not None, f"{definition.python_name} has no resolver"
        function = resolver.wrapped_func
        assert isinstance(function, FunctionType), f"{definition.python_name}: not a function"
        domain, sql = mutation_resolver_calls(function)
        if sql or not domain:
            found[definition.python_name] = f"SQL: {sorted(sql)}" if sql else "no domain call"
    return found


async def subscription_deliveries(
    settings: Settings, shop: SeededTenant, orders: Sequence[uuid.UUID], *, bound_s: float
) -> dict[uuid.UUID, bool]:
    """Per order (pending and already in the read index): whether an open
    `orderStatusChanged` feed delivered its cancellation, committed through the REST API
    while the application's relay runs. Each wait is bounded by `bound_s` (liveness)."""
    delivered: dict[uuid.UUID, bool] = {}
    async with api_client(settings, shop, workers=True) as (app, client):
        caller = await resolve_context(
            app.state.api, {"x-tenant-id": shop.slug}, "127.0.0.1", shop.keys["admin"]
        )
        for order_id in orders:
            feed = cast(
                AsyncGenerator[OrderStatusChange, None], order_status_changes(caller, order_id)
            )
            try:
                await anext(feed)  # the status now: the subscription is live
                answer = await client.post(f"/orders/{order_id}/cancel", json={"reason": "feed"})
                answer.raise_for_status()
                change = await asyncio.wait_for(anext(feed), bound_s)
                delivered[order_id] = change.status is OrderStatus.CANCELLED
            except TimeoutError:
                delivered[order_id] = False
            finally:
                await feed.aclose()
    return delivered
