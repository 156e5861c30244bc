"""The schema of `reports/bench/<run-id>.json` and the targets its figures are judged by.

A figure is always a ratio of medians against a baseline timed in the same rounds, because
this shared 2-core machine is too noisy for absolute numbers to mean anything across runs.
`TARGETS` (issue 10's table) is the one place a target is written: the benchmark fixture
judges each result by it and the performance notebook lays its table out from it, so a row
whose benchmark did not run is shown as missing, with the reason, never dropped.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Measure = Literal["cost", "throughput"]
Clock = Literal["wall", "thread_cpu"]


class Stats(BaseModel):
    """Seconds per operation over the rounds (or, for `ratio_stats`, the per-round ratio)."""

    model_config = ConfigDict(frozen=True)

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        return cls(min=min(samples), median=statistics.median(samples), max=max(samples))


class Target(BaseModel):
    """`ratio <= value` for a cost (time per op), `ratio >= value` for a throughput."""

    model_config = ConfigDict(frozen=True)

    measure: Measure = "cost"
    op: Literal["<=", ">="] = "<="
    value: float

    def met_by(self, ratio: float) -> bool:
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


class BenchResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    subject: str
    baseline: str
    rounds: int
    iterations: int
    subject_stats: Stats
    baseline_stats: Stats
    measure: Measure
    ratio: float = Field(
        description="cost: subject median / baseline median; throughput: the inverse"
    )
    ratio_stats: Stats | None = Field(
        default=None, description="the same ratio taken round by round: its spread"
    )
    clock: Clock = Field(default="wall", description="what the samples timed (`Stopwatch`)")
    cpu_ratio: float | None = Field(
        default=None,
        description="a wall-clock pair's ratio of this thread's CPU time: the client's own work",
    )
    target: Target | None = None
    meets_target: bool | None = None


class ScalePoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    x: float
    seconds_per_op: Stats
    clock: Clock = "wall"


class ScaleCurve(BaseModel):
    """Cost per operation as one dimension grows (plotted on log axes)."""

    model_config = ConfigDict(frozen=True)

    name: str
    x_label: str
    operation: str
    points: tuple[ScalePoint, ...]


Container = Literal["TenantCache", "dict"]


class MemoryPoint(BaseModel):
    """RSS of a fresh process before building `tenants` tenants, after building them, and
    after inserting them into `container`."""

    model_config = ConfigDict(frozen=True)

    container: Container
    tenants: int
    rss_start: int
    rss_built: int
    rss_inserted: int

    @property
    def bytes_per_tenant(self) -> float:
        """The tenant and its place in the container."""
        return (self.rss_inserted - self.rss_start) / self.tenants

    @property
    def container_bytes_per_tenant(self) -> float:
        """The container's own cost per entry, the tenant objects left out."""
        return (self.rss_inserted - self.rss_built) / self.tenants


class NotMeasured(BaseModel):
    """A benchmark that ran no measurement this run: skipped or failed, and why."""

    model_config = ConfigDict(frozen=True)

    name: str
    outcome: Literal["skipped", "failed"]
    reason: str


class BenchRun(BaseModel):
    run_id: str
    created: datetime
    provenance: dict[str, Any]
    results: list[BenchResult]
    curves: list[ScaleCurve] = Field(default_factory=list)
    memory: list[MemoryPoint] = Field(default_factory=list)
    not_measured: list[NotMeasured] = Field(default_factory=list)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.run_id}.json"
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def read(cls, path: Path) -> BenchRun:
        return cls.model_validate_json(path.read_text())


RUN_FILE = re.compile(r"\d{8}T\d{6}Z-\w+\.json")
"""`<run-id>.json`; the other JSON in reports/bench (relay ramps, API latencies) is not a run."""


def read_runs(folder: Path) -> list[BenchRun]:
    """Every run in `folder`, oldest first."""
    runs = [BenchRun.read(path) for path in folder.glob("*.json") if RUN_FILE.fullmatch(path.name)]
    return sorted(runs, key=lambda run: run.created)


@dataclass(frozen=True)
class TargetRow:
    """One row of issue 10's table: the benchmark whose result it judges (its pytest node
    name, or the `name` it gives `paired`; a name without parameters also matches each
    parametrised case); `test`, the test that records it under a name of its own, whose skip
    or failure explains a missing row."""

    id: str
    path: str
    baseline: str
    target: Target
    benchmark: str
    ceiling: str | None = None  # a benchmark shown beside the row as the best one could do
    test: str | None = None

    def matches(self, name: str) -> bool:
        return name == self.benchmark or name.startswith(f"{self.benchmark}[")

    def explained_by(self, test: str) -> bool:
        return self.matches(test) or test == self.test


def _cost(at_most: float) -> Target:
    return Target(value=at_most)


def _rate(at_least: float) -> Target:
    return Target(measure="throughput", op=">=", value=at_least)


