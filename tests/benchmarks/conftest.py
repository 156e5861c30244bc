"""Benchmark machinery: the `paired` fixture and the `round_trips` counter.

`paired` times a subject and its baseline interleaved in the same rounds (alternating which
goes first) and reports the ratio of medians, the only figure this noisy shared machine can
support. Async benchmarks time N iterations inside the one running loop. Under
`--benchmark-disable` (as in `make test`) each callable runs once, so benchmarks cannot rot.
Results go to `reports/bench/<run-id>.json` (schema: `rustok_ref.lab.benchrecord`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rustok_ref.lab.benchrecord import BenchResult, BenchRun, Target, compare
from rustok_ref.lab.provenance import collect_provenance
from rustok_ref.lab.roundtrips import RoundTrips

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "bench"
_RESULTS: list[BenchResult] = []


class Paired:
    def __init__(self, node: str, enabled: bool) -> None:
        self.node = node
        self.enabled = enabled

    def sync(
        self,
        subject: Callable[[], object],
        baseline: Callable[[], object],
        *,
        name: str | None = None,
        labels: tuple[str, str] | None = None,
        target: Target | None = None,
        rounds: int = 25,
        iterations: int = 500,
    ) -> BenchResult | None:
        if not self.enabled:
            subject(), baseline()
            return None
        samples: tuple[list[float], list[float]] = ([], [])
        pair = (subject, baseline)
        for r in range(rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for side in order:
                fn = pair[side]
                start = time.perf_counter()
                for _ in range(iterations):
                    fn()
                samples[side].append((time.perf_counter() - start) / iterations)
        return self._record(name, labels, subject, baseline, samples, iterations, target)

    async def async_(
        self,
        subject: Callable[[], Awaitable[object]],
        baseline: Callable[[], Awaitable[object]],
        *,
        name: str | None = None,
        labels: tuple[str, str] | None = None,
        target: Target | None = None,
        rounds: int = 25,
        iterations: int = 200,
    ) -> BenchResult | None:
        if not self.enabled:
            await subject()
            await baseline()
            return None
        samples: tuple[list[float], list[float]] = ([], [])
        pair = (subject, baseline)
        for r in range(rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for side in order:
                fn = pair[side]
                start = time.perf_counter()
                for _ in range(iterations):
                    await fn()
                samples[side].append((time.perf_counter() - start) / iterations)
        return self._record(name, labels, subject, baseline, samples, iterations, target)

    def _record(
        self,
        name: str | None,
        labels: tuple[str, str] | None,
        subject: Callable[..., Any],
        baseline: Callable[..., Any],
        samples: tuple[list[float], list[float]],
        iterations: int,
        target: Target | None,
    ) -> BenchResult:
        subject_label, baseline_label = labels or (_label(subject), _label(baseline))
        result = compare(
            name or self.node,
            subject_label,
            baseline_label,
            samples[0],
            samples[1],
            iterations=iterations,
            target=target,
        )
        _RESULTS.append(result)
        return result


def _label(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))


@pytest.fixture
def paired(request: pytest.FixtureRequest) -> Paired:
    enabled = not request.config.getoption("benchmark_disable", default=False)
    return Paired(request.node.name, enabled)


@pytest.fixture
def round_trips() -> Iterator[RoundTrips]:
    trips = RoundTrips()
    yield trips
    trips.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _RESULTS:
        return
    created = datetime.now(UTC)
    provenance = collect_provenance(
        database_url=None, redis_url=None, backend="n/a", profile="bench", parameters={}, seeds={}
    )
    run_id = f"{created:%Y%m%dT%H%M%SZ}-{provenance.git_sha[:7]}"
    run = BenchRun(
        run_id=run_id,
        created=created,
        provenance=provenance.model_dump(mode="json"),
        results=list(_RESULTS),
    )
    path = run.write(REPORTS)
    session.config.pluginmanager.get_plugin("terminalreporter").write_line(f"bench results: {path}")
