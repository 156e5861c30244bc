"""`rustok-ref report`: the review report, end to end.

Provision the servers, create the run's database, run the test phase with coverage, run every
review notebook through papermill, render each to HTML with the code hidden and the figures
embedded, and write `reports/<run-id>/index.html` (the claims scorecard, the measured sprint
table, a link per notebook) and `summary.json`, with provenance. `reports/latest` points at
the newest run. A failing notebook is shown in the index with the cell that failed, and makes
the command exit non-zero.

`--only NAME` re-runs that notebook into the latest report: the new run starts as a copy of
the latest run's other notebooks (and its test phase, when this run skips it), so the
scorecard still holds every claim they measured.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, select_autoescape
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from rustok_ref.config import Settings
from rustok_ref.lab import infra
from rustok_ref.lab.paths import REPO_ROOT
from rustok_ref.lab.provenance import collect_provenance
from rustok_ref.lab.summary import NotebookSummary, read_summary, scorecard

Profile = Literal["smoke", "full"]
EXIT_OK, EXIT_HARNESS, EXIT_CHECK = 0, 1, 2
KERNEL = "python3"


class ReportError(RuntimeError):
    """The report could not be run as asked (bad --only, no notebooks)."""


@dataclass(frozen=True)
class ReportOptions:
    backend: str = "auto"
    profile: Profile = "smoke"
    skip_tests: bool = False
    only: tuple[str, ...] = ()
    reports_dir: Path = REPO_ROOT / "reports"
    notebooks_dir: Path = REPO_ROOT / "notebooks"


@dataclass
class TestPhase:
    exit_code: int
    seconds: float
    coverage_percent: float | None
    coverage_json: str | None
    junit: str | None


@dataclass
class NotebookRun:
    name: str
    status: Literal["passed", "failed"]
    seconds: float
    html: str | None = None
    summary: str | None = None
    failed_cell: int | None = None
    error: str | None = None


@dataclass
class ReportResult:
    run_id: str
    run_dir: Path
    exit_code: int
    tests: TestPhase | None
    notebooks: list[NotebookRun] = field(default_factory=list)


def discover_notebooks(notebooks_dir: Path, only: Sequence[str] = ()) -> list[Path]:
    """The review notebooks in name order (renderers/ left out), filtered by `only`."""
    found = sorted(notebooks_dir.glob("*.ipynb"))
    if not found:
        raise ReportError(f"no notebooks in {notebooks_dir}")
    if not only:
        return found
    by_name = {path.stem: path for path in found}
    missing = [name for name in only if name not in by_name]
    if missing:
        raise ReportError(
            f"unknown notebook(s) {', '.join(missing)}; available: {', '.join(sorted(by_name))}"
        )
    return [by_name[name] for name in only]


def run_test_phase(run_dir: Path, services: infra.Services) -> TestPhase:
    """`pytest tests -m "not load and not slow"` with coverage, timed on its own."""
    out = run_dir / "tests"
    out.mkdir(parents=True, exist_ok=True)
    coverage_json, junit = out / "coverage.json", out / "junit.xml"
    env = {
        **os.environ,
        "RUSTOK_DATABASE_URL": services.database_url,
        "RUSTOK_REDIS_URL": services.redis_url,
        "RUSTOK_BACKEND": "external",
    }
    command = [
        sys.executable, "-m", "pytest", "tests", "-m", "not load and not slow",
        "-q", "-p", "no:cacheprovider", "--benchmark-disable",
        "--cov", "--cov-report", f"json:{coverage_json}", "--junitxml", str(junit),
    ]  # fmt: skip
    start = time.perf_counter()
    with (out / "pytest.log").open("w") as log:
        code = subprocess.call(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    seconds = time.perf_counter() - start
    percent = None
    if coverage_json.exists():
        percent = float(json.loads(coverage_json.read_text())["totals"]["percent_covered"])
    return TestPhase(
        exit_code=code,
        seconds=seconds,
        coverage_percent=percent,
        coverage_json=str(coverage_json) if coverage_json.exists() else None,
        junit=str(junit) if junit.exists() else None,
    )


def notebook_parameters(path: Path, offered: dict[str, Any]) -> dict[str, Any]:
    """Only the offered parameters the notebook declares (papermill warns on the others)."""
    import papermill

    declared = papermill.inspect_notebook(str(path))
    return {name: value for name, value in offered.items() if name in declared}


def execute_notebook(path: Path, run_dir: Path, offered: dict[str, Any]) -> NotebookRun:
    """Run one notebook with papermill, then render it to HTML whatever the outcome."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    name = path.stem
    output_dir = run_dir / name
    output_dir.mkdir(parents=True, exist_ok=True)
    executed = run_dir / "notebooks" / f"{name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    parameters = notebook_parameters(path, {**offered, "output_dir": str(output_dir)})
    start = time.perf_counter()
    result = NotebookRun(name=name, status="passed", seconds=0.0)
    try:
        papermill.execute_notebook(
            str(path),
            str(executed),
            parameters=parameters,
            kernel_name=KERNEL,
            progress_bar=False,
            cwd=str(path.parent),
        )
    except PapermillExecutionError as exc:
        result.status = "failed"
        result.failed_cell = exc.cell_index
        result.error = f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # the kernel died or would not start: still a report line
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - start
    if executed.exists():
        result.html = str(render_html(executed, run_dir / f"{name}.html").relative_to(run_dir))
    summary = output_dir / f"{name}.summary.json"
    if summary.exists():
        result.summary = str(summary.relative_to(run_dir))
    elif result.status == "passed":
        result.status = "failed"
        result.error = f"the notebook wrote no {summary.name}"
    return result


