"""`rustok-ref report --only NAME` keeps the latest report's other notebooks: what
`carry_forward` copies from the previous run, and what it leaves to be re-run."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from rustok_ref.lab import report
from rustok_ref.lab.report import NotebookRun, carry_forward


def _previous_run(folder: Path) -> Path:
    for name in ("02_tenant_cache", "05_outbox"):
        (folder / name).mkdir(parents=True)
        (folder / name / f"{name}.summary.json").write_text("{}")
        (folder / "notebooks").mkdir(exist_ok=True)
        (folder / "notebooks" / f"{name}.ipynb").write_text("{}")
        (folder / f"{name}.html").write_text("<html></html>")
    (folder / "tests").mkdir()
    (folder / "tests" / "coverage.json").write_text("{}")
    runs = [
        NotebookRun(name, "passed", 1.0, f"{name}.html", f"{name}/{name}.summary.json")
        for name in ("02_tenant_cache", "05_outbox")
    ]
    tests = report.TestPhase(0, 9.0, 61.0, str(folder / "tests" / "coverage.json"), None)
    document = {"notebooks": [asdict(run) for run in runs], "tests": asdict(tests)}
    (folder / "summary.json").write_text(json.dumps(document))
    return folder


def test_the_other_notebooks_and_the_test_phase_are_carried_into_the_new_run(
    tmp_path: Path,
) -> None:
    previous, run_dir = _previous_run(tmp_path / "old"), tmp_path / "new"
    run_dir.mkdir()
    kept, tests = carry_forward(previous, run_dir, ["05_outbox"], tests=True)
    assert [run.name for run in kept] == ["02_tenant_cache"]
    assert (run_dir / "02_tenant_cache" / "02_tenant_cache.summary.json").exists()
    assert (run_dir / "notebooks" / "02_tenant_cache.ipynb").exists()
    assert (run_dir / "02_tenant_cache.html").exists()
    assert not (run_dir / "05_outbox").exists()
    assert tests is not None and tests.coverage_percent == 61.0
    assert tests.coverage_json == str(run_dir / "tests" / "coverage.json")
    assert Path(tests.coverage_json).exists()


def test_a_run_with_its_own_test_phase_or_no_previous_report_carries_less(
    tmp_path: Path,
) -> None:
    previous, run_dir = _previous_run(tmp_path / "old"), tmp_path / "new"
    run_dir.mkdir()
    kept, tests = carry_forward(previous, run_dir, ["02_tenant_cache"], tests=False)
    assert [run.name for run in kept] == ["05_outbox"] and tests is None
    assert carry_forward(tmp_path / "missing", run_dir, ["05_outbox"], tests=True) == ([], None)


def test_cell_anchors_resolve_tags_and_ids_to_ids(tmp_path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    tagged = new_code_cell("x = 1", id="abc123", metadata={"tags": ["rust"]})
    plain = new_code_cell("y = 2", id="eviction")
    path = tmp_path / "n.ipynb"
    nbformat.write(new_notebook(cells=[tagged, plain]), path)
    assert report.cell_anchors(path) == {
        "abc123": "abc123",
        "rust": "abc123",
        "eviction": "eviction",
    }
