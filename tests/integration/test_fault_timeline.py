"""Fault timelines against the session's real Redis and PostgreSQL through the fault proxy,
the new toxics (jitter, bandwidth, slicer) on real traffic, the HTTP control API driving a
proxy, and the provider target against a small HTTP server started here on 127.0.0.1.

Time is a manual clock the test advances, except in one test with short real offsets;
timing is asserted only as lower bounds and liveness bounds of at least ten times the
delays configured here.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rustok_ref.lab import infra
from rustok_ref.lab.fault_api import FaultControlServer
from rustok_ref.lab.faults import FaultConfigError, FaultProxy, ProxySet
from rustok_ref.lab.timeline import (
    Fault,
    FaultTargetError,
    FaultTimeline,
    ProviderTarget,
    ProxyTarget,
    proxy_targets,
)

pytestmark = pytest.mark.integration

LIVENESS_S = 10.0  # far above every delay configured here (at most 0.5 s)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LIVENESS_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {LIVENESS_S} s: {what}")
        time.sleep(0.005)


class ManualClock:
    """A clock the test advances; a timeline waiting on it never sleeps for real."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._changed = threading.Condition()

    def monotonic(self) -> float:
        with self._changed:
            return self._now

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.monotonic())

    def wait_until(self, deadline: float, stop: threading.Event) -> bool:
        with self._changed:
            while self._now < deadline and not stop.is_set():
                self._changed.wait(0.005)  # short, so that stop() is seen too
            return stop.is_set()

    def advance_to(self, offset: float, timeline: FaultTimeline, steps_done: int) -> None:
        """Move to `offset` s after the timeline's start; wait until it has done that many steps."""
        wait_until(lambda: timeline.started_at is not None, "the timeline started")
        assert timeline.started_at is not None
        with self._changed:
            self._now = timeline.started_at + offset
            self._changed.notify_all()
        wait_until(lambda: len(timeline.journal) >= steps_done, f"{steps_done} steps done")
        assert len(timeline.journal) == steps_done


def fault(**fields: Any) -> Fault:
    return Fault.model_validate(fields)


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", int(parts.port or 0)


@pytest.fixture
def proxies(services: infra.Services) -> Iterator[ProxySet]:
    with ProxySet() as started:
        started.add("redis", _address(services.redis_url), rng=random.Random(1))
        started.add("postgres", _address(services.database_url), rng=random.Random(1))
        yield started


@pytest.fixture
def prefix(run_ns: infra.RunNamespace, services: infra.Services) -> Iterator[str]:
    """Keys of this test under the run's prefix, deleted afterwards with SCAN."""
    prefix = f"{run_ns.redis_prefix}timeline:{uuid.uuid4().hex}:"
    yield prefix
    host, port = _address(services.redis_url)
    direct = redis.Redis(host=host, port=port)
    try:
        keys = list(direct.scan_iter(match=f"{prefix}*"))
        if keys:
            direct.delete(*keys)
    finally:
        direct.close()


@pytest.fixture
def clients() -> Iterator[list[redis.Redis]]:
    opened: list[redis.Redis] = []
    yield opened
    for client in opened:
        client.close()


def redis_via(proxy: FaultProxy, clients: list[redis.Redis]) -> redis.Redis:
    client = redis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        socket_timeout=LIVENESS_S,
        socket_connect_timeout=LIVENESS_S,
        retry=Retry(NoBackoff(), 0),
    )
    clients.append(client)
    return client


def steps(timeline: FaultTimeline) -> list[tuple[str, str, float, float, bool]]:
    return [
        (entry.action, entry.label, entry.planned_s, round(entry.offset_s, 6), entry.rollback)
        for entry in timeline.journal
    ]


# The timeline.


