"""The fault proxy in front of the session's real Redis and PostgreSQL (the `services` fixture).

The clients are sync (redis-py, psycopg) and run in the test's thread, as the proxy's users
will: if the proxy served on the caller's thread, every test here would hang. Timing is
asserted only as lower bounds (latency) and liveness bounds of at least ten times the timeout
involved; everything else is proven by behaviour and by the proxy's counters.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rustok_ref.lab import infra
from rustok_ref.lab.faults import FaultConfigError, FaultProxy, ProxySet, Stream

pytestmark = pytest.mark.integration

LIVENESS_S = 10.0  # far above every delay and timeout configured here (at most 1 s)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LIVENESS_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {LIVENESS_S} s: {what}")
        time.sleep(0.01)


def redis_via(proxy: FaultProxy, socket_timeout: float = LIVENESS_S) -> redis.Redis:
    """A redis-py client through the proxy, without retries: each call is one attempt."""
    return redis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        socket_timeout=socket_timeout,
        socket_connect_timeout=LIVENESS_S,
        retry=Retry(NoBackoff(), 0),
    )


def postgres_via(proxy: FaultProxy) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host="127.0.0.1",
        port=proxy.port,
        user="postgres",
        dbname="postgres",
        connect_timeout=int(LIVENESS_S),
        autocommit=True,
    )


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", int(parts.port or 0)


@pytest.fixture
def redis_addr(services: infra.Services) -> tuple[str, int]:
    return _address(services.redis_url)


@pytest.fixture
def postgres_addr(services: infra.Services) -> tuple[str, int]:
    return _address(services.database_url)


@pytest.fixture
def prefix(redis_addr: tuple[str, int]) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards (SCAN, never FLUSH)."""
    prefix = f"rustok:test-faults:{uuid.uuid4().hex}:"
    yield prefix
    direct = redis.Redis(host=redis_addr[0], port=redis_addr[1])
    try:
        keys = list(direct.scan_iter(match=f"{prefix}*"))
        if keys:
            direct.delete(*keys)
    finally:
        direct.close()


