"""The review's state-machine claims (P1.3), checked on the transition table and type-state layer.

- Every (state, event) pair is tried at run time, through the type-state object a persisted
  status becomes (`order_from_status` then the method named after the event, which is the
  untyped path and checks the one table), and compared with the review's diagrams. Pairs
  the review's diagrams do not name (our product's archive/restore) are extensions, judged
  against our table only.
- The compile-time claim is read from the type-state test's saved mypy output
  (reports/typestate/mypy-output.txt, written by tests/unit/test_typestate.py over its probe
  module tests/typestate/illegal_calls.py), never from a fresh mypy run: a pair counts as
  rejected only if mypy reported an error on the probe line that calls it.
- "Autocompletion offers only the valid actions" is measured with jedi, the completion
  engine behind IPython and JupyterLab's kernel: what it offers after `order.` for an
  `Order[Paid]`.
- Seeded random walks over the machines give the transition coverage a walk reaches.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import jedi

from rustok_ref.commerce import states, typestate
from rustok_ref.commerce.states import (
    ORDER_TABLE,
    PRODUCT_TABLE,
    OrderEvent,
    OrderStatus,
    ProductEvent,
    ProductStatus,
    TransitionTable,
)
from rustok_ref.errors import InvalidTransitionError
from rustok_ref.lab.paths import REPO_ROOT

TYPESTATE_OUTPUT = REPO_ROOT / "reports" / "typestate" / "mypy-output.txt"
TYPESTATE_PROBE = REPO_ROOT / "tests" / "typestate" / "illegal_calls.py"

Pair = tuple[StrEnum, StrEnum]
_NIL = UUID(int=0)


@dataclass(frozen=True)
class Machine:
    """A machine as the review draws it beside ours: `review` maps the review's legal
    (state, event) pairs to their targets; `review_states`/`review_events` are the names its
    diagram uses, so a pair outside them is an extension of ours."""

    name: str
    table: TransitionTable[Any, Any]
    review: Mapping[Pair, StrEnum]
    typed: Callable[[Any], Any]  # a status -> the type-state object it loads as

    @property
    def review_states(self) -> frozenset[StrEnum]:
        return frozenset(s for pair, target in self.review.items() for s in (pair[0], target))

    @property
    def review_events(self) -> frozenset[StrEnum]:
        return frozenset(event for _, event in self.review)

    @property
    def pairs(self) -> list[Pair]:
        return [(state, event) for state in self.table.states for event in self.table.events]

    def in_review(self, pair: Pair) -> bool:
        """Whether the review's diagram speaks about this pair (its state and its event)."""
        return pair[0] in self.review_states and pair[1] in self.review_events

    def should_accept(self, pair: Pair) -> bool:
        """The review's diagram decides the pairs it names; our table, the extensions."""
        return pair in self.review if self.in_review(pair) else pair in self.table.transitions


