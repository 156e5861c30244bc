"""Write notebooks/renderers/load_report.ipynb, the load run report, from the cells below.

The notebook is generated so that its source stays reviewable here and the committed file
has no outputs: `.venv/bin/python loadtests/build_load_report.py`. `rustok-ref load` executes
it into each run folder with papermill; nbval runs it on the committed fixture run.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

TARGET = Path(__file__).resolve().parents[1] / "notebooks" / "renderers" / "load_report.ipynb"

TITLE = """\
# Load run report

One `rustok-ref load` run: the load Locust offered and what it got back, the faults laid over
it (shaded), the server's backpressure and lag on the same time axis, and the thresholds.
Response-time percentiles over time are Locust's (rounded, approximate); the histogram and
the thresholds use the HdrHistogram of every response time, merged from all Locust workers."""

PARAMETERS = """\
run_dir = "tests/fixtures/load_run"  # a run's load/ folder; relative: to the repository
compare_dir = None  # another run's load/ folder to put beside this one"""

LOAD = """\
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from hdrh.histogram import HdrHistogram
from IPython.display import Markdown, display

from rustok_ref.lab.paths import REPO_ROOT


def folder(path):
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path


def load_run(path):
    path = folder(path)
    journal = json.loads((path / "journal.json").read_text())
    start = journal.get("load_started_at") or journal.get("created_at_unix") or 0.0
    history = pd.read_csv(path / "locust_stats_history.csv", na_values=["N/A"])
    history = history[history["Name"] == "Aggregated"].copy()
    history["t"] = history["Timestamp"] - start
    metrics = pd.read_csv(path / "server_metrics.csv")
    metrics["t"] = metrics["time"] - start
    failures_file = path / "locust_failures.csv"
    failures = pd.read_csv(failures_file) if failures_file.exists() else pd.DataFrame()
    hdr_file = path / "latency.hdr"
    histogram = HdrHistogram.decode(hdr_file.read_bytes()) if hdr_file.exists() else None
    return {
        "name": journal["run_id"],
        "journal": journal,
        "history": history,
        "metrics": metrics,
        "failures": failures,
        "histogram": histogram,
    }


run = load_run(run_dir)
other = load_run(compare_dir) if compare_dir else None
runs = [run] if other is None else [run, other]
journal = run["journal"]"""

SUMMARY = """\
def summary(run):
    journal = run["journal"]
    totals = journal.get("totals", {})
    cpu = journal.get("cpu", {})
    return {
        "run": run["name"],
        "scenario": f"{journal['scenario']} ({journal['profile']})",
        "status": journal["status"] + (f": {journal['reason']}" if journal.get("reason") else ""),
        "requests": totals.get("requests"),
        "rps": round(totals.get("rps", float("nan")), 1),
        "error rate": f"{totals.get('error_rate', float('nan')):.2%}",
        "steady state deviated": journal.get("deviated"),
        "generator_bound": cpu.get("generator_bound"),
        "locust CPU mean %": cpu.get("by_role", {}).get("locust", {}).get("mean"),
        "disabled": "; ".join(journal.get("disabled", [])) or "nothing",
        "metrics missing": ", ".join(journal.get("metrics_missing", [])) or "none",
    }


display(pd.DataFrame([summary(r) for r in runs]).set_index("run").T)
if journal.get("cpu", {}).get("generator_bound"):
    display(Markdown(
        "**generator_bound**: Locust used more than 80% of a core; the numbers below measure "
        "the load generator as much as the API. Add workers (docs/load.md)."
    ))"""

THRESHOLDS = """\
rows = []
for r in runs:
    for result in r["journal"].get("thresholds", []):
        rows.append({"run": r["name"], **result})
no_thresholds = Markdown("No thresholds were evaluated (the run aborted).")
display(pd.DataFrame(rows) if rows else no_thresholds)"""

SHADE = """\
def fault_windows(journal):
    \"\"\"(label, applied at, removed at) in seconds from the start of the load.\"\"\"
    opened, windows = {}, []
    for entry in journal.get("faults", []):
        if entry["action"] == "apply":
            opened[entry["fault"]] = entry
        elif entry["fault"] in opened:
            applied = opened.pop(entry["fault"])["offset_s"]
            windows.append((entry["label"], applied, entry["offset_s"]))
    windows += [(e["label"], e["offset_s"], e["offset_s"] + 0.5) for e in opened.values()]
    return windows


def shade(ax, journal):
    for label, start, end in fault_windows(journal):
        ax.axvspan(start, end, color="tab:red", alpha=0.15)
        where = ax.get_xaxis_transform()
        ax.text(start, 1.0, f" {label}", transform=where, va="top", fontsize=8)"""

THROUGHPUT = """\
fig, axes = plt.subplots(len(runs), 1, figsize=(11, 3.2 * len(runs)), squeeze=False)
for ax, r in zip(axes[:, 0], runs):
    h = r["history"]
    ax.plot(h["t"], h["Requests/s"], label="requests/s")
    ax.plot(h["t"], h["Failures/s"], label="failures/s", color="tab:red")
    users = ax.twinx()
    users.plot(h["t"], h["User Count"], color="tab:gray", linestyle="--", label="users")
    users.set_ylabel("users")
    shade(ax, r["journal"])
    ax.set(
        title=f"Throughput and users: {r['name']}",
        xlabel="s from the start of the load",
        ylabel="per second",
    )
    ax.legend(loc="upper left")
fig.tight_layout()"""

