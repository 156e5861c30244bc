"""Memory per cached tenant: the resident set a fresh process grows by when it holds N
tenants in a TenantCache, against a plain dict holding the same objects (issue 10).

RSS, not tracemalloc: moka keeps its entries in Rust allocations tracemalloc cannot see.
Each measurement runs in a fresh interpreter (`python -m rustok_ref.lab.memory CONTAINER N`),
so no earlier allocation is reused and hides the cost; the child prints one `MemoryPoint`.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Callable

import psutil

from rustok_ref.lab.benchrecord import Container, MemoryPoint
from rustok_ref.lab.scale import make_tenants
from rustok_ref.tenancy.cache import TenantCache
from rustok_ref.tenancy.model import Tenant, TenantIdentifier

CONTAINERS: tuple[Container, ...] = ("TenantCache", "dict")


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _fill_cache(tenants: dict[TenantIdentifier, Tenant]) -> object:
    cache = TenantCache(sync_loader=tenants.get, capacity=len(tenants))
    for key in tenants:
        cache.get_or_load_sync(key)
    if cache.stats().load_success_count != len(tenants):
        raise RuntimeError("the cache did not load every tenant")
    return cache


def _fill_dict(tenants: dict[TenantIdentifier, Tenant]) -> object:
    return {key: tenant for key, tenant in tenants.items()}


_FILL: dict[Container, Callable[[dict[TenantIdentifier, Tenant]], object]] = {
    "TenantCache": _fill_cache,
    "dict": _fill_dict,
}


def measure_here(container: Container, tenants: int) -> MemoryPoint:
    """Build `tenants` tenants, then put them in `container`, reading RSS before, between
    and after; meaningful only in a fresh process (`measure`). The tenants are also held by
    the dict they were built in, which both containers share, so the difference between the
    containers is each one's own cost."""
    start = _rss()
    built = make_tenants(tenants)
    after_build = _rss()
    held = _FILL[container](built)
    after_insert = _rss()
    del held
    return MemoryPoint(
        container=container,
        tenants=tenants,
        rss_start=start,
        rss_built=after_build,
        rss_inserted=after_insert,
    )


def measure(container: Container, tenants: int, *, timeout_s: float = 300.0) -> MemoryPoint:
    """`measure_here` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", __name__, container, str(tenants)],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout_s,
    )
    return MemoryPoint.model_validate_json(done.stdout)


if __name__ == "__main__":
    name, count = sys.argv[1], int(sys.argv[2])
    if name not in CONTAINERS:
        raise SystemExit(f"container must be one of {', '.join(CONTAINERS)}, got {name!r}")
    print(measure_here(name, count).model_dump_json())