ORDER = Machine(
    "order",
    ORDER_TABLE,
    {
        (OrderStatus.DRAFT, OrderEvent.SUBMIT): OrderStatus.PENDING_PAYMENT,
        (OrderStatus.PENDING_PAYMENT, OrderEvent.PAY): OrderStatus.PAID,
        (OrderStatus.PAID, OrderEvent.SHIP): OrderStatus.SHIPPED,
        (OrderStatus.SHIPPED, OrderEvent.DELIVER): OrderStatus.DELIVERED,
        (OrderStatus.DRAFT, OrderEvent.CANCEL): OrderStatus.CANCELLED,
        (OrderStatus.PENDING_PAYMENT, OrderEvent.CANCEL): OrderStatus.CANCELLED,
    },
    lambda status: typestate.order_from_status(_NIL, _NIL, status),
)
PRODUCT = Machine(
    "product",
    PRODUCT_TABLE,
    {(ProductStatus.DRAFT, ProductEvent.PUBLISH): ProductStatus.PUBLISHED},
    lambda status: typestate.product_from_status(_NIL, _NIL, status),
)
MACHINES = (ORDER, PRODUCT)
NOT_CANCELLABLE = (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


def try_transition(machine: Machine, state: StrEnum, event: StrEnum) -> StrEnum | None:
    """The state a loaded object reaches by calling the method named after `event`, or None
    when the call is refused with InvalidTransitionError."""
    loaded = machine.typed(state)
    try:
        moved = getattr(loaded, event.value)()
    except InvalidTransitionError:
        return None
    target: StrEnum = moved.status
    return target


@dataclass(frozen=True)
class PairProbe:
    """One (state, event) pair tried at run time."""

    machine: str
    state: StrEnum
    event: StrEnum
    in_review: bool
    should_accept: bool
    reached: StrEnum | None  # None: refused

    @property
    def accepted(self) -> bool:
        return self.reached is not None

    @property
    def wrong(self) -> bool:
        """Accepted though it should be refused, or the other way round."""
        return self.accepted != self.should_accept


def probe_pairs(machine: Machine) -> list[PairProbe]:
    """Every pair of the machine, tried through its type-state object."""
    return [
        PairProbe(
            machine.name,
            state,
            event,
            machine.in_review((state, event)),
            machine.should_accept((state, event)),
            try_transition(machine, state, event),
        )
        for state, event in machine.pairs
    ]


def invalid_accepted(probes: list[PairProbe]) -> int:
    """Pairs the review's diagrams leave out that the run time nevertheless accepted."""
    return sum(1 for p in probes if p.in_review and p.accepted and not p.should_accept)


def cancellations_accepted(probes: list[PairProbe]) -> list[PairProbe]:
    """Run-time cancellations accepted from Paid, Shipped or Delivered (should be none)."""
    return [
        p
        for p in probes
        if p.machine == ORDER.name
        and p.event is OrderEvent.CANCEL
        and p.state in NOT_CANCELLABLE
        and p.accepted
    ]


# --- the saved mypy output of the type-state test -------------------------------------------

_CALL = re.compile(r"\b(?P<machine>order|product)_(?P<state>\w+)\.(?P<event>\w+)\(\)")
_MARKER = re.compile(r"#\s*E:\s*[\w-]+\s*$")
_ERROR = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): error: ")


@dataclass(frozen=True)
class TypestateVerdicts:
    """What mypy said, in the saved output, about each pair that should be refused."""

    output: Path
    stale: bool  # older than the type-state code or the probe module
    rejected: Mapping[tuple[str, StrEnum, StrEnum], bool]  # (machine, state, event)

    @property
    def accepted(self) -> list[tuple[str, StrEnum, StrEnum]]:
        """Invalid calls mypy did not reject (or the probe module does not make)."""
        return [pair for pair, rejected in self.rejected.items() if not rejected]


def read_typestate_output(
    output: Path = TYPESTATE_OUTPUT, probe: Path = TYPESTATE_PROBE
) -> TypestateVerdicts | None:
    """The saved verdicts, or None when the type-state test has not written its output."""
    if not output.is_file():
        return None
    probe_name = probe.name
    error_lines = {
        int(match["line"])
        for match in map(_ERROR.match, output.read_text().splitlines())
        if match and Path(match["path"]).name == probe_name
    }
    called: dict[tuple[str, str, str], int] = {}
    for number, line in enumerate(probe.read_text().splitlines(), start=1):
        call = _CALL.search(line)
        if call and _MARKER.search(line):
            called.setdefault((call["machine"], call["state"], call["event"]), number)
    rejected = {
        (machine.name, state, event): (machine.name, state.value, event.value) in called
        and called[(machine.name, state.value, event.value)] in error_lines
        for machine in MACHINES
        for state, event in machine.pairs
        if not machine.should_accept((state, event))
    }
    sources = (probe, Path(typestate.__file__), Path(states.__file__))
    newest = max(path.stat().st_mtime for path in sources)
    return TypestateVerdicts(output, output.stat().st_mtime < newest, rejected)


