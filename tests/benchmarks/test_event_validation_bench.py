"""What event validation costs: the catalogue's validation (lookup, byte caps, nil ids, ranges,
enums, cross-field rules) against a raw pydantic `model_validate` of the same payloads with
plain models of the same field types (aim: at most 1.5x)."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from rustok_ref.events.envelope import CATALOGUE
from rustok_ref.lab.benchrecord import Target


class PlainOrderPlaced(BaseModel):
    order_id: UUID
    customer_id: UUID | None = None
    total: int
    currency: str


class PlainInventoryUpdated(BaseModel):
    variant_id: UUID
    product_id: UUID
    location_id: UUID
    old_quantity: int
    new_quantity: int


class PlainInventoryLow(BaseModel):
    variant_id: UUID
    product_id: UUID
    remaining: int
    threshold: int


class PlainPriceUpdated(BaseModel):
    variant_id: UUID
    product_id: UUID
    currency: str
    old_amount: int | None = None
    new_amount: int


class PlainOrderStatusChanged(BaseModel):
    order_id: UUID
    old_status: str
    new_status: str


class PlainLocaleEnabled(BaseModel):
    tenant_id: UUID
    locale: str


class PlainProductCreated(BaseModel):
    product_id: UUID


def _id() -> str:
    return str(uuid.uuid4())


# payloads as they arrive from JSON: ids are strings
PAYLOADS: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
    (
        "order.placed",
        PlainOrderPlaced,
        {"order_id": _id(), "customer_id": _id(), "total": 4999, "currency": "EUR"},
    ),
    (
        "inventory.updated",
        PlainInventoryUpdated,
        {
            "variant_id": _id(),
            "product_id": _id(),
            "location_id": _id(),
            "old_quantity": 12,
            "new_quantity": 11,
        },
    ),
    (
        "inventory.low",
        PlainInventoryLow,
        {"variant_id": _id(), "product_id": _id(), "remaining": 5, "threshold": 5},
    ),
    (
        "price.updated",
        PlainPriceUpdated,
        {
            "variant_id": _id(),
            "product_id": _id(),
            "currency": "USD",
            "old_amount": 1000,
            "new_amount": 900,
        },
    ),
    (
        "order.status_changed",
        PlainOrderStatusChanged,
        {"order_id": _id(), "old_status": "pending", "new_status": "paid"},
    ),
    ("locale.enabled", PlainLocaleEnabled, {"tenant_id": _id(), "locale": "de-DE"}),
    ("product.created", PlainProductCreated, {"product_id": _id()}),
]


def test_validation_against_raw_pydantic_model_validate(paired) -> None:
    validate = CATALOGUE.validate
    typed = [(event_type, data) for event_type, _, data in PAYLOADS]
    plain = [(model, data) for _, model, data in PAYLOADS]

    def catalogue_validation() -> None:
        for event_type, data in typed:
            validate(event_type, data)

    def raw_model_validate() -> None:
        for model, data in plain:
            model.model_validate(data)

    paired.sync(
        catalogue_validation,
        raw_model_validate,
        labels=("Catalogue.validate (rules)", "plain model_validate"),
        target=Target(value=1.5),
        rounds=25,
        iterations=2_000,
    )


def test_validation_against_the_bare_core_validator(paired) -> None:
    """The floor, for the record: what the rules cost over pydantic-core alone."""
    validate = CATALOGUE.validate
    typed = [(event_type, data) for event_type, _, data in PAYLOADS]
    core = [(model.__pydantic_validator__, data) for _, model, data in PAYLOADS]

    def catalogue_validation() -> None:
        for event_type, data in typed:
            validate(event_type, data)

    def core_validate_python() -> None:
        for validator, data in core:
            validator.validate_python(data)

    paired.sync(
        catalogue_validation,
        core_validate_python,
        labels=("Catalogue.validate (rules)", "plain __pydantic_validator__.validate_python"),
        rounds=25,
        iterations=2_000,
    )