@pytest.fixture
def redis_proxy(redis_addr: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy("redis", upstream=redis_addr, rng=random.Random(1)) as proxy:
        yield proxy


@pytest.fixture
def postgres_proxy(postgres_addr: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy("postgres", upstream=postgres_addr, rng=random.Random(1)) as proxy:
        yield proxy


@pytest.fixture
def clients() -> Iterator[list[redis.Redis]]:
    """Redis clients to close after the test, whatever happened to them."""
    opened: list[redis.Redis] = []
    yield opened
    for client in opened:
        client.close()


def test_redis_passes_through_and_the_byte_counters_grow(
    redis_proxy: FaultProxy, prefix: str
) -> None:
    value = b"v" * 5000
    client = redis_via(redis_proxy)
    client.set(f"{prefix}key", value)
    assert client.get(f"{prefix}key") == value
    stats = redis_proxy.stats()
    assert (stats.accepted, stats.active, stats.refused, stats.dropped) == (1, 1, 0, 0)
    assert stats.bytes_upstream > len(value)
    assert stats.bytes_downstream > len(value)

    client.close()
    wait_until(lambda: redis_proxy.stats().active == 0, "the closed connection is gone")


def test_postgres_passes_through_and_the_byte_counters_grow(postgres_proxy: FaultProxy) -> None:
    with postgres_via(postgres_proxy) as conn:
        row = conn.execute("SELECT repeat('x', 20000)").fetchone()
    assert row is not None
    assert len(str(row[0])) == 20000
    stats = postgres_proxy.stats()
    assert stats.accepted == 1
    assert stats.bytes_upstream > 0
    assert stats.bytes_downstream > 20000


def test_sync_clients_in_several_threads_share_the_proxy(
    redis_proxy: FaultProxy, prefix: str, clients: list[redis.Redis]
) -> None:
    client = redis_via(redis_proxy)
    clients.append(client)

    def increment(_: int) -> None:
        for _ in range(25):
            client.incr(f"{prefix}counter")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(increment, range(8)))
    assert client.get(f"{prefix}counter") == b"200"
    assert redis_proxy.stats().accepted >= 1


async def test_a_sync_client_inside_a_running_event_loop_does_not_deadlock(
    redis_proxy: FaultProxy, clients: list[redis.Redis]
) -> None:
    client = redis_via(redis_proxy)
    clients.append(client)
    assert client.ping()  # blocks this test's loop; the proxy's loop is its own


@pytest.mark.parametrize("stream", ["upstream", "downstream"])
def test_latency_delays_each_round_trip_by_at_least_the_configured_time(
    redis_proxy: FaultProxy, clients: list[redis.Redis], stream: Stream
) -> None:
    client = redis_via(redis_proxy)
    clients.append(client)
    assert client.ping()  # connected before the toxic: it acts on live connections too
    redis_proxy.add_toxic("latency", stream=stream, latency=200)

    for _ in range(3):
        started = time.perf_counter()
        assert client.ping()
        assert time.perf_counter() - started >= 0.200


def test_latency_on_postgres_applies_to_new_connections(postgres_proxy: FaultProxy) -> None:
    postgres_proxy.add_toxic("latency", latency=100)
    with postgres_via(postgres_proxy) as conn:
        started = time.perf_counter()
        conn.execute("SELECT 1")
        assert time.perf_counter() - started >= 0.100


def test_down_drops_live_connections_and_refuses_new_ones(
    redis_proxy: FaultProxy, clients: list[redis.Redis]
) -> None:
    live = redis_via(redis_proxy)
    clients.append(live)
    assert live.ping()

    redis_proxy.disable()
    assert not redis_proxy.enabled
    with pytest.raises(redis.ConnectionError):
        live.ping()
    accepted = redis_proxy.stats().accepted
    for _ in range(3):
        fresh = redis_via(redis_proxy)
        clients.append(fresh)
        with pytest.raises(redis.ConnectionError):
            fresh.ping()

    stats = redis_proxy.stats()
    assert stats.accepted == accepted  # flat while down
    assert stats.refused >= 3
    assert stats.dropped == 1
    assert stats.active == 0


def test_enable_restores_service(redis_proxy: FaultProxy, clients: list[redis.Redis]) -> None:
    redis_proxy.disable()
    redis_proxy.enable()
    assert redis_proxy.enabled
    client = redis_via(redis_proxy)
    clients.append(client)
    assert client.ping()
    assert redis_proxy.stats().accepted == 1


def test_down_refuses_postgres_connections(postgres_proxy: FaultProxy) -> None:
    postgres_proxy.disable()
    with pytest.raises(psycopg.OperationalError):
        postgres_via(postgres_proxy)
    assert postgres_proxy.stats().accepted == 0
    assert postgres_proxy.stats().refused >= 1

    postgres_proxy.enable()
    with postgres_via(postgres_proxy) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_timeout_holds_the_reply_so_the_client_times_out(
    redis_proxy: FaultProxy, clients: list[redis.Redis]
) -> None:
    socket_timeout = 0.2
    client = redis_via(redis_proxy, socket_timeout=socket_timeout)
    clients.append(client)
    assert client.ping()
    redis_proxy.add_toxic("timeout")  # timeout 0: held until the toxic is removed
    before = redis_proxy.stats()

    started = time.perf_counter()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    assert time.perf_counter() - started < 10 * socket_timeout

    after = redis_proxy.stats()
    assert after.bytes_upstream > before.bytes_upstream  # the request reached Redis
    assert after.bytes_downstream == before.bytes_downstream  # the reply never came back


def test_timeout_with_a_duration_closes_the_connection(
    redis_proxy: FaultProxy, clients: list[redis.Redis]
) -> None:
    redis_proxy.add_toxic("timeout", timeout=100)
    client = redis_via(redis_proxy)  # a socket timeout of 10 s, 100 times the toxic's
    clients.append(client)
    with pytest.raises(redis.ConnectionError) as raised:
        client.ping()
    assert not isinstance(raised.value, redis.TimeoutError)  # closed, not timed out


def test_reset_peer_resets_the_connection(redis_proxy: FaultProxy) -> None:
    redis_proxy.add_toxic("reset_peer")
    with socket.create_connection(redis_proxy.listen_address, timeout=LIVENESS_S) as raw:
        raw.sendall(b"PING\r\n")
        with pytest.raises(ConnectionResetError):
            raw.recv(64)


def test_reset_peer_is_a_connection_error_for_the_clients(
    redis_proxy: FaultProxy, postgres_proxy: FaultProxy, clients: list[redis.Redis]
) -> None:
    redis_proxy.add_toxic("reset_peer", timeout=50)
    postgres_proxy.add_toxic("reset_peer")
    client = redis_via(redis_proxy)
    clients.append(client)
    with pytest.raises(redis.ConnectionError, match="reset by peer"):
        client.ping()
    with pytest.raises(psycopg.OperationalError):
        postgres_via(postgres_proxy)


def test_toxicity_zero_never_applies(redis_proxy: FaultProxy, clients: list[redis.Redis]) -> None:
    redis_proxy.add_toxic("reset_peer", toxicity=0.0)
    for _ in range(20):
        client = redis_via(redis_proxy)
        clients.append(client)
        assert client.ping()
    assert redis_proxy.stats().accepted == 20


def test_toxicity_draws_come_from_the_injected_random(
    clients: list[redis.Redis], redis_addr: tuple[str, int]
) -> None:
    with FaultProxy("redis", upstream=redis_addr, rng=random.Random(7)) as proxy:
        proxy.add_toxic("reset_peer", toxicity=0.5)
        reset = []
        for _ in range(20):
            client = redis_via(proxy)
            clients.append(client)
            try:
                client.ping()
            except redis.ConnectionError:
                reset.append(True)
            else:
                reset.append(False)
    replay = random.Random(7)
    assert reset == [replay.random() < 0.5 for _ in range(20)]
    assert 0 < sum(reset) < 20


def test_removing_a_toxic_restores_service(
    redis_proxy: FaultProxy, clients: list[redis.Redis]
) -> None:
    client = redis_via(redis_proxy, socket_timeout=0.2)
    clients.append(client)
    toxic = redis_proxy.add_toxic("timeout")
    with pytest.raises(redis.TimeoutError):
        client.ping()

    redis_proxy.remove_toxic(toxic.name)
    assert redis_proxy.toxics() == ()
    assert client.ping()  # redis-py reconnects after the timeout


def test_clearing_toxics_restores_service(
    redis_proxy: FaultProxy, clients: list[redis.Redis]
) -> None:
    redis_proxy.add_toxic("reset_peer")
    redis_proxy.add_toxic("timeout", stream="upstream")
    assert [toxic.name for toxic in redis_proxy.toxics()] == [
        "reset_peer_downstream",
        "timeout_upstream",
    ]
    redis_proxy.clear_toxics()
    client = redis_via(redis_proxy)
    clients.append(client)
    assert client.ping()


def test_toxic_names_are_unique_and_removal_needs_a_known_name(redis_proxy: FaultProxy) -> None:
    redis_proxy.add_toxic("latency", latency=10)
    with pytest.raises(FaultConfigError, match="already has a toxic named 'latency_downstream'"):
        redis_proxy.add_toxic("latency", latency=20)
    with pytest.raises(FaultConfigError, match="no toxic named 'nope'; it has: latency_downstream"):
        redis_proxy.remove_toxic("nope")


def test_stop_closes_client_connections_and_leaves_no_thread(
    clients: list[redis.Redis], redis_addr: tuple[str, int]
) -> None:
    threads_before = set(threading.enumerate())
    proxy = FaultProxy("redis", upstream=redis_addr).start()
    address = proxy.listen_address
    client = redis_via(proxy)
    clients.append(client)
    assert client.ping()
    raw = socket.create_connection(address, timeout=LIVENESS_S)
    raw.sendall(b"PING\r\n")
    assert raw.recv(64) == b"+PONG\r\n"

    proxy.stop()

    assert set(threading.enumerate()) - threads_before == set()
    assert proxy.stats().active == 0
    try:
        assert raw.recv(64) == b""  # closed by the proxy
    except ConnectionResetError:
        pass  # closed with a reset: closed all the same
    finally:
        raw.close()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=LIVENESS_S).close()