def test_faults_are_applied_and_removed_in_order_with_their_times(
    proxies: ProxySet, clients: list[redis.Redis]
) -> None:
    cache, database = proxies["redis"], proxies["postgres"]
    faults = [
        fault(target="redis", toxic="latency", start=0, duration=10, attributes={"latency": 20}),
        fault(target="redis", toxic="down", start="5s", duration="3s"),
        fault(
            target="postgres",
            toxic="jitter",
            stream="upstream",
            start=3,
            duration=17,
            attributes={"latency": 20, "jitter": 10},
        ),
    ]
    clock = ManualClock()
    client = redis_via(cache, clients)
    with FaultTimeline(faults, proxy_targets(proxies), clock=clock) as timeline:
        clock.advance_to(0, timeline, 1)
        assert [t.name for t in cache.toxics()] == ["latency_downstream"]
        assert client.ping()

        clock.advance_to(3, timeline, 2)
        (jitter,) = database.toxics()
        assert (jitter.type, jitter.name, jitter.stream) == (
            "latency",
            "jitter_upstream",
            "upstream",
        )
        assert jitter.attributes == {"latency": 20, "jitter": 10}

        clock.advance_to(5, timeline, 3)
        assert not cache.enabled
        with pytest.raises(redis.ConnectionError):
            client.ping()

        clock.advance_to(8, timeline, 4)
        assert cache.enabled
        assert client.ping()

        clock.advance_to(10, timeline, 5)
        assert cache.toxics() == ()

        clock.advance_to(20, timeline, 6)
        assert timeline.join(LIVENESS_S)
    assert database.toxics() == ()
    assert steps(timeline) == [
        ("apply", "redis/latency_downstream", 0, 0, False),
        ("apply", "postgres/jitter_upstream", 3, 3, False),
        ("apply", "redis/down", 5, 5, False),
        ("remove", "redis/down", 8, 8, False),
        ("remove", "redis/latency_downstream", 10, 10, False),
        ("remove", "postgres/jitter_upstream", 20, 20, False),
    ]
    first = timeline.journal[0]
    assert first.monotonic == timeline.started_at
    assert datetime.fromisoformat(first.wall) == clock.wall() - timedelta(seconds=20)
    assert all(entry.error is None for entry in timeline.journal)
    assert first.as_dict()["label"] == "redis/latency_downstream"


def test_stop_rolls_back_every_fault_still_applied_latest_first(
    proxies: ProxySet, clients: list[redis.Redis]
) -> None:
    cache, database = proxies["redis"], proxies["postgres"]
    faults = [
        fault(target="redis", toxic="timeout", stream="upstream", start=0, duration=50),
        fault(target="redis", toxic="down", start=1, duration=99),
        fault(target="postgres", toxic="reset_peer", start=2, duration=98),
        fault(target="postgres", toxic="bandwidth", start=60, duration=10),
    ]
    clock = ManualClock()
    timeline = FaultTimeline(faults, proxy_targets(proxies), clock=clock)
    threads_before = set(threading.enumerate())
    timeline.start()
    clock.advance_to(2, timeline, 3)
    assert not cache.enabled
    assert len(cache.toxics()) == len(database.toxics()) == 1

    timeline.stop()

    rolled_back = timeline.journal[3:]
    assert [(e.action, e.label, e.planned_s, e.rollback) for e in rolled_back] == [
        ("remove", "postgres/reset_peer_downstream", 100, True),
        ("remove", "redis/down", 100, True),
        ("remove", "redis/timeout_upstream", 50, True),
    ]
    assert all(entry.offset_s == 2 and entry.error is None for entry in rolled_back)
    assert cache.enabled
    assert cache.toxics() == database.toxics() == ()
    assert redis_via(cache, clients).ping()
    assert set(threading.enumerate()) - threads_before == set()


