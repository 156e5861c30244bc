"""P1.1.eviction: the entries the recommended tenant cache holds against its capacity."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rustok_ref.lab import infra
from rustok_ref.lab.experiments import tenant_cache as tc


def test_entries_above_is_the_worst_overshoot_and_never_negative() -> None:
    assert tc.entries_above([1, 2, 3, 3], 3) == 0
    assert tc.entries_above([1, 5, 4], 3) == 2
    assert tc.entries_above([], 3) == 0


@pytest.fixture
async def lab(run_ns: infra.RunNamespace) -> AsyncIterator[tc.Lab]:
    opened = await tc.Lab.open(run_ns.database_url, run_ns.redis_url, run_ns.redis_prefix, 12)
    yield opened
    await opened.close()


@pytest.mark.integration
async def test_the_recommended_cache_never_holds_more_than_its_capacity(lab: tc.Lab) -> None:
    held = await lab.held_entries(capacity=4)
    assert len(held) == 12
    assert held[:4] == [1, 2, 3, 4]
    assert tc.entries_above(held, 4) == 0
