"""The schema of `reports/bench/<run-id>.json`: paired measurements, ratios and targets.

A figure is always a ratio of medians against a baseline timed in the same rounds, because
this shared 2-core machine is too noisy for absolute numbers to mean anything across runs.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Measure = Literal["cost", "throughput"]


class Stats(BaseModel):
    """Seconds per operation over the rounds."""

    model_config = ConfigDict(frozen=True)

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        return cls(min=min(samples), median=statistics.median(samples), max=max(samples))


class Target(BaseModel):
    """`ratio <= value` for a cost (time per op), `ratio >= value` for a throughput."""

    model_config = ConfigDict(frozen=True)

    measure: Measure = "cost"
    op: Literal["<=", ">="] = "<="
    value: float

    def met_by(self, ratio: float) -> bool:
        return ratio <= self.value if self.op == "<=" else ratio >= self.value


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
    target: Target | None = None
    meets_target: bool | None = None


class BenchRun(BaseModel):
    run_id: str
    created: datetime
    provenance: dict[str, Any]
    results: list[BenchResult]

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.run_id}.json"
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def read(cls, path: Path) -> BenchRun:
        return cls.model_validate_json(path.read_text())


def compare(
    name: str,
    subject: str,
    baseline: str,
    subject_samples: list[float],
    baseline_samples: list[float],
    *,
    iterations: int,
    target: Target | None = None,
) -> BenchResult:
    """Turn interleaved per-op samples into a result with its ratio of medians."""
    s, b = Stats.of(subject_samples), Stats.of(baseline_samples)
    measure: Measure = target.measure if target else "cost"
    ratio = s.median / b.median if measure == "cost" else b.median / s.median
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
        target=target,
        meets_target=None if target is None else target.met_by(ratio),
    )
