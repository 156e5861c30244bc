"""Event validation: the rules of RusToK's `events/validation.rs`, a size cap and a depth cap.

Rules are declared on the payload models (`envelope.py`) with this module's field types, so
pydantic-core checks most of them in Rust and validation costs little more than a plain
`model_validate` (aim <= 1.5x; `tests/benchmarks/test_event_validation_bench.py`):

- `EntityId` / `OptionalEntityId`: a UUID that is not nil (Python check, one per field);
- `MaxBytes(n)` caps the UTF-8 *byte* length, as the real `max_length` does (its message
  says "characters"; ours says bytes). pydantic-core's character cap settles ASCII text;
  only non-ASCII text is encoded and measured;
- `NotBlank`: "not empty after trim", with Rust's regex `\\S`, i.e. exactly the Unicode
  White_Space set Rust's `str::trim` uses ("\\x1cacme" passes, "\\u3000" is blank);
- `CurrencyCode`, `NonNegativeInt32`, `NonNegativeInt64`: enums and inclusive ranges;
  integers are strict (no "5", 5.0 or True), as serde's are;
- cross-field rules (`require`), e.g. InventoryLow and OrderStatusChanged.

What the real code lacks, added here:

- a payload size cap (`MAX_PAYLOAD_BYTES`, per event type overridable), measured on the
  serialised payload, which every path produces anyway: the envelope serialises once when it
  is built and the outbox stores those bytes; a consumer measures the raw bytes it received
  before parsing them;
- a nesting cap (`MAX_NESTING_DEPTH`) on free-form JSON fields (`BoundedJson`); typed fields
  cannot nest beyond their model, and unknown fields are refused (`extra="forbid"`);
- envelope-level checks (`check_header`): the real code never validates the envelope
  (a nil tenant id passes).

Defects fixed (reference §3.3):

- **the skipped publish path**: RusToK's in-memory `EventBus.publish` / `publish_envelope`
  publish without validating (only the outbox's `TransactionalEventBus` does). Here
  validation happens when an `EventEnvelope` is built, decoded or restored, so every path
  (outbox, stream, in-process dispatcher) carries only validated events; the dispatcher's
  fast path is simply to accept `EventEnvelope` objects and not validate again
  (test: `test_the_in_memory_publish_path_the_real_code_skips_is_validated_here`);
- **InventoryLow off by one**: the service emits InventoryLow when `0 < quantity <=
  threshold`, but the rule demanded `remaining < threshold`, so a quantity equal to the
  threshold (5 with the default) made the service call fail. `is_low_stock` is now the one
  definition, `remaining <= threshold`, for the rule and for the service that emits it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, TypeGuard
from uuid import UUID

from annotated_types import Ge, GroupedMetadata, Le, MaxLen
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    JsonValue,
    Strict,
    StringConstraints,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from rustok_ref.errors import ValidationError

MAX_PAYLOAD_BYTES: Final = 64 * 1024
"""Default cap on a payload's serialised JSON; the real code has none."""
MAX_NESTING_DEPTH: Final = 8
"""Containers a payload may nest, counting the payload object itself as level 1."""
ENVELOPE_HEADER_BYTES: Final = 2048
"""What an encoded envelope may add to its payload (ids, type, correlation, traceparent)."""
INT32_MAX: Final = 2**31 - 1
INT64_MAX: Final = 2**63 - 1
MAX_CORRELATION_ID_BYTES: Final = 128

NOT_BLANK: Final = r"\S"
CURRENCY_PATTERN: Final = r"^[A-Z]{3}$"
_PATTERN_MESSAGES: Final = {
    NOT_BLANK: "cannot be empty",
    CURRENCY_PATTERN: "currency code must be exactly 3 uppercase letters (ISO 4217)",
}
_CORRELATION_ID: Final = re.compile(rf"[\x21-\x7e]{{1,{MAX_CORRELATION_ID_BYTES}}}")
# W3C Trace Context: version-traceid-parentid-flags; version ff and all-zero ids are invalid
_TRACEPARENT: Final = re.compile(
    r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}"
)


@dataclass(frozen=True, slots=True)
class MaxBytes(GroupedMetadata):
    """`Annotated[str, MaxBytes(64)]`: at most 64 bytes of UTF-8."""

    limit: int

    def __iter__(self) -> Iterator[object]:
        # ASCII text: characters are bytes, and pydantic-core's character cap settles it
        yield MaxLen(self.limit)
        yield AfterValidator(self._check)

    def _check(self, value: str) -> str:
        if not value.isascii() and len(value.encode()) > self.limit:
            raise PydanticCustomError(
                "string_too_many_bytes", "too many bytes", {"max_length": self.limit}
            )
        return value


def _not_nil(value: UUID) -> UUID:
    if value.int == 0:
        raise PydanticCustomError("nil_uuid", "UUID cannot be nil")
    return value


def nesting_depth(value: object, *, limit: int = MAX_NESTING_DEPTH) -> int:
    """Containers nested in `value` (a scalar is 0), counting no further than `limit + 1`."""
    depth, level = 0, [value]
    while level and depth <= limit:
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            break
        depth += 1
        level = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]
    return depth


def _shallow(value: JsonValue) -> JsonValue:
    # the field's value sits one level below the payload object
    limit = MAX_NESTING_DEPTH - 1
    if nesting_depth(value, limit=limit) > limit:
        raise PydanticCustomError("too_deep", "nests too deep", {"max_depth": MAX_NESTING_DEPTH})
    return value


