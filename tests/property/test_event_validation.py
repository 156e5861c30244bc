"""Validation: every valid payload passes; oversized, overdeep and malformed ones are refused
with a ValidationError naming the field; the InventoryLow boundary; the publish path the real
code skips."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import JsonValue

from rustok_ref.errors import ValidationError
from rustok_ref.events.envelope import (
    CATALOGUE,
    Catalogue,
    EventEnvelope,
    EventPayload,
    InventoryLow,
    OrderPlaced,
    OrderStatusChanged,
    decode_envelope,
    new_envelope,
    uuid7,
)
from rustok_ref.events.validation import (
    INT32_MAX,
    INT64_MAX,
    MAX_NESTING_DEPTH,
    BoundedJson,
    EntityId,
    is_low_stock,
    nesting_depth,
)

TENANT = uuid.UUID("0b9d7f1e-8c1a-4a55-9d1e-3c2b1a0f9e77")


def _text(max_bytes: int, *, blank_ok: bool = False) -> st.SearchStrategy[str]:
    strings = st.text(max_size=max_bytes).filter(lambda s: len(s.encode()) <= max_bytes)
    return strings if blank_ok else strings.filter(lambda s: not s.isspace() and s != "")


ids = st.uuids().filter(lambda u: u.int != 0).map(str)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "tenant_id": ids,
    "product_id": ids,
    "variant_id": ids,
    "location_id": ids,
    "order_id": ids,
    "customer_id": st.none() | ids,
    "locale": _text(10),
    "currency": st.from_regex(r"[A-Z]{3}", fullmatch=True),
    "old_amount": st.none() | st.integers(0, INT64_MAX),
    "new_amount": st.integers(0, INT64_MAX),
    "total": st.integers(0, INT64_MAX),
    "old_quantity": st.integers(0, INT32_MAX),
    "new_quantity": st.integers(0, INT32_MAX),
    "reason": st.none() | _text(500, blank_ok=True),
}


# The events of the events issue itself; commerce and flag events bring their own fields.
REFERENCE_SPECS = [
    spec for spec in CATALOGUE if spec.model.__module__ == "rustok_ref.events.envelope"
]


@st.composite
def valid_payloads(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    spec = draw(st.sampled_from(REFERENCE_SPECS))
    data = {name: draw(FIELDS[name]) for name in spec.model.model_fields if name in FIELDS}
    if spec.model is InventoryLow:
        threshold = draw(st.integers(0, INT32_MAX))
        data |= {"threshold": threshold, "remaining": draw(st.integers(0, threshold))}
    if spec.model is OrderStatusChanged:
        old, new = draw(st.lists(_text(50), min_size=2, max_size=2, unique=True))
        data |= {"old_status": old, "new_status": new}
    assert set(data) == set(spec.model.model_fields), f"no strategy for a field of {spec}"
    return spec.event_type, data


@given(valid_payloads())
def test_every_valid_payload_passes_and_survives_the_envelope_round_trip(
    case: tuple[str, dict[str, Any]],
) -> None:
    event_type, data = case
    payload = CATALOGUE.validate(event_type, data)
    envelope = new_envelope(payload, tenant_id=TENANT)
    assert json.loads(envelope.payload_json) == {
        name: data.get(name) for name in type(payload).model_fields
    }
    assert decode_envelope(envelope.to_json()) == envelope


def _corruptions(data: dict[str, Any]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """(field, corrupted payload): the field the error must name."""
    field = st.sampled_from(sorted(data))
    wrong_values = st.sampled_from(
        [None, "", "not-a-uuid", "5", 5.5, True, [], {}, str(uuid.UUID(int=0)), -1, "x" * 600]
    )

    def replaced(name: str, value: Any) -> tuple[str, dict[str, Any]]:
        return name, {**data, name: value}

    def removed(name: str) -> tuple[str, dict[str, Any]]:
        return name, {k: v for k, v in data.items() if k != name}

    return st.one_of(
        st.builds(replaced, field, wrong_values).filter(
            lambda case: not _valid_value(case[0], case[1][case[0]])
        ),
        st.builds(removed, field).filter(lambda case: _required(case[0])),
        st.just(("surprise", {**data, "surprise": 1})),
    )


TEXT_CAPS = {"locale": 10, "old_status": 50, "new_status": 50, "reason": 500}


def _required(name: str) -> bool:
    return name not in ("customer_id", "old_amount", "reason")


def _valid_value(name: str, value: Any) -> bool:
    """An oracle for one field's own rule (some "wrong" values are right for some fields)."""
    if value is None:
        return not _required(name)
    if name in TEXT_CAPS:
        fits = isinstance(value, str) and len(value.encode()) <= TEXT_CAPS[name]
        return fits and (name == "reason" or value.strip() != "")
    if name == "currency":
        return isinstance(value, str) and re.fullmatch("[A-Z]{3}", value) is not None
    if name.endswith("_id"):
        try:
            return uuid.UUID(value).int != 0
        except (TypeError, ValueError, AttributeError):
            return False
    return type(value) is int and value >= 0


