"""Every illegal transition of the type-state layer: mypy --strict must reject each marked line.

Read by tests/unit/test_typestate.py, never run. Each rejected line carries the error code
mypy must report there (`# E: <code>`) and nothing else may be reported. A call whose
receiver is named `<machine>_<status>` and whose method is named after the event maps onto
a pair of the transition table; the test checks that this file holds every pair the table
leaves out. The last functions show that a wrong target type and a status loaded from the
database and narrowed to the wrong state are caught too.
"""

from __future__ import annotations

from uuid import UUID

from rustok_ref.commerce.states import OrderStatus
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
    order_from_status,
)


def order_calls(
    order_draft: Order[Draft],
    order_pending_payment: Order[PendingPayment],
    order_paid: Order[Paid],
    order_shipped: Order[Shipped],
    order_delivered: Order[Delivered],
    order_cancelled: Order[Cancelled],
) -> None:
    order_draft.pay()  # E: misc
    order_draft.ship()  # E: misc
    order_draft.deliver()  # E: misc
    order_pending_payment.submit()  # E: misc
    order_pending_payment.ship()  # E: misc
    order_pending_payment.deliver()  # E: misc
    order_paid.submit()  # E: misc
    order_paid.pay()  # E: misc
    order_paid.deliver()  # E: misc
    order_paid.cancel()  # E: misc
    order_shipped.submit()  # E: misc
    order_shipped.pay()  # E: misc
    order_shipped.ship()  # E: misc
    order_shipped.cancel()  # E: misc
    order_delivered.submit()  # E: misc
    order_delivered.pay()  # E: misc
    order_delivered.ship()  # E: misc
    order_delivered.deliver()  # E: misc
    order_delivered.cancel()  # E: misc
    order_cancelled.submit()  # E: misc
    order_cancelled.pay()  # E: misc
    order_cancelled.ship()  # E: misc
    order_cancelled.deliver()  # E: misc
    order_cancelled.cancel()  # E: misc


def product_calls(
    product_draft: Product[ProductDraft],
    product_published: Product[Published],
    product_archived: Product[Archived],
) -> None:
    product_draft.archive()  # E: misc
    product_draft.restore()  # E: misc
    product_published.publish()  # E: misc
    product_published.restore()  # E: misc
    product_archived.publish()  # E: misc
    product_archived.archive()  # E: misc


def paid_is_not_shipped(pending: Order[PendingPayment]) -> Order[Shipped]:
    return pending.pay()  # E: return-value


def cancelled_is_not_paid(pending: Order[PendingPayment]) -> Order[Paid]:
    return pending.cancel()  # E: return-value


def narrowed_to_the_wrong_states(order_id: UUID, tenant_id: UUID) -> None:
    loaded = order_from_status(order_id, tenant_id, OrderStatus.PAID)
    if isinstance(loaded.state, Paid):
        loaded.cancel()  # E: misc
    if isinstance(loaded.state, PendingPayment | Paid):
        loaded.cancel()  # E: misc