def test_an_instant_fault_is_applied_once_and_touching_windows_do_not_collide(
    proxies: ProxySet,
) -> None:
    flushed: list[Fault] = []

    class CacheFlush:  # the load driver provides the real one, through the API
        def apply(self, applied: Fault) -> None:
            flushed.append(applied)

        def remove(self, removed: Fault) -> None:
            raise AssertionError("an instant fault is never removed")

    faults = [
        fault(target="redis", toxic="down", start=0, duration=5),
        fault(target="tenant_cache", toxic="flush", start=5),
        fault(target="redis", toxic="down", start=5, duration=5),
    ]
    targets = {"redis": ProxyTarget(proxies["redis"]), "tenant_cache": CacheFlush()}
    clock = ManualClock()
    with FaultTimeline(faults, targets, clock=clock) as timeline:
        clock.advance_to(0, timeline, 1)
        clock.advance_to(5, timeline, 4)
        assert not proxies["redis"].enabled
        clock.advance_to(10, timeline, 5)
        assert timeline.join(LIVENESS_S)
    assert [(e.action, e.label, e.planned_s) for e in timeline.journal] == [
        ("apply", "redis/down", 0),
        ("remove", "redis/down", 5),  # removals first at equal times
        ("apply", "tenant_cache/flush", 5),
        ("apply", "redis/down", 5),
        ("remove", "redis/down", 10),
    ]
    assert flushed == [faults[1]]
    assert proxies["redis"].enabled


def test_a_failed_step_is_journaled_and_the_timeline_goes_on(proxies: ProxySet) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        nowhere = f"http://127.0.0.1:{placeholder.getsockname()[1]}"
    faults = [
        fault(target="payment", toxic="down", toxicity=0.5, start=0, duration=10),
        fault(target="redis", toxic="latency", start=1, duration=2, attributes={"latency": 5}),
    ]
    clock = ManualClock()
    with ProviderTarget(nowhere, "payment", timeout_s=LIVENESS_S) as payment:
        targets = {"payment": payment, "redis": ProxyTarget(proxies["redis"])}
        with FaultTimeline(faults, targets, clock=clock) as timeline:
            clock.advance_to(0, timeline, 1)
            clock.advance_to(3, timeline, 3)
            clock.advance_to(10, timeline, 3)  # the payment fault never applied: nothing to remove
            assert timeline.join(LIVENESS_S)
    failed, applied, removed = timeline.journal
    assert (failed.action, failed.label) == ("apply", "payment/down")
    assert failed.error is not None
    assert failed.error.startswith("FaultTargetError: PUT /admin/providers/payment:")
    assert (applied.action, applied.error, removed.action, removed.error) == (
        "apply",
        None,
        "remove",
        None,
    )


def test_a_timeline_refuses_faults_without_a_target_or_overlapping(proxies: ProxySet) -> None:
    targets = {"redis": ProxyTarget(proxies["redis"])}
    with pytest.raises(FaultConfigError, match="no target for payment, postgres"):
        FaultTimeline(
            [
                fault(target="postgres", toxic="down", start=0, duration=1),
                fault(target="payment", toxic="down", start=0, duration=1),
            ],
            targets,
        )
    with pytest.raises(FaultConfigError, match=r"fault 1 \(redis/down\) overlaps fault 0"):
        FaultTimeline(
            [
                fault(target="redis", toxic="down", start=0, duration=2),
                fault(target="redis", toxic="down", start=1, duration=2),
            ],
            targets,
        )


def test_a_timeline_on_the_real_clock_keeps_its_offsets(
    proxies: ProxySet, clients: list[redis.Redis]
) -> None:
    faults = [fault(target="redis", toxic="down", start=0.05, duration=0.2)]
    client = redis_via(proxies["redis"], clients)
    with FaultTimeline(faults, proxy_targets(proxies)) as timeline:
        wait_until(lambda: len(timeline.journal) == 1, "the outage began")
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert timeline.join(LIVENESS_S)
    assert client.ping()
    apply, remove = timeline.journal
    assert apply.offset_s >= 0.05
    assert remove.offset_s >= 0.25
    assert not apply.rollback and not remove.rollback


# The new toxics on real traffic.


def test_jitter_delays_each_round_trip_by_at_least_latency_minus_jitter(
    proxies: ProxySet, clients: list[redis.Redis]
) -> None:
    client = redis_via(proxies["redis"], clients)
    assert client.ping()
    proxies["redis"].add_toxic("latency", latency=200, jitter=100)
    for _ in range(3):
        started = time.perf_counter()
        assert client.ping()
        assert time.perf_counter() - started >= 0.100


