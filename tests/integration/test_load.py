"""`rustok-ref load` end to end: real PostgreSQL and Redis, the API, the relay and Locust in
their own processes, as a performance engineer runs it. Each run takes its own namespace
(`infra.run_namespace`) and drops it afterwards.

Kept short (stages of a few seconds) so that the whole file stays under ~3 minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from hdrh.histogram import HdrHistogram

ROOT = Path(__file__).resolve().parents[2]
LIVENESS_S = 300.0  # far beyond a run of a few seconds: only a hang reaches it
# pytest's own timeout (120 s) would cut a run short on a busy machine; this one is liveness
pytestmark = [pytest.mark.load, pytest.mark.timeout(2 * LIVENESS_S)]

SCENARIO = """\
name: {name}
description: A few seconds of every user class, with a Redis latency window.
load:
  mix: {{storefront_browser: 3, checkout_customer: 1, admin_writer: 1, identifier_prober: 1}}
  smoke:
    seed: {{tenants: 3, products: 4}}
    stages:
      - {{users: 6, spawn_rate: 6, duration: {duration}}}
  full:
    seed: {{tenants: 3, products: 4}}
    stages:
      - {{users: 6, spawn_rate: 6, duration: {duration}}}
faults:
  smoke:
    - {{target: redis, toxic: latency, start: 1s, duration: 2s, attributes: {{latency: 20}}}}
steady_state:
  title: the API answers
  probes:
    - {{name: api up, http: /healthz, tolerance: 200}}
thresholds:
{thresholds}
rollbacks: [clear_faults, reset_providers]
"""
LENIENT = [
    "p99 < 1m",
    "error_rate <= 100%",
    "outbox_lag_max < 10m",
    "events_lost == 0",
    "sagas_incomplete == 0",
]


def write_scenario(
    folder: Path, name: str, *, duration: str = "6s", thresholds: list[str] = LENIENT
) -> Path:
    path = folder / f"{name}.yaml"
    lines = "\n".join(f"  - {t!r}" for t in thresholds)
    path.write_text(SCENARIO.format(name=name, duration=duration, thresholds=lines))
    return path


def load_command(scenario: Path, reports: Path, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "rustok_ref.cli", "load", str(scenario)]
    return [*command, "--reports-dir", str(reports), *extra]


def run_load(scenario: Path, reports: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        load_command(scenario, reports, *extra),
        capture_output=True,
        text=True,
        timeout=LIVENESS_S,
        cwd=ROOT,
        check=False,
    )


def run_folder(reports: Path) -> Path:
    (folder,) = reports.glob("*/load")
    return folder


def journal_of(reports: Path) -> dict[str, Any]:
    journal: dict[str, Any] = json.loads((run_folder(reports) / "journal.json").read_text())
    return journal


def merged_count(folder: Path) -> int:
    histogram = HdrHistogram.decode((folder / "latency.hdr").read_bytes())
    count: int = histogram.get_total_count()
    return count


def test_a_short_scenario_runs_end_to_end_and_renders_its_report(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = run_load(write_scenario(tmp_path, "e2e"), reports)

    assert done.returncode == 0, done.stderr
    folder = run_folder(reports)
    journal = journal_of(reports)
    assert journal["status"] == "passed"
    assert [t["status"] for t in journal["thresholds"]] == ["pass"] * len(LENIENT)
    assert journal["leftovers"]["events_lost"] == journal["leftovers"]["sagas_incomplete"] == 0
    assert journal["totals"]["requests"] > 0
    # every response reached the HdrHistogram the thresholds read
    assert merged_count(folder) == journal["totals"]["requests"]
    steps = [(f["action"], f["label"], f["rollback"]) for f in journal["faults"]]
    assert steps == [
        ("apply", "redis/latency_downstream", False),
        ("remove", "redis/latency_downstream", False),
    ]
    assert journal["steady_state_before"][0]["status"] == "ok"
    assert journal["steady_state_after"][0]["status"] == "ok"
    assert {r["name"]: r["ok"] for r in journal["rollbacks"]} == {
        "clear_faults": True,
        "reset_providers": True,
    }
    assert set(journal["cpu"]["by_role"]) >= {"api", "relay", "locust"}
    for name in ("locust.json", "locust_stats_history.csv", "server_metrics.csv"):
        assert (folder / name).stat().st_size > 0, name
    html = (folder / "load_report.html").read_text()
    assert "Load run report" in html
    assert "redis/latency_downstream" in html


def test_a_master_and_a_worker_complete_a_run_and_a_failing_threshold_exits_2(
    tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    scenario = write_scenario(
        tmp_path, "workers", duration="5s", thresholds=["p99 < 1m", "rps > 1000000"]
    )

    done = run_load(scenario, reports, "--locust-workers", "1", "--no-render")

    assert done.returncode == 2, done.stderr
    journal = journal_of(reports)
    assert journal["status"] == "failed"
    assert [t["status"] for t in journal["thresholds"]] == ["pass", "fail"]
    assert "locust-worker-1" in {p["role"] for p in journal["processes"]}
    assert journal["totals"]["requests"] > 0
    # the worker's histograms reached the master and were merged
    assert merged_count(run_folder(reports)) == journal["totals"]["requests"]


def test_sigint_mid_run_rolls_back_and_leaves_no_child_process(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    scenario = write_scenario(tmp_path, "interrupted", duration="50s")
    process = subprocess.Popen(
        load_command(scenario, reports, "--no-render"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=os.environ,
    )
    deadline = time.monotonic() + LIVENESS_S
    while not list(reports.glob("*/load/status.json")):  # Locust is running the load
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the load never started"
        time.sleep(0.2)
    children = {child.pid for child in psutil.Process(process.pid).children(recursive=True)}

    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=LIVENESS_S)[0]

    assert process.returncode == 1, output
    journal = journal_of(reports)
    assert journal["status"] == "interrupted"
    assert {r["name"]: r["ok"] for r in journal["rollbacks"]} == {
        "clear_faults": True,
        "reset_providers": True,
    }
    assert {p["role"] for p in journal["processes"]} >= {"api", "relay", "locust"}
    started = {p["pid"] for p in journal["processes"]}
    survivors = [pid for pid in children | started if psutil.pid_exists(pid)]
    assert survivors == []


def test_an_invalid_scenario_is_refused_before_anything_starts(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    scenario = write_scenario(tmp_path, "invalid", thresholds=["p99 < soon"])

    done = run_load(scenario, reports)

    assert done.returncode == 1
    assert "thresholds[0]" in done.stderr
    assert not reports.exists()
