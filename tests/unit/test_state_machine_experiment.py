"""The state-machine measurements behind 06_state_machines: the pair probe agrees with the
review's diagrams, the saved mypy output is read line by line (a missing error or a missing
probe line counts as accepted), jedi's completions are read per state, and seeded random
walks are reproducible and see no disagreement."""

from __future__ import annotations

import os
from pathlib import Path

from rustok_ref.commerce.states import OrderEvent, OrderStatus, ProductEvent, ProductStatus
from rustok_ref.lab.experiments import state_machines as sm

PROBE = """\
def order_calls(order_paid, order_draft, product_published) -> None:
    order_paid.cancel()  # E: misc
    order_draft.pay()  # E: misc
    product_published.publish()  # E: misc
"""


def test_every_pair_is_probed_and_none_disagrees_with_the_diagrams() -> None:
    for machine in sm.MACHINES:
        probes = sm.probe_pairs(machine)
        assert len(probes) == len(machine.table.states) * len(machine.table.events)
        assert [p for p in probes if p.wrong] == []
        assert sm.invalid_accepted(probes) == 0


def test_the_review_decides_its_own_pairs_and_our_table_the_extensions() -> None:
    assert sm.ORDER.review_states == frozenset(OrderStatus)
    assert sm.PRODUCT.review_states == {ProductStatus.DRAFT, ProductStatus.PUBLISHED}
    assert sm.PRODUCT.in_review((ProductStatus.PUBLISHED, ProductEvent.PUBLISH))
    assert not sm.PRODUCT.in_review((ProductStatus.PUBLISHED, ProductEvent.ARCHIVE))
    assert sm.PRODUCT.should_accept((ProductStatus.PUBLISHED, ProductEvent.ARCHIVE))
    assert not sm.ORDER.should_accept((OrderStatus.PAID, OrderEvent.CANCEL))


def test_a_paid_order_is_not_cancelled_at_run_time() -> None:
    assert sm.try_transition(sm.ORDER, OrderStatus.PAID, OrderEvent.CANCEL) is None
    assert sm.try_transition(sm.ORDER, OrderStatus.DRAFT, OrderEvent.CANCEL) == "cancelled"
    assert sm.cancellations_accepted(sm.probe_pairs(sm.ORDER)) == []


def test_an_accepted_invalid_pair_is_counted() -> None:
    wrong = sm.PairProbe(
        "order", OrderStatus.PAID, OrderEvent.CANCEL, True, False, OrderStatus.CANCELLED
    )
    assert wrong.wrong
    assert sm.invalid_accepted([wrong]) == 1
    assert sm.cancellations_accepted([wrong]) == [wrong]


def _saved(tmp_path: Path, errors_on: list[int], *, age: float = 0.0) -> sm.TypestateVerdicts:
    probe = tmp_path / "illegal_calls.py"
    probe.write_text(PROBE)
    output = tmp_path / "mypy-output.txt"
    output.write_text(
        "".join(
            f"tests/typestate/illegal_calls.py:{n}: error: Invalid self  [misc]\n"
            for n in errors_on
        )
        + "tests/typestate/other.py:3: error: elsewhere  [misc]\n"
    )
    if age:
        stamp = probe.stat().st_mtime - age
        os.utime(output, (stamp, stamp))
    verdicts = sm.read_typestate_output(output, probe)
    assert verdicts is not None
    return verdicts


def test_saved_output_counts_a_pair_rejected_only_with_an_error_on_its_line(tmp_path: Path) -> None:
    verdicts = _saved(tmp_path, [2, 4])
    assert verdicts.rejected[("order", OrderStatus.PAID, OrderEvent.CANCEL)]
    assert not verdicts.rejected[("order", OrderStatus.DRAFT, OrderEvent.PAY)]  # no error there
    assert verdicts.rejected[("product", ProductStatus.PUBLISHED, ProductEvent.PUBLISH)]
    # every other invalid pair has no probe line: not proven rejected
    assert ("order", OrderStatus.SHIPPED, OrderEvent.CANCEL) in verdicts.accepted
    assert ("order", OrderStatus.DRAFT, OrderEvent.SUBMIT) not in verdicts.rejected  # legal


def test_saved_output_older_than_the_code_is_stale(tmp_path: Path) -> None:
    assert _saved(tmp_path, [], age=3600).stale


def test_no_saved_output_is_none(tmp_path: Path) -> None:
    assert sm.read_typestate_output(tmp_path / "missing.txt", tmp_path / "probe.py") is None


def test_jedi_offers_every_transition_method_on_every_state() -> None:
    found = {(c.machine, c.state): c for c in sm.completions()}
    assert len(found) == len(OrderStatus) + len(ProductStatus)
    paid = found[("order", OrderStatus.PAID)]
    assert paid.annotation == "Order[Paid]"
    assert paid.valid == ("ship",)
    assert set(paid.offered) == {e.value for e in OrderEvent}  # a generic class shows all
    assert set(paid.invalid_offered) == {"submit", "pay", "deliver", "cancel"}


def test_random_walks_are_seeded_and_never_disagree() -> None:
    first = sm.random_walks(sm.ORDER, 400, seed=3)
    again = sm.random_walks(sm.ORDER, 400, seed=3)
    assert first == again
    assert first.steps == 400
    assert first.wrong == 0
    assert sum(first.hits.values()) == 400
    assert list(first.coverage) == sorted(first.coverage)
    assert first.walks > 1  # terminal states end walks


def test_steps_to_cover() -> None:
    walk = sm.WalkCoverage("order", (0.5, 0.5, 1.0), {}, 1, 0)
    assert walk.steps_to_cover() == 3
    assert walk.steps_to_cover(0.5) == 1
    assert sm.WalkCoverage("order", (0.5,), {}, 1, 0).steps_to_cover() is None


def test_layered_layout_puts_states_at_their_distance_from_the_initial_one() -> None:
    order = sm.layered_layout(sm.ORDER.table)
    assert order[OrderStatus.DRAFT] == (0.0, 0.0)
    assert order[OrderStatus.PENDING_PAYMENT][0] == order[OrderStatus.CANCELLED][0] == 1.0
    assert order[OrderStatus.PENDING_PAYMENT][1] != order[OrderStatus.CANCELLED][1]
    assert order[OrderStatus.DELIVERED][0] == 4.0
    assert sm.layered_layout(sm.PRODUCT.table)[ProductStatus.ARCHIVED] == (2.0, 0.0)