def test_bandwidth_holds_a_large_reply_to_the_rate(
    proxies: ProxySet, clients: list[redis.Redis], prefix: str
) -> None:
    value = random.Random(5).randbytes(500_000)
    cache = proxies["redis"]
    client = redis_via(cache, clients)
    client.set(f"{prefix}big", value)
    cache.add_toxic("bandwidth", rate=1000)  # 1000 KB/s: 500 KB take at least 0.5 s
    before = cache.stats()

    started = time.perf_counter()
    assert client.get(f"{prefix}big") == value
    assert time.perf_counter() - started >= 0.5

    after = cache.stats()
    assert after.bytes_downstream - before.bytes_downstream > len(value)
    assert after.writes_downstream - before.writes_downstream >= 5  # 100 KB slices at most


def test_slicer_writes_a_reply_in_small_slices(
    proxies: ProxySet, clients: list[redis.Redis], prefix: str
) -> None:
    value = random.Random(6).randbytes(50_000)
    cache = proxies["redis"]
    client = redis_via(cache, clients)
    client.set(f"{prefix}sliced", value)
    cache.add_toxic("slicer", average_size=1000, size_variation=200, delay=100)
    before = cache.stats()

    assert client.get(f"{prefix}sliced") == value

    after = cache.stats()
    sent = after.bytes_downstream - before.bytes_downstream
    assert sent > len(value)
    assert after.writes_downstream - before.writes_downstream >= sent // 1200
    assert after.writes_upstream - before.writes_upstream == 1  # the request was not sliced


def test_slicer_and_latency_compose_on_postgres(proxies: ProxySet) -> None:
    database = proxies["postgres"]
    database.add_toxic("slicer", average_size=64, size_variation=32)
    database.add_toxic("latency", latency=1)
    with psycopg.connect(
        host="127.0.0.1",
        port=database.port,
        user="postgres",
        dbname="postgres",
        connect_timeout=int(LIVENESS_S),
        autocommit=True,
    ) as conn:
        row = conn.execute("SELECT repeat('x', 5000)").fetchone()
    assert row == ("x" * 5000,)
    assert database.stats().writes_downstream > 5000 // 96


# The HTTP control API.


def test_the_control_api_drives_a_proxy_with_toxiproxys_routes(
    proxies: ProxySet, clients: list[redis.Redis]
) -> None:
    cache = proxies["redis"]
    client = redis_via(cache, clients)
    threads_before = set(threading.enumerate())
    with FaultControlServer(proxies) as control, httpx.Client(base_url=control.url) as api:
        assert control.url.startswith("http://127.0.0.1:")
        listed = api.get("/proxies").json()
        assert set(listed) == {"redis", "postgres"}
        assert listed["redis"]["listen"] == f"127.0.0.1:{cache.port}"
        assert listed["redis"]["enabled"] is True
        assert listed["redis"]["toxics"] == []
        assert listed["redis"]["stats"]["accepted"] == 0

        added = api.post(
            "/proxies/redis/toxics",
            json={"type": "latency", "stream": "upstream", "attributes": {"latency": 50}},
        )
        assert added.status_code == 200
        assert added.json() == {
            "name": "latency_upstream",
            "type": "latency",
            "stream": "upstream",
            "toxicity": 1.0,
            "attributes": {"latency": 50, "jitter": 0},
        }
        assert [t.name for t in cache.toxics()] == ["latency_upstream"]
        assert api.get("/proxies/redis/toxics/latency_upstream").json() == added.json()
        started = time.perf_counter()
        assert client.ping()
        assert time.perf_counter() - started >= 0.050

        taken = api.post("/proxies/redis/toxics", json={"type": "latency", "stream": "upstream"})
        assert taken.status_code == 409
        assert taken.json() == {"error": "toxic already exists: latency_upstream", "status": 409}

        down = api.post("/proxies/redis", json={"enabled": False})
        assert down.json()["enabled"] is False
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert api.post("/proxies/redis", json={"enabled": True}).json()["enabled"] is True
        assert client.ping()

        assert api.delete("/proxies/redis/toxics/latency_upstream").status_code == 204
        assert cache.toxics() == ()
        assert api.delete("/proxies/redis/toxics/latency_upstream").status_code == 404

        api.post("/proxies/postgres/toxics", json={"type": "reset_peer"})
        api.post("/proxies/postgres", json={"enabled": False})
        assert api.post("/reset").status_code == 204
        assert proxies["postgres"].enabled
        assert proxies["postgres"].toxics() == ()
    assert set(threading.enumerate()) - threads_before == set()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/proxies/mysql", None, 404, "proxy not found: mysql"),
        ("GET", "/nowhere", None, 404, "no route GET /nowhere"),
        ("POST", "/proxies/redis/toxics", {"type": "packet_loss"}, 400, "unknown toxic type"),
        ("POST", "/proxies/redis/toxics", {"type": "latency", "color": 1}, 400, "unknown: color"),
        (
            "POST",
            "/proxies/redis/toxics",
            {"type": "latency", "attributes": {"latency": -1}},
            400,
            "'latency' must be a whole number >= 0",
        ),
        ("POST", "/proxies/redis/toxics", {"type": "slicer", "stream": "up"}, 400, "a stream"),
        ("POST", "/proxies/redis", {"enabled": "no"}, 400, '{"enabled": false}'),
        ("POST", "/proxies/redis", [1], 400, "the body must be a JSON object"),
    ],
)
def test_the_control_api_refuses_what_it_cannot_do(
    proxies: ProxySet, method: str, path: str, body: object, status: int, error: str
) -> None:
    with FaultControlServer(proxies) as control, httpx.Client(base_url=control.url) as api:
        response = api.request(method, path, json=body)
    assert response.status_code == status
    assert error in response.json()["error"]
    assert response.json()["status"] == status
    assert proxies["redis"].toxics() == ()
    assert proxies["redis"].enabled


