"""Fixtures the integration tests share, built from `tests/support.py`: a fake clock and a
fault proxy in front of the run's Redis. A module that needs another kind defines its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import FakeClock, redis_proxy_for

from rustok_ref.lab import infra
from rustok_ref.lab.faults import FaultProxy


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test sets or advances it."""
    return FakeClock()


@pytest.fixture
def redis_proxy(services: infra.Services) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's Redis, closed after the test."""
    with redis_proxy_for(services.redis_url) as proxy:
        yield proxy
