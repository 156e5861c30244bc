"""An in-process TCP fault proxy in front of PostgreSQL and Redis, in Toxiproxy's vocabulary.

Why we wrote it: scenarios and tests need outages, latency and resets between the library
and its real services. Toxiproxy (Shopify) is the usual tool, but it is a Go binary whose
install downloads a prebuilt release, which this project's machines cannot do. The Python
packages near it are clients of Toxiproxy's HTTP API (toxiproxy-python, the Chaos Toolkit
driver) and need that binary; the Toxiproxy-like server bundled in p2pd, a peer-to-peer
networking library, shares one upstream connection between all clients and counts nothing.
No maintained Python library gives an in-process proxy with these toxics and per-proxy
counters, so this module is one.

The vocabulary is Toxiproxy's, so that a real Toxiproxy can replace it: a proxy has a `name`,
a `listen` and an `upstream` address and an `enabled` flag; a toxic has a `name` (by default
`<type>_<stream>`), a `type`, a `stream` (`upstream`: client to server; `downstream`: server
to client, the default), a `toxicity` (the probability that a connection gets it, drawn once
per connection and toxic from an injectable `random.Random`, which also draws the jitter and
the slice sizes) and integer `attributes`:

- `latency`: every chunk is delivered `latency` ms after the proxy read it, plus or minus up
  to `jitter` ms drawn per chunk (chunks keep their order);
- `bandwidth`: the stream is held to `rate` KB/s (1 KB = 1000 bytes, as Toxiproxy counts; 0:
  no limit), a chunk worth more than 100 ms being delivered in 100 ms slices;
- `slicer`: each chunk is written in slices of `average_size` bytes, plus or minus up to
  `size_variation`, each after a pause of `delay` µs (`average_size` 0 leaves chunks
  whole, where Toxiproxy's recursion would never end);
- `timeout`: data is dropped, never delivered; with `timeout` > 0 the connection is closed
  after that many ms without data (0 holds it until the toxic is removed);
- `reset_peer`: on the first chunk, wait `timeout` ms, then close with a TCP RST
  (SO_LINGER 0) the connection the stream writes to (the client's, for `downstream`).

Down is not a toxic but the proxy's `enabled` flag, as in Toxiproxy: `disable()` drops every
live connection and refuses new ones until `enable()`. One difference: a disabled Toxiproxy
closes its listener, whereas this proxy keeps its port and resets each new connection at once,
counting it in `ProxyStats.refused`. Clients get a connection error either way; here the port
never changes and the attempts made during an outage are counted, which is how a test proves
that a circuit breaker stopped calling.

The proxy's event loop runs in its own daemon thread, so sync clients (redis-py, psycopg) in
the calling thread cannot deadlock it. The control methods are thread-safe and return once the
change is in effect on live connections. A new toxic type is one small class added to
`TOXIC_TYPES`: it transforms one chunk in `pipe()` and, to split chunks, says into which sizes
in `slice_sizes()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import socket
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Literal, ParamSpec, Self

Stream = Literal["upstream", "downstream"]
STREAMS: tuple[Stream, ...] = ("upstream", "downstream")
Address = tuple[str, int]
LOOPBACK = "127.0.0.1"

_CHUNK_BYTES = 64 * 1024
_QUEUED_CHUNKS = 32  # per direction: beyond this, the proxy stops reading (TCP backpressure)
_CONTROL_TIMEOUT_S = 10.0  # how long a control call or stop() may wait for the proxy's thread

_P = ParamSpec("_P")


class FaultConfigError(ValueError):
    """A proxy or toxic definition that cannot work; the message says why."""


@dataclass(frozen=True)
class Chunk:
    """Bytes read from one side of a connection, stamped with the loop time of the read."""

    data: bytes
    read_at: float


@dataclass(frozen=True, kw_only=True)
class Toxic(ABC):
    """A fault acting on one direction of a proxy's connections (Toxiproxy's toxic).

    A subclass sets `type` and declares its attributes as int fields defaulting to 0, as
    Toxiproxy's do; every attribute must be a whole number >= 0.
    """

    type: ClassVar[str]
    name: str
    stream: Stream = "downstream"
    toxicity: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise FaultConfigError(
                f"{self.type} toxic: name must be a non-empty string, got {self.name!r}"
            )
        where = f"{self.type} toxic {self.name!r}"
        if self.stream not in STREAMS:
            raise FaultConfigError(
                f"{where}: stream must be 'upstream' (client to server) or 'downstream' "
                f"(server to client), got {self.stream!r}"
            )
        toxicity: object = self.toxicity
        if isinstance(toxicity, bool) or not isinstance(toxicity, int | float):
            raise FaultConfigError(f"{where}: toxicity must be a number, got {toxicity!r}")
        if not 0.0 <= toxicity <= 1.0:
            raise FaultConfigError(
                f"{where}: toxicity is the probability that a connection gets the toxic, "
                f"from 0 to 1; got {toxicity!r}"
            )
        for key, value in self.attributes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FaultConfigError(
                    f"{where}: attribute {key!r} must be a whole number >= 0, got {value!r}"
                )

    @property
    def attributes(self) -> dict[str, int]:
        """The type-specific settings, as Toxiproxy's `attributes` object."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _COMMON_FIELDS
        }

    def rolls(self, rng: random.Random) -> bool:
        """Draw whether a connection gets this toxic: one draw per connection and toxic."""
        return rng.random() < self.toxicity

    def attach(self, flow: Flow) -> None:  # noqa: B027 (a hook most toxics leave empty)
        """Called when the toxic starts acting on a flow; nothing to do by default."""

    def slice_sizes(self, length: int, rng: random.Random) -> list[int]:
        """The sizes a chunk of `length` bytes is split into before piping; whole by default."""
        return [length]

    async def pieces(self, chunk: Chunk, flow: Flow) -> AsyncIterator[Chunk]:
        """What the toxic passes on for one chunk: each slice of it, through pipe()."""
        sizes = self.slice_sizes(len(chunk.data), flow.rng)
        slices = [chunk] if len(sizes) == 1 else list(_slices(chunk, sizes))
        for piece in slices:
            piped = await self.pipe(piece, flow)
            if piped is not None:
                yield piped

    @abstractmethod
    async def pipe(self, chunk: Chunk, flow: Flow) -> Chunk | None:
        """Pass a chunk on (possibly later), or return None to deliver nothing."""


