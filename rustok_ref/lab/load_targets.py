"""The fault targets and rollbacks that belong to a load run (the proxies and providers are
in `lab/timeline.py`): the relay process, killed and restarted, and the API's caches, flushed
through its admin endpoint. Also the admin client both of them, the providers and the
outbox check use.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import httpx

from rustok_ref.lab.load_processes import ManagedProcess
from rustok_ref.lab.timeline import Fault, FaultTargetError


def admin_client(api_url: str, headers: dict[str, str], timeout_s: float = 10.0) -> httpx.Client:
    return httpx.Client(base_url=api_url.rstrip("/"), headers=headers, timeout=timeout_s)


def admin_post(client: httpx.Client, path: str) -> httpx.Response:
    """POST an admin action; FaultTargetError when it does not succeed."""
    try:
        response = client.post(path)
    except httpx.HTTPError as exc:
        raise FaultTargetError(f"POST {path}: {exc}") from exc
    if response.is_error:
        raise FaultTargetError(f"POST {path}: HTTP {response.status_code} {response.text[:200]}")
    return response


class RelayTarget:
    """`relay/down`: the workers process is killed (SIGKILL: a crash, not a shutdown) at the
    start and a new one started at the end."""

    def __init__(self, current: Callable[[], ManagedProcess], restart: Callable[[], None]) -> None:
        self._current = current
        self._restart = restart

    def apply(self, fault: Fault) -> None:
        relay = self._current()
        if not relay.alive():
            raise FaultTargetError("the relay is not running")
        relay.stop(timeout_s=5.0, signum=signal.SIGKILL)

    def remove(self, fault: Fault) -> None:
        self._restart()


class CacheFlushTarget:
    """`tenant_cache/flush`: the API's caches emptied at once (an instant fault)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def apply(self, fault: Fault) -> None:
        admin_post(self._client, "/admin/caches/flush")

    def remove(self, fault: Fault) -> None:
        """Nothing to undo: the caches refill from traffic."""
