"""The GraphQL types: what the schema answers and accepts, and how domain records and read
index rows become them.

Money amounts are `Long`, not `Int`: GraphQL's Int is 32 bits, an amount in minor units is
PostgreSQL's bigint. Enums take the domain's own (`ProductStatus`, `OrderStatus`,
`CheckoutStatus`), so a status is spelt the same in both APIs' documentation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NewType, Self
from uuid import UUID

import strawberry
from graphql import IntValueNode, ValueNode
from sqlalchemy import RowMapping

from rustok_ref.commerce import money
from rustok_ref.commerce.checkout import CheckoutOutcome, CheckoutStatus
from rustok_ref.commerce.orders import OrderRecord
from rustok_ref.commerce.products import ProductRecord
from rustok_ref.commerce.states import OrderStatus, ProductStatus
from rustok_ref.errors import ValidationError
from rustok_ref.events.validation import INT64_MAX
from rustok_ref.tenancy import model as tenancy

__all__ = [
    "SCALARS",
    "Checkout",
    "Long",
    "Money",
    "MoneyInput",
    "Order",
    "OrderCreateInput",
    "OrderLineInput",
    "OrderPage",
    "OrderStatusChange",
    "OrderSummary",
    "Product",
    "ProductCreateInput",
    "ProductPage",
    "Tenant",
]

Long = NewType("Long", int)
"""A whole number within PostgreSQL's bigint (money in minor units)."""


def _parse_long(value: Any) -> Long:
    if type(value) is not int or not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValidationError(
            f"Long must be a whole number within 64 bits, got {value!r}",
            fields={"amount": ["must be a whole number within 64 bits"]},
        )
    return Long(value)


def _parse_long_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> Long:
    if not isinstance(node, IntValueNode):
        raise ValidationError("Long must be an integer literal", fields={"amount": ["integer"]})
    return _parse_long(int(node.value))


SCALARS: dict[object, Any] = {
    Long: strawberry.scalar(
        name="Long",
        description="A whole number within 64 bits (money in minor units).",
        serialize=int,
        parse_value=_parse_long,
        parse_literal=_parse_long_literal,
    )
}
"""The schema's `scalar_map`."""

# The domain's enums are the GraphQL enums (strawberry marks each class in place).
strawberry.enum(ProductStatus)
strawberry.enum(OrderStatus)
strawberry.enum(CheckoutStatus)


@strawberry.type(description="An amount in integer minor units (1999 EUR is 19.99 EUR).")
class Money:
    amount: Long
    currency: str

    @classmethod
    def of(cls, value: money.Money) -> Self:
        return cls(amount=Long(value.amount), currency=value.currency)


@strawberry.input(description="An amount in integer minor units and its ISO 4217 currency.")
class MoneyInput:
    amount: Long
    currency: str

    def to_domain(self) -> money.Money:
        return money.Money(self.amount, self.currency)


@strawberry.type
class Tenant:
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


@strawberry.type(description="A product: from the read index in queries, its row in mutations.")
class Product:
    id: UUID
    sku: str
    title: str
    price: Money
    stock: int
    status: ProductStatus
    version: int

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
        )

    @classmethod
    def of_view(cls, row: RowMapping) -> Self:
        return cls(
            id=row["product_id"],
            sku=row["sku"],
            title=row["title"],
            price=Money(amount=Long(row["price"]), currency=row["currency"]),
            stock=row["stock"],
            status=ProductStatus(row["status"]),
            version=row["version"],
        )


@strawberry.type(description="One page of products; pass `nextCursor` as `after` for the next.")
class ProductPage:
    items: list[Product]
    next_cursor: str | None


@strawberry.type
class OrderLine:
    line: int
    product_id: UUID
    sku: str
    quantity: int
    unit_price: Money


@strawberry.type(description="An order as its row stands after a mutation.")
class Order:
    id: UUID
    status: OrderStatus
    customer_id: UUID | None
    lines: list[OrderLine]
    total: Money
    payment_id: UUID | None
    cancel_reason: str | None
    version: int

    @classmethod
    def of(cls, order: OrderRecord) -> Self:
        currency = order.total.currency
        return cls(
            id=order.id,
            status=order.status,
            customer_id=order.customer_id,
            lines=[
                OrderLine(
                    line=line.line,
                    product_id=line.product_id,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=Money(amount=Long(line.unit_price), currency=currency),
                )
                for line in order.lines
            ],
            total=Money.of(order.total),
            payment_id=order.payment_id,
            cancel_reason=order.cancel_reason,
            version=order.version,
        )


@strawberry.type(description="An order as the read index holds it (`lineCount` lines).")
class OrderSummary:
    id: UUID
    status: OrderStatus
    customer_id: UUID | None
    total: Money
    line_count: int
    payment_id: UUID | None
    cancel_reason: str | None
    placed_at: datetime
    version: int | None

    @classmethod
    def of_view(cls, row: RowMapping) -> Self:
        return cls(
            id=row["order_id"],
            status=OrderStatus(row["status"]),
            customer_id=row["customer_id"],
            total=Money(amount=Long(row["total"]), currency=row["currency"]),
            line_count=row["lines"],
            payment_id=row["payment_id"],
            cancel_reason=row["cancel_reason"],
            placed_at=row["placed_at"],
            version=row["version"],
        )


@strawberry.type(description="One page of orders, newest first.")
class OrderPage:
    items: list[OrderSummary]
    next_cursor: str | None


@strawberry.type(description="Where paying an order stands; IN_PROGRESS until its saga ends.")
class Checkout:
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


@strawberry.type(
    description="An order's status: first as the read index has it (`previousStatus` null), "
    "then each change."
)
class OrderStatusChange:
    order_id: UUID
    status: OrderStatus
    previous_status: OrderStatus | None
    version: int


@strawberry.input
class ProductCreateInput:
    sku: str
    title: str
    price: MoneyInput
    stock: int


@strawberry.input
class OrderLineInput:
    sku: str
    quantity: int


@strawberry.input
class OrderCreateInput:
    lines: list[OrderLineInput]
    currency: str = "EUR"
    customer_id: UUID | None = None