def _slices(chunk: Chunk, sizes: list[int]) -> Iterator[Chunk]:
    start = 0
    for size in sizes:
        yield Chunk(chunk.data[start : start + size], chunk.read_at)
        start += size


_COMMON_FIELDS = frozenset(f.name for f in dataclasses.fields(Toxic))


@dataclass(frozen=True, kw_only=True)
class LatencyToxic(Toxic):
    """Delivers every chunk `latency` ms after the proxy read it, ± up to `jitter` ms."""

    type: ClassVar[str] = "latency"
    latency: int = 0
    jitter: int = 0

    def delay_ms(self, rng: random.Random) -> int:
        """This chunk's delay: `latency` plus a whole number of ms drawn from ±`jitter`."""
        return self.latency + (rng.randint(-self.jitter, self.jitter) if self.jitter else 0)

    async def pipe(self, chunk: Chunk, flow: Flow) -> Chunk | None:
        due = chunk.read_at + self.delay_ms(flow.rng) / 1000
        await asyncio.sleep(due - asyncio.get_running_loop().time())
        return chunk


@dataclass(frozen=True, kw_only=True)
class TimeoutToxic(Toxic):
    """Drops all data; closes the connection after `timeout` ms without data (0: never)."""

    type: ClassVar[str] = "timeout"
    timeout: int = 0

    def attach(self, flow: Flow) -> None:
        self._arm(flow)

    async def pipe(self, chunk: Chunk, flow: Flow) -> Chunk | None:
        self._arm(flow)
        return None

    def _arm(self, flow: Flow) -> None:
        if self.timeout:
            flow.call_later(self.name, self.timeout / 1000, flow.close)


@dataclass(frozen=True, kw_only=True)
class ResetPeerToxic(Toxic):
    """On the first chunk, waits `timeout` ms, then resets the connection (TCP RST)."""

    type: ClassVar[str] = "reset_peer"
    timeout: int = 0

    async def pipe(self, chunk: Chunk, flow: Flow) -> Chunk | None:
        await asyncio.sleep(self.timeout / 1000)
        flow.reset()
        return None


