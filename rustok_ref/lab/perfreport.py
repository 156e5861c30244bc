"""The performance report's tables and figures, from the bench runs in one folder (issue 10).

The notebook `notebooks/renderers/performance.ipynb` only calls these: the ratio table of one
run against `benchrecord.TARGETS` (every row, a missing one with its reason, a missed one
with what bounds it), the other paired figures, the trend of each ratio across the runs, the
scale curves on log axes and the memory per cached tenant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from rustok_ref.lab.benchrecord import (
    TARGETS,
    BenchResult,
    BenchRun,
    RatioRow,
    ratio_table,
    read_runs,
    untargeted,
)
from rustok_ref.lab.paths import REPO_ROOT

MICRO = 1e6
Row = dict[str, object]


@dataclass(frozen=True)
class Bound:
    """What bounds a ratio that misses its target: the words, and the benchmark (one of the
    run's untargeted results, usually the subject against a bare call) that measures it."""

    words: str
    benchmark: str | None = None


BOUNDS: Mapping[str, Bound] = {
    "tenant_cache.async_hit": Bound(
        "a hit is a Python method around the moka get: it reads the injected clock, checks the "
        "entry's two deadlines and moves its idle deadline; the async def and its await cost "
        "the same on both sides",
        "test_async_hit_against_a_raw_moka_get[sketch-None]",
    ),
    "tenant_cache.sync_hit": Bound(
        "the same hit without the await: the clock read and the deadline checks against a "
        "bare call into Rust",
    ),
    "breaker.sync_closed": Bound(
        "the closed call's bookkeeping (state check, success count, the call itself)",
        "test_sync_closed_call_against_a_plain_call",
    ),
    "breaker.sync_rejection": Bound(
        "raising and catching the rejection error dominates",
        "test_sync_rejection_against_a_plain_call",
    ),
    "breaker.async_closed": Bound(
        "the closed call's bookkeeping around one await",
        "test_async_closed_call_against_a_bare_await",
    ),
    "resilient_cache.get": Bound(
        "one Redis round trip dominates both sides and its jitter on this shared machine "
        "spreads the per-round ratio on either side of 1; the wrapper's own share is client "
        "CPU: profiled at 106 µs per GET against redis-py's 90 µs (the breaker and the "
        "per-call timer about 10 µs, the local copy's refresh, a moka set, about 5 µs)",
    ),
    "dispatcher.pre_validated": Bound(
        "per item: the routing lookup, the mailbox's watermark check, the handler's latency "
        "sample and the ack, where the bare queue does a put and a get",
    ),
    "events.validation": Bound(
        "the catalogue's rules after pydantic's validation",
        "test_validation_against_the_bare_core_validator",
    ),
    "relay.throughput": Bound(
        "the relay claims, publishes and marks in two units of work with one pipeline; the "
        "raw side skips the units of work's role set-up",
    ),
    "states.transition_check": Bound("a dict lookup; python-statemachine builds an event"),
    "flags.warm": Bound(
        "the SDK's own work (hooks, details) is the same on both sides; behind it our provider "
        "parses the flag key into a Feature and the targeting key into a UUID, reads the "
        "tenant's flags from the moka cache, evaluates the rollout and checks the span for the "
        "evaluation event, where InMemoryProvider reads a dict and calls one function; the "
        "same gap without the SDK",
        "test_warm_is_enabled_against_the_in_memory_provider",
    ),
    "api.cached_get_rps": Bound(
        "tenant, key and product are cached (a warm GET makes no database round trip, "
        "reports/bench/api-roundtrips-*.json); what hello skips is the rate limiter's Redis "
        "script (one round trip, about a fifth of the request in a pyinstrument profile), "
        "FastAPI solving the tenant, key and role dependencies, and the response model; the "
        "ratio sits at 0.46-0.55 across rounds, on both sides of the target",
        "api: GET /products/{id} vs hello at concurrency 8, time per batch",
    ),
}
"""Per target row id: what bounds the ratio, shown in the note of a row that misses."""


def resolve_run_dir(run_dir: str | Path) -> Path:
    """`run_dir` as given, or relative to the repository (the notebook's default)."""
    path = Path(run_dir)
    return path if path.is_absolute() else REPO_ROOT / path


def load_runs(run_dir: str | Path, run_id: str | None = None) -> tuple[BenchRun, list[BenchRun]]:
    """(the run to report: `run_id`, or the newest; every run in the folder, oldest first)."""
    folder = resolve_run_dir(run_dir)
    runs = read_runs(folder)
    if not runs:
        raise FileNotFoundError(f"no bench run (<run-id>.json) in {folder}")
    if run_id is None:
        return runs[-1], runs
    chosen = next((run for run in runs if run.run_id == run_id), None)
    if chosen is None:
        raise FileNotFoundError(f"no run {run_id} in {folder}")
    return chosen, runs


def _micro(result: BenchResult, side: str) -> float:
    stats = result.subject_stats if side == "subject" else result.baseline_stats
    return round(stats.median * MICRO, 3)


def _verdict(row: RatioRow) -> str:
    if row.meets_target is None:
        return "missing"
    return "met" if row.meets_target else "MISSED"


def _note(row: RatioRow, run: BenchRun) -> str:
    if row.result is None:
        return row.missing_reason or ""
    notes = []
    if row.ceiling is not None:
        notes.append(f"ceiling ({row.ceiling.baseline}): {row.ceiling.ratio:.2f}x")
    bound = BOUNDS.get(row.row.id)
    if row.meets_target is False and row.result.cpu_ratio is not None:
        notes.append(f"on this thread's CPU time: {row.result.cpu_ratio:.2f}x")
    if bound is not None and row.meets_target is False:
        notes.append(bound.words)
        measured = next((r for r in run.results if r.name == bound.benchmark), None)
        if measured is not None:
            notes.append(
                f"measured: {measured.subject} = {measured.ratio:.2f}x {measured.baseline}"
            )
    return "; ".join(notes)


def ratio_rows(run: BenchRun) -> list[Row]:
    """One line per row of TARGETS, in its order, filled from `run`."""
    lines: list[Row] = []
    for row in ratio_table(run):
        result, ratio = row.result, row.result.ratio_stats if row.result else None
        lines.append(
            {
                "path": row.row.path,
                "baseline": row.row.baseline,
                "target": f"{row.row.target} ({row.row.target.measure})",
                "ratio": None if result is None else round(result.ratio, 3),
                "ratio min": None if ratio is None else round(ratio.min, 3),
                "ratio max": None if ratio is None else round(ratio.max, 3),
                "subject µs": None if result is None else _micro(result, "subject"),
                "baseline µs": None if result is None else _micro(result, "baseline"),
                "clock": None if result is None else result.clock,
                "verdict": _verdict(row),
                "note": _note(row, run),
            }
        )
    return lines


def other_rows(run: BenchRun) -> list[Row]:
    """The paired results no target judges (floors, peers, benchmarks added later)."""
    return [
        {
            "benchmark": result.name,
            "subject": result.subject,
            "baseline": result.baseline,
            "measure": result.measure,
            "ratio": round(result.ratio, 3),
            "ratio min": None if result.ratio_stats is None else round(result.ratio_stats.min, 3),
            "ratio max": None if result.ratio_stats is None else round(result.ratio_stats.max, 3),
            "subject µs": _micro(result, "subject"),
            "baseline µs": _micro(result, "baseline"),
            "clock": result.clock,
        }
        for result in untargeted(run)
    ]


def trend(runs: Sequence[BenchRun]) -> dict[str, list[float | None]]:
    """Each target row's ratio per run, oldest first (None: not measured in that run)."""
    lines: dict[str, list[float | None]] = {row.path: [] for row in TARGETS}
    for run in runs:
        for filled in ratio_table(run):
            lines[filled.row.path].append(None if filled.result is None else filled.result.ratio)
    return lines


def plot_trend(runs: Sequence[BenchRun]) -> Figure:
    """A line per ratio across the runs, on a log axis (the targets span 0.25 to 2); a
    ratio not measured in a run leaves a gap."""
    fig, ax = plt.subplots(figsize=(11, 5))
    positions = list(range(len(runs)))
    colours = plt.get_cmap("tab20")
    for n, (path, ratios) in enumerate(trend(runs).items()):
        values = [float("nan") if ratio is None else ratio for ratio in ratios]
        ax.plot(positions, values, marker="os^Dv"[n % 5], color=colours(n % 20), label=path)
    ax.set_yscale("log")
    ax.set_xticks(positions, [run.run_id for run in runs], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("ratio to baseline (log)")
    ax.set_title("Ratios across the runs found in the run folder")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(True, which="both", alpha=0.3)
    return fig


def plot_curves(run: BenchRun) -> Figure | None:
    """One log-log panel per growing dimension, a line per curve with its min-max band."""
    dimensions = list(dict.fromkeys(curve.x_label for curve in run.curves))
    if not dimensions:
        return None
    fig, axes = plt.subplots(1, len(dimensions), figsize=(4 * len(dimensions), 3.8), squeeze=False)
    for ax, dimension in zip(axes[0], dimensions, strict=True):
        for curve in (c for c in run.curves if c.x_label == dimension):
            xs = [point.x for point in curve.points]
            median = [point.seconds_per_op.median * MICRO for point in curve.points]
            low = [point.seconds_per_op.min * MICRO for point in curve.points]
            high = [point.seconds_per_op.max * MICRO for point in curve.points]
            ax.plot(xs, median, marker="o", label=curve.name)
            ax.fill_between(xs, low, high, alpha=0.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(dimension)
        ax.set_ylabel("µs per operation")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    return fig


def curve_rows(run: BenchRun) -> list[Row]:
    """The curves' medians as numbers, for the reader who wants them."""
    return [
        {
            "curve": curve.name,
            "operation": curve.operation,
            "dimension": curve.x_label,
            "size": point.x,
            "median µs": round(point.seconds_per_op.median * MICRO, 3),
            "min µs": round(point.seconds_per_op.min * MICRO, 3),
            "max µs": round(point.seconds_per_op.max * MICRO, 3),
        }
        for curve in run.curves
        for point in curve.points
    ]


def memory_rows(run: BenchRun) -> list[Row]:
    """Bytes of RSS per tenant, each container at each size."""
    return [
        {
            "container": point.container,
            "tenants": point.tenants,
            "bytes per tenant (tenant + entry)": round(point.bytes_per_tenant),
            "bytes per entry (container only)": round(point.container_bytes_per_tenant),
            "RSS growth MiB": round((point.rss_inserted - point.rss_start) / 2**20, 1),
        }
        for point in run.memory
    ]


_VERDICT_STYLE = {"met": "#dafbe1", "MISSED": "#ffebe9", "missing": "#eaeef2"}


def table_html(rows: Sequence[Row]) -> str:
    """`rows` as an HTML table; a `verdict` cell is coloured as the report's scorecard."""
    if not rows:
        return "<p><em>nothing recorded in this run</em></p>"
    left = "text-align:left;vertical-align:top"
    head = "".join(f'<th style="{left}">{escape(str(column))}</th>' for column in rows[0])
    body = []
    for row in rows:
        cells = []
        for column, value in row.items():
            shown = "—" if value is None else str(value)
            colour = _VERDICT_STYLE.get(shown) if column == "verdict" else None
            style = f"{left};background:{colour}" if colour else left
            cells.append(f'<td style="{style}">{escape(shown)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