# The provider target, against a control endpoint served here.


class ProviderControl(ThreadingHTTPServer):
    """Stands in for the API's `PUT /admin/providers/{name}`: records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str | None]] = []
        self.status = 204
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.calls.append((self.path, body, self.headers.get("Authorization")))
                self.send_response(server.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def provider_control() -> Iterator[ProviderControl]:
    server = ProviderControl()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


def test_provider_faults_reach_the_control_endpoint_as_one_setting(
    provider_control: ProviderControl,
) -> None:
    faults = [
        fault(target="payment", toxic="down", toxicity=0.3, start=0, duration=10),
        fault(target="payment", toxic="latency", start=5, duration=10, attributes={"latency": 500}),
    ]
    clock = ManualClock()
    headers = {"Authorization": "Bearer admin"}
    with ProviderTarget(provider_control.url + "/", "payment", headers=headers) as payment:
        with FaultTimeline(faults, {"payment": payment}, clock=clock) as timeline:
            clock.advance_to(0, timeline, 1)
            clock.advance_to(5, timeline, 2)
            clock.advance_to(10, timeline, 3)
            clock.advance_to(15, timeline, 4)
            assert timeline.join(LIVENESS_S)
        payment.reset()
    assert provider_control.calls == [
        ("/admin/providers/payment", {"failure_rate": 0.3, "latency_ms": 0}, "Bearer admin"),
        ("/admin/providers/payment", {"failure_rate": 0.3, "latency_ms": 500}, "Bearer admin"),
        ("/admin/providers/payment", {"failure_rate": 0, "latency_ms": 500}, "Bearer admin"),
        ("/admin/providers/payment", {"failure_rate": 0, "latency_ms": 0}, "Bearer admin"),
        ("/admin/providers/payment", {"failure_rate": 0, "latency_ms": 0}, "Bearer admin"),
    ]


def test_a_refusing_control_endpoint_is_a_target_error(provider_control: ProviderControl) -> None:
    provider_control.status = 503
    with ProviderTarget(provider_control.url, "shipping") as shipping:
        with pytest.raises(FaultTargetError, match=r"PUT /admin/providers/shipping: HTTP 503"):
            shipping.apply(fault(target="shipping", toxic="down", start=0, duration=1))
        with pytest.raises(FaultTargetError, match="the shipping target got a fault on payment"):
            shipping.apply(fault(target="payment", toxic="down", start=0, duration=1))
    assert [call[0] for call in provider_control.calls] == ["/admin/providers/shipping"]
