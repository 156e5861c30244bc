"""The API over real uvicorn processes, driven by a load generator in its own process
(`rustok_ref.lab.loadgen`):

- the product GET's throughput (tenant, key and product cached: no database read on a
  warm GET) against `/hello` on the same app and middleware
  stack (target: at least half of hello's), hello on the same stack against hello on a bare
  FastAPI app (what the stack costs), and httpx against the raw client (why not httpx);
- p50/p99 of product get, product list and order create at a fixed concurrency, each
  paired with hello;
- the database round trips of a whole order flow (create, submit, pay) through the real
  application, counted with `RoundTrips` on its engine: the app runs in this process for
  that (ASGI, background workers off), since a subprocess's engine cannot be watched.

Ratios go to the bench JSON; latencies and round trips to `reports/bench/api-*.json`.
Under `--benchmark-disable` every batch is a handful of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import STARTUP_TIMEOUT_S, free_port, settings_env

from rustok_ref.api.app import create_app
from rustok_ref.bootstrap import Services, services, wire
from rustok_ref.config import Settings
from rustok_ref.lab.benchrecord import Target
from rustok_ref.lab.loadgen import Batch, BatchResult, LoadGen, Request
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.lab.seed import SeededTenant, SeedPlan, run_seed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

HERE = Path(__file__).parent
REPORTS = HERE.parents[1] / "reports" / "bench"
CONCURRENCY = 8
FLOWS = 5
UNLIMITED = {"RUSTOK_RATE_LIMIT_PER_S": "1000000000", "RUSTOK_RATE_LIMIT_BURST": "1000000000"}
HELLO = [Request(path="/hello")]


@dataclass(frozen=True)
class Server:
    base_url: str


@contextlib.contextmanager
def serve_factory(factory: str, settings: Settings, log: Path) -> Iterator[Server]:
    """`uvicorn --factory hello_apps:<factory>` as `rustok-ref serve` runs it, until /hello
    answers; SIGTERM on exit."""
    port = free_port()
    env = {**os.environ, **settings_env(settings), **UNLIMITED}
    command = [sys.executable, "-m", "uvicorn", f"hello_apps:{factory}", "--factory"]
    command += ["--app-dir", str(HERE), "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(base_url + "/hello"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{factory} did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield Server(base_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1.0).status_code == 200
    return False


@pytest.fixture(scope="module")
def shop(app_settings: Settings) -> SeededTenant:
    """One seeded tenant with stocked, published products."""

    async def seed() -> SeededTenant:
        plan = SeedPlan(tenants=1, products=20, prefix=f"b{uuid.uuid4().hex[:8]}")
        async with wire(app_settings) as container, services(container) as built:
            return (await run_seed(built, plan))[0]

    return asyncio.run(seed())


@pytest.fixture(scope="module")
def api(app_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("api-bench") / "api.log"
    with serve_factory("api_with_hello", app_settings, log) as server:
        yield server


@pytest.fixture(scope="module")
def bare(app_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("api-bench") / "bare.log"
    with serve_factory("bare_hello", app_settings, log) as server:
        yield server


def headers(shop: SeededTenant) -> dict[str, str]:
    """A customer's: every benchmarked route is open to the least role."""
    return {"X-Tenant-ID": shop.slug, "X-API-Key": shop.keys["customer"]}


def product_gets(shop: SeededTenant) -> list[Request]:
    return [Request(path=f"/products/{product_id}") for product_id in shop.product_ids]


def batch_size(paired: Any, full: int) -> int:
    return full if paired.enabled else 8


def run_ok(gen: LoadGen, batch: Batch, *, expect: str = "200") -> BatchResult:
    """Run a batch; every answer must be `expect` (a 429 or 5xx would time the wrong path)."""
    result = gen.run(batch)
    assert result.statuses == {expect: batch.count}, result.statuses
    return result


def write_figures(kind: str, figures: dict[str, Any]) -> None:
    figures["created"] = datetime.now(UTC).isoformat()
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"api-{kind}-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.json"
    path.write_text(json.dumps(figures, indent=2))
    print(f"\n{json.dumps(figures)}\nwritten to {path}")


