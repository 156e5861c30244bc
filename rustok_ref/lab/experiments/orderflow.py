"""The review's order-flow test (P2.2), run through the REST API against PostgreSQL.

The review's integration test creates a product, places an order (Draft), submits it
(PendingPayment), pays it (Paid) and expects OrderPaid to be emitted. `order_flow` runs the
same steps through the application in process (`inprocess.api_client`) and returns each of
the review's assertions with whether it held, so a failing step shows by name.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from rustok_ref.config import Settings
from rustok_ref.lab.experiments.inprocess import api_client
from rustok_ref.lab.seed import SeededTenant
from rustok_ref.storage import DbRole, UnitOfWork
from rustok_ref.storage.tables import event_store

POLL_S = 0.1


async def order_flow(settings: Settings, shop: SeededTenant, *, bound_s: float) -> dict[str, bool]:
    """The review's assertions, in order, each with whether it held; a checkout still in
    progress is polled up to `bound_s` (a liveness bound)."""
    held: dict[str, bool] = {}
    async with api_client(settings, shop) as (app, client):
        product = await client.post(
            "/products",
            json={
                "sku": f"flow-{uuid.uuid4().hex[:8]}",
                "title": "Order-flow probe",
                "price": {"amount": 1_250, "currency": "EUR"},
                "stock": 5,
            },
        )
        held["the product is created (201)"] = product.status_code == 201
        product_id = product.json()["id"]
        await client.post(f"/products/{product_id}/publish")
        order = await client.post(
            "/orders", json={"lines": [{"product_id": product_id, "quantity": 2}]}
        )
        held["the order is created as Draft"] = _status(order, 201) == "draft"
        order_id = order.json()["id"]
        submitted = await client.post(f"/orders/{order_id}/submit")
        held["submit makes it PendingPayment"] = _status(submitted, 200) == "pending_payment"
        paid = await _paid(client, await client.post(f"/orders/{order_id}/pay"), bound_s)
        held["pay ends the checkout as paid"] = paid == "paid"
        held["the order reads as Paid"] = _status(await client.get(f"/orders/{order_id}")) == "paid"
        sessions = app.state.api.services.container.sessions
        async with UnitOfWork(sessions, tenant_id=None, role=DbRole.WORKER) as uow:
            emitted = await uow.session.scalar(
                select(func.count()).where(
                    event_store.c.aggregate_id == uuid.UUID(order_id),
                    event_store.c.event_type == "order.paid",
                )
            )
        held["OrderPaid is emitted once"] = emitted == 1
    return held


def _status(answer: httpx.Response, expected: int = 200) -> Any:
    return answer.json().get("status") if answer.status_code == expected else None


async def _paid(client: httpx.AsyncClient, answer: httpx.Response, bound_s: float) -> Any:
    """The checkout's final status: the answer's, or the Location's once it is final."""
    deadline = time.monotonic() + bound_s
    location = answer.headers.get("Location") if answer.status_code == 202 else None
    while location and answer.json().get("status") == "in_progress":
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(POLL_S)
        answer = await client.get(location)
    return _status(answer)


def share_held(held: dict[str, bool]) -> float:
    """Percent of the assertions that held."""
    if not held:
        raise ValueError("no assertions")
    return 100 * sum(held.values()) / len(held)
