"""A running shop for the claims that need the whole product: its services, tenants seeded
through them (published products, submitted orders, one paid order each, so payments,
sagas and reservations have rows too), and the background workers run until the read index
has caught up.

Everything goes through the product's own code (`run_seed`, `CheckoutService.pay`,
`run_workers`), so what the isolation and CQRS measurements read is what real traffic
leaves behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from rustok_ref.bootstrap import Services, run_workers, services, wire
from rustok_ref.commerce.checkout import CheckoutOutcome
from rustok_ref.config import Settings
from rustok_ref.lab.seed import SeededTenant, SeedPlan, run_seed

POLL_S = 0.1


def shop_settings(database_url: str, redis_url: str, redis_prefix: str) -> Settings:
    """The settings of a notebook's shop: its run's database and Redis prefix."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        backend="external",
    )


@contextlib.asynccontextmanager
async def open_shop(settings: Settings) -> AsyncIterator[Services]:
    """The wired services (the composition root the server uses), closed on exit."""
    async with wire(settings) as container, services(container) as built:
        yield built


async def seed_paid(
    built: Services, *, tenants: int, products: int, orders: int, seed: int
) -> tuple[list[SeededTenant], list[CheckoutOutcome]]:
    """`tenants` seeded shops (fresh slugs), then each one's first order paid through the
    checkout saga; `orders` must give every tenant at least one order."""
    plan = SeedPlan(
        tenants=tenants,
        products=products,
        orders=orders,
        seed=seed,
        prefix=f"lab{uuid.uuid4().hex[:8]}",
        exponent=0.0,
    )
    shops = await run_seed(built, plan)
    if any(not shop.order_ids for shop in shops):
        raise ValueError(f"{orders} orders do not give each of {tenants} tenants one to pay")
    paid = [await built.checkout.pay(shop.tenant_id, shop.order_ids[0]) for shop in shops]
    return shops, paid


async def drain_until(
    built: Services, done: Callable[[], Awaitable[float]], *, bound_s: float
) -> list[tuple[float, float]]:
    """Run the relay and the read views until `done()` reaches 100 (a percentage) or
    `bound_s` passes (a liveness bound, not a measurement); `(seconds, done())` samples."""
    stop = asyncio.Event()
    workers = asyncio.create_task(run_workers(built.container, stop))
    started = time.perf_counter()
    samples: list[tuple[float, float]] = []
    try:
        while True:
            share = await done()
            samples.append((time.perf_counter() - started, share))
            if share >= 100 or samples[-1][0] > bound_s or workers.done():
                break
            await asyncio.sleep(POLL_S)
    finally:
        stop.set()
        await workers
    return samples
