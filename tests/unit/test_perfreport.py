"""The performance report: every target row shown, missing ones with their reason, and the
notebook that renders it kept in step with its builder and runnable on the committed runs."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from rustok_ref.lab import perfnotebook, perfreport
from rustok_ref.lab.benchrecord import (
    TARGETS,
    BenchRun,
    MemoryPoint,
    NotMeasured,
    ScaleCurve,
    ScalePoint,
    Stats,
    compare,
    read_runs,
)

FIXTURE = perfreport.resolve_run_dir(perfnotebook.FIXTURE)


def a_run(hours: int, *, ratio: float = 1.0) -> BenchRun:
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hours)
    row = TARGETS[0]
    second = Stats(min=1e-6, median=1e-6, max=1e-6)
    return BenchRun(
        run_id=f"{created:%Y%m%dT%H%M%SZ}-abcdef0",
        created=created,
        provenance={"git_sha": "abcdef0123"},
        results=[
            compare(row.benchmark, "ours", "raw", [ratio], [1.0], iterations=1, target=row.target)
        ],
        curves=[
            ScaleCurve(
                name="TenantCache hit",
                x_label="tenants",
                operation="hit",
                points=(ScalePoint(x=10, seconds_per_op=second),),
            )
        ],
        memory=[
            MemoryPoint(
                container="dict", tenants=10, rss_start=0, rss_built=1000, rss_inserted=1500
            )
        ],
        not_measured=[NotMeasured(name=TARGETS[1].benchmark, outcome="failed", reason="<boom>")],
    )


def test_the_ratio_rows_follow_the_targets_and_keep_the_missing() -> None:
    rows = perfreport.ratio_rows(a_run(0, ratio=3.0))
    assert [row["path"] for row in rows] == [target.path for target in TARGETS]
    assert rows[0]["verdict"] == "MISSED" and rows[0]["ratio"] == 3.0
    assert rows[1]["verdict"] == "missing" and rows[1]["note"] == "failed: <boom>"
    assert all(row["verdict"] == "missing" and row["note"] for row in rows[2:])


def test_the_table_escapes_and_colours_the_verdict() -> None:
    html = perfreport.table_html(perfreport.ratio_rows(a_run(0)))
    assert "failed: &lt;boom&gt;" in html
    assert "background:#dafbe1" in html  # the one met row
    assert perfreport.table_html([]).startswith("<p>")


def test_the_trend_has_a_line_per_ratio_and_a_gap_where_one_was_not_measured() -> None:
    runs = [a_run(0, ratio=1.0), a_run(1, ratio=2.0)]
    lines = perfreport.trend(runs)
    assert list(lines) == [row.path for row in TARGETS]
    assert lines[TARGETS[0].path] == [1.0, 2.0]
    assert lines[TARGETS[1].path] == [None, None]
    assert len(perfreport.plot_trend(runs).axes[0].lines) == len(TARGETS)


def test_curves_and_memory_as_rows() -> None:
    run = a_run(0)
    assert perfreport.curve_rows(run)[0]["median µs"] == 1.0
    assert perfreport.memory_rows(run)[0]["bytes per entry (container only)"] == 50
    assert perfreport.plot_curves(run.model_copy(update={"curves": []})) is None


def test_the_newest_run_is_reported_unless_one_is_named(tmp_path: Path) -> None:
    for hours in (0, 1):
        a_run(hours).write(tmp_path)
    newest, runs = perfreport.load_runs(tmp_path)
    assert newest.run_id == runs[-1].run_id and len(runs) == 2
    assert perfreport.load_runs(tmp_path, runs[0].run_id)[0] == runs[0]
    with pytest.raises(FileNotFoundError, match="no run nope"):
        perfreport.load_runs(tmp_path, "nope")


def test_the_committed_notebook_is_what_its_builder_writes() -> None:
    committed = nbformat.read(perfnotebook.NOTEBOOK, as_version=4)
    assert committed == perfnotebook.build()


def test_the_committed_fixture_is_a_whole_run() -> None:
    runs = read_runs(FIXTURE)
    assert runs, f"no bench run in {FIXTURE}"
    newest = runs[-1]
    assert newest.curves and newest.memory and newest.provenance["git_sha"]
    filled = [row for row in perfreport.ratio_rows(newest) if row["verdict"] != "missing"]
    assert len(filled) >= len(TARGETS) - 1


@pytest.mark.slow
def test_render_writes_the_notebook_and_its_html_beside_the_run(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    html = perfnotebook.render(tmp_path)
    newest = read_runs(tmp_path)[-1]
    assert html == tmp_path / newest.run_id / "performance.html"
    assert (tmp_path / newest.run_id / "performance.ipynb").exists()
    assert newest.run_id in html.read_text()
