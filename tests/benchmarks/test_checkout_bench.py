"""Database round trips per checkout (the `RoundTrips` counter, client side): placing an order
(create and submit) and paying it (the whole checkout saga: saga log, stock, payment,
shipment, order, events), counted on our engine; the stand-in providers' own round trips,
which a real provider would spend over HTTP instead, counted apart on an engine of their own.

Recorded, no target: the figures are written to `reports/bench/checkout-roundtrips-*.json`
and printed. Round trips are deterministic, so two checkouts must cost the same.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures.checkout_books import place_order, stock_product, wire_checkout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rustok_ref.commerce import CheckoutStatus
from rustok_ref.config import Settings
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.storage import create_engine, create_sessionmaker

pytestmark = pytest.mark.integration

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "bench"
CHECKOUTS = 3


@pytest.fixture
async def provider_engine(app_settings: Settings) -> AsyncIterator[AsyncEngine]:
    created = create_engine(app_settings)
    yield created
    await created.dispose()


async def test_database_round_trips_per_checkout(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    provider_engine: AsyncEngine,
) -> None:
    tenant = uuid.uuid4()
    checkout = wire_checkout(sessions, provider_sessions=create_sessionmaker(provider_engine))
    product = await stock_product(sessions, tenant, stock=10 * CHECKOUTS)
    ours, theirs = RoundTrips(), RoundTrips()
    ours.watch_engine(engine)
    theirs.watch_engine(provider_engine)
    counted: list[dict[str, int]] = []
    try:
        for _ in range(CHECKOUTS):
            ours.reset()
            order = await place_order(sessions, tenant, [(product, 2)])
            placing = ours.database
            ours.reset()
            theirs.reset()
            outcome = await checkout.service.pay(tenant, order.id)
            assert outcome.status is CheckoutStatus.PAID
            counted.append({"place": placing, "pay": ours.database, "providers": theirs.database})
    finally:
        ours.close()
        theirs.close()
    assert all(figures == counted[0] for figures in counted), counted
    figures = {
        "name": "database round trips per checkout",
        "order_create_and_submit": counted[0]["place"],
        "pay_saga_ours": counted[0]["pay"],
        "pay_saga_standin_providers": counted[0]["providers"],
        "checkouts": CHECKOUTS,
        "created": datetime.now(UTC).isoformat(),
    }
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"checkout-roundtrips-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.json"
    path.write_text(json.dumps(figures, indent=2))
    print(f"\n{json.dumps(figures)}\nwritten to {path}")
