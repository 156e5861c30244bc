"""The event envelope, the catalogue of event types, and the reference's domain events.

An `EventEnvelope` is valid by construction: building one (directly, through
`new_envelope`, `decode_envelope` or `Catalogue.restore`) checks its header and serialises
its payload once, under the type's size cap; the outbox and the stream reuse those bytes. A
consumer of envelopes (the dispatcher) therefore never validates again: that is the fast
path. The payload models carry their own rules (see `validation.py`); pydantic's
`model_construct`, which skips them by design, has no place in event code.

Differences from RusToK's envelope (reference §3.1): the id is a UUIDv7, not a ULID in UUID
clothing; the correlation id comes from the request (`telemetry.correlation_id()`) or the
causing event instead of always being the event's own id; the trace context is the W3C
`traceparent` of the current OpenTelemetry span, not a tracing-crate span number; the event
names its aggregate (type, id, version) so the outbox can keep per-aggregate order; the
payload is flat JSON, named by `event_type`, not adjacently tagged.

The catalogue holds the tenant, product, inventory and order events of the reference (18 of
its 39); the commerce work adds payment, shipment, saga and flag events with
`CATALOGUE.register(...)`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Self, TypeVar
from uuid import UUID

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import AwareDatetime, BaseModel, ConfigDict, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_json

from rustok_ref import telemetry
from rustok_ref.errors import ValidationError
from rustok_ref.events.validation import (
    ENVELOPE_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    CurrencyCode,
    EntityId,
    MaxBytes,
    NonNegativeInt32,
    NonNegativeInt64,
    NotBlank,
    OptionalEntityId,
    check_header,
    check_size,
    is_correlation_id,
    is_low_stock,
    payload_error,
    require,
)

_EVENT_TYPE: Final = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_AGGREGATE_TYPE: Final = re.compile(r"[a-z][a-z0-9_]*")
_PROPAGATOR: Final = TraceContextTextMapPropagator()
METADATA_FIELDS: Final = (
    "schema_version",
    "tenant_id",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "actor_id",
    "traceparent",
)
"""Envelope fields a table stores in columns of the same names (the outbox, the event store)."""


class Uuid7Generator:
    """RFC 9562 UUIDv7 ids, strictly increasing within the process.

    Python 3.11's `uuid` has no `uuid7` (it arrives in 3.14) and no maintained package is a
    dependency here, so this follows CPython 3.14's algorithm: 48 bits of Unix milliseconds,
    a 42-bit counter (randomly seeded each new millisecond, incremented within one, the
    timestamp advanced on overflow or when the clock steps back) and 32 random bits.
    """

    _COUNTER_MAX: Final = (1 << 42) - 1

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> UUID:
        entropy = int.from_bytes(os.urandom(10))  # 41 bits of counter seed, 32 of tail
        now_ms = self._clock_ns() // 1_000_000
        with self._lock:
            if now_ms > self._last_ms:
                self._last_ms, self._counter = now_ms, (entropy >> 32) & ((1 << 41) - 1)
            else:
                self._counter += 1
                if self._counter > self._COUNTER_MAX:
                    self._last_ms += 1
                    self._counter = (entropy >> 32) & ((1 << 41) - 1)
            ms, counter = self._last_ms, self._counter
        value = (
            (ms & 0xFFFF_FFFF_FFFF) << 80
            | 0x7 << 76
            | (counter >> 30) << 64
            | 0b10 << 62
            | (counter & 0x3FFF_FFFF) << 32
            | entropy & 0xFFFF_FFFF
        )
        return UUID(int=value)


uuid7: Final = Uuid7Generator()
"""A time-ordered event id (UUIDv7)."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One catalogue entry: the payload model and how the event names its aggregate."""

    event_type: str
    model: type[EventPayload]
    aggregate_type: str
    key: str
    """The payload field holding the aggregate id."""
    schema_version: int
    max_bytes: int
    """Cap on the serialised payload."""