EntityId = Annotated[UUID, AfterValidator(_not_nil)]
OptionalEntityId = EntityId | None
NonNegativeInt32 = Annotated[int, Strict(), Field(ge=0, le=INT32_MAX)]
NonNegativeInt64 = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]
CurrencyCode = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN)]
NotBlank: Final = StringConstraints(pattern=NOT_BLANK)
"""`Annotated[str, NotBlank, MaxBytes(50)]`: required text, not blank after trim."""
BoundedJson = Annotated[JsonValue, AfterValidator(_shallow)]
"""A free-form JSON field (flag values, saga context): nested at most `MAX_NESTING_DEPTH`."""


def is_correlation_id(value: object) -> TypeGuard[str]:
    """1 to 128 visible ASCII characters: safe in a log line, a header and a stream entry."""
    return isinstance(value, str) and _CORRELATION_ID.fullmatch(value) is not None


def is_low_stock(remaining: int, threshold: int) -> bool:
    """The one definition of "low": at or below the threshold (the real rule said below)."""
    return remaining <= threshold


def require(condition: bool, field: str, message: str) -> None:
    """A cross-field rule inside a model validator: fail on `field` with `message`."""
    if not condition:
        raise PydanticCustomError("event_rule", message, {"field": field})


def check_size(raw: bytes, *, event_type: str, max_bytes: int) -> None:
    """Refuse a serialised payload over `max_bytes`."""
    if len(raw) > max_bytes:
        raise ValidationError(
            f"Event validation failed: {event_type} payload is {len(raw)} bytes, "
            f"over the cap of {max_bytes}",
            fields={"payload": [f"Payload exceeds maximum size of {max_bytes} bytes"]},
        )


def check_header(
    *,
    event_id: object,
    tenant_id: object,
    actor_id: object,
    causation_id: object,
    correlation_id: object,
    traceparent: object,
    aggregate_version: object,
    occurred_at: object,
) -> None:
    """The envelope's own fields, which the real code never validates."""
    fields: dict[str, list[str]] = {}
    for name, value, optional in (
        ("id", event_id, False),
        ("tenant_id", tenant_id, False),
        ("actor_id", actor_id, True),
        ("causation_id", causation_id, True),
    ):
        if value is None and optional:
            continue
        if not isinstance(value, UUID):
            fields[name] = [f"Field '{name}' must be a UUID"]
        elif value.int == 0:
            fields[name] = [f"UUID field '{name}' cannot be nil"]
    if not is_correlation_id(correlation_id):
        fields["correlation_id"] = [
            f"Invalid value for field 'correlation_id': must be 1 to {MAX_CORRELATION_ID_BYTES} "
            "visible ASCII characters"
        ]
    if traceparent is not None and not (
        isinstance(traceparent, str) and _TRACEPARENT.fullmatch(traceparent)
    ):
        fields["traceparent"] = [
            "Invalid value for field 'traceparent': not a W3C traceparent header"
        ]
    if aggregate_version is not None and not (
        type(aggregate_version) is int and 1 <= aggregate_version <= INT32_MAX
    ):
        fields["aggregate_version"] = [
            f"Field 'aggregate_version' value {aggregate_version!r} is out of valid range "
            f"(1..{INT32_MAX})"
        ]
    if not (isinstance(occurred_at, datetime) and occurred_at.utcoffset() is not None):
        fields["occurred_at"] = ["Field 'occurred_at' must be a timezone-aware datetime"]
    if fields:
        raise ValidationError(
            "Event validation failed: invalid envelope: " + "; ".join(sorted(fields)),
            fields=fields,
        )


def payload_error(
    exc: PydanticValidationError, model: type[BaseModel], event_type: str
) -> ValidationError:
    """pydantic's errors as one ValidationError, field by field, in RusToK's wording."""
    fields: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        ctx: Mapping[str, Any] = error.get("ctx") or {}
        loc = ".".join(str(part) for part in error["loc"])
        field = str(ctx.get("field", loc or "payload"))
        fields.setdefault(field, []).append(_message(error["type"], field, ctx, error, model))
    first = next(iter(fields.values()))[0]
    return ValidationError(f"Event validation failed: {event_type}: {first}", fields=fields)


def _message(
    kind: str, field: str, ctx: Mapping[str, Any], error: Mapping[str, Any], model: type[BaseModel]
) -> str:
    if kind in ("string_too_long", "string_too_many_bytes"):
        return f"Field '{field}' exceeds maximum length of {ctx['max_length']} bytes"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_MESSAGES:
        reason = _PATTERN_MESSAGES[ctx["pattern"]]
        if ctx["pattern"] == NOT_BLANK:
            return f"Field '{field}' {reason}"
        return f"Invalid value for field '{field}': {reason}"
    if kind == "nil_uuid":
        return f"UUID field '{field}' cannot be nil"
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = _bounds(model, field)
        return f"Field '{field}' value {error['input']} is out of valid range ({low}..{high})"
    if kind == "event_rule":
        return f"Invalid value for field '{field}': {error['msg']}"
    if kind == "too_deep":
        return f"Field '{field}' nests deeper than {ctx['max_depth']} levels"
    if kind == "missing":
        return f"Field '{field}' is required"
    if kind == "extra_forbidden":
        return f"Field '{field}' is not part of this event"
    return f"Field '{field}': {error['msg']}"


def _bounds(model: type[BaseModel], field: str) -> tuple[object, object]:
    low: object = "-inf"
    high: object = "inf"
    info = model.model_fields.get(field)
    for item in info.metadata if info is not None else ():
        if isinstance(item, Ge):
            low = item.ge
        elif isinstance(item, Le):
            high = item.le
    return low, high
