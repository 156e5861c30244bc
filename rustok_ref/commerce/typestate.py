"""Type-state orders and products: an illegal transition does not type-check.

`Order[PendingPayment]` has `pay()`; `Order[Paid]` has no `cancel()` that mypy --strict
accepts (`Invalid self argument ... [misc]`), the Python counterpart of the review's
compile-time guarantee (P1.3). Each method is declared with the state it needs as its self
type; a transition legal from several states (cancel) takes a Union self type, because a
TypeVar self makes mypy accept illegal calls silently (toolchain notes §7).

At run time every method computes its target through the one transition table in
`states`, so the two layers cannot disagree, and untyped code that calls an illegal
method still gets InvalidTransitionError. A status loaded from the database is dynamic:
`order_from_status` returns the union of every typed order, which a caller narrows with
`isinstance(order.state, PendingPayment)` before calling a transition.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, Generic, Literal, TypeAlias, TypeVar, cast
from uuid import UUID

from rustok_ref.commerce.states import (
    OrderEvent,
    OrderStatus,
    ProductEvent,
    ProductStatus,
    next_status,
)


class OrderState:
    """Base of the order state markers; `status` ties a marker to its row of the table."""

    status: ClassVar[OrderStatus]


@dataclass(frozen=True, slots=True)
class Draft(OrderState):
    status: ClassVar[Literal[OrderStatus.DRAFT]] = OrderStatus.DRAFT


@dataclass(frozen=True, slots=True)
class PendingPayment(OrderState):
    status: ClassVar[Literal[OrderStatus.PENDING_PAYMENT]] = OrderStatus.PENDING_PAYMENT


@dataclass(frozen=True, slots=True)
class Paid(OrderState):
    status: ClassVar[Literal[OrderStatus.PAID]] = OrderStatus.PAID


@dataclass(frozen=True, slots=True)
class Shipped(OrderState):
    status: ClassVar[Literal[OrderStatus.SHIPPED]] = OrderStatus.SHIPPED


@dataclass(frozen=True, slots=True)
class Delivered(OrderState):
    status: ClassVar[Literal[OrderStatus.DELIVERED]] = OrderStatus.DELIVERED


@dataclass(frozen=True, slots=True)
class Cancelled(OrderState):
    status: ClassVar[Literal[OrderStatus.CANCELLED]] = OrderStatus.CANCELLED


class ProductState:
    """Base of the product state markers."""

    status: ClassVar[ProductStatus]


@dataclass(frozen=True, slots=True)
class ProductDraft(ProductState):
    status: ClassVar[Literal[ProductStatus.DRAFT]] = ProductStatus.DRAFT


@dataclass(frozen=True, slots=True)
class Published(ProductState):
    status: ClassVar[Literal[ProductStatus.PUBLISHED]] = ProductStatus.PUBLISHED


@dataclass(frozen=True, slots=True)
class Archived(ProductState):
    status: ClassVar[Literal[ProductStatus.ARCHIVED]] = ProductStatus.ARCHIVED


_ORDER_MARKERS: Final[dict[OrderStatus, OrderState]] = {
    m.status: m for m in (Draft(), PendingPayment(), Paid(), Shipped(), Delivered(), Cancelled())
}
_PRODUCT_MARKERS: Final[dict[ProductStatus, ProductState]] = {
    m.status: m for m in (ProductDraft(), Published(), Archived())
}

OS = TypeVar("OS", bound=OrderState, covariant=True)
PS = TypeVar("PS", bound=ProductState, covariant=True)


@dataclass(frozen=True, slots=True)
class Order(Generic[OS]):
    """An order whose state is part of its type; transitions return a new object."""

    id: UUID
    tenant_id: UUID
    state: OS

    @property
    def status(self) -> OrderStatus:
        return self.state.status

    def submit(self: Order[Draft]) -> Order[PendingPayment]:
        return _advance_order(self, OrderEvent.SUBMIT)

    def pay(self: Order[PendingPayment]) -> Order[Paid]:
        return _advance_order(self, OrderEvent.PAY)

    def ship(self: Order[Paid]) -> Order[Shipped]:
        return _advance_order(self, OrderEvent.SHIP)

    def deliver(self: Order[Shipped]) -> Order[Delivered]:
        return _advance_order(self, OrderEvent.DELIVER)

    def cancel(self: Order[Draft] | Order[PendingPayment]) -> Order[Cancelled]:
        return _advance_order(self, OrderEvent.CANCEL)


@dataclass(frozen=True, slots=True)
class Product(Generic[PS]):
    """A product whose state is part of its type; transitions return a new object."""

    id: UUID
    tenant_id: UUID
    state: PS

    @property
    def status(self) -> ProductStatus:
        return self.state.status

    def publish(self: Product[ProductDraft]) -> Product[Published]:
        return _advance_product(self, ProductEvent.PUBLISH)

    def archive(self: Product[Published]) -> Product[Archived]:
        return _advance_product(self, ProductEvent.ARCHIVE)

    def restore(self: Product[Archived]) -> Product[ProductDraft]:
        return _advance_product(self, ProductEvent.RESTORE)


AnyOrder: TypeAlias = (
    Order[Draft]
    | Order[PendingPayment]
    | Order[Paid]
    | Order[Shipped]
    | Order[Delivered]
    | Order[Cancelled]
)
AnyProduct: TypeAlias = Product[ProductDraft] | Product[Published] | Product[Archived]


def new_order(id: UUID, tenant_id: UUID) -> Order[Draft]:
    """An order in the table's initial state."""
    return Order(id, tenant_id, Draft())


def new_product(id: UUID, tenant_id: UUID) -> Product[ProductDraft]:
    """A product in the table's initial state."""
    return Product(id, tenant_id, ProductDraft())


def order_from_status(id: UUID, tenant_id: UUID, status: OrderStatus) -> AnyOrder:
    """The typed order for a persisted status; narrow it with isinstance on `.state`."""
    return cast("AnyOrder", Order(id, tenant_id, _ORDER_MARKERS[status]))


def product_from_status(id: UUID, tenant_id: UUID, status: ProductStatus) -> AnyProduct:
    """The typed product for a persisted status; narrow it with isinstance on `.state`."""
    return cast("AnyProduct", Product(id, tenant_id, _PRODUCT_MARKERS[status]))


def _advance_order(order: Order[OrderState], event: OrderEvent) -> Order[Any]:
    return replace(order, state=_ORDER_MARKERS[next_status(order.state.status, event)])


def _advance_product(product: Product[ProductState], event: ProductEvent) -> Product[Any]:
    return replace(product, state=_PRODUCT_MARKERS[next_status(product.state.status, event)])