@dataclass(frozen=True, kw_only=True)
class BandwidthToxic(Toxic):
    """Holds the stream to `rate` KB/s (1 KB = 1000 bytes); 0 sets no limit."""

    type: ClassVar[str] = "bandwidth"
    rate: int = 0

    def slice_sizes(self, length: int, rng: random.Random) -> list[int]:
        per_100ms = self.rate * 100  # bytes: rate KB/s x 1000 B/KB x 0.1 s
        if not per_100ms or length <= per_100ms:
            return [length]
        whole, rest = divmod(length, per_100ms)
        return [per_100ms] * whole + ([rest] if rest else [])

    async def pipe(self, chunk: Chunk, flow: Flow) -> Chunk | None:
        if self.rate:
            await asyncio.sleep(len(chunk.data) / (self.rate * 1000))
        return chunk


@dataclass(frozen=True, kw_only=True)
class SlicerToxic(Toxic):
    """Writes each chunk in slices of `average_size` ± `size_variation` bytes, `delay` µs apart."""

    type: ClassVar[str] = "slicer"
    average_size: int = 0
    size_variation: int = 0
    delay: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size_variation > self.average_size:
            raise FaultConfigError(
                f"slicer toxic {self.name!r}: size_variation ({self.size_variation}) must not "
                f"exceed average_size ({self.average_size})"
            )

    def slice_sizes(self, length: int, rng: random.Random) -> list[int]:
        if not self.average_size:
            return [length]
        sizes: list[int] = []
        left = length
        while left:
            variation = self.size_variation
            wobble = rng.randint(-variation, variation) if variation else 0
            size = min(left, max(1, self.average_size + wobble))
            sizes.append(size)
            left -= size
        return sizes

    async def pipe(self, chunk: Chunk, flow: Flow) -> Chunk | None:
        await asyncio.sleep(self.delay / 1_000_000)
        return chunk


TOXIC_TYPES: Mapping[str, type[Toxic]] = MappingProxyType(
    {
        cls.type: cls
        for cls in (LatencyToxic, TimeoutToxic, ResetPeerToxic, BandwidthToxic, SlicerToxic)
    }
)


def make_toxic(
    type: str,
    name: str | None = None,
    stream: Stream = "downstream",
    toxicity: float = 1.0,
    **attributes: int,
) -> Toxic:
    """Build a validated toxic from Toxiproxy's fields; the name defaults to `<type>_<stream>`."""
    toxic_class = TOXIC_TYPES.get(type)
    if toxic_class is None:
        raise FaultConfigError(
            f"unknown toxic type {type!r}; known types: {', '.join(sorted(TOXIC_TYPES))} "
            "(an outage is not a toxic: use disable() and enable(), the proxy's enabled flag)"
        )
    known = {f.name for f in dataclasses.fields(toxic_class)} - _COMMON_FIELDS
    unknown = sorted(set(attributes) - known)
    if unknown:
        raise FaultConfigError(
            f"{type} toxic: unknown attribute(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(known))}"
        )
    return toxic_class(
        name=f"{type}_{stream}" if name is None else name,
        stream=stream,
        toxicity=toxicity,
        **attributes,
    )


