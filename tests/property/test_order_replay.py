"""Event sourcing (A3): whatever an order went through (legal moves, refused ones, a checkout
that pays it or fails at the provider), replaying its stored events gives exactly the order
the database holds, and the same holds for its payment. Database-backed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from fixtures.checkout_books import place_order, stock_product, wire_checkout
from hypothesis import given, settings
from hypothesis import strategies as st

from rustok_ref.commerce import (
    cancel_order,
    deliver_order,
    get_order,
    order_history,
    payment_history,
    ship_order,
    submit_order,
)
from rustok_ref.commerce.payments import find_payment
from rustok_ref.commerce.providers import Operation
from rustok_ref.config import Settings
from rustok_ref.errors import ConflictError, InvalidTransitionError
from rustok_ref.storage import UnitOfWork, create_engine, create_sessionmaker

pytestmark = pytest.mark.integration

MOVES = ("submit", "cancel", "pay", "pay_declined", "ship", "deliver")
CHANGES = {
    "submit": submit_order,
    "cancel": cancel_order,
    "ship": ship_order,
    "deliver": deliver_order,
}


async def _story(app_settings: Settings, quantities: list[int], moves: list[str]) -> None:
    engine = create_engine(app_settings)
    sessions = create_sessionmaker(engine)
    tenant = uuid.uuid4()
    checkout = wire_checkout(sessions, name=f"replay_{uuid.uuid4().hex[:8]}")
    try:
        lines = [(await stock_product(sessions, tenant, stock=5), q) for q in quantities]
        order = await place_order(sessions, tenant, lines, submit=False)
        for move in moves:
            with contextlib.suppress(InvalidTransitionError, ConflictError):
                if move.startswith("pay"):
                    failing = 1.0 if move == "pay_declined" else 0.0
                    await checkout.payments.faults.set(
                        tenant, Operation.AUTHORISE, failure_rate=failing
                    )
                    await checkout.service.pay(tenant, order.id)
                    continue
                async with UnitOfWork(sessions, tenant_id=tenant) as uow:
                    await CHANGES[move](uow, order.id)
                    await uow.commit()
        async with UnitOfWork(sessions, tenant_id=tenant) as uow:
            persisted = await get_order(uow, order.id)
            replayed = await order_history(uow, order.id)
            assert (replayed.version, replayed.state) == (persisted.version, persisted.state())
            if persisted.payment_id is not None:
                payment = await find_payment(uow, persisted.payment_id)
                history = await payment_history(uow, persisted.payment_id)
                if payment is None:  # the provider refused: nothing was recorded
                    assert history.version == 0
                else:
                    assert (history.version, history.state) == (payment.version, payment.state())
    finally:
        await engine.dispose()


@settings(max_examples=20)
@given(
    quantities=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    moves=st.lists(st.sampled_from(MOVES), max_size=7),
)
def test_replaying_an_orders_events_gives_the_persisted_order(
    app_settings: Settings, quantities: list[int], moves: list[str]
) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_story(app_settings, quantities, moves))
    finally:
        loop.close()
