"""The pure parts of the relay, the consumer and the delivery audit: the crash point's gating
and syntax, byte-safe truncation, stream fields, the consumer's lane rule, and the audit's
counting of duplicates and reorderings."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticValidationError

from rustok_ref.events.consumer import ConsumerConfig
from rustok_ref.events.dispatcher import SubscriberOptions
from rustok_ref.events.envelope import TenantUpdated, decode_envelope, new_envelope
from rustok_ref.events.relay import relay_crash_after, stream_fields, stream_name, truncate_utf8
from rustok_ref.lab.ramp import DeliveryAudit, Sighting


def test_the_crash_point_is_honoured_only_in_test_runs() -> None:
    assert relay_crash_after(test_hooks=False, crash_at="relay:3") is None
    assert relay_crash_after(test_hooks=True, crash_at=None) is None
    assert relay_crash_after(test_hooks=True, crash_at="relay:3") == 3
    # a point for another process (a saga's) is not the relay's business
    assert relay_crash_after(test_hooks=True, crash_at="checkout:reserve:after:execute") is None


@pytest.mark.parametrize("spec", ["relay:", "relay:0", "relay:-1", "relay:x", "relay:3:4"])
def test_a_malformed_relay_crash_point_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="relay:<k>"):
        relay_crash_after(test_hooks=True, crash_at=spec)


@given(st.text(), st.integers(1, 64))
def test_truncation_keeps_whole_characters_within_the_byte_cap(text: str, cap: int) -> None:
    cut = truncate_utf8(text, cap)
    assert len(cut.encode()) <= cap
    assert text.startswith(cut)
    if len(text.encode()) <= cap:
        assert cut == text


def test_stream_fields_carry_the_envelope_and_its_routing_facts() -> None:
    tenant = uuid.uuid4()
    event = new_envelope(TenantUpdated(tenant_id=tenant), tenant_id=tenant, aggregate_version=7)
    fields = stream_fields(event)
    assert decode_envelope(fields["envelope"]) == event  # type: ignore[arg-type]
    assert {k: v for k, v in fields.items() if k != "envelope"} == {
        "id": str(event.id),
        "type": "tenant.updated",
        "aggregateid": str(tenant),
        "version": "7",
        "tenant": str(tenant),
    }
    unversioned = new_envelope(TenantUpdated(tenant_id=tenant), tenant_id=tenant)
    assert stream_fields(unversioned)["version"] == ""
    assert stream_name("rustok:run:", "tenant") == "rustok:run:events:tenant"


def test_a_lane_must_handle_one_event_at_a_time() -> None:
    with pytest.raises(PydanticValidationError, match="concurrency 1"):
        ConsumerConfig(lane=SubscriberOptions(concurrency=2))


def test_the_audit_tells_a_late_duplicate_from_a_reordering() -> None:
    def seen(event: str, version: int) -> Sighting:
        return Sighting(event, "aggregate", version)

    in_order_with_late_copy = [seen("a", 1), seen("b", 2), seen("a", 1), seen("c", 3)]
    assert DeliveryAudit.of(in_order_with_late_copy) == DeliveryAudit(4, 3, 1, 0)
    swapped = [seen("b", 2), seen("a", 1), seen("c", 3)]
    assert DeliveryAudit.of(swapped) == DeliveryAudit(3, 3, 0, 1)


@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=10),
)
def test_an_ordered_stream_with_copies_inserted_later_has_no_reordering(
    aggregates: list[int], copies: list[tuple[int, int]]
) -> None:
    versions: dict[int, int] = {}
    stream = []
    for n, aggregate in enumerate(aggregates):
        versions[aggregate] = versions.get(aggregate, 0) + 1
        stream.append(Sighting(f"e{n}", f"a{aggregate}", versions[aggregate]))
    for source, offset in copies:  # each copy lands after its original
        original = source % len(aggregates)
        copy_of = next(s for s in stream if s.event_id == f"e{original}")
        position = stream.index(copy_of) + 1 + offset % (len(stream) - stream.index(copy_of))
        stream.insert(position, copy_of)
    audit = DeliveryAudit.of(stream)
    assert (audit.events, audit.duplicates, audit.reorderings) == (
        len(aggregates),
        len(copies),
        0,
    )
