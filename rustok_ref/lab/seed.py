"""Seed a database for load runs: tenants whose sizes follow a Zipf law (a few big shops,
a long tail of small ones, as real multi-tenant traffic is skewed), each with commerce on,
published stocked products, optionally placed orders, and an API key per role.

Everything goes through the product's own services and commerce functions (no SQL), so the
outbox, the read views and the tenant caches see a seed exactly as they see real traffic.
The result is what a load scenario needs: per tenant its slug, its share of traffic
(`weight`), its keys and its product ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final
from uuid import UUID

import numpy as np

from rustok_ref.api.auth import ApiKeys, Role
from rustok_ref.bootstrap import Services
from rustok_ref.commerce import (
    Money,
    OrderLineRequest,
    ProductEvent,
    create_order,
    create_product,
    submit_order,
    transition_product,
)
from rustok_ref.features.model import Feature
from rustok_ref.storage import UnitOfWork
from rustok_ref.tenancy.identifiers import validate_slug
from rustok_ref.tenancy.model import IdentifierKind, TenantIdentifier
from rustok_ref.tenancy.repository import load_tenant

__all__ = ["SeedError", "SeedPlan", "SeededTenant", "run_seed", "zipf_sizes"]

BATCH: Final = 100
"""Products (or orders) written per transaction: one commit per batch, not per row."""
CURRENCY: Final = "EUR"
MAX_LINES: Final = 3


class SeedError(Exception):
    """The seed cannot run as asked (bad sizes, a slug already taken)."""


@dataclass(frozen=True)
class SeedPlan:
    tenants: int
    products: int
    orders: int = 0
    seed: int = 0
    prefix: str = "seed"
    exponent: float = 1.1

    def slugs(self) -> list[str]:
        """Deterministic slugs: the prefix and the seed say which run made them."""
        return [validate_slug(f"{self.prefix}-{self.seed}-{i}") for i in range(1, self.tenants + 1)]


@dataclass
class SeededTenant:
    tenant_id: UUID
    slug: str
    weight: float
    keys: dict[str, str] = field(default_factory=dict)
    product_ids: list[UUID] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)
    order_ids: list[UUID] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))  # type: ignore[no-any-return]


def zipf_sizes(count: int, total: int, exponent: float, *, minimum: int = 1) -> list[int]:
    """`total` split over `count` parts proportional to 1/i^exponent, every part at least
    `minimum`, exact sum, non-increasing (the largest remainders get the leftover units, ties
    to the earlier part, so a later part never overtakes an earlier one)."""
    if count < 1:
        raise SeedError("--tenants must be at least 1")
    spare = total - minimum * count
    if spare < 0:
        raise SeedError(f"{total} cannot give each of {count} tenants {minimum}")
    exact = zipf_weights(count, exponent) * spare
    sizes = np.floor(exact).astype(np.int64)
    leftover = int(spare - sizes.sum())
    by_remainder = np.argsort(-(exact - sizes), kind="stable")
    sizes[by_remainder[:leftover]] += 1
    return [int(size) + minimum for size in sizes]


def zipf_weights(count: int, exponent: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Each rank's share of the whole: 1/i^exponent, normalised to sum to 1."""
    raw = 1.0 / np.arange(1, count + 1, dtype=np.float64) ** exponent
    return raw / raw.sum()  # type: ignore[no-any-return]


async def run_seed(
    built: Services, plan: SeedPlan, *, advance: Callable[[int], None] = lambda _: None
) -> list[SeededTenant]:
    """Create what `plan` asks for; `advance(n)` is told of every n products or orders
    written (a progress bar). SeedError, before anything is written, if a slug is taken."""
    if plan.orders < 0:
        raise SeedError("--orders must not be negative")
    if plan.products < plan.tenants:
        raise SeedError(f"--products ({plan.products}) must be at least --tenants ({plan.tenants})")
    sizes = zipf_sizes(plan.tenants, plan.products, plan.exponent)
    weights = zipf_weights(plan.tenants, plan.exponent)
    order_counts = zipf_sizes(plan.tenants, plan.orders, plan.exponent, minimum=0)
    slugs = plan.slugs()
    await _refuse_taken(built, slugs)
    rng = np.random.default_rng(plan.seed)
    api_keys = ApiKeys(built.container.sessions)
    seeded: list[SeededTenant] = []
    for rank, slug in enumerate(slugs):
        tenant = await built.tenants.create(slug, f"Seeded shop {rank + 1}")
        await built.flag_store.set(tenant.id, Feature.COMMERCE, enabled=True)
        keys = {
            role.value: (await api_keys.create(tenant.id, role, label="seed")).token
            for role in Role
        }
        shop = SeededTenant(tenant.id, slug, round(float(weights[rank]), 6), keys)
        await _stock(built, shop, sizes[rank], rng, advance)
        await _place_orders(built, shop, order_counts[rank], rng, advance)
        seeded.append(shop)
    return seeded


async def _refuse_taken(built: Services, slugs: Sequence[str]) -> None:
    sessions = built.container.sessions
    for slug in slugs:
        if await load_tenant(sessions, TenantIdentifier(IdentifierKind.SLUG, slug)) is not None:
            raise SeedError(f"tenant slug {slug!r} already exists; pass another --seed or --prefix")


async def _stock(
    built: Services,
    shop: SeededTenant,
    count: int,
    rng: np.random.Generator,
    advance: Callable[[int], None],
) -> None:
    prices = rng.integers(199, 20_000, size=count)
    stocks = rng.integers(1_000, 10_000, size=count)
    for start in range(0, count, BATCH):
        stop = min(start + BATCH, count)
        async with UnitOfWork(built.container.sessions, tenant_id=shop.tenant_id) as uow:
            for number in range(start, stop):
                sku = f"sku-{number + 1:06d}"
                product = await create_product(
                    uow,
                    sku=sku,
                    title=f"Product {number + 1} of {shop.slug}",
                    price=Money(int(prices[number]), CURRENCY),
                    stock=int(stocks[number]),
                )
                await transition_product(uow, product.id, ProductEvent.PUBLISH)
                shop.product_ids.append(product.id)
                shop.skus.append(sku)
            await uow.commit()
        advance(stop - start)


async def _place_orders(
    built: Services,
    shop: SeededTenant,
    count: int,
    rng: np.random.Generator,
    advance: Callable[[int], None],
) -> None:
    """Submitted orders (pending payment) of 1 to MAX_LINES distinct products each."""
    for start in range(0, count, BATCH):
        stop = min(start + BATCH, count)
        async with UnitOfWork(built.container.sessions, tenant_id=shop.tenant_id) as uow:
            for _ in range(start, stop):
                width = int(rng.integers(1, min(MAX_LINES, len(shop.skus)) + 1))
                chosen = rng.choice(len(shop.skus), size=width, replace=False)
                lines = [
                    OrderLineRequest(shop.skus[int(i)], int(rng.integers(1, 4))) for i in chosen
                ]
                order = await create_order(uow, currency=CURRENCY, lines=lines)
                await submit_order(uow, order.id)
                shop.order_ids.append(order.id)
            await uow.commit()
        advance(stop - start)
