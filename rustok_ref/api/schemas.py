"""The REST bodies: what the routes accept and answer, and the problem responses they list.

Request bodies forbid unknown fields (a typo is a 400, not silently ignored) and take whole
numbers strictly (a float amount or a `true` stock is a 400: money is never a float). Range
and content rules (a negative stock, a blank title, a bad currency) stay with the domain,
which raises the same ValidationError whoever calls it; the bodies only fix the shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Generic, Self, TypeVar
from uuid import UUID

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import RowMapping

from rustok_ref.api.problems import PROBLEM_JSON
from rustok_ref.commerce import money
from rustok_ref.commerce.checkout import CheckoutOutcome, CheckoutStatus
from rustok_ref.commerce.orders import MAX_LINES, OrderRecord
from rustok_ref.commerce.products import ProductRecord
from rustok_ref.commerce.states import OrderStatus, ProductStatus
from rustok_ref.tenancy import model as tenancy

__all__ = [
    "PROBLEM_RESPONSES",
    "Checkout",
    "Money",
    "Order",
    "OrderCancel",
    "OrderCreate",
    "OrderLine",
    "OrderLineCreate",
    "OrderSummary",
    "Page",
    "Problem",
    "Product",
    "ProductCreate",
    "ProductPatch",
    "ProductSummary",
    "Tenant",
    "TenantPatch",
    "document_problems",
]

T = TypeVar("T")


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An RFC 9457 problem as `problems.py` writes it (members beyond these may appear)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:rustok:error:not_found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str | None = Field(default=None, description="The GraphQL code of the same error.")
    kind: str | None = None
    correlation_id: str | None = None
    retry_after: int | None = Field(default=None, description="Seconds (429 and 503 only).")
    fields: dict[str, list[str]] | None = Field(
        default=None, description="Each bad field's messages (400 only)."
    )


_PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}}}


def document_problems(app: FastAPI) -> None:
    """Put `Problem` in the OpenAPI components once, for the routes' `$ref`s to it (FastAPI
    adds only models a route returns, and inlining it would copy it into every answer)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


PROBLEM_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: _problem("The request is not valid (a bad field, id, cursor or body)."),
    401: _problem("No valid API key."),
    403: _problem("The key's role lacks the permission, or the key is another tenant's."),
    404: _problem("No such resource for this tenant."),
    409: _problem("A conflict: a stale version, a duplicate, or an illegal transition."),
    429: _problem("The tenant's rate limit is exceeded (Retry-After)."),
    503: _problem("A dependency is unavailable or overloaded (Retry-After)."),
    # also keeps FastAPI from listing a 422 this API never answers (validation is a 400)
    "4XX": _problem("Any other client error (an oversized or non-JSON body, ...)."),
}
"""Every route's error `responses`: all are `application/problem+json`."""


class Money(RequestBody):
    """An amount in integer minor units (1999 EUR is 19.99 EUR); never a float."""

    amount: StrictInt = Field(examples=[1999])
    currency: StrictStr = Field(examples=["EUR"], description="ISO 4217 code.")

    def to_domain(self) -> money.Money:
        return money.Money(self.amount, self.currency)

    @classmethod
    def of(cls, value: money.Money) -> Self:
        return cls(amount=value.amount, currency=value.currency)


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor` for the next (None: the last)."""

    items: list[T]
    next_cursor: str | None


class Tenant(BaseModel):
    id: UUID
    slug: str
    name: str
    domain: str | None
    is_active: bool
    version: int

    @classmethod
    def of(cls, tenant: tenancy.Tenant) -> Self:
        return cls(
            id=tenant.id,
            slug=tenant.slug,
            name=tenant.name,
            domain=tenant.domain,
            is_active=tenant.is_active,
            version=tenant.version,
        )


class TenantPatch(RequestBody):
    name: StrictStr
    expected_version: StrictInt | None = None


class ProductSummary(BaseModel):
    """A product as the read index holds it."""

    id: UUID
    sku: str
    title: str
    price: Money
    stock: int
    status: ProductStatus
    version: int

    @classmethod
    def of_view(cls, row: RowMapping) -> Self:
        return cls(
            id=row["product_id"],
            sku=row["sku"],
            title=row["title"],
            price=Money(amount=row["price"], currency=row["currency"]),
            stock=row["stock"],
            status=ProductStatus(row["status"]),
            version=row["version"],
        )


class Product(ProductSummary):
    """A product as it stands now (read from its row, not the index)."""

    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, product: ProductRecord) -> Self:
        return cls(
            id=product.id,
            sku=product.sku,
            title=product.title,
            price=Money.of(product.price),
            stock=product.stock,
            status=product.status,
            version=product.version,
            created_at=product.created_at,
            updated_at=product.updated_at,
        )


class ProductCreate(RequestBody):
    sku: StrictStr
    title: StrictStr
    price: Money
    stock: StrictInt


class ProductPatch(RequestBody):
    """The fields to change (at least one); `expected_version` makes it conditional."""

    title: StrictStr | None = None
    price: Money | None = None
    stock: StrictInt | None = None
    expected_version: StrictInt | None = None


class OrderLineCreate(RequestBody):
    product_id: UUID
    quantity: StrictInt = Field(examples=[1])


class OrderCreate(RequestBody):
    """A draft order of published products at their current prices."""

    lines: list[OrderLineCreate] = Field(min_length=1, max_length=MAX_LINES)
    customer_id: UUID | None = None


class OrderCancel(RequestBody):
    reason: StrictStr | None = None


class OrderLine(BaseModel):
    product_id: UUID
    sku: str
    quantity: int
    unit_price: Money


class Order(BaseModel):
    """An order as it stands now (read from its row, not the index)."""

    id: UUID
    status: OrderStatus
    customer_id: UUID | None
    lines: list[OrderLine]
    total: Money
    payment_id: UUID | None
    cancel_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: OrderRecord) -> Self:
        currency = order.total.currency
        return cls(
            id=order.id,
            status=order.status,
            customer_id=order.customer_id,
            lines=[
                OrderLine(
                    product_id=line.product_id,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=Money(amount=line.unit_price, currency=currency),
                )
                for line in order.lines
            ],
            total=Money.of(order.total),
            payment_id=order.payment_id,
            cancel_reason=order.cancel_reason,
            version=order.version,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


class OrderSummary(BaseModel):
    """An order as the read index holds it (`lines` is how many)."""

    id: UUID
    status: OrderStatus
    customer_id: UUID | None
    total: Money
    lines: int
    payment_id: UUID | None
    placed_at: datetime
    version: int | None

    @classmethod
    def of_view(cls, row: RowMapping) -> Self:
        return cls(
            id=row["order_id"],
            status=OrderStatus(row["status"]),
            customer_id=row["customer_id"],
            total=Money(amount=row["total"], currency=row["currency"]),
            lines=row["lines"],
            payment_id=row["payment_id"],
            placed_at=row["placed_at"],
            version=row["version"],
        )


class Checkout(BaseModel):
    """Where paying an order stands; `in_progress` until its checkout saga ends."""

    status: CheckoutStatus
    order_id: UUID
    saga_id: UUID
    reason: str | None

    @classmethod
    def of(cls, outcome: CheckoutOutcome) -> Self:
        return cls(
            status=outcome.status,
            order_id=outcome.order_id,
            saga_id=outcome.saga_id,
            reason=outcome.reason,
        )