class EventPayload(BaseModel):
    """Base of every payload model: frozen, unknown fields refused, errors in our taxonomy
    (building one with bad values raises `rustok_ref.errors.ValidationError`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event_spec: ClassVar[EventSpec | None] = None

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            spec = type(self).event_spec
            name = spec.event_type if spec is not None else type(self).__name__
            raise payload_error(exc, type(self), name) from None

    # Only the error type differs from BaseModel.__init__, so tell pydantic not to route
    # every `model_validate` through this Python frame (it would double validation's cost).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


E = TypeVar("E", bound=EventPayload)


class Catalogue:
    """event_type -> payload model, schema version, aggregate; `CATALOGUE` is the default.

    A separate catalogue (tests, a notebook) keeps its own types out of the default one.
    """

    def __init__(self) -> None:
        self._specs: dict[str, EventSpec] = {}
        # pydantic-core's validators, looked up once: `validate` is on every hot path
        self._validators: dict[str, Callable[[object], EventPayload]] = {}
        self.max_envelope_bytes = ENVELOPE_HEADER_BYTES

    def register(
        self,
        event_type: str,
        *,
        aggregate: str,
        key: str,
        schema_version: int = 1,
        max_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> Callable[[type[E]], type[E]]:
        """Class decorator: `@CATALOGUE.register("order.placed", aggregate="order",
        key="order_id")` on a payload model whose `key` field is the aggregate's UUID."""

        def add(model: type[E]) -> type[E]:
            if not _EVENT_TYPE.fullmatch(event_type):
                raise ValueError(f"event type {event_type!r} is not dotted lowercase words")
            if event_type in self._specs:
                raise ValueError(f"event type {event_type!r} is already registered")
            if "event_spec" in model.__dict__:
                raise ValueError(f"{model.__name__} is already registered")
            if not _AGGREGATE_TYPE.fullmatch(aggregate):
                raise ValueError(f"aggregate type {aggregate!r} is not a lowercase word")
            info = model.model_fields.get(key)
            if info is None or info.annotation is not UUID or not info.is_required():
                raise ValueError(f"{model.__name__}.{key} must be a required UUID field")
            if schema_version < 1 or max_bytes < 2:
                raise ValueError("schema_version must be >= 1 and max_bytes >= 2")
            spec = EventSpec(event_type, model, aggregate, key, schema_version, max_bytes)
            model.event_spec = spec
            self._specs[event_type] = spec
            self._validators[event_type] = model.__pydantic_validator__.validate_python
            self.max_envelope_bytes = max(
                self.max_envelope_bytes, max_bytes + ENVELOPE_HEADER_BYTES
            )
            return model

        return add

    def spec(self, event_type: str) -> EventSpec:
        """The entry for `event_type`; a ValidationError when it is unknown."""
        spec = self._specs.get(event_type)
        if spec is None:
            raise self._unknown(event_type)
        return spec

    @staticmethod
    def _unknown(event_type: str) -> ValidationError:
        return ValidationError(
            f"Event validation failed: unknown event type {event_type!r}",
            fields={"event_type": [f"Unknown event type '{event_type}'"]},
        )

    def __iter__(self) -> Iterator[EventSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def validate(self, event_type: str, data: Mapping[str, Any]) -> EventPayload:
        """A payload received as a mapping, checked against its type's rules; a
        ValidationError names every field that breaks one."""
        validator = self._validators.get(event_type)
        if validator is None:
            raise self._unknown(event_type)
        try:
            return validator(data)
        except PydanticValidationError as exc:
            raise payload_error(exc, self._specs[event_type].model, event_type) from None

    def restore(
        self,
        *,
        event_type: str,
        schema_version: int,
        payload: Mapping[str, Any],
        event_id: UUID,
        tenant_id: UUID,
        occurred_at: datetime,
        correlation_id: str,
        causation_id: UUID | None,
        actor_id: UUID | None,
        traceparent: str | None,
        aggregate_version: int | None,
    ) -> EventEnvelope:
        """An envelope rebuilt from stored or received parts, validated like a new one."""
        spec = self.spec(event_type)
        if schema_version != spec.schema_version:
            raise ValidationError(
                f"Event validation failed: {event_type} schema version {schema_version} "
                f"is not the supported {spec.schema_version}",
                fields={"schema_version": [f"Unsupported schema version {schema_version}"]},
            )
        return EventEnvelope(
            id=event_id,
            tenant_id=tenant_id,
            payload=self.validate(event_type, payload),
            occurred_at=occurred_at,
            correlation_id=correlation_id,
            causation_id=causation_id,
            actor_id=actor_id,
            traceparent=traceparent,
            aggregate_version=aggregate_version,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EventEnvelope:
    """One event and its metadata. Construction validates (see the module docstring)."""

    id: UUID
    tenant_id: UUID
    payload: EventPayload
    occurred_at: datetime
    correlation_id: str
    causation_id: UUID | None = None
    actor_id: UUID | None = None
    traceparent: str | None = None
    aggregate_version: int | None = None
    """The aggregate's version after this event, when the aggregate is versioned."""
    payload_json: bytes = field(init=False, repr=False, compare=False)
    """The payload serialised once, as the outbox stores it and the stream carries it."""

    def __post_init__(self) -> None:
        spec = type(self.payload).event_spec if isinstance(self.payload, EventPayload) else None
        if spec is None or spec.model is not type(self.payload):
            raise ValidationError(
                "Event validation failed: the payload is not a registered event model",
                fields={"payload": [f"{type(self.payload).__name__} is not in a catalogue"]},
            )
        check_header(
            event_id=self.id,
            tenant_id=self.tenant_id,
            actor_id=self.actor_id,
            causation_id=self.causation_id,
            correlation_id=self.correlation_id,
            traceparent=self.traceparent,
            aggregate_version=self.aggregate_version,
            occurred_at=self.occurred_at,
        )
        raw = spec.model.__pydantic_serializer__.to_json(self.payload)
        check_size(raw, event_type=spec.event_type, max_bytes=spec.max_bytes)
        object.__setattr__(self, "payload_json", raw)

    @property
    def spec(self) -> EventSpec:
        spec = type(self.payload).event_spec
        assert spec is not None  # checked on construction
        return spec

    @property
    def event_type(self) -> str:
        return self.spec.event_type

    @property
    def schema_version(self) -> int:
        return self.spec.schema_version

    @property
    def aggregate_type(self) -> str:
        return self.spec.aggregate_type

    @property
    def aggregate_id(self) -> UUID:
        value: UUID = getattr(self.payload, self.spec.key)
        return value

    def metadata(self) -> dict[str, Any]:
        """The fields stored beside the payload under their own names (`METADATA_FIELDS`)."""
        return {name: getattr(self, name) for name in METADATA_FIELDS}

    def header(self) -> dict[str, Any]:
        """Every field but the payload, as JSON-ready values."""
        return {
            "id": str(self.id),
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "tenant_id": str(self.tenant_id),
            "aggregate_type": self.aggregate_type,
            "aggregate_id": str(self.aggregate_id),
            "aggregate_version": self.aggregate_version,
            "correlation_id": self.correlation_id,
            "causation_id": None if self.causation_id is None else str(self.causation_id),
            "actor_id": None if self.actor_id is None else str(self.actor_id),
            "traceparent": self.traceparent,
            "occurred_at": self.occurred_at.isoformat(),
        }

    def to_json(self) -> bytes:
        """The whole envelope as JSON (the payload's bytes spliced in, not re-serialised)."""
        return to_json(self.header())[:-1] + b',"payload":' + self.payload_json + b"}"

    def trace_context(self) -> Context:
        """An OpenTelemetry context whose parent is the producer's span (empty if none)."""
        carrier = {} if self.traceparent is None else {"traceparent": self.traceparent}
        return _PROPAGATOR.extract(carrier)


def new_envelope(
    payload: EventPayload,
    *,
    tenant_id: UUID,
    actor_id: UUID | None = None,
    caused_by: EventEnvelope | None = None,
    aggregate_version: int | None = None,
    now: datetime | None = None,
) -> EventEnvelope:
    """A new event from the current context: a UUIDv7 id; the correlation id of the causing
    event, else of the request (when it is a valid one), else the id itself; the current
    span's `traceparent`."""
    event_id = uuid7()
    if caused_by is not None:
        correlation = caused_by.correlation_id
    else:
        in_context = telemetry.correlation_id()
        # a request's id that could not travel in an event (too long, spaces) is not used
        correlation = in_context if is_correlation_id(in_context) else event_id.hex
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return EventEnvelope(
        id=event_id,
        tenant_id=tenant_id,
        payload=payload,
        occurred_at=datetime.now(UTC) if now is None else now,
        correlation_id=correlation,
        causation_id=None if caused_by is None else caused_by.id,
        actor_id=actor_id,
        traceparent=carrier.get("traceparent"),
        aggregate_version=aggregate_version,
    )


class _Wire(BaseModel):
    """The header of an encoded envelope, as `EventEnvelope.to_json` writes it."""

    model_config = ConfigDict(extra="forbid")

    id: UUID
    event_type: str
    schema_version: int
    tenant_id: UUID
    aggregate_type: str
    aggregate_id: UUID
    aggregate_version: int | None
    correlation_id: str
    causation_id: UUID | None
    actor_id: UUID | None
    traceparent: str | None
    occurred_at: AwareDatetime
    payload: dict[str, Any]


def decode_envelope(raw: bytes, catalogue: Catalogue | None = None) -> EventEnvelope:
    """A received envelope, validated; the size is checked before anything is parsed."""
    catalogue = CATALOGUE if catalogue is None else catalogue
    check_size(raw, event_type="envelope", max_bytes=catalogue.max_envelope_bytes)
    try:
        wire = _Wire.model_validate_json(raw)
    except PydanticValidationError as exc:
        raise payload_error(exc, _Wire, "envelope") from None
    envelope = catalogue.restore(
        event_type=wire.event_type,
        schema_version=wire.schema_version,
        payload=wire.payload,
        event_id=wire.id,
        tenant_id=wire.tenant_id,
        occurred_at=wire.occurred_at,
        correlation_id=wire.correlation_id,
        causation_id=wire.causation_id,
        actor_id=wire.actor_id,
        traceparent=wire.traceparent,
        aggregate_version=wire.aggregate_version,
    )
    if (wire.aggregate_type, wire.aggregate_id) != (
        envelope.aggregate_type,
        envelope.aggregate_id,
    ):
        raise ValidationError(
            "Event validation failed: the header names another aggregate than the payload",
            fields={"aggregate_id": ["Does not match the payload's aggregate"]},
        )
    return envelope


CATALOGUE: Final = Catalogue()
"""The catalogue of this application's events."""

Locale = Annotated[str, NotBlank, MaxBytes(10)]
OrderStatus = Annotated[str, NotBlank, MaxBytes(50)]


# Tenant events: the aggregate is the tenant itself.
@CATALOGUE.register("tenant.created", aggregate="tenant", key="tenant_id")
class TenantCreated(EventPayload):
    tenant_id: EntityId


@CATALOGUE.register("tenant.updated", aggregate="tenant", key="tenant_id")
class TenantUpdated(EventPayload):
    tenant_id: EntityId


@CATALOGUE.register("locale.enabled", aggregate="tenant", key="tenant_id")
class LocaleEnabled(EventPayload):
    tenant_id: EntityId
    locale: Locale


@CATALOGUE.register("locale.disabled", aggregate="tenant", key="tenant_id")
class LocaleDisabled(EventPayload):
    tenant_id: EntityId
    locale: Locale


# Catalogue events: variants and prices belong to their product's aggregate.
@CATALOGUE.register("product.created", aggregate="product", key="product_id")
class ProductCreated(EventPayload):
    product_id: EntityId


@CATALOGUE.register("product.updated", aggregate="product", key="product_id")
class ProductUpdated(EventPayload):
    product_id: EntityId


@CATALOGUE.register("product.published", aggregate="product", key="product_id")
class ProductPublished(EventPayload):
    product_id: EntityId


@CATALOGUE.register("product.deleted", aggregate="product", key="product_id")
class ProductDeleted(EventPayload):
    product_id: EntityId


@CATALOGUE.register("variant.created", aggregate="product", key="product_id")
class VariantCreated(EventPayload):
    variant_id: EntityId
    product_id: EntityId


@CATALOGUE.register("variant.updated", aggregate="product", key="product_id")
class VariantUpdated(EventPayload):
    variant_id: EntityId
    product_id: EntityId


@CATALOGUE.register("variant.deleted", aggregate="product", key="product_id")
class VariantDeleted(EventPayload):
    variant_id: EntityId
    product_id: EntityId


@CATALOGUE.register("price.updated", aggregate="product", key="product_id")
class PriceUpdated(EventPayload):
    variant_id: EntityId
    product_id: EntityId
    currency: CurrencyCode
    old_amount: NonNegativeInt64 | None = None
    new_amount: NonNegativeInt64


# Inventory events: stock is its own aggregate, one per variant.
@CATALOGUE.register("inventory.updated", aggregate="inventory", key="variant_id")
class InventoryUpdated(EventPayload):
    variant_id: EntityId
    product_id: EntityId
    location_id: EntityId
    old_quantity: NonNegativeInt32
    new_quantity: NonNegativeInt32


@CATALOGUE.register("inventory.low", aggregate="inventory", key="variant_id")
class InventoryLow(EventPayload):
    variant_id: EntityId
    product_id: EntityId
    remaining: NonNegativeInt32
    threshold: NonNegativeInt32

    @model_validator(mode="after")
    def _low(self) -> Self:
        require(
            is_low_stock(self.remaining, self.threshold),
            "remaining",
            "must not exceed threshold for low inventory",
        )
        return self


# Order events.
@CATALOGUE.register("order.placed", aggregate="order", key="order_id")
class OrderPlaced(EventPayload):
    order_id: EntityId
    customer_id: OptionalEntityId = None
    total: NonNegativeInt64
    currency: CurrencyCode


@CATALOGUE.register("order.status_changed", aggregate="order", key="order_id")
class OrderStatusChanged(EventPayload):
    order_id: EntityId
    old_status: OrderStatus
    new_status: OrderStatus

    @model_validator(mode="after")
    def _changed(self) -> Self:
        require(
            self.new_status != self.old_status, "new_status", "must be different from old_status"
        )
        return self


@CATALOGUE.register("order.completed", aggregate="order", key="order_id")
class OrderCompleted(EventPayload):
    order_id: EntityId


@CATALOGUE.register("order.cancelled", aggregate="order", key="order_id")
class OrderCancelled(EventPayload):
    order_id: EntityId
    reason: Annotated[str, MaxBytes(500)] | None = None