_SCRIPT_SRC_EMPTY = re.compile(r'<script[^>]*\bsrc=""[^>]*>\s*</script>')


def render_html(executed: Path, target: Path) -> Path:
    """HTML for architects: code and prompts hidden, figures embedded, nothing loaded from
    the network (the CDN script URLs nbconvert would add are emptied and dropped)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
        mathjax_url="",
        require_js_url="",
        jquery_url="",
        mermaid_js_url="",
        mermaid_layout_elk_js_url="",
        widget_renderer_url="",
    )
    notebook = nbformat.read(str(executed), as_version=4)  # type: ignore[no-untyped-call]
    body, _ = exporter.from_notebook_node(notebook)
    target.write_text(_SCRIPT_SRC_EMPTY.sub("", body))
    return target


def carry_forward(
    previous: Path, run_dir: Path, rerun: Sequence[str], *, tests: bool
) -> tuple[list[NotebookRun], TestPhase | None]:
    """Copy the notebooks of the run in `previous` other than `rerun` into `run_dir` (each
    one's output folder, executed notebook and HTML) and, with `tests`, its test phase; return
    their records, paths moved to `run_dir`. Nothing when `previous` holds no report."""
    document = previous / "summary.json"
    if not document.exists():
        return [], None
    earlier = json.loads(document.read_text())
    kept = []
    for record in earlier["notebooks"]:
        if record["name"] in rerun:
            continue
        name = record["name"]
        for part in (name, f"notebooks/{name}.ipynb", record["html"]):
            if part is not None:
                _copy(previous / part, run_dir / part)
        kept.append(NotebookRun(**record))
    phase = None
    if tests and earlier["tests"] is not None:
        _copy(previous / "tests", run_dir / "tests")
        moved = {
            key: None
            if earlier["tests"][key] is None
            else str(run_dir / "tests" / Path(earlier["tests"][key]).name)
            for key in ("coverage_json", "junit")
        }
        phase = TestPhase(**{**earlier["tests"], **moved})
    return kept, phase


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def cell_anchors(executed: Path) -> dict[str, str]:
    """A notebook's cells by id and by tag, each to its id: a summary may name the cell that
    measured a claim either way, and the rendered HTML anchors cells by id only."""
    import nbformat

    notebook = nbformat.read(str(executed), as_version=4)  # type: ignore[no-untyped-call]
    anchors: dict[str, str] = {}
    for cell in notebook.cells:
        cell_id = cell.get("id")
        if cell_id:
            anchors.setdefault(str(cell_id), str(cell_id))
            for tag in cell.get("metadata", {}).get("tags", []):
                anchors.setdefault(str(tag), str(cell_id))
    return anchors


def _render_index(context: dict[str, Any]) -> str:
    env = Environment(
        loader=PackageLoader("rustok_ref.lab", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    return env.get_template("index.html.j2").render(**context)


def _point_latest(reports_dir: Path, run_dir: Path) -> None:
    latest = reports_dir / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run_dir.name, target_is_directory=True)


def run_report(
    options: ReportOptions,
    *,
    console: Console | None = None,
    settings: Settings | None = None,
) -> ReportResult:
    """The whole pipeline; returns the result with the exit code the CLI should use."""
    console = console or Console(stderr=True)
    notebooks = discover_notebooks(options.notebooks_dir, options.only)
    created = datetime.now(UTC)
    steps = 3 + (0 if options.skip_tests else 1) + len(notebooks)
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
        infra.provision(options.backend, settings or Settings()) as services,
    ):
        task = progress.add_task("provisioned", total=steps, completed=1)

        def step(label: str) -> None:
            progress.update(task, description=label)

        provenance = collect_provenance(
            database_url=services.database_url,
            redis_url=services.redis_url,
            backend=services.backend,
            profile=options.profile,
            parameters={"only": list(options.only), "skip_tests": options.skip_tests},
            seeds={},
        )
        run_id = f"{created:%Y%m%dT%H%M%SZ}-{provenance.git_sha[:7]}"
        run_dir = options.reports_dir / run_id
        run_dir.mkdir(parents=True)
        result = ReportResult(run_id=run_id, run_dir=run_dir, exit_code=EXIT_OK, tests=None)

        if not options.skip_tests:
            step("test phase (pytest with coverage)")
            result.tests = run_test_phase(run_dir, services)
            progress.advance(task)

        if options.only:
            result.notebooks, carried_tests = carry_forward(
                (options.reports_dir / "latest").resolve(),
                run_dir,
                options.only,
                tests=options.skip_tests,
            )
            result.tests = result.tests or carried_tests

        with infra.run_namespace(services, "report") as namespace:
            offered = {
                "database_url": namespace.database_url,
                "redis_url": namespace.redis_url,
                "redis_prefix": namespace.redis_prefix,
                "profile": options.profile,
                "coverage_json": result.tests.coverage_json if result.tests else None,
            }
            for path in notebooks:
                step(f"notebook {path.stem}")
                result.notebooks.append(execute_notebook(path, run_dir, offered))
                progress.advance(task)
        result.notebooks.sort(key=lambda run: run.name)

        step("index")
        summaries: list[NotebookSummary] = [
            read_summary(run_dir / run.summary) for run in result.notebooks if run.summary
        ]
        rows = scorecard(summaries)
        failed = [run for run in result.notebooks if run.status == "failed"]
        tests_failed = result.tests is not None and result.tests.exit_code != 0
        result.exit_code = EXIT_HARNESS if failed else EXIT_CHECK if tests_failed else EXIT_OK
        document = {
            "run_id": run_id,
            "created": created.isoformat(),
            "exit_code": result.exit_code,
            "provenance": provenance.model_dump(mode="json"),
            "tests": asdict(result.tests) if result.tests else None,
            "notebooks": [asdict(run) for run in result.notebooks],
            "scorecard": [row.model_dump(mode="json") for row in rows],
        }
        (run_dir / "summary.json").write_text(json.dumps(document, indent=2))
        (run_dir / "index.html").write_text(
            _render_index(
                {
                    "document": document,
                    "rows": rows,
                    "verdict_counts": sorted(Counter(str(row.verdict) for row in rows).items()),
                    "sprint_rows": [row for row in rows if row.claim_id.startswith("progress.")],
                    "notebooks": result.notebooks,
                    "anchors": {
                        run.name: cell_anchors(run_dir / "notebooks" / f"{run.name}.ipynb")
                        for run in result.notebooks
                        if (run_dir / "notebooks" / f"{run.name}.ipynb").exists()
                    },
                    "tests": result.tests,
                    "provenance": provenance,
                }
            )
        )
        _point_latest(options.reports_dir, run_dir)
        progress.update(task, completed=steps, description="done")
    return result
