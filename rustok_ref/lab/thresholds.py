"""k6-style pass/fail thresholds for load runs (`p95 < 200ms`, `error_rate < 1%`,
`events_lost == 0`, `outbox_lag_p99 < 2s`, `rps >= 50`): parsed into metric, aggregation,
operator, value and unit, and evaluated against a run's measurements.

Why we wrote it: k6's threshold expressions are parsed inside k6 itself (Go), and no Python
library parses them; Locust has no thresholds at all. The grammar is one line, so the parser
is a regular expression and a table of the metrics a load run measures.

Measurements are given in base units: milliseconds for durations, a fraction (0 to 1) for
ratios, plain numbers for counts and requests per second. A threshold whose metric was not
measured (absent or NaN, e.g. a part the run had to disable) is `not_measured`, not failed.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, cast

Dimension = Literal["duration", "ratio", "count", "rate"]
Operator = Literal["<", "<=", ">", ">=", "==", "!="]
ThresholdStatus = Literal["pass", "fail", "not_measured"]


@dataclass(frozen=True)
class Metric:
    """A metric a threshold may name: what it measures and whether it needs an aggregation."""

    dimension: Dimension
    aggregated: bool
    description: str


RESPONSE_TIME = "response_time"  # written bare: `p95` means the response time's p95
METRICS: Mapping[str, Metric] = MappingProxyType(
    {
        RESPONSE_TIME: Metric("duration", True, "response time of every request (HdrHistogram)"),
        "outbox_lag": Metric("duration", True, "age of the oldest unpublished outbox row"),
        "dispatcher_depth": Metric("count", True, "events queued in the dispatcher"),
        "error_rate": Metric("ratio", False, "failed requests / all requests"),
        "events_lost": Metric("count", False, "events written but never delivered"),
        "sagas_incomplete": Metric("count", False, "sagas neither completed nor compensated"),
        "rps": Metric("rate", False, "requests per second over the whole run"),
    }
)
DURATION_UNITS: Mapping[str, float] = MappingProxyType(
    {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
)  # to milliseconds
OPERATORS: Mapping[str, Callable[[float, float], bool]] = MappingProxyType(
    {
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "==": operator.eq,
        "!=": operator.ne,
    }
)

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_EXPRESSION = re.compile(
    rf"\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op><=|>=|==|!=|<|>)"
    rf"\s*(?P<value>{_NUMBER})\s*(?P<unit>[a-zµ%]+)?\s*"
)
_DURATION = re.compile(rf"\s*(?P<value>{_NUMBER})\s*(?P<unit>[a-zµ]+)\s*")
_AGGREGATION = re.compile(r"p(?P<q>\d+(?:\.\d+)?)|avg|min|max|med")
_EXAMPLES = "e.g. 'p95 < 200ms', 'error_rate < 1%', 'events_lost == 0', 'outbox_lag_p99 < 2s'"


class ThresholdError(ValueError):
    """A threshold or duration that does not parse; the message says what was expected."""


def format_number(value: float) -> str:
    """The shortest text that parses back to exactly this value."""
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass(frozen=True)
class Threshold:
    """`<metric>[_<aggregation>] <operator> <value>[unit]`, e.g. `outbox_lag_p99 < 2s`."""

    metric: str
    aggregation: str | None
    operator: Operator
    value: float
    unit: str | None

    @property
    def key(self) -> str:
        """The name as written, which is also the key of its measurement."""
        if self.aggregation is None:
            return self.metric
        if self.metric == RESPONSE_TIME:
            return self.aggregation
        return f"{self.metric}_{self.aggregation}"

    @property
    def limit(self) -> float:
        """The value in base units: ms for durations, a fraction for ratios."""
        if self.unit == "%":
            return self.value / 100
        if self.unit is not None:
            return self.value * DURATION_UNITS[self.unit]
        return self.value

    def holds(self, observed: float) -> bool:
        """Whether an observed value (in base units) meets the threshold."""
        return OPERATORS[self.operator](observed, self.limit)

    def __str__(self) -> str:
        return f"{self.key} {self.operator} {format_number(self.value)}{self.unit or ''}"


def parse_threshold(text: str) -> Threshold:
    """Parse a k6-style threshold, refusing unknown metrics and units that do not fit."""
    match = _EXPRESSION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ThresholdError(
            f"cannot parse threshold {text!r}: expected <metric> <operator> <value>[unit] "
            f"with an operator among {' '.join(OPERATORS)}, {_EXAMPLES}"
        )
    metric, aggregation = _split_name(match["name"])
    value = float(match["value"])
    unit = match["unit"]
    _check_unit(match["name"], METRICS[metric].dimension, value, unit)
    return Threshold(metric, aggregation, cast(Operator, match["op"]), value, unit)


def _split_name(name: str) -> tuple[str, str | None]:
    if _AGGREGATION.fullmatch(name):
        return RESPONSE_TIME, _normal_aggregation(name)
    metric, _, aggregation = name.rpartition("_")
    if metric in METRICS and _AGGREGATION.fullmatch(aggregation):
        if not METRICS[metric].aggregated:
            raise ThresholdError(f"{metric} takes no aggregation: write {metric!r} alone")
        return metric, _normal_aggregation(aggregation)
    if name in METRICS:
        if METRICS[name].aggregated:
            raise ThresholdError(
                f"{name} needs an aggregation: {name}_p95, {name}_p99, {name}_max, ..."
            )
        return name, None
    known = ["p50", "p95", "p99", "p99.9", "avg", "min", "max", "med"] + [
        f"{other}_p99" if kind.aggregated else other
        for other, kind in METRICS.items()
        if other != RESPONSE_TIME
    ]
    raise ThresholdError(f"unknown metric {name!r}; known: {', '.join(known)}")


def _normal_aggregation(text: str) -> str:
    match = _AGGREGATION.fullmatch(text)
    assert match is not None
    if match["q"] is None:
        return text
    q = float(match["q"])
    if not 0 < q <= 100:
        raise ThresholdError(f"percentile {text!r} must be above p0 and at most p100")
    return f"p{format_number(q)}"


def _check_unit(name: str, dimension: Dimension, value: float, unit: str | None) -> None:
    if dimension == "duration":
        if unit not in DURATION_UNITS:
            raise ThresholdError(
                f"{name} is a duration: give its unit, one of {', '.join(DURATION_UNITS)} "
                f"(got {unit or 'none'})"
            )
    elif dimension == "ratio":
        if unit not in (None, "%"):
            raise ThresholdError(f"{name} is a ratio: write a % or a fraction, not {unit!r}")
        if value > (100 if unit == "%" else 1):
            raise ThresholdError(
                f"{name} is a ratio: at most 100% (or 1), got {format_number(value)}{unit or ''}"
            )
    elif unit is not None:
        raise ThresholdError(f"{name} is a plain number: it takes no unit, got {unit!r}")


def parse_duration_ms(text: str) -> float:
    """A duration such as `500ms`, `30s` or `2m`, in milliseconds."""
    match = _DURATION.fullmatch(text)
    if match is None or match["unit"] not in DURATION_UNITS:
        raise ThresholdError(
            f"not a duration: {text!r}; write a number with a unit among "
            f"{', '.join(DURATION_UNITS)}, e.g. '30s'"
        )
    return float(match["value"]) * DURATION_UNITS[match["unit"]]


@dataclass(frozen=True)
class ThresholdResult:
    """How one threshold fared: the value observed (base units) and pass, fail or not measured."""

    threshold: Threshold
    observed: float | None
    status: ThresholdStatus

    def as_dict(self) -> dict[str, Any]:
        return {"threshold": str(self.threshold), "observed": self.observed, "status": self.status}


def evaluate(
    thresholds: Iterable[Threshold], measurements: Mapping[str, float]
) -> list[ThresholdResult]:
    """Check each threshold against `measurements[threshold.key]` (in base units)."""
    results = []
    for threshold in thresholds:
        observed = measurements.get(threshold.key)
        if observed is None or math.isnan(observed):
            results.append(ThresholdResult(threshold, None, "not_measured"))
        else:
            status: ThresholdStatus = "pass" if threshold.holds(observed) else "fail"
            results.append(ThresholdResult(threshold, observed, status))
    return results
