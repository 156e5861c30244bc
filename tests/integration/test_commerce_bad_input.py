"""Bad input and illegal moves are refused with the right error and write nothing: negative
or fractional money, negative stock and quantities, unknown SKUs and another tenant's,
currency mismatches, draft products, double submits, paying twice, and two concurrent
transitions of one order (only one wins)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fixtures.checkout_books import Gate, place_order, stock_product, wire_checkout
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rustok_ref.commerce import (
    CheckoutStatus,
    Money,
    OrderLineRequest,
    OrderStatus,
    ProductEvent,
    cancel_order,
    create_order,
    create_product,
    get_order,
    ship_order,
    submit_order,
    transition_product,
    update_product,
)
from rustok_ref.commerce.providers import Operation
from rustok_ref.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    RustokError,
    ValidationError,
)
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import (
    event_store,
    order_lines,
    orders,
    outbox,
    payments,
    products,
    saga_instances,
)

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
WRITTEN = (products, orders, order_lines, outbox, event_store, saga_instances, payments)


async def _counts(sessions: Sessions, tenant: uuid.UUID) -> dict[str, int]:
    async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
        return {
            table.name: await uow.session.scalar(
                select(func.count()).select_from(table).where(table.c.tenant_id == tenant)
            )
            or 0
            for table in WRITTEN
        }


async def _refused(
    sessions: Sessions,
    tenant: uuid.UUID,
    error: type[RustokError],
    change: Callable[[UnitOfWork], Awaitable[Any]],
) -> RustokError:
    """`change` in the tenant's unit of work raises `error`, and no row of the tenant
    changed (the transaction is rolled back, as a request's would be)."""

    async def attempt() -> None:
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            await change(uow)
            await uow.commit()

    before = await _counts(sessions, tenant)
    with pytest.raises(error) as caught:
        await attempt()
    assert await _counts(sessions, tenant) == before
    return caught.value


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(-1, "EUR"), (12.5, "EUR"), (True, "EUR"), ("100", "EUR"), (2**63, "EUR"), (100, "eur")],
)
def test_money_is_whole_non_negative_minor_units_in_an_iso_currency(
    amount: object, currency: str
) -> None:
    with pytest.raises(ValidationError):
        Money(amount, currency)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("stock", -1), ("stock", 1.5), ("sku", "   "), ("sku", "x" * 65), ("title", "")],
)
async def test_a_product_with_bad_fields_is_refused(
    sessions: Sessions, field: str, value: object
) -> None:
    tenant = uuid.uuid4()
    fields: dict[str, Any] = {"sku": "good", "title": "Good", "price": Money(1, "EUR"), "stock": 1}

    async def create(uow: UnitOfWork) -> None:
        await create_product(uow, **{**fields, field: value})

    error = await _refused(sessions, tenant, ValidationError, create)
    assert field in error.fields  # type: ignore[attr-defined]


async def test_a_duplicate_sku_is_a_conflict_but_another_tenant_may_use_it(
    sessions: Sessions,
) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    product = await stock_product(sessions, tenant)

    async def again(uow: UnitOfWork) -> None:
        await create_product(uow, sku=product.sku, title="Again", price=Money(1, "EUR"), stock=1)

    await _refused(sessions, tenant, ConflictError, again)
    assert (await stock_product(sessions, other, sku=product.sku)).sku == product.sku


async def test_product_changes_go_through_the_table_and_the_version(sessions: Sessions) -> None:
    tenant = uuid.uuid4()
    product = await stock_product(sessions, tenant, publish=False)

    async def archive_a_draft(uow: UnitOfWork) -> None:
        await transition_product(uow, product.id, ProductEvent.ARCHIVE)

    async def stale_update(uow: UnitOfWork) -> None:
        await update_product(uow, product.id, title="New", expected_version=product.version + 1)

    async def negative_stock(uow: UnitOfWork) -> None:
        await update_product(uow, product.id, stock=-3)

    await _refused(sessions, tenant, InvalidTransitionError, archive_a_draft)
    await _refused(sessions, tenant, ConflictError, stale_update)
    await _refused(sessions, tenant, ValidationError, negative_stock)