TARGETS: tuple[TargetRow, ...] = (
    TargetRow(
        "tenant_cache.async_hit",
        "TenantCache async hit",
        "async def returning raw moka-py get",
        _cost(1.5),
        "test_async_hit_against_a_raw_moka_get[recommended-target0]",
    ),
    TargetRow(
        "tenant_cache.sync_hit",
        "TenantCache sync hit",
        "raw moka-py get",
        _cost(2.0),
        "test_sync_hit_against_a_raw_moka_get[recommended-target0]",
    ),
    TargetRow(
        "tenant_cache.hit_vs_cachetools",
        "TenantCache hit",
        "cachetools TTLCache + lock",
        _cost(1.0),
        "test_sync_hit_against_cachetools_ttlcache_with_a_lock",
    ),
    TargetRow(
        "breaker.sync_closed",
        "breaker sync closed call",
        "pybreaker closed call",
        _cost(0.5),
        "test_sync_closed_call_against_pybreaker",
    ),
    TargetRow(
        "breaker.sync_rejection",
        "breaker sync rejection",
        "pybreaker rejection",
        _cost(0.5),
        "test_sync_rejection_against_pybreaker",
    ),
    TargetRow(
        "breaker.async_closed",
        "breaker async closed call",
        "purgatory async breaker",
        _cost(0.5),
        "test_async_closed_call_against_purgatory",
    ),
    TargetRow(
        "resilient_cache.get",
        "resilient cache get",
        "raw redis-py GET",
        _cost(1.2),
        "test_a_resilient_hit_against_a_raw_redis_get",
    ),
    TargetRow(
        "dispatcher.pre_validated",
        "dispatcher, pre-validated events",
        "bare asyncio.Queue",
        _rate(0.25),
        "test_dispatcher_throughput_against_a_bare_queue",
    ),
    TargetRow(
        "events.validation",
        "event validation",
        "raw pydantic model_validate",
        _cost(1.5),
        "test_validation_against_raw_pydantic_model_validate",
    ),
    TargetRow(
        "relay.throughput",
        "relay",
        "raw claim + pipelined XADD + mark",
        _rate(0.5),
        "test_relay_throughput_against_raw_psycopg_and_redis_py",
        ceiling="test_relay_throughput_against_the_pipelined_xadd_ceiling",
    ),
    TargetRow(
        "states.transition_check",
        "order transition check",
        "python-statemachine",
        _cost(1.0),
        "test_legal_transition_against_python_statemachine",
    ),
    TargetRow(
        "flags.warm",
        "flag evaluation, warm",
        "OpenFeature in-memory provider",
        _cost(1.0),
        "test_warm_cache_against_the_in_memory_provider_behind_the_sdk",
    ),
    TargetRow(
        "api.cached_get_rps",
        "API cached GET RPS",
        "hello through the same middleware",
        _rate(0.5),
        "api: cached product GET vs hello (same stack), requests/s",
        test="test_cached_product_get_against_hello_on_the_same_stack",
    ),
)


def target_row_for(name: str) -> TargetRow | None:
    """The row of `TARGETS` that judges the benchmark called `name`, if any."""
    return next((row for row in TARGETS if row.matches(name)), None)


@dataclass(frozen=True)
class RatioRow:
    """A target row as one run filled it: the result, or None with the reason."""

    row: TargetRow
    result: BenchResult | None
    ceiling: BenchResult | None
    missing_reason: str | None

    @property
    def meets_target(self) -> bool | None:
        return None if self.result is None else self.row.target.met_by(self.result.ratio)


def ratio_table(run: BenchRun, targets: Sequence[TargetRow] = TARGETS) -> list[RatioRow]:
    """Every target row, filled from `run`; a row with no result says why."""
    rows = []
    for row in targets:
        result = next((r for r in run.results if row.matches(r.name)), None)
        ceiling = next((r for r in run.results if r.name == row.ceiling), None)
        reason = None
        if result is None:
            reason = next(
                (f"{n.outcome}: {n.reason}" for n in run.not_measured if row.explained_by(n.name)),
                f"no benchmark named {row.benchmark} ran in this run",
            )
        rows.append(RatioRow(row, result, ceiling, reason))
    return rows


def untargeted(run: BenchRun, targets: Sequence[TargetRow] = TARGETS) -> list[BenchResult]:
    """The results no target row judges (peer comparisons, ceilings, new benchmarks)."""
    return [r for r in run.results if not any(row.matches(r.name) for row in targets)]


def compare(
    name: str,
    subject: str,
    baseline: str,
    subject_samples: list[float],
    baseline_samples: list[float],
    *,
    iterations: int,
    target: Target | None = None,
    clock: Clock = "wall",
    cpu_samples: tuple[list[float], list[float]] | None = None,
) -> BenchResult:
    """Turn interleaved per-op samples into a result with its ratio of medians; round r of
    each side ran next to the other's, so their ratio per round gives the spread.
    `cpu_samples`, this thread's CPU time of a wall-clock pair, gives `cpu_ratio`."""
    s, b = Stats.of(subject_samples), Stats.of(baseline_samples)
    measure: Measure = target.measure if target else "cost"

    def ratio_of(sub: float, base: float) -> float:
        return sub / base if measure == "cost" else base / sub

    ratio = ratio_of(s.median, b.median)
    per_round = list(map(ratio_of, subject_samples, baseline_samples))
    cpu_ratio = None
    if cpu_samples is not None and clock == "wall" and min(map(statistics.median, cpu_samples)):
        cpu_ratio = ratio_of(*map(statistics.median, cpu_samples))
    return BenchResult(
        name=name,
        subject=subject,
        baseline=baseline,
        rounds=len(subject_samples),
        iterations=iterations,
        subject_stats=s,
        baseline_stats=b,
        measure=measure,
        ratio=ratio,
        ratio_stats=Stats.of(per_round),
        clock=clock,
        cpu_ratio=cpu_ratio,
        target=target,
        meets_target=None if target is None else target.met_by(ratio),
    )
