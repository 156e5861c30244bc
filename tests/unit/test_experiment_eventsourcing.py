"""Event sourcing (A3) and the order flow (P2.2) measured on a shop seeded through the
product's services: the pure shares, and (integration) the replays and the REST flow."""

from __future__ import annotations

import uuid

import pytest

from rustok_ref.commerce.orders import cancel_order
from rustok_ref.config import Settings
from rustok_ref.lab.experiments import eventsourcing as es
from rustok_ref.lab.experiments import orderflow, shop
from rustok_ref.storage import UnitOfWork


def _replay(row: int, stream: int, mismatched: tuple[str, ...] = ()) -> es.Replayed:
    return es.Replayed("order", uuid.uuid4(), row, stream, mismatched)


def test_full_history_counts_changes_without_their_event() -> None:
    assert es.full_history([_replay(3, 3), _replay(2, 1)]) == 80
    assert es.full_history([]) == 100


def test_rebuilt_needs_the_same_state_and_the_whole_stream() -> None:
    replays = [_replay(3, 3), _replay(3, 3, ("status",)), _replay(2, 1), _replay(1, 1)]
    assert es.rebuilt(replays) == 50


def test_share_held_counts_the_assertions_that_held() -> None:
    assert orderflow.share_held({"a": True, "b": False}) == 50
    with pytest.raises(ValueError, match="no assertions"):
        orderflow.share_held({})


@pytest.mark.integration
async def test_stored_orders_and_payments_replay_to_their_rows(app_settings: Settings) -> None:
    async with shop.open_shop(app_settings) as built:
        shops, _ = await shop.seed_paid(built, tenants=1, products=3, orders=3, seed=21)
        sessions = built.container.sessions
        async with UnitOfWork(sessions, tenant_id=shops[0].tenant_id) as uow:
            await cancel_order(uow, shops[0].order_ids[1], reason="test")
            await uow.commit()
        replays = await es.replay_all(sessions, [shops[0].tenant_id])
    assert sorted(r.kind for r in replays) == ["order", "order", "order", "payment"]
    assert es.full_history(replays) == 100
    assert es.rebuilt(replays) == 100


@pytest.mark.integration
async def test_the_review_order_flow_holds_through_the_api(app_settings: Settings) -> None:
    async with shop.open_shop(app_settings) as built:
        shops, _ = await shop.seed_paid(built, tenants=1, products=1, orders=1, seed=22)
    held = await orderflow.order_flow(app_settings, shops[0], bound_s=60.0)
    assert len(held) == 6
    assert all(held.values()), held
