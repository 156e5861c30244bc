"""The load driver's wait for /readyz: it waits as long as the relay's backlog shrinks,
gives up once it stalls, and keeps the last refusal. A loopback HTTP server plays /readyz
from a script of answers (the wait's logic, not the API, is under test here)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rustok_ref.lab.load_settle import wait_until_ready


def _refusal(pending: int) -> dict[str, Any]:
    lag = {"ok": False, "pending": pending, "oldest_pending_s": 99.0, "max_s": 30.0}
    return {"status": "not_ready", "failing": ["relay_lag"], "checks": {"relay_lag": lag}}


def _ready(pending: int) -> dict[str, Any]:
    lag = {"ok": True, "pending": pending, "oldest_pending_s": 1.0, "max_s": 30.0}
    return {"status": "ready", "failing": [], "checks": {"relay_lag": lag}}


class ScriptedReadyz(ThreadingHTTPServer):
    """Answers /readyz with the script's next (status, body), repeating the last one."""

    def __init__(self, script: Sequence[tuple[int, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script)
        self.asked = 0

    def next_answer(self) -> tuple[int, Any]:
        answer = self.script[min(self.asked, len(self.script) - 1)]
        self.asked += 1
        return answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedReadyz

    def do_GET(self) -> None:
        status, body = self.server.next_answer()
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ScriptedReadyz] = []

    def start(script: Sequence[tuple[int, Any]]) -> ScriptedReadyz:
        server = ScriptedReadyz(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_waits_past_the_stall_bound_while_the_backlog_shrinks(serve: Any) -> None:
    backlog = [(503, _refusal(pending)) for pending in range(900, 0, -100)]
    server = serve([*backlog, (200, {"status": "ready"})])
    said: list[str] = []
    settled = wait_until_ready(server.url, said.append, stall_s=0.05, limit_s=60, poll_s=0.01)
    assert settled.ready and settled.refusal is None
    assert server.asked == len(backlog) + 1  # nine refusals, each with progress, then ready


def test_ready_with_a_backlog_left_is_not_settled(serve: Any) -> None:
    """/readyz is 200 once the oldest event is young enough; the seed is not published yet."""
    draining = [(200, _ready(pending)) for pending in (3000, 1200, 40)]
    server = serve([(503, _refusal(9000)), *draining, (200, _ready(0))])
    settled = wait_until_ready(server.url, lambda _: None, stall_s=5, limit_s=60, poll_s=0.01)
    assert settled.ready
    assert server.asked == 5


def test_gives_up_when_the_backlog_stops_shrinking_and_keeps_the_refusal(serve: Any) -> None:
    server = serve([(503, _refusal(500)), (503, _refusal(400))])  # then 400 for ever
    settled = wait_until_ready(server.url, lambda _: None, stall_s=0.3, limit_s=60, poll_s=0.01)
    assert not settled.ready
    assert settled.refusal == _refusal(400)
    assert 0.3 <= settled.seconds < 60


def test_the_whole_wait_is_bounded_even_with_progress(serve: Any) -> None:
    server = serve([(503, _refusal(pending)) for pending in range(100_000, 0, -1)])
    settled = wait_until_ready(server.url, lambda _: None, stall_s=60, limit_s=0.3, poll_s=0.01)
    assert not settled.ready
    assert settled.seconds >= 0.3
    assert _refusal(1) != settled.refusal  # stopped long before the backlog ran out


def test_a_refusal_without_a_backlog_is_a_stall(serve: Any) -> None:
    refusal = {"status": "not_ready", "failing": ["dead_letters"], "checks": {}}
    server = serve([(503, refusal)])
    settled = wait_until_ready(server.url, lambda _: None, stall_s=0.2, limit_s=60, poll_s=0.01)
    assert settled.refusal == refusal


def test_a_server_that_never_answers_is_reported() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as closed:
        url = f"http://127.0.0.1:{closed.server_address[1]}"  # bound, closed below: refuses
    settled = wait_until_ready(url, lambda _: None, stall_s=0.2, limit_s=60, poll_s=0.01)
    assert settled.refusal is not None
    assert "did not answer" in settled.refusal["error"]
