"""Scale curves: the cost of one operation as one dimension grows over decades, so a reader of
the performance report sees what stays flat and what grows (issue 10).

Each curve times the real component (TenantCache, ResilientRedisCache on a real Redis,
Dispatcher) at each size for a few rounds and keeps min/median/max seconds per operation.
The sizes are the caller's: the benchmarks pass decades up to 100,000, their smoke run (and
the unit tests) tiny ones.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial

import redis.asyncio as aioredis
from moka_py import Moka

from rustok_ref.events.dispatcher import Dispatcher, SubscriberOptions
from rustok_ref.lab.benchrecord import ScaleCurve, ScalePoint, Stats
from rustok_ref.lab.stopwatch import Stopwatch
from rustok_ref.resilience import ResilientRedisCache
from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.model import IdentifierKind, Tenant, TenantIdentifier

SEED = 20_261_126
SAMPLE_KEYS = 1_000
"""Keys looked up per round, drawn from the whole population, so a large cache is probed
all over (not one hot key) while the lookup loop stays the same size at every point."""


def make_tenants(count: int) -> dict[TenantIdentifier, Tenant]:
    """`count` distinct tenants keyed by slug, as the resolver keys them."""
    tenants = (
        Tenant(id=uuid.UUID(int=n + 1), slug=f"t-{n:06d}", name=f"Tenant {n}") for n in range(count)
    )
    return {TenantIdentifier(IdentifierKind.SLUG, t.slug): t for t in tenants}


def _chunks(names: list[str], size: int = 10_000) -> Iterator[list[str]]:
    return (names[n : n + size] for n in range(0, len(names), size))


def _sample(keys: Sequence[TenantIdentifier]) -> list[TenantIdentifier]:
    return random.Random(SEED).choices(keys, k=SAMPLE_KEYS)


def _point(x: float, watch: Stopwatch) -> ScalePoint:
    return ScalePoint(x=x, seconds_per_op=Stats.of(watch.samples()), clock=watch.clock)


def _time_sync(
    lookup: Callable[[TenantIdentifier], object], keys: list[TenantIdentifier], watch: Stopwatch
) -> None:
    watch.start()
    for key in keys:
        lookup(key)
    watch.stop(len(keys))


def tenant_cache_hits(sizes: Sequence[int], *, rounds: int) -> list[ScaleCurve]:
    """A TenantCache hit and a raw moka-py get, holding `size` tenants, per size."""
    ours, raw = [], []
    for size in sizes:
        tenants = make_tenants(size)
        cache = TenantCache(sync_loader=tenants.get, capacity=size)
        bare: Moka[TenantIdentifier, Tenant] = Moka(size)
        for key, tenant in tenants.items():
            cache.get_or_load_sync(key)
            bare.set(key, tenant)
        keys = _sample(list(tenants))
        watches = Stopwatch(), Stopwatch()
        for _ in range(rounds):
            _time_sync(cache.get_or_load_sync, keys, watches[0])
            _time_sync(bare.get, keys, watches[1])
        stats = cache.stats()
        if stats.load_success_count != size or stats.eviction_count:
            raise RuntimeError(f"the cache did not hold all {size} tenants: {stats}")
        ours.append(_point(size, watches[0]))
        raw.append(_point(size, watches[1]))
    return [
        ScaleCurve(
            name="TenantCache hit",
            x_label="tenants",
            operation="get_or_load_sync hit",
            points=tuple(ours),
        ),
        ScaleCurve(
            name="raw moka-py get", x_label="tenants", operation="Moka.get", points=tuple(raw)
        ),
    ]


async def _rounds_async(x: float, run: Callable[[], Awaitable[int]], rounds: int) -> ScalePoint:
    """The point at `x`: seconds per operation of `run` (which returns how many it made)."""
    watch = Stopwatch()
    for _ in range(rounds):
        watch.start()
        watch.stop(await run())
    return _point(x, watch)


async def resilient_cache_keys(
    redis: aioredis.Redis, prefix: str, sizes: Sequence[int], *, rounds: int
) -> ScaleCurve:
    """`ResilientRedisCache.get` remote hits as the keys it holds grow (Redis and the local
    copy both hold `size` keys). The keys are written in pipelines and deleted after."""
    points = []
    for size in sizes:
        namespace = f"{prefix}scale-{uuid.uuid4().hex[:8]}:"
        cache = ResilientRedisCache(redis, namespace, capacity=size)
        names = [f"k{n}" for n in range(size)]
        for chunk in _chunks(names):
            async with redis.pipeline(transaction=False) as pipe:
                for name in chunk:
                    pipe.set(namespace + name, b"x" * 200, ex=600)
                await pipe.execute()
        keys = random.Random(SEED).choices(names, k=min(SAMPLE_KEYS, 200))

        async def run(cache: ResilientRedisCache = cache, keys: list[str] = keys) -> int:
            for key in keys:
                if await cache.get(key) is None:
                    raise RuntimeError(f"{key} missed")
            return len(keys)

        try:
            points.append(await _rounds_async(size, run, rounds))
        finally:
            for chunk in _chunks(names):
                await redis.unlink(*(namespace + name for name in chunk))
    return ScaleCurve(
        name="ResilientRedisCache get",
        x_label="cached keys",
        operation="get, remote hit",
        points=tuple(points),
    )


async def concurrent_callers(callers: Sequence[int], *, keys: int, rounds: int) -> ScaleCurve:
    """`callers` concurrent first lookups of `keys` tenants on a cold TenantCache: one load
    per key, whatever the crowd (the loader yields once, as a database call would)."""
    tenants = make_tenants(keys)
    identifiers = list(tenants)

    async def load(identifier: TenantIdentifier) -> Tenant | None:
        await asyncio.sleep(0)
        return tenants.get(identifier)

    points = []
    for crowd in callers:

        async def run(crowd: int = crowd) -> int:
            cache = TenantCache(load, capacity=keys)
            lookups = (cache.get_or_load(identifiers[n % keys]) for n in range(crowd))
            await asyncio.gather(*lookups)
            if cache.stats().load_success_count != min(crowd, keys):
                raise RuntimeError(f"{crowd} callers did not coalesce: {cache.stats()}")
            return crowd

        points.append(await _rounds_async(crowd, run, rounds))
    return ScaleCurve(
        name="TenantCache cold lookup",
        x_label="concurrent callers",
        operation="get_or_load, coalesced miss",
        points=tuple(points),
    )


async def _no_op(_: object) -> None:
    return None


async def _through(dispatcher: Dispatcher[int], items: int) -> int:
    """Submit `items` and wait until the handler settled the last one."""
    done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    last = items - 1
    for n in range(items):
        await dispatcher.submit("tick", n, done.set_result if n == last else None)
    await done
    return items


async def queue_capacity(capacities: Sequence[int], *, items: int, rounds: int) -> ScaleCurve:
    """Items through a Dispatcher (one producer, a no-op handler) per mailbox capacity."""
    points = []
    for capacity in capacities:
        dispatcher: Dispatcher[int] = Dispatcher()
        dispatcher.subscribe("sink", _no_op, options=SubscriberOptions(capacity=capacity))
        async with dispatcher:
            points.append(
                await _rounds_async(capacity, partial(_through, dispatcher, items), rounds)
            )
    return ScaleCurve(
        name="Dispatcher submit",
        x_label="queue capacity",
        operation="item submitted and handled",
        points=tuple(points),
    )


TICK_S = 0.005
"""The producer's pace: every tick it submits the events the offered rate owes."""


