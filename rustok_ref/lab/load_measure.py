"""What a finished load run measured, in the base units of `lab/thresholds.py`: response-time
percentiles from the merged HdrHistogram (Locust's own are rounded), totals from Locust's
JSON (its CSVs miss the last second), server-side series from the sampler, and what the run
left behind from its database (`lab/load_ledger.py`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from rustok_ref.lab.load_ledger import Leftovers
from rustok_ref.lab.thresholds import RESPONSE_TIME, Threshold

HDR_FILE = "latency.hdr"
LOCUST_PREFIX = "locust"
# Where each server-side threshold metric is sampled, and its factor to base units.
SERIES_OF_METRIC: Mapping[str, tuple[str, float]] = {
    "outbox_lag": ("rustok_outbox_lag_seconds", 1000.0),
    "dispatcher_depth": ("rustok_dispatcher_depth", 1.0),
}
_PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class LocustTotals:
    requests: int
    failures: int
    seconds: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else math.nan

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan

    def as_dict(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "seconds": self.seconds,
            "error_rate": self.error_rate,
            "rps": self.rps,
        }


def locust_totals(run_dir: Path) -> LocustTotals | None:
    """Totals over every endpoint of Locust's JSON; None if Locust wrote none."""
    path = run_dir / f"{LOCUST_PREFIX}.json"
    if not path.exists():
        return None
    entries: list[dict[str, Any]] = json.loads(path.read_text())
    if not entries:
        return LocustTotals(0, 0, 0.0)
    first = min(entry["start_time"] for entry in entries)
    last = max(entry["last_request_timestamp"] or first for entry in entries)
    return LocustTotals(
        requests=sum(entry["num_requests"] for entry in entries),
        failures=sum(entry["num_failures"] for entry in entries),
        seconds=last - first,
    )


def load_histogram(run_dir: Path) -> HdrHistogram | None:
    path = run_dir / HDR_FILE
    if not path.exists():
        return None
    histogram: HdrHistogram = HdrHistogram.decode(path.read_bytes())
    return histogram


def aggregate(values: Sequence[float], aggregation: str) -> float:
    """`pNN`, `avg`, `med`, `min` or `max` of samples; NaN when there are none."""
    if not values:
        return math.nan
    array = np.asarray(values, dtype=float)
    match = _PERCENTILE.fullmatch(aggregation)
    if match is not None:
        return float(np.percentile(array, float(match[1])))
    if aggregation in ("med", "avg"):
        return float(np.median(array) if aggregation == "med" else np.mean(array))
    return float(array.min() if aggregation == "min" else array.max())


def histogram_ms(histogram: HdrHistogram, aggregation: str) -> float:
    """An aggregation of the response times, in ms (the histogram holds microseconds)."""
    if histogram.get_total_count() == 0:
        return math.nan
    match = _PERCENTILE.fullmatch(aggregation)
    if match is not None:
        micros = float(histogram.get_value_at_percentile(float(match[1])))
    elif aggregation == "med":
        micros = float(histogram.get_value_at_percentile(50.0))
    elif aggregation == "avg":
        micros = float(histogram.get_mean_value())
    elif aggregation == "min":
        micros = float(histogram.get_min_value())
    else:
        micros = float(histogram.get_max_value())
    return micros / 1000.0


def measurements(
    thresholds: Iterable[Threshold],
    *,
    histogram: HdrHistogram | None,
    totals: LocustTotals | None,
    series: Mapping[str, Sequence[float]],
    leftovers: Leftovers | None,
) -> dict[str, float]:
    """The observed value of each threshold's key (absent: not measured)."""
    observed: dict[str, float] = {}
    for threshold in thresholds:
        value = _measure(threshold, histogram, totals, series, leftovers)
        if value is not None and not math.isnan(value):
            observed[threshold.key] = value
    return observed


def _measure(
    threshold: Threshold,
    histogram: HdrHistogram | None,
    totals: LocustTotals | None,
    series: Mapping[str, Sequence[float]],
    leftovers: Leftovers | None,
) -> float | None:
    metric, aggregation = threshold.metric, threshold.aggregation
    if metric == RESPONSE_TIME:
        return None if histogram is None else histogram_ms(histogram, aggregation or "avg")
    if metric == "error_rate":
        return None if totals is None else totals.error_rate
    if metric == "rps":
        return None if totals is None else totals.rps
    if metric == "events_lost":
        return None if leftovers is None else leftovers.events_lost
    if metric == "sagas_incomplete":
        return None if leftovers is None else leftovers.sagas_incomplete
    if metric in SERIES_OF_METRIC:
        name, factor = SERIES_OF_METRIC[metric]
        return aggregate(series.get(name, []), aggregation or "max") * factor
    return None
