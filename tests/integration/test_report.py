"""The report pipeline end to end on small notebooks the test writes: papermill, HTML with
nothing loaded from the network, the scorecard, the failed cell named, the exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from typer.testing import CliRunner

from rustok_ref.cli import app
from rustok_ref.config import Settings
from rustok_ref.lab import infra
from rustok_ref.lab.report import (
    EXIT_HARNESS,
    EXIT_OK,
    ReportError,
    ReportOptions,
    discover_notebooks,
    run_report,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MEASURING = """
from pathlib import Path
import matplotlib.pyplot as plt
from IPython.display import display
fig, ax = plt.subplots()
ax.plot([0, 1], [0, 1])
display(fig)
from rustok_ref.lab.provenance import collect_provenance
from rustok_ref.lab.summary import NotebookSummary, judge, write_summary
out = Path(output_dir)
(out / "contracts.txt").write_text("0 broken")
result = judge("state.modular-monolith", 0, unit="violations", evidence=f"{out.name}/contracts.txt",
               notebook="01_sprint_metrics", cell="measure")
provenance = collect_provenance(database_url=database_url, redis_url=None, backend="test",
                                profile=profile, parameters={}, seeds={})
summary = NotebookSummary(notebook="01_sprint_metrics", results=(result,), provenance=provenance)
write_summary(out / "01_sprint_metrics.summary.json", summary)
"""


def _notebook(path: Path, *cells: str) -> None:
    params = new_code_cell(
        "database_url = None\nredis_url = None\nprofile = 'smoke'\noutput_dir = None"
    )
    params.metadata["tags"] = ["parameters"]
    notebook = new_notebook(
        cells=[new_markdown_cell("# probe $x$"), params, *(new_code_cell(c) for c in cells)]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    (folder / "renderers").mkdir(parents=True)
    _notebook(folder / "01_sprint_metrics.ipynb", MEASURING)
    _notebook(folder / "02_tenant_cache.ipynb", "x = 1", "raise RuntimeError('boom in cell')")
    _notebook(folder / "renderers" / "performance.ipynb", "raise SystemExit('never run')")
    return folder


def test_discovery_leaves_renderers_out_and_names_what_exists(notebooks: Path) -> None:
    assert [p.stem for p in discover_notebooks(notebooks)] == [
        "01_sprint_metrics",
        "02_tenant_cache",
    ]
    assert [p.stem for p in discover_notebooks(notebooks, ["02_tenant_cache"])] == [
        "02_tenant_cache"
    ]
    with pytest.raises(ReportError, match="available: 01_sprint_metrics, 02_tenant_cache"):
        discover_notebooks(notebooks, ["99_nope"])


def test_a_failing_notebook_fails_the_run_and_the_index_names_its_cell(
    notebooks: Path, tmp_path: Path, services: infra.Services
) -> None:
    reports = tmp_path / "reports"
    settings = Settings(database_url=services.database_url, redis_url=services.redis_url)
    options = ReportOptions(
        backend="external", skip_tests=True, reports_dir=reports, notebooks_dir=notebooks
    )
    result = run_report(options, settings=settings)

    assert result.exit_code == EXIT_HARNESS
    assert (reports / "latest").resolve() == result.run_dir.resolve()
    runs = {run.name: run for run in result.notebooks}
    assert runs["01_sprint_metrics"].status == "passed"
    failed = runs["02_tenant_cache"]
    assert failed.status == "failed"
    assert failed.failed_cell == 4  # in the executed notebook, after papermill's injected cell
    assert "boom in cell" in (failed.error or "")

    index = (result.run_dir / "index.html").read_text()
    assert "02_tenant_cache</b> failed in cell 4" in index
    document = json.loads((result.run_dir / "summary.json").read_text())
    verdicts = {row["claim_id"]: row["verdict"] for row in document["scorecard"]}
    assert verdicts["state.modular-monolith"] == "confirmed"
    assert verdicts["state.outbox"] == "not-yet-measured"
    assert verdicts["progress.architecture-score"] == "not-measurable"
    assert document["provenance"]["backend"] == "external"

    assert "data:image/png;base64," in (result.run_dir / "01_sprint_metrics.html").read_text()
    for page in result.run_dir.glob("*.html"):
        html = page.read_text()
        loads = re.findall(r'(?:src|href)\s*=\s*"(https?:[^"]*)"', html)
        assert loads == [], f"{page.name} loads {loads}"
        assert not re.search(r"import\(\s*['\"]https?:", html), page.name


def test_a_clean_run_exits_zero(notebooks: Path, tmp_path: Path, services: infra.Services) -> None:
    settings = Settings(database_url=services.database_url, redis_url=services.redis_url)
    options = ReportOptions(
        backend="external",
        skip_tests=True,
        only=("01_sprint_metrics",),
        reports_dir=tmp_path / "reports",
        notebooks_dir=notebooks,
    )
    assert run_report(options, settings=settings).exit_code == EXIT_OK


def test_the_cli_refuses_an_unknown_notebook_with_exit_1() -> None:
    result = CliRunner().invoke(app, ["report", "--skip-tests", "--only", "99_nope"])
    assert result.exit_code == 1
    assert "unknown notebook" in result.output


def test_the_cli_refuses_an_unknown_profile() -> None:
    result = CliRunner().invoke(app, ["report", "--profile", "huge"])
    assert result.exit_code == 1
    assert "smoke or full" in result.output