async def _paced(dispatcher: Dispatcher[int], rate: float, duration_s: float) -> tuple[int, float]:
    """Offer `rate` events/s for `duration_s`; (events, CPU seconds this thread spent)."""
    loop = asyncio.get_running_loop()
    cpu, start = time.thread_time(), loop.time()
    sent = 0
    while (elapsed := loop.time() - start) < duration_s:
        for _ in range(int(rate * elapsed) - sent):
            await dispatcher.submit("tick", sent)
            sent += 1
        await asyncio.sleep(TICK_S)
    await _through(dispatcher, 1)
    return sent + 1, time.thread_time() - cpu


async def event_rate(rates: Sequence[float], *, duration_s: float, rounds: int) -> ScaleCurve:
    """CPU seconds per event through a Dispatcher as the offered event rate grows: at a low
    rate each event pays for the loop's wake-ups, at a high one they are shared."""
    points = []
    for rate in rates:
        samples = []
        dispatcher: Dispatcher[int] = Dispatcher()
        dispatcher.subscribe("sink", _no_op, options=SubscriberOptions(capacity=10_000))
        async with dispatcher:
            for _ in range(rounds):
                events, cpu = await _paced(dispatcher, rate, duration_s)
                samples.append(cpu / events)
        points.append(ScalePoint(x=rate, seconds_per_op=Stats.of(samples), clock="thread_cpu"))
    return ScaleCurve(
        name="Dispatcher CPU per event",
        x_label="offered events/s",
        operation="CPU seconds per event",
        points=tuple(points),
    )
