"""The GraphQL schema: queries over the read index, mutations through the domain services,
and an order's status changes as a subscription (the review's A2: queries never write,
mutations never read the index).

Every commerce field needs the tenant's COMMERCE feature and a role permission (`guarded`);
each resolver names what it works on (`tenant_id`, `order_id`, `sku`) on the current span.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import strawberry
from opentelemetry import trace
from strawberry.schema.config import StrawberryConfig

from rustok_ref.api.auth import Permission
from rustok_ref.api.context import RequestContext
from rustok_ref.api.graphql.context import GraphQLInfo
from rustok_ref.api.graphql.errors import RustokSchema
from rustok_ref.api.graphql.feed import order_status_changes
from rustok_ref.api.graphql.limits import RequestLimits
from rustok_ref.api.graphql.lookups import indexed_order, indexed_product
from rustok_ref.api.graphql.permissions import guarded
from rustok_ref.api.graphql.types import (
    SCALARS,
    Checkout,
    Order,
    OrderCreateInput,
    OrderPage,
    OrderStatusChange,
    OrderSummary,
    Product,
    ProductCreateInput,
    ProductPage,
    Tenant,
)
from rustok_ref.api.readindex import DEFAULT_LIMIT, list_orders, list_products, list_scope
from rustok_ref.commerce.orders import (
    OrderLineRequest,
    cancel_order,
    create_order,
    submit_order,
)
from rustok_ref.commerce.products import create_product, transition_product
from rustok_ref.commerce.states import OrderStatus, ProductEvent, ProductStatus

__all__ = ["Mutation", "Query", "Subscription", "schema"]


def _caller(info: GraphQLInfo, **attributes: UUID | str) -> RequestContext:
    """The resolved caller; names the tenant and `attributes` on the current span."""
    caller = info.context.rustok
    span = trace.get_current_span()
    span.set_attribute("tenant_id", str(caller.tenant.id))
    for name, value in attributes.items():
        span.set_attribute(name, str(value))
    return caller


async def resolve_products(
    info: GraphQLInfo,
    first: int = DEFAULT_LIMIT,
    after: str | None = None,
    status: ProductStatus | None = None,
) -> ProductPage:
    caller = _caller(info)
    async with caller.uow() as uow:
        page = await list_products(
            uow, tenant_id=list_scope(caller), status=status, limit=first, cursor=after
        )
    return ProductPage(
        items=[Product.of_view(row) for row in page.rows], next_cursor=page.next_cursor
    )


async def resolve_product(info: GraphQLInfo, id: UUID) -> Product | None:
    row = await indexed_product(_caller(info, product_id=id), id)
    if row is None:
        return None
    trace.get_current_span().set_attribute("sku", row["sku"])
    return Product.of_view(row)


async def resolve_orders(
    info: GraphQLInfo,
    first: int = DEFAULT_LIMIT,
    after: str | None = None,
    status: OrderStatus | None = None,
) -> OrderPage:
    caller = _caller(info)
    async with caller.uow() as uow:
        page = await list_orders(
            uow, tenant_id=list_scope(caller), status=status, limit=first, cursor=after
        )
    return OrderPage(
        items=[OrderSummary.of_view(row) for row in page.rows], next_cursor=page.next_cursor
    )


async def resolve_order(info: GraphQLInfo, id: UUID) -> OrderSummary | None:
    row = await indexed_order(_caller(info, order_id=id), id)
    return None if row is None else OrderSummary.of_view(row)


def resolve_tenant(info: GraphQLInfo) -> Tenant:
    return Tenant.of(_caller(info).tenant)


@strawberry.type
class Query:
    products: ProductPage = strawberry.field(
        resolver=resolve_products, extensions=[guarded(Permission.PRODUCTS_READ)]
    )
    product: Product | None = strawberry.field(
        resolver=resolve_product, extensions=[guarded(Permission.PRODUCTS_READ)]
    )
    orders: OrderPage = strawberry.field(
        resolver=resolve_orders, extensions=[guarded(Permission.ORDERS_READ)]
    )
    order: OrderSummary | None = strawberry.field(
        resolver=resolve_order, extensions=[guarded(Permission.ORDERS_READ)]
    )
    tenant: Tenant = strawberry.field(
        resolver=resolve_tenant, extensions=[guarded(Permission.TENANT_READ, feature=None)]
    )


async def resolve_create_product(info: GraphQLInfo, input: ProductCreateInput) -> Product:
    caller = _caller(info, sku=input.sku)
    async with caller.uow() as uow:
        created = await create_product(
            uow,
            sku=input.sku,
            title=input.title,
            price=input.price.to_domain(),
            stock=input.stock,
        )
        await uow.commit()
    trace.get_current_span().set_attribute("product_id", str(created.id))
    return Product.of(created)


async def resolve_publish_product(
    info: GraphQLInfo, id: UUID, expected_version: int | None = None
) -> Product:
    caller = _caller(info, product_id=id)
    async with caller.uow() as uow:
        published = await transition_product(
            uow, id, ProductEvent.PUBLISH, expected_version=expected_version
        )
        await uow.commit()
    await caller.services.product_cache.changed(caller.tenant.id, id)
    trace.get_current_span().set_attribute("sku", published.sku)
    return Product.of(published)


async def resolve_create_order(info: GraphQLInfo, input: OrderCreateInput) -> Order:
    caller = _caller(info, sku=",".join(line.sku for line in input.lines))
    async with caller.uow() as uow:
        created = await create_order(
            uow,
            currency=input.currency,
            lines=[OrderLineRequest(line.sku, line.quantity) for line in input.lines],
            customer_id=input.customer_id,
        )
        await uow.commit()
    trace.get_current_span().set_attribute("order_id", str(created.id))
    return Order.of(created)


async def resolve_submit_order(
    info: GraphQLInfo, id: UUID, expected_version: int | None = None
) -> Order:
    caller = _caller(info, order_id=id)
    async with caller.uow() as uow:
        submitted = await submit_order(uow, id, expected_version=expected_version)
        await uow.commit()
    return Order.of(submitted)


async def resolve_pay_order(
    info: GraphQLInfo, id: UUID, expected_version: int | None = None
) -> Checkout:
    caller = _caller(info, order_id=id)
    outcome = await caller.services.checkout.pay(
        caller.tenant.id, id, expected_version=expected_version
    )
    return Checkout.of(outcome)


async def resolve_cancel_order(
    info: GraphQLInfo, id: UUID, reason: str | None = None, expected_version: int | None = None
) -> Order:
    caller = _caller(info, order_id=id)
    async with caller.uow() as uow:
        cancelled = await cancel_order(uow, id, reason=reason, expected_version=expected_version)
        await uow.commit()
    return Order.of(cancelled)


@strawberry.type
class Mutation:
    create_product: Product = strawberry.mutation(
        resolver=resolve_create_product, extensions=[guarded(Permission.PRODUCTS_WRITE)]
    )
    publish_product: Product = strawberry.mutation(
        resolver=resolve_publish_product, extensions=[guarded(Permission.PRODUCTS_WRITE)]
    )
    create_order: Order = strawberry.mutation(
        resolver=resolve_create_order, extensions=[guarded(Permission.ORDERS_PLACE)]
    )
    submit_order: Order = strawberry.mutation(
        resolver=resolve_submit_order, extensions=[guarded(Permission.ORDERS_PLACE)]
    )
    pay_order: Checkout = strawberry.mutation(
        resolver=resolve_pay_order, extensions=[guarded(Permission.ORDERS_PLACE)]
    )
    cancel_order: Order = strawberry.mutation(
        resolver=resolve_cancel_order, extensions=[guarded(Permission.ORDERS_PLACE)]
    )


async def resolve_order_status_changed(
    info: GraphQLInfo, order_id: UUID
) -> AsyncIterator[OrderStatusChange]:
    async for change in order_status_changes(_caller(info, order_id=order_id), order_id):
        yield change


@strawberry.type
class Subscription:
    order_status_changed: AsyncIterator[OrderStatusChange] = strawberry.subscription(
        resolver=resolve_order_status_changed, extensions=[guarded(Permission.ORDERS_READ)]
    )


schema = RustokSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[RequestLimits],
    config=StrawberryConfig(scalar_map=SCALARS, disable_field_suggestions=True),
)
