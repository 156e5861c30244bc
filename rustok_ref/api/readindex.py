"""The list queries over the read index (`product_view`, `order_view`), keyset-paginated.

Lists never read the write tables (the review's A2): they page through the views the
projections keep. A page ends at `limit` rows and hands back an opaque cursor, the base64 of
the last row's sort key, so the next page starts right after it whatever was inserted
meanwhile (no OFFSET: a page costs the same at any depth). Products sort by (sku, id),
orders newest first by (placed_at, id). Each query also filters on the tenant unless the
caller passes `tenant_id=None` (the `tenant_filter` test switch): row-level security
isolates on its own then.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import ColumnElement, RowMapping, Select, select, tuple_

from rustok_ref.api.context import RequestContext
from rustok_ref.errors import ValidationError
from rustok_ref.storage.tables import order_view, product_view
from rustok_ref.storage.unit_of_work import UnitOfWork

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "RowPage", "list_orders", "list_products", "list_scope"]

MAX_LIMIT: Final = 100
DEFAULT_LIMIT: Final = 20


@dataclass(frozen=True, slots=True)
class RowPage:
    """One page of view rows and the cursor of the next page (None on the last)."""

    rows: Sequence[RowMapping]
    next_cursor: str | None


def list_scope(context: RequestContext) -> UUID | None:
    """The tenant a list filters on: the request's, or None when `tenant_filter` is off."""
    return context.tenant.id if context.services.container.settings.tenant_filter else None


def _encode(key: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _decode(cursor: str, size: int) -> list[str]:
    """The sort key a cursor carries; ValidationError for anything this module did not make."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = None
    if not (isinstance(key, list) and len(key) == size and all(isinstance(k, str) for k in key)):
        raise ValidationError("malformed cursor", fields={"cursor": ["not a cursor of this list"]})
    return key


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(
            f"limit must be 1..{MAX_LIMIT}", fields={"limit": [f"must be 1 to {MAX_LIMIT}"]}
        )
    return limit


async def _page(
    uow: UnitOfWork, query: Select[Any], limit: int, key_of: Callable[[RowMapping], list[str]]
) -> RowPage:
    rows = (await uow.session.execute(query.limit(limit + 1))).mappings().all()
    if len(rows) <= limit:
        return RowPage(rows, None)
    return RowPage(rows[:limit], _encode(key_of(rows[limit - 1])))


def _after_product(cursor: str) -> ColumnElement[bool]:
    sku, product_id = _decode(cursor, 2)
    try:
        last = UUID(product_id)
    except ValueError:
        raise ValidationError("malformed cursor", fields={"cursor": ["bad id"]}) from None
    return tuple_(product_view.c.sku, product_view.c.product_id) > tuple_(sku, last)


def _before_order(cursor: str) -> ColumnElement[bool]:
    placed_at, order_id = _decode(cursor, 2)
    try:
        last = (datetime.fromisoformat(placed_at), UUID(order_id))
    except ValueError:
        raise ValidationError("malformed cursor", fields={"cursor": ["bad key"]}) from None
    return tuple_(order_view.c.placed_at, order_view.c.order_id) < tuple_(*last)


async def list_products(
    uow: UnitOfWork,
    *,
    tenant_id: UUID | None,
    status: str | None = None,
    sku_prefix: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> RowPage:
    """Products by SKU, optionally of one status and SKUs starting with `sku_prefix`."""
    query = select(product_view).order_by(product_view.c.sku, product_view.c.product_id)
    if tenant_id is not None:
        query = query.where(product_view.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(product_view.c.status == status)
    if sku_prefix:
        query = query.where(product_view.c.sku.startswith(sku_prefix, autoescape=True))
    if cursor is not None:
        query = query.where(_after_product(cursor))
    return await _page(
        uow, query, _check_limit(limit), lambda row: [row["sku"], str(row["product_id"])]
    )


async def list_orders(
    uow: UnitOfWork,
    *,
    tenant_id: UUID | None,
    status: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> RowPage:
    """Orders newest first, optionally of one status."""
    query = select(order_view).order_by(order_view.c.placed_at.desc(), order_view.c.order_id.desc())
    if tenant_id is not None:
        query = query.where(order_view.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(order_view.c.status == status)
    if cursor is not None:
        query = query.where(_before_order(cursor))
    return await _page(
        uow,
        query,
        _check_limit(limit),
        lambda row: [row["placed_at"].isoformat(), str(row["order_id"])],
    )
