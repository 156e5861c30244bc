"""The performance notebook, `notebooks/renderers/performance.ipynb`: written from here (so
its cells are reviewed as code) and run by `make bench` after the benchmarks.

`python -m rustok_ref.lab.perfnotebook build` rewrites the notebook (no outputs, stable cell
ids). `python -m rustok_ref.lab.perfnotebook render reports/bench` runs it with papermill on
the newest run in that folder, into `<folder>/<run-id>/performance.ipynb` and `.html`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from rustok_ref.lab.paths import REPO_ROOT
from rustok_ref.lab.perfreport import load_runs
from rustok_ref.lab.report import KERNEL, render_html

NOTEBOOK = REPO_ROOT / "notebooks" / "renderers" / "performance.ipynb"
FIXTURE = "tests/fixtures/bench"
"""The committed runs the notebook reads by default (under nbval, in `make test`)."""

_CELLS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "markdown",
        """# Performance: the ratio table, its trend, scale curves and memory per tenant

Every figure is a ratio of medians against a baseline timed in the same rounds on the same
machine (issue 10): absolute numbers on this shared machine mean little from one run to the
next, ratios do. The targets are `rustok_ref.lab.benchrecord.TARGETS`, the table the
benchmarks are judged by. A row whose benchmark did not run stays in the table, marked
missing with the reason; a row that misses its target says what bounds it.""",
        (),
    ),
    (
        "code",
        f"""run_dir = "{FIXTURE}"  # folder of bench runs (<run-id>.json), relative to the repo
run_id = None  # the run to report; None: the newest in run_dir""",
        ("parameters",),
    ),
    (
        "code",
        """from IPython.display import HTML, Markdown, display
from matplotlib import pyplot as plt

from rustok_ref.lab import perfreport as pr

run, runs = pr.load_runs(run_dir, run_id)
p = run.provenance
display(Markdown(
    f"Run **{run.run_id}** ({run.created:%Y-%m-%d %H:%M} UTC), one of {len(runs)} in the folder: "
    f"commit `{p.get('git_sha', '?')[:12]}` (dirty: {p.get('git_dirty')}), "
    f"Python {p.get('python_version')}, PostgreSQL {p.get('postgres_version')}, "
    f"Redis {p.get('redis_version')}, {p.get('cpu_count')} CPUs, "
    f"load average {p.get('load_average')}."
))


def show(fig):
    if fig is not None:
        fig.tight_layout()
        display(fig)
        plt.close(fig)""",
        (),
    ),
    (
        "markdown",
        """## The ratio table against issue 10's targets
`ratio` is the subject's median over the baseline's for a cost (lower is better), the
inverse for a throughput (higher is better); `ratio min`/`max` are the same ratio taken
round by round, the spread this machine allowed; the medians are in µs per call (per batch
for throughputs); `clock` says what was timed: this thread's CPU time when both sides only
computed (a preempted round then costs nothing extra), else the wall (`lab.stopwatch`).""",
        (),
    ),
    ("code", "display(HTML(pr.table_html(pr.ratio_rows(run))))", ()),
    (
        "markdown",
        """## The other paired figures
The same fixture's comparisons that no target judges: floors (the subject against a bare
call, what any wrapper must cost), other peers and ceilings.""",
        (),
    ),
    ("code", "display(HTML(pr.table_html(pr.other_rows(run))))", ()),
    (
        "markdown",
        """## The trend across runs
One line per ratio over the runs found in the folder, oldest first (log axis); a gap is a
run that did not measure it.""",
        (),
    ),
    ("code", "show(pr.plot_trend(runs))", ()),
    (
        "markdown",
        """## Scale curves
Cost per operation as one dimension grows over decades, log on both axes, the band from
the fastest to the slowest round: a flat line is a cost that does not grow with the
dimension.""",
        (),
    ),
    ("code", "show(pr.plot_curves(run))\ndisplay(HTML(pr.table_html(pr.curve_rows(run))))", ()),
    (
        "markdown",
        """## Memory per cached tenant
Resident set growth of a fresh process holding N tenants, in a TenantCache and in a plain
dict holding the same objects (RSS: tracemalloc cannot see moka's Rust allocations).
`container only` leaves out the tenant objects, built before the insert.""",
        (),
    ),
    ("code", "display(HTML(pr.table_html(pr.memory_rows(run))))", ()),
)


def build() -> NotebookNode:
    """The notebook, without outputs, with cell ids that do not change between builds."""
    notebook: NotebookNode = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for number, (kind, source, tags) in enumerate(_CELLS):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)  # type: ignore[no-untyped-call]
        else:
            cell = nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
        cell.id = f"performance-{number:02d}"
        if tags:
            cell.metadata["tags"] = list(tags)
        notebook.cells.append(cell)
    return notebook


def write(path: Path = NOTEBOOK) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build(), str(path))  # type: ignore[no-untyped-call]
    return path


def render(run_dir: Path, run_id: str | None = None) -> Path:
    """Run the notebook on `run_id` (default: the newest run in `run_dir`); the HTML's path."""
    import papermill

    run, _ = load_runs(run_dir, run_id)
    out = run_dir / run.run_id
    out.mkdir(parents=True, exist_ok=True)
    executed = out / "performance.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(executed),
        parameters={"run_dir": str(run_dir.resolve()), "run_id": run.run_id},
        kernel_name=KERNEL,
        progress_bar=False,
        cwd=str(NOTEBOOK.parent),
    )
    return render_html(executed, out / "performance.html")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rustok_ref.lab.perfnotebook")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help=f"rewrite {NOTEBOOK.relative_to(REPO_ROOT)}")
    rendering = commands.add_parser("render", help="run the notebook on a bench run")
    rendering.add_argument("run_dir", type=Path)
    rendering.add_argument("--run-id")
    arguments = parser.parse_args(argv)
    if arguments.command == "build":
        print(write())
    else:
        print(render(arguments.run_dir, arguments.run_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