def _reset_on_close(sock: socket.socket) -> None:
    """Make the socket's close send a TCP RST instead of a FIN (SO_LINGER on, 0 s)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Flow:
    """One direction of one proxied connection: reads from one side, passes the chunks
    through the toxics attached to it and writes them to the other side (Toxiproxy's
    ToxicStub). Lives on the proxy's event loop."""

    def __init__(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_sent: Callable[[int], None],
        rng: random.Random,
    ) -> None:
        self._link = link
        self._reader = reader
        self._writer = writer
        self._on_sent = on_sent
        self.rng = rng  # the proxy's: toxics draw jitter and slice sizes from it
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(_QUEUED_CHUNKS)
        self._toxics: dict[str, Toxic] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # What toxics may do to a flow.

    def call_later(self, key: str, delay_s: float, callback: Callable[[], None]) -> None:
        """Run callback after delay_s, replacing the timer already set under this key."""
        self.cancel_timer(key)
        self._timers[key] = asyncio.get_running_loop().call_later(delay_s, callback)

    def close(self) -> None:
        """Close the whole connection, client and upstream sides."""
        self._link.close()

    def reset(self) -> None:
        """Reset (TCP RST) the side this flow writes to, then close the connection."""
        with contextlib.suppress(OSError):  # already closed: nothing left to reset
            _reset_on_close(self._writer.get_extra_info("socket"))
        self._writer.transport.abort()
        self._link.close()

    # What the proxy does with a flow.

    def attach(self, toxic: Toxic) -> None:
        self._toxics[toxic.name] = toxic
        toxic.attach(self)

    def detach(self, name: str) -> None:
        self._toxics.pop(name, None)
        self.cancel_timer(name)

    def cancel_timer(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def cancel_timers(self) -> None:
        for key in list(self._timers):
            self.cancel_timer(key)

    async def receive(self) -> None:
        """Queue what the source sends until EOF (a reset counts as EOF), then the end."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionError):
            while data := await self._reader.read(_CHUNK_BYTES):
                await self._queue.put(Chunk(data, loop.time()))
        await self._queue.put(None)

    async def deliver(self) -> None:
        """Write the queued chunks that the toxics let through, then forward the EOF."""
        while (chunk := await self._queue.get()) is not None:
            toxics = tuple(self._toxics.values())  # in the order they were added
            async for passed in self._through_toxics(chunk, toxics):
                self._on_sent(len(passed.data))  # counted before the peer can see the data
                self._writer.write(passed.data)
                await self._writer.drain()
        self._writer.write_eof()

    async def _through_toxics(
        self, chunk: Chunk, toxics: tuple[Toxic, ...]
    ) -> AsyncIterator[Chunk]:
        """Each piece the first toxic passes on goes through the others, in order."""
        if not toxics:
            yield chunk
            return
        async for piece in toxics[0].pieces(chunk, self):
            async for passed in self._through_toxics(piece, toxics[1:]):
                yield passed


class _Link:
    """One accepted client connection and its upstream connection, served by one task."""

    def __init__(
        self,
        client: socket.socket,
        serve: Callable[[_Link], Coroutine[Any, Any, None]],
        on_done: Callable[[_Link], None],
    ) -> None:
        self.client = client
        self.flows: dict[Stream, Flow] = {}
        self.task = asyncio.get_running_loop().create_task(serve(self))
        self.task.add_done_callback(lambda _: on_done(self))

    def close(self) -> None:
        self.task.cancel()

    async def pump(self) -> None:
        """Run both directions until both reached EOF or one failed."""
        tasks = [asyncio.create_task(flow.receive()) for flow in self.flows.values()]
        tasks += [asyncio.create_task(flow.deliver()) for flow in self.flows.values()]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of one proxy's counters since it was created."""

    accepted: int = 0  # connections accepted while enabled
    refused: int = 0  # new connections reset at once because the proxy was disabled
    dropped: int = 0  # live connections closed by disable()
    active: int = 0  # connections open now
    bytes_upstream: int = 0  # bytes sent to the upstream server, after toxics
    bytes_downstream: int = 0  # bytes sent to clients, after toxics
    writes_upstream: int = 0  # writes to the upstream server, after toxics (a slicer adds)
    writes_downstream: int = 0  # writes to clients, after toxics


@dataclass(frozen=True)
class _Runtime:
    """What exists while a proxy runs: its loop, thread and listening socket."""

    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    listener: socket.socket
    stop_requested: asyncio.Future[None]


def _check_address(what: str, address: Address, *, any_port: bool) -> None:
    host, port = address
    lowest = 0 if any_port else 1
    if not isinstance(host, str) or not host:
        raise FaultConfigError(f"{what}: host must be a non-empty string, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not lowest <= port <= 65535:
        raise FaultConfigError(f"{what}: port must be from {lowest} to 65535, got {port!r}")


class FaultProxy:
    """A TCP proxy from `listen` (127.0.0.1 only) to `upstream`, with toxics and counters.

    Use it as a context manager, or call `start()` and `stop()`. The control methods need a
    running proxy; toxics and the enabled flag survive a stop and a new start.
    """

    def __init__(
        self,
        name: str,
        upstream: Address = (LOOPBACK, 6379),
        listen: Address = (LOOPBACK, 0),
        *,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise FaultConfigError(f"a fault proxy needs a non-empty name, got {name!r}")
        _check_address(f"fault proxy {name!r} upstream", upstream, any_port=False)
        _check_address(f"fault proxy {name!r} listen", listen, any_port=True)
        if listen[0] != LOOPBACK:
            raise FaultConfigError(
                f"fault proxy {name!r}: listen host must be {LOOPBACK} (everything here "
                f"listens on loopback only), got {listen[0]!r}"
            )
        self.name = name
        self.upstream = upstream
        self.listen = listen
        self._rng = random.Random() if rng is None else rng
        self._lock = threading.Lock()  # guards _toxics, _stats and _runtime
        self._toxics: dict[str, Toxic] = {}
        self._stats = ProxyStats()
        self._runtime: _Runtime | None = None
        # Owned by the proxy's event loop thread:
        self._enabled = True
        self._links: set[_Link] = set()

    def __repr__(self) -> str:
        return f"FaultProxy({self.name!r}, upstream={self.upstream!r}, listen={self.listen!r})"

    # Life cycle.

    def start(self) -> Self:
        """Bind the listening socket and start serving in a new daemon thread."""
        with self._lock:
            if self._runtime is not None:
                raise RuntimeError(f"fault proxy {self.name!r} is already running")
            listener = socket.create_server(self.listen)
            listener.setblocking(False)
            loop = asyncio.new_event_loop()
            stop_requested = loop.create_future()
            thread = threading.Thread(
                target=self._run_loop,
                args=(loop, listener, stop_requested),
                name=f"fault-proxy:{self.name}",
                daemon=True,
            )
            self._runtime = _Runtime(loop, thread, listener, stop_requested)
        thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket, and end the proxy's thread."""
        with self._lock:
            runtime, self._runtime = self._runtime, None
        if runtime is None:
            return
        if runtime.thread.is_alive():
            runtime.loop.call_soon_threadsafe(runtime.stop_requested.set_result, None)
        runtime.thread.join(_CONTROL_TIMEOUT_S)
        if runtime.thread.is_alive():
            raise RuntimeError(
                f"fault proxy {self.name!r}: its thread did not stop within {_CONTROL_TIMEOUT_S} s"
            )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def listen_address(self) -> Address:
        """The address clients connect to (the real port when `listen` asked for port 0)."""
        host, port = self._running().listener.getsockname()[:2]
        return host, port

    @property
    def port(self) -> int:
        return self.listen_address[1]

    # Control.

    @property
    def enabled(self) -> bool:
        return self._enabled

    def disable(self) -> None:
        """Take the proxy down: drop every live connection and refuse new ones."""
        self._control(self._disable)

    def enable(self) -> None:
        """Bring the proxy back up."""
        self._control(self._enable)

    def add_toxic(
        self,
        type: str,
        name: str | None = None,
        stream: Stream = "downstream",
        toxicity: float = 1.0,
        **attributes: int,
    ) -> Toxic:
        """Add a toxic; it acts at once on live connections and on new ones, each drawing
        with probability `toxicity` whether it gets the toxic."""
        toxic = make_toxic(type, name, stream, toxicity, **attributes)
        self._control(self._add_toxic, toxic)
        return toxic

    def remove_toxic(self, name: str) -> None:
        self._control(self._remove_toxics, name)

    def clear_toxics(self) -> None:
        self._control(self._remove_toxics, None)

    def toxics(self) -> tuple[Toxic, ...]:
        """The toxics in place, in the order they were added."""
        with self._lock:
            return tuple(self._toxics.values())

    def stats(self) -> ProxyStats:
        with self._lock:
            return self._stats

    # Internals: everything below the control calls runs on the proxy's event loop.

    def _running(self) -> _Runtime:
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError(f"fault proxy {self.name!r} is not running; start() it first")
        return runtime

    def _control(
        self,
        operation: Callable[_P, Coroutine[Any, Any, None]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> None:
        """Run operation on the proxy's loop and wait until it is done."""
        loop = self._running().loop
        future = asyncio.run_coroutine_threadsafe(operation(*args, **kwargs), loop)
        future.result(_CONTROL_TIMEOUT_S)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            totals = {key: getattr(self._stats, key) + delta for key, delta in deltas.items()}
            self._stats = dataclasses.replace(self._stats, **totals)

    def _run_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        listener: socket.socket,
        stop_requested: asyncio.Future[None],
    ) -> None:
        try:
            loop.run_until_complete(self._serve_until_stopped(listener, stop_requested))
        finally:
            # An upstream host name is resolved in the default executor: join its threads.
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve_until_stopped(
        self, listener: socket.socket, stop_requested: asyncio.Future[None]
    ) -> None:
        accepting = asyncio.create_task(self._accept(listener))
        try:
            await stop_requested
        finally:
            accepting.cancel()
            await self._close_links()
            listener.close()
            with contextlib.suppress(asyncio.CancelledError):
                await accepting

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            client, _ = await loop.sock_accept(listener)
            # Counted first, so that a client never sees the effect before the count.
            if self._enabled:
                self._count(accepted=1, active=1)
                self._links.add(_Link(client, self._serve, self._forget))
            else:
                self._count(refused=1)
                _reset_on_close(client)
                client.close()

    def _forget(self, link: _Link) -> None:
        self._links.discard(link)
        link.client.close()  # the transport closed it already, unless it never got one
        self._count(active=-1)

    async def _serve(self, link: _Link) -> None:
        writers: list[asyncio.StreamWriter] = []
        try:
            # An unreachable upstream or a failed socket just closes the client's connection.
            with contextlib.suppress(OSError):
                client_reader, client_writer = await asyncio.open_connection(sock=link.client)
                writers.append(client_writer)
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
                writers.append(upstream_writer)
                link.flows = {
                    "upstream": Flow(
                        link,
                        client_reader,
                        upstream_writer,
                        lambda size: self._count(bytes_upstream=size, writes_upstream=1),
                        self._rng,
                    ),
                    "downstream": Flow(
                        link,
                        upstream_reader,
                        client_writer,
                        lambda size: self._count(bytes_downstream=size, writes_downstream=1),
                        self._rng,
                    ),
                }
                for toxic in self.toxics():
                    self._roll(link, toxic)
                await link.pump()
        finally:
            for flow in link.flows.values():
                flow.cancel_timers()
            for writer in writers:
                writer.transport.abort()

    def _roll(self, link: _Link, toxic: Toxic) -> None:
        if toxic.rolls(self._rng):
            link.flows[toxic.stream].attach(toxic)

    async def _close_links(self) -> int:
        tasks = [link.task for link in self._links]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def _disable(self) -> None:
        if self._enabled:
            self._enabled = False
            self._count(dropped=await self._close_links())

    async def _enable(self) -> None:
        self._enabled = True

    async def _add_toxic(self, toxic: Toxic) -> None:
        with self._lock:
            if toxic.name in self._toxics:
                raise FaultConfigError(
                    f"fault proxy {self.name!r} already has a toxic named {toxic.name!r}"
                )
            self._toxics[toxic.name] = toxic
        for link in self._links:
            if link.flows:  # links still connecting upstream roll when they are connected
                self._roll(link, toxic)

    async def _remove_toxics(self, name: str | None) -> None:
        """Remove the named toxic, or all of them when name is None."""
        with self._lock:
            if name is not None and name not in self._toxics:
                raise FaultConfigError(
                    f"fault proxy {self.name!r} has no toxic named {name!r}; "
                    f"it has: {', '.join(self._toxics) or 'none'}"
                )
            names = list(self._toxics) if name is None else [name]
            for removed in names:
                del self._toxics[removed]
        for link in self._links:
            for flow in link.flows.values():
                for removed in names:
                    flow.detach(removed)


class ProxySet:
    """Named fault proxies (e.g. `postgres` and `redis`) managed and stopped together."""

    def __init__(self) -> None:
        self._proxies: dict[str, FaultProxy] = {}

    def add(
        self,
        name: str,
        upstream: Address,
        listen: Address = (LOOPBACK, 0),
        *,
        rng: random.Random | None = None,
    ) -> FaultProxy:
        """Create and start a proxy under a new name."""
        if name in self._proxies:
            raise FaultConfigError(f"this proxy set already has a proxy named {name!r}")
        proxy = FaultProxy(name, upstream, listen, rng=rng).start()
        self._proxies[name] = proxy
        return proxy

    def __getitem__(self, name: str) -> FaultProxy:
        return self._proxies[name]

    def __iter__(self) -> Iterator[FaultProxy]:
        return iter(list(self._proxies.values()))

    def reset(self) -> None:
        """Toxiproxy's /reset: enable every proxy and remove every toxic."""
        for proxy in self:
            proxy.enable()
            proxy.clear_toxics()

    def stop(self) -> None:
        for proxy in self:
            proxy.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
