"""REST: products. Reads of one product and every write go through the domain
(`commerce/products.py`), the read through the product cache, which every write invalidates
after its commit (`commerce/product_cache.py`); the list pages through the read index
(`readindex.py`)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from opentelemetry import trace

from rustok_ref.api.auth import Permission
from rustok_ref.api.context import RequestContext, require
from rustok_ref.api.readindex import DEFAULT_LIMIT, MAX_LIMIT, list_products, list_scope
from rustok_ref.api.schemas import (
    PROBLEM_RESPONSES,
    Page,
    Product,
    ProductCreate,
    ProductPatch,
    ProductSummary,
)
from rustok_ref.commerce import products
from rustok_ref.commerce.products import ProductRecord
from rustok_ref.commerce.states import ProductEvent, ProductStatus

router = APIRouter(tags=["products"], responses=PROBLEM_RESPONSES)

Reader = Annotated[RequestContext, Depends(require(Permission.PRODUCTS_READ))]
Writer = Annotated[RequestContext, Depends(require(Permission.PRODUCTS_WRITE))]


def _traced(product: ProductRecord) -> Product:
    span = trace.get_current_span()
    span.set_attribute("product_id", str(product.id))
    span.set_attribute("sku", product.sku)
    return Product.of(product)


@router.get("/products", response_model=Page[ProductSummary], summary="List products (read index).")
async def get_products(
    context: Reader,
    status: ProductStatus | None = None,
    sku: Annotated[str | None, Query(description="A SKU prefix.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[ProductSummary]:
    async with context.uow() as uow:
        page = await list_products(
            uow,
            tenant_id=list_scope(context),
            status=status,
            sku_prefix=sku,
            limit=limit,
            cursor=cursor,
        )
    return Page(
        items=[ProductSummary.of_view(row) for row in page.rows], next_cursor=page.next_cursor
    )


@router.post(
    "/products",
    response_model=Product,
    status_code=201,
    summary="Create a draft product (staff).",
)
async def create_product(body: ProductCreate, context: Writer) -> Product:
    trace.get_current_span().set_attribute("sku", body.sku)
    async with context.uow() as uow:
        created = await products.create_product(
            uow, sku=body.sku, title=body.title, price=body.price.to_domain(), stock=body.stock
        )
        await uow.commit()
    return _traced(created)


@router.get("/products/{product_id}", response_model=Product, summary="One product.")
async def get_product(product_id: UUID, context: Reader) -> Product:
    trace.get_current_span().set_attribute("product_id", str(product_id))

    async def load() -> ProductRecord:
        async with context.uow() as uow:
            return await products.get_product(uow, product_id)

    found = await context.services.product_cache.get(context.tenant.id, product_id, load)
    return _traced(found)


@router.patch(
    "/products/{product_id}", response_model=Product, summary="Change title, price or stock."
)
async def update_product(product_id: UUID, body: ProductPatch, context: Writer) -> Product:
    trace.get_current_span().set_attribute("product_id", str(product_id))
    async with context.uow() as uow:
        changed = await products.update_product(
            uow,
            product_id,
            title=body.title,
            price=None if body.price is None else body.price.to_domain(),
            stock=body.stock,
            expected_version=body.expected_version,
        )
        await uow.commit()
    await context.services.product_cache.changed(context.tenant.id, product_id)
    return _traced(changed)


async def _transition(context: RequestContext, product_id: UUID, event: ProductEvent) -> Product:
    trace.get_current_span().set_attribute("product_id", str(product_id))
    async with context.uow() as uow:
        moved = await products.transition_product(uow, product_id, event)
        await uow.commit()
    await context.services.product_cache.changed(context.tenant.id, product_id)
    return _traced(moved)


@router.post(
    "/products/{product_id}/publish", response_model=Product, summary="Draft -> published."
)
async def publish_product(product_id: UUID, context: Writer) -> Product:
    return await _transition(context, product_id, ProductEvent.PUBLISH)


@router.post(
    "/products/{product_id}/archive", response_model=Product, summary="Published -> archived."
)
async def archive_product(product_id: UUID, context: Writer) -> Product:
    return await _transition(context, product_id, ProductEvent.ARCHIVE)


@router.post("/products/{product_id}/restore", response_model=Product, summary="Archived -> draft.")
async def restore_product(product_id: UUID, context: Writer) -> Product:
    return await _transition(context, product_id, ProductEvent.RESTORE)