def test_a_stopped_proxy_starts_again_with_its_toxics(
    clients: list[redis.Redis], redis_addr: tuple[str, int]
) -> None:
    proxy = FaultProxy("redis", upstream=redis_addr)
    with proxy:
        proxy.add_toxic("reset_peer")
    with proxy:
        assert [toxic.type for toxic in proxy.toxics()] == ["reset_peer"]
        client = redis_via(proxy)
        clients.append(client)
        with pytest.raises(redis.ConnectionError):
            client.ping()


def test_an_unreachable_upstream_closes_the_client_connection(
    clients: list[redis.Redis],
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        unused = placeholder.getsockname()[1]
    with FaultProxy("nowhere", upstream=("127.0.0.1", unused)) as proxy:
        client = redis_via(proxy)
        clients.append(client)
        with pytest.raises(redis.ConnectionError):
            client.ping()
        wait_until(lambda: proxy.stats().active == 0, "the failed connection is gone")


def test_a_proxy_set_manages_postgres_and_redis_together(
    clients: list[redis.Redis], redis_addr: tuple[str, int], postgres_addr: tuple[str, int]
) -> None:
    threads_before = set(threading.enumerate())
    with ProxySet() as proxies:
        postgres = proxies.add("postgres", postgres_addr)
        cache = proxies.add("redis", redis_addr)
        assert proxies["redis"] is cache
        assert {proxy.name for proxy in proxies} == {"postgres", "redis"}
        with pytest.raises(FaultConfigError, match="already has a proxy named 'redis'"):
            proxies.add("redis", redis_addr)

        postgres.disable()
        cache.add_toxic("reset_peer")
        proxies.reset()
        assert postgres.enabled
        assert cache.toxics() == ()
        with postgres_via(postgres) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        client = redis_via(cache)
        clients.append(client)
        assert client.ping()
    assert set(threading.enumerate()) - threads_before == set()


def test_an_upstream_host_name_leaves_no_resolver_thread_behind(
    clients: list[redis.Redis], redis_addr: tuple[str, int]
) -> None:
    threads_before = set(threading.enumerate())
    with FaultProxy("redis", upstream=("localhost", redis_addr[1])) as proxy:
        client = redis_via(proxy)
        clients.append(client)
        assert client.ping()  # resolving "localhost" starts the loop's executor thread
    assert set(threading.enumerate()) - threads_before == set()


def test_a_running_proxy_cannot_start_twice_and_disabling_twice_drops_once(
    redis_proxy: FaultProxy, clients: list[redis.Redis]
) -> None:
    with pytest.raises(RuntimeError, match="'redis' is already running"):
        redis_proxy.start()
    client = redis_via(redis_proxy)
    clients.append(client)
    assert client.ping()
    redis_proxy.disable()
    redis_proxy.disable()
    assert redis_proxy.stats().dropped == 1
