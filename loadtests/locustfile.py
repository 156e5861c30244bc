"""Locust users for the RusToK API: storefront browsers, checkout customers, admin writers and
identifier probers, over tenants drawn Zipf-style from a seeded set.

Run it through `rustok-ref load SCENARIO` (which seeds, starts the API and reads the results),
or by hand against a running API with the seed's keys file:

    RUSTOK_LOAD_TENANTS=tenants.json locust -f loadtests/locustfile.py --host http://127.0.0.1:8000

Environment:
- RUSTOK_LOAD_TENANTS: the keys file `rustok-ref seed --keys-file` writes
  ([{tenant_id, slug, weight, keys: {admin, staff, customer}, product_ids}]);
- RUSTOK_SCENARIO (+ RUSTOK_PROFILE, smoke by default): a scenario whose user mix sets the class
  weights and whose stages drive a LoadTestShape (without it, -u/-r/-t or the web UI do);
- RUSTOK_LOAD_OUT: a folder where the master (or the only process) writes `latency.hdr`, every
  response time in an HdrHistogram merged from all workers (Locust rounds its own
  percentiles), and `status.json` each second (users, RPS, failures) for the driver's live line.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from hdrh.histogram import HdrHistogram
from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from rustok_ref.lab.scenario import load_scenario

HDR_LOWEST_US = 1
HDR_HIGHEST_US = 120_000_000  # two minutes: anything slower is a timeout anyway
HDR_DIGITS = 3
HDR_MESSAGE_KEY = "rustok_hdr"
ZIPF_EXPONENT = 1.1  # when the keys file carries no weights
EXPECTED_REFUSALS = frozenset({400, 401, 403, 404, 429})

_out = os.environ.get("RUSTOK_LOAD_OUT")
OUT_DIR = Path(_out) if _out else None
_scenario_path = os.environ.get("RUSTOK_SCENARIO")
SCENARIO = load_scenario(_scenario_path) if _scenario_path else None
PROFILE = os.environ.get("RUSTOK_PROFILE", "smoke")


def _load_tenants() -> list[dict[str, Any]]:
    path = os.environ.get("RUSTOK_LOAD_TENANTS")
    if not path:
        return []
    tenants: list[dict[str, Any]] = json.loads(Path(path).read_text())
    return tenants


TENANTS = _load_tenants()
WEIGHTS = [
    float(tenant.get("weight") or 1 / (rank + 1) ** ZIPF_EXPONENT)
    for rank, tenant in enumerate(TENANTS)
]


def pick_tenant() -> dict[str, Any]:
    """A seeded tenant, the big shops more often (Zipf), as multi-tenant traffic is skewed."""
    if not TENANTS:
        raise RuntimeError("no tenants: set RUSTOK_LOAD_TENANTS to a `rustok-ref seed` keys file")
    return random.choices(TENANTS, weights=WEIGHTS)[0]


class TenantUser(FastHttpUser):
    """A user of one tenant (drawn when it starts) with one role's key."""

    abstract = True
    role = "customer"

    def on_start(self) -> None:
        self.tenant = pick_tenant()
        self.headers = {
            "X-Tenant-ID": self.tenant["slug"],
            "X-API-Key": self.tenant["keys"][self.role],
        }

    def product_id(self) -> str:
        return str(random.choice(self.tenant["product_ids"]))


class StorefrontBrowser(TenantUser):
    """Reads the catalogue: lists (following a cursor now and then) and product pages."""

    wait_time = between(0.5, 2.0)

    @task(3)
    def catalogue(self) -> None:
        with self.client.get(
            "/products?status=published&limit=20",
            headers=self.headers,
            name="/products",
            catch_response=True,
        ) as response:
            cursor = response.json().get("next_cursor") if response.ok else None
        if cursor and random.random() < 0.3:
            self.client.get(
                f"/products?status=published&limit=20&cursor={cursor}",
                headers=self.headers,
                name="/products?cursor",
            )

    @task(5)
    def product_page(self) -> None:
        self.client.get(
            f"/products/{self.product_id()}", headers=self.headers, name="/products/[id]"
        )


class CheckoutCustomer(TenantUser):
    """The whole order flow with think times: look, order, submit, pay, wait for the saga."""

    wait_time = between(1.0, 3.0)
    poll_limit = 10

    @task
    def buy(self) -> None:
        product = self.product_id()
        self.client.get(f"/products/{product}", headers=self.headers, name="/products/[id]")
        time.sleep(random.uniform(0.2, 1.0))  # reading the page
        body = {"lines": [{"product_id": product, "quantity": random.randint(1, 3)}]}
        with self.client.post(
            "/orders", json=body, headers=self.headers, name="/orders", catch_response=True
        ) as response:
            order_id = response.json().get("id") if response.status_code == 201 else None
        if order_id is None:
            return
        self.client.post(
            f"/orders/{order_id}/submit", headers=self.headers, name="/orders/[id]/submit"
        )
        with self.client.post(
            f"/orders/{order_id}/pay",
            headers=self.headers,
            name="/orders/[id]/pay",
            catch_response=True,
        ) as response:
            location = response.headers.get("Location") if response.status_code == 202 else None
        for _ in range(self.poll_limit if location else 0):
            time.sleep(0.5)
            with self.client.get(
                location,
                headers=self.headers,
                name="/orders/[id]/checkout/[saga]",
                catch_response=True,
            ) as poll:
                if not poll.ok or poll.json().get("status") != "in_progress":
                    break