def test_cached_product_get_against_hello_on_the_same_stack(
    paired: Any, api: Server, bare: Server, shop: SeededTenant
) -> None:
    count = batch_size(paired, 500)
    get = Batch(
        requests=product_gets(shop), count=count, concurrency=CONCURRENCY, headers=headers(shop)
    )
    hello = Batch(requests=HELLO, count=count, concurrency=CONCURRENCY)
    with LoadGen(api.base_url) as gen, LoadGen(bare.base_url) as bare_gen:
        run_ok(gen, get)  # warms the caches and checks every product answers
        run_ok(bare_gen, hello)
        throughput = Target(measure="throughput", op=">=", value=0.5)
        paired.sync(
            lambda: run_ok(gen, get),
            lambda: run_ok(gen, hello),
            name="api: cached product GET vs hello (same stack), requests/s",
            labels=("GET /products/{id}", "GET /hello through create_app()"),
            target=throughput,
            rounds=5,
            iterations=1,
        )
        paired.sync(
            lambda: run_ok(gen, hello),
            lambda: run_ok(bare_gen, hello),
            name="api: hello through create_app() vs hello on bare FastAPI, time per batch",
            labels=("GET /hello through create_app()", "GET /hello, bare FastAPI"),
            rounds=5,
            iterations=1,
        )
        few = hello.model_copy(update={"count": max(count // 5, 8)})
        with_httpx = few.model_copy(update={"client": "httpx"})
        paired.sync(
            lambda: run_ok(bare_gen, with_httpx),
            lambda: run_ok(bare_gen, few),
            name="loadgen: httpx vs raw HTTP/1.1 client on bare hello, time per batch",
            labels=("httpx.AsyncClient", "raw asyncio keep-alive"),
            rounds=3,
            iterations=1,
        )


def test_route_latencies_at_fixed_concurrency(paired: Any, api: Server, shop: SeededTenant) -> None:
    order = {"lines": [{"product_id": str(shop.product_ids[0]), "quantity": 1}]}
    routes = {
        "GET /products/{id}": (product_gets(shop), 200, "200"),
        "GET /products": ([Request(path="/products?limit=20")], 200, "200"),
        "POST /orders": ([Request(method="POST", path="/orders", body=order)], 100, "201"),
    }
    figures: dict[str, Any] = {"concurrency": CONCURRENCY}
    with LoadGen(api.base_url) as gen:
        for route, (requests, full, expect) in routes.items():
            count = batch_size(paired, full)
            batch = Batch(
                requests=requests, count=count, concurrency=CONCURRENCY, headers=headers(shop)
            )
            hello = Batch(requests=HELLO, count=count, concurrency=CONCURRENCY)
            seen: list[BatchResult] = []

            def timed(batch: Batch = batch, expect: str = expect, seen: list[Any] = seen) -> None:
                seen.append(run_ok(gen, batch, expect=expect))

            timed()  # warm-up, not recorded
            seen.clear()
            paired.sync(
                timed,
                lambda hello=hello: run_ok(gen, hello),
                name=f"api: {route} vs hello at concurrency {CONCURRENCY}, time per batch",
                labels=(route, "GET /hello through create_app()"),
                rounds=3,
                iterations=1,
            )
            figures[route] = {
                "requests_per_batch": count,
                "p50_ms": statistics.median(result.p50_ms for result in seen),
                "p99_ms": statistics.median(result.p99_ms for result in seen),
                "rps": statistics.median(result.rps for result in seen),
            }
    if paired.enabled:
        write_figures("latency", figures)


@contextlib.asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The real application in this process (lifespan run, no background workers, so only
    requests touch its engine): a client and the app's services."""
    quiet = settings.model_copy(
        update={"api_run_workers": False, "api_recover_sagas": False, "rate_limit_per_s": 1e9}
    )
    app = create_app(quiet)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client, app.state.api.services


async def test_database_round_trips_of_an_order_flow(
    app_settings: Settings, shop: SeededTenant
) -> None:
    line = {"product_id": str(shop.product_ids[0]), "quantity": 1}
    flows: list[dict[str, int]] = []
    async with in_process(app_settings) as (client, built):
        client.headers.update(headers(shop))
        trips = RoundTrips()
        trips.watch_engine(built.container.engine)

        async def counted(method: str, path: str, expect: int, **body: Any) -> tuple[Any, int]:
            trips.reset()
            answer = await client.request(method, path, **body)
            assert answer.status_code == expect, answer.text
            await built.checkout.drain()  # a saga's last writes count with its pay
            return answer.json(), trips.database

        try:
            for _ in range(FLOWS):  # the first warms the key, tenant and flag caches
                steps: dict[str, int] = {}
                _, steps["get_product"] = await counted(
                    "GET", f"/products/{line['product_id']}", 200
                )
                _, steps["list_products"] = await counted("GET", "/products?limit=20", 200)
                order, steps["create"] = await counted(
                    "POST", "/orders", 201, json={"lines": [line]}
                )
                _, steps["submit"] = await counted("POST", f"/orders/{order['id']}/submit", 200)
                paid, steps["pay"] = await counted("POST", f"/orders/{order['id']}/pay", 200)
                assert paid["status"] == "paid", paid
                flows.append(steps)
        finally:
            trips.close()
    cold, warm = flows[0], flows[1:]
    steady = {step: min(flow[step] for flow in warm) for step in cold}
    # the caches (tenant, key, flags, product) spare the warm flows the lookups the cold one
    # made; a warm product GET touches no database at all
    assert steady["get_product"] == 0 < cold["get_product"], flows
    assert all(count > 0 for step, count in steady.items() if step != "get_product"), flows
    write_figures(
        "roundtrips",
        {
            "name": "database round trips per request through the API (in process)",
            "steady": steady,
            "order_flow": steady["create"] + steady["submit"] + steady["pay"],
            "most": {step: max(flow[step] for flow in warm) for step in cold},
            "cold_caches": cold,
            "note": "steady: fewest over the warm flows; some flows take 2-4 more (pay most "
            "often), not from new connections",
        },
    )
