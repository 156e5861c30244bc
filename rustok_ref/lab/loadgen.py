"""A small HTTP/1.1 load generator in its own process, so the client's CPU is not the
measuring process's and a slow client does not pass for a slow server.

Raw keep-alive connections over asyncio streams (a request is pre-encoded bytes; a response
is read by Content-Length or chunks), because httpx spends more CPU per request than a
small API handler does and would be the bottleneck; `client: "httpx"` runs the same batch
through httpx to measure exactly that.

`LoadGen(base_url)` starts `python -m rustok_ref.lab.loadgen`, which reads one JSON command
per stdin line and answers one JSON line (see `Batch` and `BatchResult`). Connections stay
open between commands, so a batch times requests, not connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = ["Batch", "BatchResult", "LoadGen", "Request"]

Sender = Callable[[int], Awaitable[int]]
"""Sends request number n, answers its status."""


class Request(BaseModel):
    model_config = ConfigDict(frozen=True)

    method: str = "GET"
    path: str
    body: Any = None
    """A JSON body (sent with Content-Type: application/json), or None."""


class Batch(BaseModel):
    """`count` requests cycling through `requests`, from `concurrency` connections."""

    requests: list[Request]
    count: int
    concurrency: int = 1
    headers: dict[str, str] = {}
    client: Literal["raw", "httpx"] = "raw"


class BatchResult(BaseModel):
    elapsed_s: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]


@dataclass
class _Connection:
    host: str
    port: int
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def exchange(self, payload: bytes) -> int:
        """Send one request and read its whole response; reconnect once if the server
        closed the idle connection before answering."""
        for attempt in (1, 2):
            if self.writer is None or self.writer.is_closing():
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(payload)
            try:
                return await _read_response(self.reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.writer.close()
                self.writer = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status
        await reader.readexactly(size + 2)


def _encode(host: str, request: Request, headers: Mapping[str, str]) -> bytes:
    body = b"" if request.body is None else json.dumps(request.body).encode()
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if request.body is not None:
        lines += ["Content-Type: application/json"]
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


@dataclass
class _Generator:
    base_url: str
    pool: list[_Connection] = field(default_factory=list)

    async def run(self, batch: Batch) -> BatchResult:
        if batch.client == "httpx":
            return await self._run_httpx(batch)
        url = urlsplit(self.base_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        while len(self.pool) < batch.concurrency:
            self.pool.append(_Connection(host, port))
        payloads = [_encode(url.netloc, request, batch.headers) for request in batch.requests]

        async def send(connection: _Connection, number: int) -> int:
            return await connection.exchange(payloads[number % len(payloads)])

        return await _drive(batch, [functools.partial(send, c) for c in self.pool])

    async def _run_httpx(self, batch: Batch) -> BatchResult:
        limits = httpx.Limits(max_connections=batch.concurrency)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=batch.headers, limits=limits
        ) as client:

            async def send(number: int) -> int:
                request = batch.requests[number % len(batch.requests)]
                answer = await client.request(request.method, request.path, json=request.body)
                return answer.status_code

            await send(0)  # connect outside the timing, as the raw pool does
            return await _drive(batch, [send] * batch.concurrency)

    def close(self) -> None:
        for connection in self.pool:
            connection.close()


async def _drive(batch: Batch, senders: Sequence[Sender]) -> BatchResult:
    """Run `batch.count` requests over the first `batch.concurrency` senders."""
    latencies = np.zeros(batch.count)
    statuses: dict[str, int] = {}
    issued = iter(range(batch.count))

    async def worker(send: Sender) -> None:
        for number in issued:
            start = time.perf_counter()
            status = await send(number)
            latencies[number] = time.perf_counter() - start
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(worker(send) for send in senders[: batch.concurrency]))
    elapsed = time.perf_counter() - began
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return BatchResult(
        elapsed_s=elapsed,
        requests=batch.count,
        rps=batch.count / elapsed,
        p50_ms=float(p50),
        p99_ms=float(p99),
        statuses=statuses,
    )


async def _serve(base_url: str) -> None:
    generator = _Generator(base_url)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            result = await generator.run(Batch.model_validate_json(line))
            sys.stdout.write(result.model_dump_json() + "\n")
            sys.stdout.flush()
    finally:
        generator.close()


class LoadGen:
    """The client side: `with LoadGen(url) as gen: gen.run(Batch(...))`."""

    def __init__(self, base_url: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "rustok_ref.lab.loadgen", base_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, batch: Batch) -> BatchResult:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(batch.model_dump_json() + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited with {self._process.wait()}")
        return BatchResult.model_validate_json(line)

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> LoadGen:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sys.argv[1]))
