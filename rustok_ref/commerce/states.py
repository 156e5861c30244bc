"""The one runtime transition table for orders and products, as data.

A status loaded from the database is dynamic, so the type-state layer (`typestate`) cannot
guard it alone: services check every persisted transition here, and the type-state methods
compute their targets here too, so the two layers cannot disagree. The states are the
review's (P1.3), not the real RusToK order's (Pending -> Confirmed -> ..., where a paid
order may be cancelled with a refund; reference §6.1).

Why not python-statemachine (the issue's first choice): its machine is a mutable object
bound to one model, whose `send` runs a callback and event-queue engine; our callers need a
pure `(status, event) -> status` check they can run before an optimistic-version UPDATE,
and a table they can read as data (for the type-state layer, the diagram and the
exhaustive tests). The benchmark in `tests/benchmarks/test_transitions_bench.py` compares
the two. Domain code: no I/O framework is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar, overload

from rustok_ref.errors import InvalidTransitionError

S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


class OrderStatus(StrEnum):
    DRAFT = "draft"
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class OrderEvent(StrEnum):
    SUBMIT = "submit"
    PAY = "pay"
    SHIP = "ship"
    DELIVER = "deliver"
    CANCEL = "cancel"


class ProductStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class ProductEvent(StrEnum):
    PUBLISH = "publish"
    ARCHIVE = "archive"
    RESTORE = "restore"


class TransitionTable(Generic[S, E]):
    """One machine: its states, events, initial state and `(state, event) -> state` edges.

    Every pair missing from `transitions` is illegal. Terminal states are those with no
    outgoing edge.
    """

    def __init__(
        self,
        name: str,
        states: type[S],
        events: type[E],
        initial: S,
        transitions: Mapping[tuple[S, E], S],
    ) -> None:
        self.name = name
        self.states: tuple[S, ...] = tuple(states)
        self.events: tuple[E, ...] = tuple(events)
        self.initial = initial
        self.transitions: Mapping[tuple[S, E], S] = MappingProxyType(dict(transitions))
        edges: dict[S, dict[E, S]] = {state: {} for state in self.states}
        for (source, event), target in transitions.items():
            edges[source][event] = target
        self._edges = edges
        self._allowed = {state: tuple(out) for state, out in edges.items()}
        self.terminal: tuple[S, ...] = tuple(s for s in self.states if not edges[s])

    def next_status(self, current: S, event: E) -> S:
        """The state `event` leads to from `current`; InvalidTransitionError if illegal."""
        try:
            return self._edges[current][event]
        except KeyError:
            raise self._refusal(current, event) from None

    def allowed_events(self, current: S) -> tuple[E, ...]:
        """The events legal in `current`, in declaration order; empty for a terminal state."""
        return self._allowed[current]

    def _refusal(self, current: S, event: E) -> InvalidTransitionError:
        allowed = [str(e) for e in self._allowed.get(current, ())]
        listed = ", ".join(allowed) or "none (terminal state)"
        return InvalidTransitionError(
            f"{self.name} in state '{current}' cannot take event '{event}'; "
            f"allowed events: {listed}",
            extra={
                "machine": self.name,
                "state": str(current),
                "event": str(event),
                "allowed": allowed,
            },
        )


ORDER_TABLE: Final = TransitionTable(
    "order",
    OrderStatus,
    OrderEvent,
    OrderStatus.DRAFT,
    {
        (OrderStatus.DRAFT, OrderEvent.SUBMIT): OrderStatus.PENDING_PAYMENT,
        (OrderStatus.DRAFT, OrderEvent.CANCEL): OrderStatus.CANCELLED,
        (OrderStatus.PENDING_PAYMENT, OrderEvent.PAY): OrderStatus.PAID,
        (OrderStatus.PENDING_PAYMENT, OrderEvent.CANCEL): OrderStatus.CANCELLED,
        (OrderStatus.PAID, OrderEvent.SHIP): OrderStatus.SHIPPED,
        (OrderStatus.SHIPPED, OrderEvent.DELIVER): OrderStatus.DELIVERED,
    },
)

PRODUCT_TABLE: Final = TransitionTable(
    "product",
    ProductStatus,
    ProductEvent,
    ProductStatus.DRAFT,
    {
        (ProductStatus.DRAFT, ProductEvent.PUBLISH): ProductStatus.PUBLISHED,
        (ProductStatus.PUBLISHED, ProductEvent.ARCHIVE): ProductStatus.ARCHIVED,
        (ProductStatus.ARCHIVED, ProductEvent.RESTORE): ProductStatus.DRAFT,
    },
)

# Dispatch on the status's type: StrEnum members of different machines compare equal when
# their values do (OrderStatus.DRAFT == ProductStatus.DRAFT), so one merged dict would mix them.
_TABLES: Final[Mapping[type[StrEnum], TransitionTable[Any, Any]]] = {
    OrderStatus: ORDER_TABLE,
    ProductStatus: PRODUCT_TABLE,
}


@overload
def next_status(current: OrderStatus, event: OrderEvent) -> OrderStatus: ...
@overload
def next_status(current: ProductStatus, event: ProductEvent) -> ProductStatus: ...
def next_status(
    current: OrderStatus | ProductStatus, event: OrderEvent | ProductEvent
) -> OrderStatus | ProductStatus:
    """The status `event` leads to from `current`, or InvalidTransitionError naming both."""
    target: OrderStatus | ProductStatus = _TABLES[type(current)].next_status(current, event)
    return target


@overload
def allowed_events(current: OrderStatus) -> tuple[OrderEvent, ...]: ...
@overload
def allowed_events(current: ProductStatus) -> tuple[ProductEvent, ...]: ...
def allowed_events(
    current: OrderStatus | ProductStatus,
) -> tuple[OrderEvent, ...] | tuple[ProductEvent, ...]:
    """The events legal in `current`; empty for a terminal state."""
    table = _TABLES[type(current)]
    events: tuple[OrderEvent, ...] | tuple[ProductEvent, ...] = table.allowed_events(current)
    return events


def mermaid(table: TransitionTable[Any, Any]) -> str:
    """A Mermaid `stateDiagram-v2` of `table`: one edge per entry, `[*]` at both ends."""
    lines = ["stateDiagram-v2", "    direction LR"]
    lines += [f'    state "{_display(state)}" as {state.value}' for state in table.states]
    lines.append(f"    [*] --> {table.initial.value}")
    lines += [
        f"    {source.value} --> {target.value} : {event.value}"
        for (source, event), target in table.transitions.items()
    ]
    lines += [f"    {state.value} --> [*]" for state in table.terminal]
    return "\n".join(lines) + "\n"


def _display(state: StrEnum) -> str:
    """The review's spelling of a state: PENDING_PAYMENT -> PendingPayment."""
    return "".join(part.capitalize() for part in state.name.split("_"))
