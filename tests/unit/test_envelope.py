"""The envelope: UUIDv7 ids, the catalogue, context propagation, JSON round trips."""

from __future__ import annotations

import json
import uuid
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import pytest
from opentelemetry import trace

from rustok_ref.errors import ValidationError
from rustok_ref.events.envelope import (
    CATALOGUE,
    Catalogue,
    EventEnvelope,
    EventPayload,
    InventoryLow,
    OrderPlaced,
    TenantCreated,
    Uuid7Generator,
    VariantCreated,
    decode_envelope,
    new_envelope,
    uuid7,
)
from rustok_ref.events.validation import EntityId
from rustok_ref.telemetry import in_memory_tracing, use_correlation_id

TENANT = uuid.UUID("7f0c2a8e-3a55-4d6b-9a55-1f5a2c1d0e01")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# The reference's event_type strings (§3.2) for the tenant, catalogue, inventory and order
# events, with the aggregate each belongs to here.
REFERENCE_TYPES = {
    "tenant.created": "tenant",
    "tenant.updated": "tenant",
    "locale.enabled": "tenant",
    "locale.disabled": "tenant",
    "product.created": "product",
    "product.updated": "product",
    "product.published": "product",
    "product.deleted": "product",
    "variant.created": "product",
    "variant.updated": "product",
    "variant.deleted": "product",
    "price.updated": "product",
    "inventory.updated": "inventory",
    "inventory.low": "inventory",
    "order.placed": "order",
    "order.status_changed": "order",
    "order.completed": "order",
    "order.cancelled": "order",
}


def _order() -> OrderPlaced:
    return OrderPlaced(order_id=uuid.uuid4(), total=1999, currency="EUR")


# --- UUIDv7 -----------------------------------------------------------------------------


def test_uuid7_has_version_7_and_the_rfc_variant_and_the_time_in_its_top_48_bits() -> None:
    ms = 1_767_225_600_123
    value = Uuid7Generator(clock_ns=lambda: ms * 1_000_000)()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == ms