PERCENTILES = """\
fig, axes = plt.subplots(len(runs), 1, figsize=(11, 3.2 * len(runs)), squeeze=False)
for ax, r in zip(axes[:, 0], runs):
    h = r["history"]
    for column in ("50%", "95%", "99%"):
        ax.plot(h["t"], h[column], label=f"p{column[:-1]}")
    shade(ax, r["journal"])
    ax.set(
        title=f"Response time percentiles over time (Locust's, approximate): {r['name']}",
        xlabel="s from the start of the load",
        ylabel="ms",
    )
    ax.legend(loc="upper left")
fig.tight_layout()"""

HISTOGRAM = """\
def hdr_table(r):
    histogram = r["histogram"]
    if histogram is None or histogram.get_total_count() == 0:
        return {}
    return {
        f"p{q:g}": histogram.get_value_at_percentile(q) / 1000
        for q in (50, 90, 95, 99, 99.9, 100)
    }


fig, ax = plt.subplots(figsize=(11, 3.5))
for r in runs:
    histogram = r["histogram"]
    if histogram is None:
        continue
    values, counts = [], []
    for item in histogram.get_recorded_iterator():
        values.append(item.value_iterated_to / 1000)
        counts.append(item.count_added_in_this_iter_step)
    ax.step(values, counts, where="post", label=r["name"])
    for name, ms in hdr_table(r).items():
        if name in ("p50", "p99"):
            ax.axvline(ms, linestyle=":", color="tab:gray")
            ax.text(ms, 1.0, f" {name}", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
ax.set(
    xscale="log",
    title="Latency histogram (HdrHistogram, every response)",
    xlabel="ms",
    ylabel="responses",
)
ax.legend()
display(pd.DataFrame({r["name"]: hdr_table(r) for r in runs}).round(2))"""

FAILURES = """\
rows = [f.assign(run=r["name"]) for r in runs if not (f := r["failures"]).empty]
if rows:
    failures = pd.concat(rows)
    table = failures.groupby(["run", "Error"])["Occurrences"].sum().sort_values(ascending=False)
    display(table.to_frame())
    table.unstack("run").plot.barh(figsize=(11, 0.4 * len(table) + 1.5), title="Failures by type")
else:
    display(Markdown("No request failed."))"""

SERVER = """\
SERVER_SERIES = [
    ("rustok_dispatcher_depth", "dispatcher depth"),
    ("rustok_outbox_pending", "outbox pending"),
    ("rustok_outbox_lag_seconds", "outbox lag (s)"),
    ('rustok_breaker_state{breaker="redis"}', "Redis breaker (0 closed, 1 open, 2 half-open)"),
    ("rustok_tenant_cache_hits_total", "tenant cache hits/s"),
    ("rustok_tenant_cache_misses_total", "tenant cache misses/s"),
]
fig, axes = plt.subplots(len(SERVER_SERIES), 1, figsize=(11, 2.1 * len(SERVER_SERIES)), sharex=True)
for ax, (series, title) in zip(axes, SERVER_SERIES):
    for r in runs:
        m = r["metrics"][r["metrics"]["series"] == series]
        values = m["value"].diff() / m["t"].diff() if series.endswith("_total") else m["value"]
        if not m.empty:
            ax.plot(m["t"], values, label=r["name"])
    shade(ax, journal)
    ax.set_title(title, fontsize=9, loc="left")
axes[-1].set_xlabel("s from the start of the load")
axes[0].legend(loc="upper left", fontsize=8)
fig.tight_layout()
missing = journal.get("metrics_missing", [])
if missing:
    display(Markdown("Not exported by the API during this run: " + ", ".join(missing)))"""

CPU = """\
cpu = pd.DataFrame(
    [
        {"run": r["name"], "process": role, **stats}
        for r in runs
        for role, stats in r["journal"].get("cpu", {}).get("by_role", {}).items()
    ]
)
display(cpu.round(1) if not cpu.empty else Markdown("No CPU samples."))
display(pd.DataFrame(journal.get("faults", [])))
display(pd.DataFrame(journal.get("rollbacks", [])))"""


def build() -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell(TITLE)]
    parameters = nbformat.v4.new_code_cell(PARAMETERS)
    parameters.metadata["tags"] = ["parameters"]
    cells.append(parameters)
    headed = [
        (None, LOAD),
        ("## Summary and thresholds", SUMMARY),
        (None, THRESHOLDS),
        (None, SHADE),
        ("## Load offered and answered (fault windows shaded)", THROUGHPUT),
        (None, PERCENTILES),
        ("## Latency distribution", HISTOGRAM),
        ("## Failures", FAILURES),
        ("## Server side: backpressure, lag, breaker, tenant cache", SERVER),
        ("## Processes, faults and rollbacks", CPU),
    ]
    for heading, source in headed:
        if heading is not None:
            cells.append(nbformat.v4.new_markdown_cell(heading))
        cells.append(nbformat.v4.new_code_cell(source))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


if __name__ == "__main__":
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build(), str(TARGET))
    print(f"wrote {TARGET}")