class AdminWriter(TenantUser):
    """Staff work: new products published, stock and prices changed, flags read."""

    wait_time = between(1.0, 4.0)
    role = "admin"

    @task(2)
    def restock(self) -> None:
        self.client.patch(
            f"/products/{self.product_id()}",
            json={"stock": random.randint(100, 10_000)},
            headers=self.headers,
            name="/products/[id] PATCH",
        )

    @task(1)
    def new_product(self) -> None:
        body = {
            "sku": f"load-{uuid.uuid4().hex[:12]}",
            "title": "Load test product",
            "price": {"amount": random.randint(199, 20_000), "currency": "EUR"},
            "stock": random.randint(10, 1_000),
        }
        with self.client.post(
            "/products", json=body, headers=self.headers, name="/products POST", catch_response=True
        ) as response:
            created = response.json().get("id") if response.status_code == 201 else None
        if created is not None:
            self.client.post(
                f"/products/{created}/publish", headers=self.headers, name="/products/[id]/publish"
            )

    @task(1)
    def flags(self) -> None:
        self.client.get("/admin/flags", headers=self.headers, name="/admin/flags")


class IdentifierProber(FastHttpUser):
    """An attacker probing tenant identifiers: unknown slugs and ids with made-up keys. A
    refusal (400/401/403/404/429) is the right answer; anything else is counted a failure."""

    wait_time = between(0.05, 0.3)

    @task
    def probe(self) -> None:
        tenant = random.choice([f"probe-{uuid.uuid4().hex[:10]}", str(uuid.uuid4())])
        headers = {"X-Tenant-ID": tenant, "X-API-Key": f"rk_{uuid.uuid4().hex}"}
        with self.client.get(
            "/products", headers=headers, name="/products (unknown tenant)", catch_response=True
        ) as response:
            if response.status_code in EXPECTED_REFUSALS:
                response.success()
            else:
                response.failure(f"unknown tenant answered {response.status_code}")


USER_CLASSES: dict[str, type[FastHttpUser]] = {
    "storefront_browser": StorefrontBrowser,
    "checkout_customer": CheckoutCustomer,
    "admin_writer": AdminWriter,
    "identifier_prober": IdentifierProber,
}

if SCENARIO is not None:
    for _name, _weight in SCENARIO.load.mix.weights().items():
        USER_CLASSES[_name].weight = _weight
        USER_CLASSES[_name].abstract = _weight == 0  # Locust refuses a weight of 0

    class ScenarioShape(LoadTestShape):
        """The scenario's stages: ramp to each stage's users at its spawn rate, hold, next."""

        stages = SCENARIO.load.smoke.stages if PROFILE == "smoke" else SCENARIO.load.full.stages

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            for stage in self.stages:
                if elapsed < stage.duration:
                    return stage.users, stage.spawn_rate
                elapsed -= stage.duration
            return None


class Latencies:
    """Every response time in microseconds; workers send theirs to the master with each stats
    report, the master (or a lone process) merges and saves them."""

    def __init__(self) -> None:
        self.histogram = HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)

    def record(self, response_time_ms: float) -> None:
        micros = min(max(round(response_time_ms * 1000), HDR_LOWEST_US), HDR_HIGHEST_US)
        self.histogram.record_value(micros)

    def take(self) -> str:
        """The values since the last call, encoded, and a fresh histogram for the next."""
        encoded = self.histogram.encode().decode("ascii")
        self.histogram.reset()
        return encoded

    def merge(self, encoded: str) -> None:
        self.histogram.decode_and_add(encoded.encode("ascii"))

    def save(self, folder: Path) -> None:
        (folder / "latency.hdr").write_bytes(self.histogram.encode())


LATENCIES = Latencies()


@events.request.add_listener
def _record(response_time: float | None, **_: Any) -> None:
    if response_time is not None:
        LATENCIES.record(response_time)


@events.report_to_master.add_listener
def _send(client_id: str, data: dict[str, Any]) -> None:
    data[HDR_MESSAGE_KEY] = LATENCIES.take()


@events.worker_report.add_listener
def _merge(client_id: str, data: dict[str, Any]) -> None:
    if HDR_MESSAGE_KEY in data:
        LATENCIES.merge(data[HDR_MESSAGE_KEY])


def _write_status(environment: Environment) -> None:
    """Once a second, what the driver's live line shows (written atomically)."""
    assert OUT_DIR is not None and environment.runner is not None
    target, scratch = OUT_DIR / "status.json", OUT_DIR / "status.json.tmp"
    while True:
        total = environment.runner.stats.total
        status = {
            "time": time.time(),
            "state": environment.runner.state,
            "users": environment.runner.user_count,
            "rps": total.current_rps,
            "requests": total.num_requests,
            "failures": total.num_failures,
        }
        scratch.write_text(json.dumps(status))
        scratch.replace(target)
        gevent.sleep(1.0)


@events.init.add_listener
def _start_status(environment: Environment, **_: Any) -> None:
    if OUT_DIR is not None and not isinstance(environment.runner, WorkerRunner):
        gevent.spawn(_write_status, environment)


@events.quitting.add_listener
def _save(environment: Environment, **_: Any) -> None:
    if OUT_DIR is not None and not isinstance(environment.runner, WorkerRunner):
        LATENCIES.save(OUT_DIR)


__all__ = [
    "AdminWriter",
    "CheckoutCustomer",
    "IdentifierProber",
    "StorefrontBrowser",
]
