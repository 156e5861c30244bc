"""Properties of the one transition table and of the type-state layer built on it: walks of
any events stay inside the table, a refused event changes nothing, the terminal states and
the review's headline rule (a paid order cannot be cancelled) hold, and the type-state
methods agree with the table for every (state, event) pair."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustok_ref.commerce.states import (
    ORDER_TABLE,
    PRODUCT_TABLE,
    OrderEvent,
    OrderStatus,
    TransitionTable,
    allowed_events,
    next_status,
)
from rustok_ref.commerce.typestate import (
    new_order,
    new_product,
    order_from_status,
    product_from_status,
)
from rustok_ref.errors import InvalidTransitionError

TABLES = [ORDER_TABLE, PRODUCT_TABLE]
NEW = {"order": new_order, "product": new_product}
FROM_STATUS = {"order": order_from_status, "product": product_from_status}
EVERY_PAIR = [
    pytest.param(table, state, event, id=f"{table.name}-{state}-{event}")
    for table in TABLES
    for state in table.states
    for event in table.events
]
ILLEGAL_PAIRS = [
    pair
    for pair in EVERY_PAIR
    if (pair.values[1], pair.values[2]) not in pair.values[0].transitions
]


def _typed(table: TransitionTable[Any, Any], status: StrEnum) -> Any:
    return FROM_STATUS[table.name](uuid.uuid4(), uuid.uuid4(), status)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
@given(data=st.data())
def test_a_walk_of_legal_events_only_reaches_states_of_the_table(
    table: TransitionTable[Any, Any], data: st.DataObject
) -> None:
    status = table.initial
    for _ in range(data.draw(st.integers(min_value=0, max_value=30), label="steps")):
        allowed = allowed_events(status)
        if not allowed:
            break
        event = data.draw(st.sampled_from(allowed), label="event")
        target = next_status(status, event)
        assert target in table.states
        assert table.transitions[(status, event)] == target
        status = target


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
@given(data=st.data())
def test_a_walk_of_any_events_refuses_exactly_the_illegal_ones_and_changes_nothing(
    table: TransitionTable[Any, Any], data: st.DataObject
) -> None:
    entity = NEW[table.name](uuid.uuid4(), uuid.uuid4())
    events = data.draw(st.lists(st.sampled_from(table.events), max_size=30), label="events")
    for event in events:
        before = entity
        if event in allowed_events(before.status):
            entity = getattr(before, event.value)()
            assert entity.status == next_status(before.status, event)
            assert (entity.id, entity.tenant_id) == (before.id, before.tenant_id)
        else:
            with pytest.raises(InvalidTransitionError):
                getattr(before, event.value)()
            with pytest.raises(InvalidTransitionError):
                next_status(before.status, event)
            assert entity == before
            assert entity.status == before.status


@given(events=st.lists(st.sampled_from(list(OrderEvent)), max_size=30))
def test_once_paid_an_order_never_becomes_cancelled(events: list[OrderEvent]) -> None:
    status, paid = ORDER_TABLE.initial, False
    for event in events:
        if event in allowed_events(status):
            status = next_status(status, event)
        else:
            with pytest.raises(InvalidTransitionError):
                next_status(status, event)
        paid = paid or status is OrderStatus.PAID
        assert not (paid and status is OrderStatus.CANCELLED)


@pytest.mark.parametrize("status", [OrderStatus.PAID, OrderStatus.SHIPPED])
def test_a_paid_or_shipped_order_cannot_be_cancelled(status: OrderStatus) -> None:
    with pytest.raises(InvalidTransitionError, match="cannot take event 'cancel'"):
        next_status(status, OrderEvent.CANCEL)


def test_cancelled_and_delivered_are_the_terminal_order_states() -> None:
    assert set(ORDER_TABLE.terminal) == {OrderStatus.CANCELLED, OrderStatus.DELIVERED}
    for status in ORDER_TABLE.terminal:
        assert allowed_events(status) == ()
        for event in OrderEvent:
            with pytest.raises(InvalidTransitionError, match=r"none \(terminal state\)"):
                next_status(status, event)


def test_products_have_no_terminal_state() -> None:
    assert PRODUCT_TABLE.terminal == ()


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_every_state_is_reachable_from_the_initial_one(table: TransitionTable[Any, Any]) -> None:
    reached, frontier = {table.initial}, [table.initial]
    while frontier:
        source = frontier.pop()
        for event in allowed_events(source):
            target = next_status(source, event)
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(table.states)


@pytest.mark.parametrize(("table", "state", "event"), EVERY_PAIR)
def test_type_state_agrees_with_the_table(
    table: TransitionTable[Any, Any], state: StrEnum, event: StrEnum
) -> None:
    entity = _typed(table, state)
    assert entity.status is state
    target = table.transitions.get((state, event))
    if target is None:
        with pytest.raises(InvalidTransitionError):
            getattr(entity, event.value)()
    else:
        assert getattr(entity, event.value)().status is target


@pytest.mark.parametrize(("table", "state", "event"), ILLEGAL_PAIRS)
def test_a_refusal_names_the_state_the_event_and_the_allowed_events(
    table: TransitionTable[Any, Any], state: StrEnum, event: StrEnum
) -> None:
    with pytest.raises(InvalidTransitionError) as refused:
        next_status(state, event)
    allowed = [str(e) for e in allowed_events(state)]
    assert f"state '{state}'" in refused.value.detail
    assert f"event '{event}'" in refused.value.detail
    assert all(name in refused.value.detail for name in allowed)
    assert refused.value.extra == {
        "machine": table.name,
        "state": str(state),
        "event": str(event),
        "allowed": allowed,
    }
    assert refused.value.status == 409


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_new_entities_start_in_the_initial_state(table: TransitionTable[Any, Any]) -> None:
    assert NEW[table.name](uuid.uuid4(), uuid.uuid4()).status is table.initial