def test_uuid7_ids_strictly_increase_within_a_millisecond_and_when_the_clock_steps_back() -> None:
    times = iter([5_000, 5_000, 5_000, 4_000, 4_000, 6_000])
    generate = Uuid7Generator(clock_ns=lambda: next(times) * 1_000_000)
    ids = [generate() for _ in range(6)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    assert [i.int >> 80 for i in ids[:5]] == [5_000] * 5  # the clock stepped back: kept at 5000


def test_uuid7_from_the_real_clock_is_sorted_over_many_calls() -> None:
    ids = [uuid7() for _ in range(5_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


# --- the catalogue ---------------------------------------------------------------------


def test_the_catalogue_holds_the_reference_events_with_their_types_and_version_1() -> None:
    registered = {spec.event_type: spec.aggregate_type for spec in CATALOGUE}
    # later features register their own events (commerce, flags): the reference's are a subset
    assert {name: registered.get(name) for name in REFERENCE_TYPES} == REFERENCE_TYPES
    assert {spec.schema_version for spec in CATALOGUE} == {1}
    assert len({spec.model for spec in CATALOGUE}) == len(CATALOGUE)


def test_unknown_event_types_are_a_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        CATALOGUE.spec("node.created")
    assert "event_type" in caught.value.fields


def test_registration_is_a_public_call_that_refuses_what_cannot_work() -> None:
    catalogue = Catalogue()

    @catalogue.register("example.captured", aggregate="example", key="payment_id")
    class PaymentCaptured(EventPayload):
        payment_id: EntityId
        order_id: EntityId

    assert catalogue.spec("example.captured").model is PaymentCaptured
    assert "example.captured" not in {spec.event_type for spec in CATALOGUE}

    class Other(EventPayload):
        payment_id: EntityId
        note: str

    with pytest.raises(ValueError, match="already registered"):
        catalogue.register("example.captured", aggregate="example", key="payment_id")(Other)
    with pytest.raises(ValueError, match="already registered"):
        catalogue.register("payment.refunded", aggregate="example", key="payment_id")(
            PaymentCaptured
        )
    with pytest.raises(ValueError, match="dotted lowercase"):
        catalogue.register("PaymentFailed", aggregate="example", key="payment_id")(Other)
    with pytest.raises(ValueError, match="required UUID field"):
        catalogue.register("payment.noted", aggregate="payment", key="note")(Other)


# --- building envelopes ----------------------------------------------------------------


def test_an_envelope_names_its_aggregate_from_the_payload() -> None:
    variant, product = uuid.uuid4(), uuid.uuid4()
    low = new_envelope(
        InventoryLow(variant_id=variant, product_id=product, remaining=1, threshold=5),
        tenant_id=TENANT,
    )
    assert (low.event_type, low.aggregate_type, low.aggregate_id) == (
        "inventory.low",
        "inventory",
        variant,
    )
    created = new_envelope(VariantCreated(variant_id=variant, product_id=product), tenant_id=TENANT)
    assert (created.aggregate_type, created.aggregate_id) == ("product", product)


def test_the_correlation_id_comes_from_the_cause_then_the_request_then_the_id() -> None:
    alone = new_envelope(_order(), tenant_id=TENANT)
    assert alone.correlation_id == alone.id.hex
    with use_correlation_id("req-42"):
        in_request = new_envelope(_order(), tenant_id=TENANT)
        caused = new_envelope(_order(), tenant_id=TENANT, caused_by=alone)
    assert in_request.correlation_id == "req-42"
    assert in_request.causation_id is None
    assert caused.correlation_id == alone.correlation_id
    assert caused.causation_id == alone.id
    with use_correlation_id("a request id with spaces"):
        unusable = new_envelope(_order(), tenant_id=TENANT)
    assert unusable.correlation_id == unusable.id.hex


def test_the_trace_context_is_the_current_spans_traceparent() -> None:
    provider, _ = in_memory_tracing()
    tracer = provider.get_tracer("test")
    assert new_envelope(_order(), tenant_id=TENANT).traceparent is None
    with tracer.start_as_current_span("place order") as span:
        envelope = new_envelope(_order(), tenant_id=TENANT)
    context = span.get_span_context()
    assert envelope.traceparent == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    parent = trace.get_current_span(envelope.trace_context()).get_span_context()
    assert (parent.trace_id, parent.span_id) == (context.trace_id, context.span_id)


def test_ids_and_times_come_from_uuid7_and_the_given_clock() -> None:
    envelope = new_envelope(_order(), tenant_id=TENANT, now=NOW, aggregate_version=1)
    assert envelope.id.version == 7
    assert envelope.occurred_at == NOW
    assert envelope.aggregate_version == 1


def test_an_envelope_is_immutable() -> None:
    envelope = new_envelope(_order(), tenant_id=TENANT)
    with pytest.raises(FrozenInstanceError):
        envelope.tenant_id = uuid.uuid4()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tenant_id": uuid.UUID(int=0)}, "tenant_id"),
        ({"actor_id": uuid.UUID(int=0)}, "actor_id"),
        ({"occurred_at": datetime(2026, 1, 1)}, "occurred_at"),  # naive
        ({"correlation_id": ""}, "correlation_id"),
        ({"correlation_id": "has space"}, "correlation_id"),
        ({"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"}, "traceparent"),
        ({"aggregate_version": 0}, "aggregate_version"),
    ],
)
def test_the_header_is_validated_which_the_real_code_never_does(
    change: dict[str, object], field: str
) -> None:
    fields: dict[str, object] = {
        "id": uuid7(),
        "tenant_id": TENANT,
        "payload": _order(),
        "occurred_at": NOW,
        "correlation_id": "c-1",
        **change,
    }
    with pytest.raises(ValidationError) as caught:
        EventEnvelope(**fields)  # type: ignore[arg-type]
    assert field in caught.value.fields


# --- JSON -------------------------------------------------------------------------------


def test_an_envelope_survives_its_json_round_trip() -> None:
    with use_correlation_id("req-7"):
        envelope = new_envelope(
            _order(), tenant_id=TENANT, actor_id=uuid.uuid4(), aggregate_version=3
        )
    raw = envelope.to_json()
    body = json.loads(raw)
    assert body["event_type"] == "order.placed"
    assert body["schema_version"] == 1
    assert body["aggregate_id"] == str(envelope.aggregate_id)
    assert body["payload"] == json.loads(envelope.payload_json)
    assert decode_envelope(raw) == envelope


def test_decoding_refuses_unknown_types_versions_and_mismatched_aggregates() -> None:
    body = json.loads(new_envelope(TenantCreated(tenant_id=TENANT), tenant_id=TENANT).to_json())
    for change, field in (
        ({"event_type": "tenant.exploded"}, "event_type"),
        ({"schema_version": 2}, "schema_version"),
        ({"aggregate_id": str(uuid.uuid4())}, "aggregate_id"),
        ({"payload": {"tenant_id": str(TENANT), "extra": 1}}, "extra"),
        ({"occurred_at": "2026-01-01T00:00:00"}, "occurred_at"),
    ):
        with pytest.raises(ValidationError) as caught:
            decode_envelope(json.dumps({**body, **change}).encode())
        assert field in caught.value.fields, (change, caught.value.fields)


def test_decoding_refuses_oversized_input_before_parsing_it() -> None:
    raw = b"[" * (CATALOGUE.max_envelope_bytes + 1)  # not even JSON: the size check comes first
    with pytest.raises(ValidationError) as caught:
        decode_envelope(raw)
    assert "payload" in caught.value.fields
    with pytest.raises(ValidationError):
        decode_envelope(b"{not json")


def test_a_payload_model_outside_every_catalogue_is_refused() -> None:
    class Loose(EventPayload):
        thing_id: EntityId

    with pytest.raises(ValidationError, match="registered event model"):
        EventEnvelope(
            id=uuid7(),
            tenant_id=TENANT,
            payload=Loose(thing_id=uuid.uuid4()),
            occurred_at=NOW,
            correlation_id="c",
        )