# --- autocompletion -------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """What jedi offers after `obj.` for one type-state class, among the transitions."""

    machine: str
    state: StrEnum
    annotation: str  # e.g. Order[Paid]
    offered: tuple[str, ...]
    valid: tuple[str, ...]

    @property
    def invalid_offered(self) -> tuple[str, ...]:
        return tuple(name for name in self.offered if name not in self.valid)


def completions(machines: tuple[Machine, ...] = MACHINES) -> list[Completion]:
    """jedi's completions on a typed parameter of each state's type-state class."""
    probes: list[tuple[Machine, StrEnum, str]] = []
    for machine in machines:
        for state in machine.table.states:
            loaded = machine.typed(state)
            probes.append(
                (machine, state, f"{type(loaded).__name__}[{type(loaded.state).__name__}]")
            )
    classes = sorted({name for _, _, a in probes for name in re.findall(r"\w+", a)})
    lines = [f"from {typestate.__name__} import {', '.join(classes)}", ""]
    positions = []
    for index, (_, _, annotation) in enumerate(probes):
        lines += [f"def probe_{index}(obj: {annotation}) -> None:", "    obj."]
        positions.append(len(lines))
    script = jedi.Script(
        "\n".join(lines) + "\n",
        path=REPO_ROOT / "_completion_probe.py",  # never written: jedi only needs a place
        project=jedi.Project(REPO_ROOT),
    )
    found = []
    for (machine, state, annotation), line in zip(probes, positions, strict=True):
        events = {event.value for event in machine.table.events}
        names = sorted(c.name for c in script.complete(line, len("    obj.")))
        found.append(
            Completion(
                machine.name,
                state,
                annotation,
                tuple(name for name in names if name in events),
                tuple(event.value for event in machine.table.allowed_events(state)),
            )
        )
    return found


# --- random walks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkCoverage:
    """Seeded random walks: after each step, the share of (state, event) pairs tried."""

    machine: str
    coverage: tuple[float, ...]
    hits: Mapping[Pair, int]
    walks: int
    wrong: int  # steps whose outcome disagreed with should_accept (must be 0)

    @property
    def steps(self) -> int:
        return len(self.coverage)

    def steps_to_cover(self, share: float = 1.0) -> int | None:
        """Steps until `share` of the pairs had been tried (None: never)."""
        return next((n + 1 for n, c in enumerate(self.coverage) if c >= share), None)


def random_walks(machine: Machine, steps: int, *, seed: int) -> WalkCoverage:
    """Walk from the initial state, trying a uniformly drawn event at each step; a walk
    ends (and the next starts from the initial state) after one try in a terminal state."""
    rng = random.Random(seed)
    total = len(machine.pairs)
    hits: Counter[Pair] = Counter()
    coverage: list[float] = []
    state, walks, wrong = machine.table.initial, 1, 0
    for _ in range(steps):
        event = rng.choice(machine.table.events)
        hits[(state, event)] += 1
        reached = try_transition(machine, state, event)
        wrong += (reached is not None) != machine.should_accept((state, event))
        if reached is not None:
            state = reached
        elif state in machine.table.terminal:
            state, walks = machine.table.initial, walks + 1
        coverage.append(len(hits) / total)
    return WalkCoverage(machine.name, tuple(coverage), dict(hits), walks, wrong)


def layered_layout(table: TransitionTable[Any, Any]) -> dict[StrEnum, tuple[float, float]]:
    """Positions for drawing: x is the shortest distance from the initial state, states at
    one distance are stacked on y; states the initial one cannot reach go last."""
    depth = {table.initial: 0}
    frontier = [table.initial]
    while frontier:
        following = []
        for state in frontier:
            for event in table.allowed_events(state):
                target = table.next_status(state, event)
                if target not in depth:
                    depth[target] = depth[state] + 1
                    following.append(target)
        frontier = following
    last = max(depth.values()) + 1
    for state in table.states:
        depth.setdefault(state, last)
    positions: dict[StrEnum, tuple[float, float]] = {}
    for layer in sorted(set(depth.values())):
        members = [s for s in table.states if depth[s] == layer]
        for row, state in enumerate(members):
            positions[state] = (float(layer), -float(row))
    return positions