@given(st.data())
def test_malformed_payloads_are_refused_naming_the_field(data: st.DataObject) -> None:
    event_type, payload = data.draw(valid_payloads())
    field, corrupted = data.draw(_corruptions(payload))
    with pytest.raises(ValidationError) as caught:
        CATALOGUE.validate(event_type, corrupted)
    assert caught.value.status == 400
    assert caught.value.code == "BAD_USER_INPUT"
    assert field in caught.value.fields, caught.value.fields
    assert caught.value.to_problem()["fields"] == caught.value.fields


@given(st.integers(0, 600), st.sampled_from(["a", "é", "€", "𝄞"]))
def test_text_caps_count_utf8_bytes_not_characters(length: int, char: str) -> None:
    reason = char * length
    data = {"order_id": str(uuid.uuid4()), "reason": reason}
    if len(reason.encode()) <= 500:
        CATALOGUE.validate("order.cancelled", data)
    else:
        with pytest.raises(ValidationError, match="maximum length of 500 bytes"):
            CATALOGUE.validate("order.cancelled", data)


@pytest.mark.parametrize(
    ("locale", "valid"),
    [("en", True), ("\x1cacme", True), (" ", False), ("\u3000", False), ("\t\n", False)],
)
def test_not_empty_means_rusts_trim_white_space(locale: str, valid: bool) -> None:
    data = {"tenant_id": str(TENANT), "locale": locale}
    if valid:
        CATALOGUE.validate("locale.enabled", data)
    else:
        with pytest.raises(ValidationError, match="Field 'locale' cannot be empty"):
            CATALOGUE.validate("locale.enabled", data)


@pytest.mark.parametrize(
    ("currency", "valid"),
    [("USD", True), ("EUR", True), ("US", False), ("USDD", False), ("usd", False), ("US1", False)],
)
def test_currency_codes_as_in_the_reference_tests(currency: str, valid: bool) -> None:
    data = {"order_id": str(uuid.uuid4()), "total": 100, "currency": currency}
    if valid:
        CATALOGUE.validate("order.placed", data)
    else:
        with pytest.raises(ValidationError, match="currency code"):
            CATALOGUE.validate("order.placed", data)


def test_messages_keep_the_reference_wording() -> None:
    with pytest.raises(ValidationError) as caught:
        CATALOGUE.validate("order.placed", {"order_id": str(uuid.UUID(int=0)), "total": -100})
    assert caught.value.fields == {
        "order_id": ["UUID field 'order_id' cannot be nil"],
        "total": [f"Field 'total' value -100 is out of valid range (0..{INT64_MAX})"],
        "currency": ["Field 'currency' is required"],
    }
    with pytest.raises(ValidationError) as caught:
        OrderStatusChanged(order_id=uuid.uuid4(), old_status="paid", new_status="paid")
    assert caught.value.fields == {
        "new_status": ["Invalid value for field 'new_status': must be different from old_status"]
    }


# --- InventoryLow -------------------------------------------------------------------------


@given(st.integers(0, INT32_MAX), st.integers(0, INT32_MAX))
@example(5, 5)  # the reference's golden case: quantity == the default threshold
@example(6, 5)
def test_inventory_low_accepts_remaining_up_to_and_including_the_threshold(
    remaining: int, threshold: int
) -> None:
    data = {
        "variant_id": str(uuid.uuid4()),
        "product_id": str(uuid.uuid4()),
        "remaining": remaining,
        "threshold": threshold,
    }
    if remaining <= threshold:
        CATALOGUE.validate("inventory.low", data)
    else:
        with pytest.raises(ValidationError) as caught:
            CATALOGUE.validate("inventory.low", data)
        assert list(caught.value.fields) == ["remaining"]