@pytest.mark.parametrize(
    ("lines", "error", "field"),
    [
        ([], ValidationError, "lines"),
        ([("known", -2)], ValidationError, "lines[0].quantity"),
        ([("known", 0)], ValidationError, "lines[0].quantity"),
        ([("known", 1.5)], ValidationError, "lines[0].quantity"),
        ([("known", 1), ("known", 1)], ValidationError, "lines[1].sku"),
        ([("known", 1), ("unknown", 1)], NotFoundError, None),
        ([("foreign", 1)], NotFoundError, None),
        ([("dollars", 1)], ValidationError, "lines[0].currency"),
        ([("draft", 1)], ValidationError, "lines[0].sku"),
    ],
    ids=[
        "no lines",
        "negative quantity",
        "zero quantity",
        "fractional quantity",
        "repeated sku",
        "unknown sku",
        "another tenant's product",
        "currency mismatch",
        "draft product",
    ],
)
async def test_a_bad_order_is_refused_and_writes_nothing(
    sessions: Sessions,
    lines: list[tuple[str, Any]],
    error: type[RustokError],
    field: str | None,
) -> None:
    tenant = uuid.uuid4()
    skus = {
        "known": (await stock_product(sessions, tenant)).sku,
        "unknown": "no-such-sku",
        "foreign": (await stock_product(sessions, uuid.uuid4())).sku,
        "dollars": (await stock_product(sessions, tenant, price=Money(900, "USD"))).sku,
        "draft": (await stock_product(sessions, tenant, publish=False)).sku,
    }
    requests = [OrderLineRequest(skus[name], quantity) for name, quantity in lines]

    async def order(uow: UnitOfWork) -> None:
        await create_order(uow, currency="EUR", lines=requests)

    refused = await _refused(sessions, tenant, error, order)
    if field is not None:
        assert field in refused.fields  # type: ignore[attr-defined]


async def test_submitting_twice_is_an_invalid_transition(sessions: Sessions) -> None:
    tenant = uuid.uuid4()
    product = await stock_product(sessions, tenant)
    order = await place_order(sessions, tenant, [(product, 1)])

    async def submit(uow: UnitOfWork) -> None:
        await submit_order(uow, order.id)

    await _refused(sessions, tenant, InvalidTransitionError, submit)


async def test_of_two_concurrent_transitions_only_one_wins(sessions: Sessions) -> None:
    tenant = uuid.uuid4()
    product = await stock_product(sessions, tenant)
    order = await place_order(sessions, tenant, [(product, 1)], submit=False)

    async def submit() -> None:
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            await submit_order(uow, order.id, expected_version=order.version)
            await uow.commit()

    async def cancel() -> None:
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            await cancel_order(uow, order.id, expected_version=order.version)
            await uow.commit()

    outcomes = await asyncio.gather(submit(), cancel(), return_exceptions=True)

    assert sorted(type(o).__name__ for o in outcomes) == ["ConflictError", "NoneType"]
    async with UnitOfWork(sessions, tenant_id=tenant) as uow:
        final = await get_order(uow, order.id)
    assert final.version == order.version + (
        1 if final.status is OrderStatus.PENDING_PAYMENT else 2
    )


async def test_illegal_order_moves_are_refused(sessions: Sessions) -> None:
    tenant = uuid.uuid4()
    product = await stock_product(sessions, tenant)
    draft = await place_order(sessions, tenant, [(product, 1)], submit=False)
    checkout = wire_checkout(sessions)

    async def ship(uow: UnitOfWork) -> None:
        await ship_order(uow, draft.id)

    await _refused(sessions, tenant, InvalidTransitionError, ship)
    with pytest.raises(InvalidTransitionError):
        await checkout.service.pay(tenant, draft.id)
    with pytest.raises(NotFoundError):
        await checkout.service.pay(uuid.uuid4(), draft.id)  # another tenant's order
    with pytest.raises(ConflictError):
        await checkout.service.pay(tenant, draft.id, expected_version=draft.version + 5)


async def test_paying_twice_is_refused_whether_paid_or_in_progress(sessions: Sessions) -> None:
    tenant = uuid.uuid4()
    product = await stock_product(sessions, tenant)
    paid = await place_order(sessions, tenant, [(product, 1)])
    waiting = await place_order(sessions, tenant, [(product, 1)])
    checkout = wire_checkout(sessions)
    assert (await checkout.service.pay(tenant, paid.id)).status is CheckoutStatus.PAID

    before = await _counts(sessions, tenant)
    with pytest.raises(InvalidTransitionError):
        await checkout.service.pay(tenant, paid.id)
    assert await _counts(sessions, tenant) == before

    async def cancel_paid(uow: UnitOfWork) -> None:
        await cancel_order(uow, paid.id)

    await _refused(sessions, tenant, InvalidTransitionError, cancel_paid)

    # a checkout held up at the provider: the first pay answers "in progress"
    gate = Gate()
    held = wire_checkout(sessions, sync_wait_s=0, provider_sleep=gate)
    service = held.service
    await held.payments.faults.set(tenant, Operation.AUTHORISE, latency_ms=1)
    try:
        first = await service.pay(tenant, waiting.id)
        assert first.status is CheckoutStatus.IN_PROGRESS
        before = await _counts(sessions, tenant)
        with pytest.raises(ConflictError) as caught:
            await service.pay(tenant, waiting.id)
        assert caught.value.extra["saga_id"] == str(first.saga_id)
        assert await _counts(sessions, tenant) == before
    finally:
        gate.opened.set()
        await service.drain()
        await held.payments.faults.clear(tenant)
    assert (await service.outcome(tenant, first.saga_id)).status is CheckoutStatus.PAID
