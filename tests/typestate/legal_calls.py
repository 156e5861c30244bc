"""Every legal transition of the type-state layer: mypy --strict must accept each line.

Read by tests/unit/test_typestate.py, never run. A call's receiver is named
`<machine>_<status>` and its method after the event, so the test maps each call onto the
transition table and checks that this file holds every legal pair; the return types check
each target state.
"""

from __future__ import annotations

from uuid import UUID

from rustok_ref.commerce.states import OrderStatus, ProductStatus
from rustok_ref.commerce.typestate import (
    Archived,
    Cancelled,
    Delivered,
    Draft,
    Order,
    Paid,
    PendingPayment,
    Product,
    ProductDraft,
    Published,
    Shipped,
    new_order,
    new_product,
    order_from_status,
    product_from_status,
)


def submit(order_draft: Order[Draft]) -> Order[PendingPayment]:
    return order_draft.submit()


def cancel_a_draft(order_draft: Order[Draft]) -> Order[Cancelled]:
    return order_draft.cancel()


def pay(order_pending_payment: Order[PendingPayment]) -> Order[Paid]:
    return order_pending_payment.pay()


def cancel_before_payment(order_pending_payment: Order[PendingPayment]) -> Order[Cancelled]:
    return order_pending_payment.cancel()


def ship(order_paid: Order[Paid]) -> Order[Shipped]:
    return order_paid.ship()


def deliver(order_shipped: Order[Shipped]) -> Order[Delivered]:
    return order_shipped.deliver()


def publish(product_draft: Product[ProductDraft]) -> Product[Published]:
    return product_draft.publish()


def archive(product_published: Product[Published]) -> Product[Archived]:
    return product_published.archive()


def restore(product_archived: Product[Archived]) -> Product[ProductDraft]:
    return product_archived.restore()


def order_lifecycle(order_id: UUID, tenant_id: UUID) -> Order[Delivered]:
    return new_order(order_id, tenant_id).submit().pay().ship().deliver()


def product_lifecycle(product_id: UUID, tenant_id: UUID) -> Product[ProductDraft]:
    return new_product(product_id, tenant_id).publish().archive().restore()


def pay_a_loaded_order(order_id: UUID, tenant_id: UUID, status: OrderStatus) -> Order[Paid] | None:
    order = order_from_status(order_id, tenant_id, status)
    if isinstance(order.state, PendingPayment):
        return order.pay()
    return None


def cancel_a_loaded_order(
    order_id: UUID, tenant_id: UUID, status: OrderStatus
) -> Order[Cancelled] | None:
    order = order_from_status(order_id, tenant_id, status)
    if isinstance(order.state, Draft | PendingPayment):
        return order.cancel()
    return None


def archive_a_loaded_product(
    product_id: UUID, tenant_id: UUID, status: ProductStatus
) -> Product[Archived] | None:
    product = product_from_status(product_id, tenant_id, status)
    if isinstance(product.state, Published):
        return product.archive()
    return None
