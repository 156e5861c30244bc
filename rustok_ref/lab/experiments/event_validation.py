"""Sprint 1's event validation framework: does it reject invalid events?

The corpus: the Rust tests' invalid cases for the event types this port carries (reference
§3.3: a negative order total, a two-letter currency, a negative old quantity, an
InventoryLow above its threshold, an unchanged order status), plus, for every catalogued
event type, a valid payload built from its JSON schema and then broken one rule at a time:
a nil or malformed UUID, a blank or over-long string, a lowercase or wrong-length currency,
an integer out of its range or sent as a string, a missing required field, an unknown field.
Each goes through `Catalogue.validate`, the check every path (outbox, stream, dispatcher)
runs when it builds or decodes an envelope.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# imported for their registrations: the commerce event types and the feature flag one
import rustok_ref.commerce.events
import rustok_ref.features.store  # noqa: F401
from rustok_ref.errors import ValidationError
from rustok_ref.events.envelope import CATALOGUE, Catalogue

NIL_UUID = "00000000-0000-0000-0000-000000000000"
CURRENCY_PATTERN = "^[A-Z]{3}$"


@dataclass(frozen=True)
class InvalidEvent:
    """A payload that breaks one rule, and which."""

    event_type: str
    broken: str
    payload: dict[str, Any]


def rust_test_cases() -> list[InvalidEvent]:
    """The invalid cases of RusToK's `types.rs` tests whose event types exist here."""
    order, variant, product, location = (str(uuid.uuid4()) for _ in range(4))
    placed = {"order_id": order, "customer_id": None, "total": 100, "currency": "USD"}
    return [
        InvalidEvent("order.placed", "total -100", {**placed, "total": -100}),
        InvalidEvent("order.placed", "currency 'US'", {**placed, "currency": "US"}),
        InvalidEvent(
            "inventory.updated",
            "old_quantity -5",
            {
                "variant_id": variant,
                "product_id": product,
                "location_id": location,
                "old_quantity": -5,
                "new_quantity": 10,
            },
        ),
        InvalidEvent(
            "inventory.low",
            "remaining 15 above threshold 10",
            {"variant_id": variant, "product_id": product, "remaining": 15, "threshold": 10},
        ),
        InvalidEvent(
            "order.status_changed",
            "old_status = new_status",
            {"order_id": order, "old_status": "pending", "new_status": "pending"},
        ),
    ]


def _properties(schema: Mapping[str, Any]) -> Iterator[tuple[int, str, dict[str, Any], bool]]:
    """(position, field, its non-null schema, nullable) for each property."""
    for position, (name, prop) in enumerate(schema["properties"].items()):
        options = prop.get("anyOf", [prop])
        concrete = [o for o in options if o.get("type") != "null"]
        yield position, name, concrete[0], len(concrete) < len(options)


def valid_payload(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A payload within every field's schema: fresh UUIDs, "EUR", distinct short strings,
    true for a boolean, integers rising with the field's position (so a later bound is
    above an earlier one)."""
    payload: dict[str, Any] = {}
    for position, name, prop, _ in _properties(schema):
        if prop.get("format") == "uuid":
            payload[name] = str(uuid.uuid4())
        elif prop.get("pattern") == CURRENCY_PATTERN:
            payload[name] = "EUR"
        elif prop["type"] == "string":
            payload[name] = f"v{position}"
        elif prop["type"] == "boolean":
            payload[name] = True
        else:
            payload[name] = int(prop.get("minimum", 0)) + position + 1
    return payload


def _breakages(prop: Mapping[str, Any], nullable: bool) -> Iterator[tuple[str, Any]]:
    if prop.get("format") == "uuid":
        yield "nil UUID", NIL_UUID
        yield "malformed UUID", "not-a-uuid"
    elif prop.get("pattern") == CURRENCY_PATTERN:
        yield from (("lowercase currency", "eur"), ("2-letter currency", "EU"))
        yield "4-letter currency", "EURO"
    elif prop["type"] == "string":
        if "maxLength" in prop:
            yield "over-long string", "x" * (int(prop["maxLength"]) + 1)
        if prop.get("pattern") == "\\S":
            yield "blank string", " \t "
    elif prop["type"] == "boolean":
        yield "boolean sent as a string", "yes"
    else:
        if "minimum" in prop:
            yield "below the minimum", int(prop["minimum"]) - 1
        if "maximum" in prop:
            yield "above the maximum", int(prop["maximum"]) + 1
        yield "integer sent as a string", "5"
    if not nullable:
        yield "null", None


def generated_cases(catalogue: Catalogue = CATALOGUE) -> list[InvalidEvent]:
    """Every catalogued type's valid payload broken one rule at a time."""
    cases = []
    for spec in catalogue:
        schema = spec.model.model_json_schema()
        valid = valid_payload(schema)
        catalogue.validate(spec.event_type, valid)  # a broken base would prove nothing
        for _, name, prop, nullable in _properties(schema):
            for broken, value in _breakages(prop, nullable):
                cases.append(
                    InvalidEvent(spec.event_type, f"{name}: {broken}", {**valid, name: value})
                )
            if name in schema.get("required", ()):
                missing = {k: v for k, v in valid.items() if k != name}
                cases.append(InvalidEvent(spec.event_type, f"{name}: missing", missing))
        cases.append(InvalidEvent(spec.event_type, "unknown field", {**valid, "extra": 1}))
    return cases


def accepted(cases: list[InvalidEvent], catalogue: Catalogue = CATALOGUE) -> list[InvalidEvent]:
    """The cases the catalogue's validation lets through."""
    through = []
    for case in cases:
        try:
            catalogue.validate(case.event_type, case.payload)
        except ValidationError:
            continue
        through.append(case)
    return through


def rejected_share(cases: list[InvalidEvent], catalogue: Catalogue = CATALOGUE) -> float:
    """Percent of `cases` rejected."""
    if not cases:
        raise ValueError("no cases")
    return 100 * (len(cases) - len(accepted(cases, catalogue))) / len(cases)
