"""Benchmark machinery: the `paired` fixture and the `round_trips` counter.

`paired` times a subject and its baseline interleaved in the same rounds (alternating which
goes first) and reports the ratio of medians, the only figure this noisy shared machine can
support: on CPU time when both sides only compute, else on the wall (`lab.stopwatch` says
why). Async benchmarks time N iterations inside the one running loop. Under
`--benchmark-disable` (as in `make test`) each callable runs once, so benchmarks cannot rot.
Results go to `reports/bench/<run-id>.json` (schema: `rustok_ref.lab.benchrecord`): each
paired result judged by its row of `benchrecord.TARGETS` (the one place targets are written),
the scale curves and memory points recorded through `bench_record`, and each benchmark that
was skipped or failed, with its reason, so the report shows a missing row as missing.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rustok_ref.lab.benchrecord import (
    BenchResult,
    BenchRun,
    MemoryPoint,
    NotMeasured,
    ScaleCurve,
    Target,
    compare,
    target_row_for,
)
from rustok_ref.lab.provenance import collect_provenance
from rustok_ref.lab.roundtrips import RoundTrips
from rustok_ref.lab.stopwatch import Stopwatch, common_clock

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "bench"
_RESULTS: list[BenchResult] = []
_CURVES: list[ScaleCurve] = []
_MEMORY: list[MemoryPoint] = []
_NOT_MEASURED: list[NotMeasured] = []


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
        watches = Stopwatch(), Stopwatch()
        pair = (subject, baseline)
        for r in range(rounds):
            for side in (0, 1) if r % 2 == 0 else (1, 0):
                fn, watch = pair[side], watches[side]
                watch.start()
                for _ in range(iterations):
                    fn()
                watch.stop(iterations)
        return self._record(name, labels, subject, baseline, watches, iterations, target)

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
        watches = Stopwatch(), Stopwatch()
        pair = (subject, baseline)
        for r in range(rounds):
            for side in (0, 1) if r % 2 == 0 else (1, 0):
                fn, watch = pair[side], watches[side]
                watch.start()
                for _ in range(iterations):
                    await fn()
                watch.stop(iterations)
        return self._record(name, labels, subject, baseline, watches, iterations, target)

    def _record(
        self,
        name: str | None,
        labels: tuple[str, str] | None,
        subject: Callable[..., Any],
        baseline: Callable[..., Any],
        watches: tuple[Stopwatch, Stopwatch],
        iterations: int,
        target: Target | None,
    ) -> BenchResult:
        subject_label, baseline_label = labels or (_label(subject), _label(baseline))
        name = name or self.node
        row = target_row_for(name)
        clock = common_clock(*watches)
        result = compare(
            name,
            subject_label,
            baseline_label,
            watches[0].samples(clock),
            watches[1].samples(clock),
            iterations=iterations,
            target=row.target if row else target,
            clock=clock,
            cpu_samples=(watches[0].cpu, watches[1].cpu),
        )
        _RESULTS.append(result)
        return result


def _label(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", repr(fn))


@pytest.fixture
def paired(request: pytest.FixtureRequest) -> Paired:
    enabled = not request.config.getoption("benchmark_disable", default=False)
    return Paired(request.node.name, enabled)


class BenchRecord:
    """Where scale curves and memory points go; `enabled` is False under
    `--benchmark-disable`, when a benchmark runs at smoke size and records nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def curve(self, curve: ScaleCurve) -> None:
        if self.enabled:
            _CURVES.append(curve)

    def memory(self, point: MemoryPoint) -> None:
        if self.enabled:
            _MEMORY.append(point)


@pytest.fixture
def bench_record(request: pytest.FixtureRequest) -> BenchRecord:
    return BenchRecord(not request.config.getoption("benchmark_disable", default=False))


@pytest.fixture
def round_trips() -> Iterator[RoundTrips]:
    trips = RoundTrips()
    yield trips
    trips.close()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember each benchmark that measured nothing, and why."""
    if not (report.skipped or report.failed) or hasattr(report, "wasxfail"):
        return
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2]
    else:
        crash = getattr(report.longrepr, "reprcrash", None)
        reason = crash.message if crash else str(report.longrepr)
    name = report.nodeid.rpartition("::")[2]
    outcome = "skipped" if report.skipped else "failed"
    _NOT_MEASURED.append(NotMeasured(name=name, outcome=outcome, reason=reason[:300]))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not (_RESULTS or _CURVES or _MEMORY):
        return
    created = datetime.now(UTC)
    provenance = collect_provenance(
        database_url=os.environ.get("RUSTOK_DATABASE_URL"),
        redis_url=os.environ.get("RUSTOK_REDIS_URL"),
        backend=os.environ.get("RUSTOK_BACKEND", "auto"),
        profile="bench",
        parameters={},
        seeds={},
    )
    run_id = f"{created:%Y%m%dT%H%M%SZ}-{provenance.git_sha[:7]}"
    run = BenchRun(
        run_id=run_id,
        created=created,
        provenance=provenance.model_dump(mode="json"),
        results=list(_RESULTS),
        curves=list(_CURVES),
        memory=list(_MEMORY),
        not_measured=list(_NOT_MEASURED),
    )
    path = run.write(REPORTS)
    session.config.pluginmanager.get_plugin("terminalreporter").write_line(f"bench results: {path}")
