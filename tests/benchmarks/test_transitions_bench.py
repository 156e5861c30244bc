"""The runtime transition check against python-statemachine on the same order machine.

The honest equivalent of `next_status` in python-statemachine is `send` on a long-lived
machine bound to a model's status field (`state_field`), which it reads and writes back: so
both sides set the model to the persisted status, apply the event and store the result
(no machine is built per call, which would cost python-statemachine far more). Its `send`
also runs its callback and event-queue engine, which our table does not have, so the
ratios are informational, with no target.
"""

from __future__ import annotations

from dataclasses import dataclass

from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

from rustok_ref.commerce.states import OrderEvent, OrderStatus, next_status
from rustok_ref.errors import InvalidTransitionError


class PeerOrderMachine(StateMachine):
    """ORDER_TABLE as python-statemachine spells it (toolchain notes §7)."""

    draft = State(initial=True)
    pending_payment = State()
    paid = State()
    shipped = State()
    delivered = State(final=True)
    cancelled = State(final=True)

    submit = draft.to(pending_payment)
    pay = pending_payment.to(paid)
    ship = paid.to(shipped)
    deliver = shipped.to(delivered)
    cancel = draft.to(cancelled) | pending_payment.to(cancelled)


@dataclass
class Row:
    status: str  # OrderStatus on our side: a StrEnum is a str


def test_legal_transition_against_python_statemachine(paired) -> None:
    ours, theirs = Row(OrderStatus.DRAFT), Row("draft")
    machine = PeerOrderMachine(model=theirs, state_field="status")

    def table() -> None:
        ours.status = OrderStatus.PENDING_PAYMENT
        ours.status = next_status(ours.status, OrderEvent.PAY)

    def peer() -> None:
        theirs.status = "pending_payment"
        machine.send("pay")

    paired.sync(table, peer, labels=("next_status", "python-statemachine send"))
    assert ours.status is OrderStatus.PAID
    assert theirs.status == "paid"


def test_refused_transition_against_python_statemachine(paired) -> None:
    ours, theirs = Row(OrderStatus.PAID), Row("paid")
    machine = PeerOrderMachine(model=theirs, state_field="status")

    def table() -> None:
        try:
            ours.status = next_status(ours.status, OrderEvent.CANCEL)
        except InvalidTransitionError:
            return
        raise AssertionError("a paid order was cancelled")

    def peer() -> None:
        try:
            machine.send("cancel")
        except TransitionNotAllowed:
            return
        raise AssertionError("a paid order was cancelled")

    paired.sync(table, peer, labels=("next_status refusal", "python-statemachine refusal"))
    assert ours.status == theirs.status == "paid"
