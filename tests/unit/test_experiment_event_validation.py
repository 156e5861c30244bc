"""The invalid-event corpus: its valid bases, its one-rule breakages, and the share the
catalogue's validation rejects."""

from __future__ import annotations

import pytest

from rustok_ref.events.envelope import CATALOGUE
from rustok_ref.lab.experiments import event_validation as ev


def test_every_catalogued_type_is_broken_at_least_three_ways() -> None:
    cases = ev.generated_cases()
    by_type = {case.event_type for case in cases}
    assert by_type == {spec.event_type for spec in CATALOGUE}
    assert all(sum(c.event_type == t for c in cases) >= 3 for t in by_type)


def test_valid_payloads_pass_and_order_integers_by_position() -> None:
    schema = {
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "remaining": {"type": "integer", "minimum": 0},
            "threshold": {"type": "integer", "minimum": 0},
        }
    }
    payload = ev.valid_payload(schema)
    assert payload["remaining"] < payload["threshold"]


def test_the_validation_rejects_the_whole_corpus() -> None:
    assert ev.rejected_share(ev.rust_test_cases()) == 100
    assert ev.rejected_share(ev.generated_cases()) == 100


def test_a_valid_payload_counts_as_let_through() -> None:
    order = ev.rust_test_cases()[0]
    fixed = ev.InvalidEvent(order.event_type, "nothing", {**order.payload, "total": 100})
    assert ev.accepted([order, fixed]) == [fixed]
    assert ev.rejected_share([order, fixed]) == 50
    with pytest.raises(ValueError, match="no cases"):
        ev.rejected_share([])
