"""The tenant cache experiment: its pure helpers, and its measurements on the real database
and Redis at small sizes (integration)."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rustok_ref.lab import infra
from rustok_ref.lab.codemetrics import measure
from rustok_ref.lab.experiments import tenant_cache as tc
from rustok_ref.lab.paths import REPO_ROOT


def test_zipf_requests_are_seeded_and_favour_the_first_ranks() -> None:
    identifiers = tc.unknown_identifiers(20)
    drawn = tc.zipf_requests(identifiers, 2_000, 1.2, seed=7)
    assert drawn == tc.zipf_requests(identifiers, 2_000, 1.2, seed=7)
    counts = collections.Counter(drawn)
    assert counts[identifiers[0]] > counts[identifiers[-1]]
    with pytest.raises(ValueError, match="no identifiers"):
        tc.zipf_requests([], 1, 1.0, seed=1)


def test_interleave_keeps_every_identifier() -> None:
    known, unknown = tc.unknown_identifiers(5, "k"), tc.unknown_identifiers(3)
    merged = tc.interleave_unknown(known, unknown, seed=3)
    assert sorted(map(str, merged)) == sorted(map(str, [*known, *unknown]))


def test_change_percent() -> None:
    assert tc.change_percent(580, 150) == pytest.approx(-74.1, abs=0.1)
    assert tc.change_percent(100, 150) == 50.0
    with pytest.raises(ValueError, match="positive"):
        tc.change_percent(0, 1)


def test_lines_of_code_counts_each_variant() -> None:
    counts = tc.lines_of_code(REPO_ROOT / "rustok_ref" / "tenancy")
    assert set(counts) == {*tc.VARIANT_FILES, "shared (interface, invalidation, model)"}
    assert all(count > 0 for count in counts.values())


def test_rustok_cache_lines_finds_both_files(tmp_path: Path) -> None:
    middleware = tmp_path / "apps" / "server" / "src" / "middleware"
    middleware.mkdir(parents=True)
    (middleware / "tenant.rs").write_text("fn a() {}\n" * 3)
    assert tc.rustok_cache_lines(measure(tmp_path)) == {
        "hand-written (middleware/tenant.rs)": 3,
        "moka-based (tenant_cache_v2.rs)": None,
    }


@pytest.fixture
async def lab(run_ns: infra.RunNamespace) -> AsyncIterator[tc.Lab]:
    opened = await tc.Lab.open(run_ns.database_url, run_ns.redis_url, run_ns.redis_prefix, 5)
    yield opened
    await opened.close()


@pytest.mark.integration
async def test_the_measurements_show_each_variant_as_it_is(lab: tc.Lab) -> None:
    known = lab.known()
    for variant in tc.VARIANTS:
        loads = await lab.stampede(variant, known[0], 50)
        assert (loads.calls, loads.database_loads) == (1, 1)
    nobody = tc.unknown_identifiers(1)[0]
    assert (await lab.stampede("v1", nobody, 20)).calls == 20
    assert (await lab.stampede("recommended", nobody, 20)).calls == 1
    flood = await lab.flood("sketch", tc.unknown_identifiers(10), 3)
    assert [loads.calls for loads in flood] == [10, 20, 30]
    assert [
        loads.calls for loads in await lab.flood("recommended", tc.unknown_identifiers(10), 3)
    ] == [10] * 3
    requests = tc.zipf_requests(known, 100, 1.0, seed=1)
    ratios = await lab.hit_ratio("recommended", requests, 50)
    assert len(ratios) == 2 and ratios[1] == 1.0
    timings = await lab.hit_path(10)
    assert set(timings) == {"raw moka get", *tc.VARIANTS}
    assert all(len(values) == 10 for values in timings.values())
    delays = await lab.invalidation_delays(5)
    assert len(delays) == 5 and all(delay > 0 for delay in delays)
    assert await lab.parallel_run([*requests, nobody], 10, seed=2) == (0, 101)
    assert await lab.repeated_unknown("sketch", 5) == 5
    assert await lab.repeated_unknown("recommended", 5) == 1
