"""Products: a SKU unique per tenant, a title, a price in minor units with its currency, a
stock level, and a status the product transition table moves (Draft -> Published ->
Archived -> Draft).

Each function works in the caller's unit of work (the tenant's, app role) and writes the
change and its event to the outbox there. A change names the version it was decided on
(`expected_version`, or the version it read): of two concurrent changes one gets a
ConflictError. Events: product.created, product.published, product.updated (any other
change, archive and restore included, as the reference's service emits ProductUpdated for
its unpublish).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

from opentelemetry import trace
from sqlalchemy import RowMapping, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from rustok_ref.commerce.money import Money, check_count
from rustok_ref.commerce.recording import check_expected, publish, tenant_of, update_row
from rustok_ref.commerce.states import PRODUCT_TABLE, ProductEvent, ProductStatus
from rustok_ref.errors import ConflictError, NotFoundError, ValidationError
from rustok_ref.events.envelope import (
    EventPayload,
    ProductCreated,
    ProductPublished,
    ProductUpdated,
)
from rustok_ref.events.validation import INT32_MAX
from rustok_ref.storage.tables import products
from rustok_ref.storage.unit_of_work import UnitOfWork

MAX_SKU_BYTES: Final = 64
MAX_TITLE_BYTES: Final = 255
_VISIBLE: Final = re.compile(r"\S")
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")

tracer = trace.get_tracer(__name__)


def _span_ids(uow: UnitOfWork, product_id: UUID) -> dict[str, str]:
    """What a product span is searched by (review P2.1: tenant and product)."""
    return {"tenant_id": str(uow.tenant_id), "product_id": str(product_id)}


@dataclass(frozen=True, slots=True)
class ProductRecord:
    id: UUID
    tenant_id: UUID
    sku: str
    title: str
    price: Money
    stock: int
    status: ProductStatus
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> ProductRecord:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            sku=row["sku"],
            title=row["title"],
            price=Money(row["price"], row["currency"]),
            stock=row["stock"],
            status=ProductStatus(row["status"]),
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def check_text(value: object, *, field: str, max_bytes: int) -> str:
    """Required text: a str, not blank, storable (PostgreSQL's text holds no NUL, UTF-8 no
    lone surrogate), at most `max_bytes` bytes of UTF-8."""
    if not isinstance(value, str) or not _VISIBLE.search(value):
        raise ValidationError(f"Field '{field}' cannot be empty", fields={field: ["required"]})
    if _UNSTORABLE.search(value):
        raise ValidationError(
            f"Field '{field}' contains a NUL or a lone surrogate",
            fields={field: ["no NUL characters or lone surrogates"]},
        )
    if len(value.encode()) > max_bytes:
        raise ValidationError(
            f"Field '{field}' exceeds maximum length of {max_bytes} bytes",
            fields={field: [f"at most {max_bytes} bytes"]},
        )
    return value


def check_stock(value: object) -> int:
    return check_count(value, field="stock", minimum=0, maximum=INT32_MAX)


def _check_price(price: object) -> Money:
    if not isinstance(price, Money):
        raise ValidationError(
            "Field 'price' must be Money (integer minor units and a currency)",
            fields={"price": ["must be Money"]},
        )
    return price


async def create_product(
    uow: UnitOfWork,
    *,
    sku: str,
    title: str,
    price: Money,
    stock: int,
    product_id: UUID | None = None,
) -> ProductRecord:
    """A new draft product; ConflictError when the tenant already has the SKU."""
    tenant_id = tenant_of(uow)
    new_id = product_id or uuid4()
    ids = {"tenant_id": str(tenant_id), "product_id": str(new_id), "sku": sku}
    with tracer.start_as_current_span("products.create", attributes=ids):
        values: dict[str, Any] = {
            "id": new_id,
            "tenant_id": tenant_id,
            "sku": check_text(sku, field="sku", max_bytes=MAX_SKU_BYTES),
            "title": check_text(title, field="title", max_bytes=MAX_TITLE_BYTES),
            "price": _check_price(price).amount,
            "currency": price.currency,
            "stock": check_stock(stock),
            "status": PRODUCT_TABLE.initial.value,
            "version": 1,
        }
        row = (
            (
                await uow.session.execute(
                    pg_insert(products)
                    .values(**values)
                    .on_conflict_do_nothing(index_elements=["tenant_id", "sku"])
                    .returning(*products.c)
                )
            )
            .mappings()
            .one_or_none()
        )
        if row is None:
            raise ConflictError(f"SKU {sku!r} already exists", extra={"sku": sku})
        created = ProductRecord.from_row(row)
        await publish(uow, tenant_id, [ProductCreated(product_id=created.id)], aggregate_version=1)
        return created


async def get_product(uow: UnitOfWork, product_id: UUID) -> ProductRecord:
    """The tenant's product; NotFoundError for an unknown one or another tenant's."""
    with tracer.start_as_current_span(
        "products.get", attributes=_span_ids(uow, product_id)
    ) as span:
        row = (
            (await uow.session.execute(select(products).where(products.c.id == product_id)))
            .mappings()
            .one_or_none()
        )
        if row is None:
            raise NotFoundError(f"product {product_id} not found")
        span.set_attribute("sku", row["sku"])
        return ProductRecord.from_row(row)


async def update_product(
    uow: UnitOfWork,
    product_id: UUID,
    *,
    title: str | None = None,
    price: Money | None = None,
    stock: int | None = None,
    expected_version: int | None = None,
) -> ProductRecord:
    """Change the title, the price or the stock level (set, not added to)."""
    with tracer.start_as_current_span("products.update", attributes=_span_ids(uow, product_id)):
        values: dict[str, Any] = {}
        if title is not None:
            values["title"] = check_text(title, field="title", max_bytes=MAX_TITLE_BYTES)
        if price is not None:
            values |= {"price": _check_price(price).amount, "currency": price.currency}
        if stock is not None:
            values["stock"] = check_stock(stock)
        if not values:
            raise ValidationError("nothing to change", fields={"product": ["no field given"]})
        current = await get_product(uow, product_id)
        return await _change(uow, current, values, ProductUpdated, expected_version)


async def transition_product(
    uow: UnitOfWork,
    product_id: UUID,
    event: ProductEvent,
    *,
    expected_version: int | None = None,
) -> ProductRecord:
    """Publish, archive or restore; InvalidTransitionError where the table refuses."""
    with tracer.start_as_current_span(
        f"products.{event.value}", attributes=_span_ids(uow, product_id)
    ):
        current = await get_product(uow, product_id)
        check_expected("product", product_id, found=current.version, expected=expected_version)
        status = PRODUCT_TABLE.next_status(current.status, event)
        kind = ProductPublished if event is ProductEvent.PUBLISH else ProductUpdated
        return await _change(uow, current, {"status": status.value}, kind, expected_version)


async def _change(
    uow: UnitOfWork,
    current: ProductRecord,
    values: dict[str, Any],
    kind: type[ProductUpdated] | type[ProductPublished],
    expected_version: int | None,
) -> ProductRecord:
    trace.get_current_span().set_attribute("sku", current.sku)  # the update's or transition's
    check_expected("product", current.id, found=current.version, expected=expected_version)
    row = await update_row(uow, products, current.id, read_version=current.version, values=values)
    changed = ProductRecord.from_row(row)
    event: EventPayload = kind(product_id=changed.id)
    await publish(uow, changed.tenant_id, [event], aggregate_version=changed.version)
    return changed