@given(st.integers(1, 1_000), st.integers(0, 1_000))
def test_whenever_the_service_would_emit_inventory_low_the_event_is_valid(
    quantity: int, threshold: int
) -> None:
    # RusToK's InventoryService emits InventoryLow when 0 < quantity <= threshold; with the
    # strict rule, quantity == threshold made the service call fail. One predicate now.
    assert is_low_stock(quantity, threshold) == (quantity <= threshold)
    if is_low_stock(quantity, threshold):
        InventoryLow(
            variant_id=uuid.uuid4(),
            product_id=uuid.uuid4(),
            remaining=quantity,
            threshold=threshold,
        )


def test_inventory_low_at_the_threshold_is_valid_golden() -> None:
    event = InventoryLow(variant_id=uuid.uuid4(), product_id=uuid.uuid4(), remaining=5, threshold=5)
    assert new_envelope(event, tenant_id=TENANT).event_type == "inventory.low"


# --- size and depth caps (the real code has neither) --------------------------------------

LIMITS = Catalogue()


@LIMITS.register("test.noted", aggregate="test", key="thing_id", max_bytes=1_000)
class Noted(EventPayload):
    thing_id: EntityId
    note: str


@LIMITS.register("test.flagged", aggregate="test", key="thing_id")
class Flagged(EventPayload):
    thing_id: EntityId
    value: BoundedJson


@given(st.integers(800, 1_200))
def test_payloads_over_the_size_cap_are_refused_when_the_envelope_is_built(length: int) -> None:
    payload = Noted(thing_id=uuid.uuid4(), note="n" * length)
    size = len(Noted.__pydantic_serializer__.to_json(payload))
    if size <= 1_000:
        assert len(new_envelope(payload, tenant_id=TENANT).payload_json) == size
    else:
        with pytest.raises(ValidationError) as caught:
            new_envelope(payload, tenant_id=TENANT)
        assert caught.value.fields == {"payload": ["Payload exceeds maximum size of 1000 bytes"]}


def test_the_default_size_cap_is_64_kib() -> None:
    big = {"k": "v" * (64 * 1024)}
    with pytest.raises(ValidationError) as caught:
        new_envelope(Flagged(thing_id=uuid.uuid4(), value=big), tenant_id=TENANT)
    assert caught.value.fields == {"payload": ["Payload exceeds maximum size of 65536 bytes"]}


def _nested(depth: int) -> JsonValue:
    value: JsonValue = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@given(st.integers(0, 40))
def test_free_form_values_nest_at_most_the_cap_counting_the_payload(depth: int) -> None:
    value = _nested(depth)
    assert nesting_depth(value, limit=100) == depth
    if depth + 1 <= MAX_NESTING_DEPTH:
        LIMITS.validate("test.flagged", {"thing_id": str(uuid.uuid4()), "value": value})
    else:
        with pytest.raises(ValidationError) as caught:
            LIMITS.validate("test.flagged", {"thing_id": str(uuid.uuid4()), "value": value})
        assert caught.value.fields == {
            "value": [f"Field 'value' nests deeper than {MAX_NESTING_DEPTH} levels"]
        }


# --- the publish path the real code skips ------------------------------------------------


def test_the_in_memory_publish_path_the_real_code_skips_is_validated_here() -> None:
    """RusToK's `EventBus.publish_envelope` publishes whatever envelope it is handed; only
    the outbox's `TransactionalEventBus` validates. Here an envelope cannot exist without
    having been validated, however it is made, so no publish path can skip validation."""
    order = uuid.uuid4()
    header = {"id": uuid7(), "occurred_at": datetime.now(UTC), "correlation_id": "c"}
    # a hand-built envelope, as one would pass straight to an in-memory bus
    with pytest.raises(ValidationError, match="tenant_id"):
        EventEnvelope(
            tenant_id=uuid.UUID(int=0),
            payload=OrderPlaced(order_id=order, total=1, currency="USD"),
            **header,  # type: ignore[arg-type]
        )
    # a hand-built payload
    with pytest.raises(ValidationError, match="currency"):
        OrderPlaced(order_id=order, total=1, currency="usd")
    # a payload arriving as data (an API body, a stream entry)
    with pytest.raises(ValidationError, match="total"):
        CATALOGUE.validate("order.placed", {"order_id": str(order), "total": "1", "currency": "X"})
    valid = new_envelope(OrderPlaced(order_id=order, total=1, currency="USD"), tenant_id=TENANT)
    broken = json.loads(valid.to_json())
    broken["payload"]["total"] = -1
    with pytest.raises(ValidationError, match="total"):
        decode_envelope(json.dumps(broken).encode())
