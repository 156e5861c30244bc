"""What every review notebook does before and after its measurements, in one place.

A notebook's first cell after its parameters calls `start`: bad parameters (an unknown
profile, a size that is not a positive whole number, a database or Redis URL that does not
answer) stop it there with a `NotebookParameterError` whose message is one line. `start`
also gives the notebook its services: the URLs it was handed (the report passes its run
namespace), or, when none were given, servers found or started through `infra` (`auto`
unless RUSTOK_BACKEND says otherwise) and a run namespace of its own, both torn down when the
kernel exits. So a notebook runs the same under nbval, papermill and JupyterLab.

The `Notebook` it returns saves and shows figures as evidence (`show`), and collects the
claims the notebook judged (`summary.record`) into `<name>.summary.json` (`summary.write`),
so no notebook repeats the judge-and-write boilerplate. No library does this part: values
leave a notebook through our summary schema, not scrapbook, which is dormant (DESIGN.md).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Literal, get_args

from IPython.display import HTML, display
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from pydantic import JsonValue

from rustok_ref.config import Settings, libpq_url
from rustok_ref.lab import infra
from rustok_ref.lab.claims import MeasuredBy, Verdict, get_claim
from rustok_ref.lab.paths import REPO_ROOT
from rustok_ref.lab.provenance import collect_provenance
from rustok_ref.lab.summary import ClaimResult, NotebookSummary, judge, write_summary

Profile = Literal["smoke", "full"]
PROFILES: tuple[str, ...] = get_args(Profile)
DEFAULT_OUTPUT_ROOT = REPO_ROOT / "reports" / "notebooks"


class NotebookParameterError(ValueError):
    """A parameter the notebook cannot run with; the message is one line saying which."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def check_profile(profile: object) -> Profile:
    """`profile` if it is one of PROFILES."""
    __tracebackhide__ = True
    if profile not in PROFILES:
        raise NotebookParameterError(
            f"profile must be one of {', '.join(PROFILES)}, got {profile!r}"
        )
    return profile  # type: ignore[return-value]  # narrowed by the membership test


def check_sizes(sizes: Mapping[str, object]) -> None:
    """Every size must be a positive whole number (a bool is not one)."""
    __tracebackhide__ = True
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise NotebookParameterError(f"{name} must be a positive whole number, got {value!r}")


def check_positive(values: Mapping[str, object]) -> None:
    """Every value must be a finite number above zero (a rate, a duration)."""
    __tracebackhide__ = True
    for name, value in values.items():
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number) or number <= 0:
            raise NotebookParameterError(f"{name} must be a number above zero, got {value!r}")


def check_reachable(database_url: str | None, redis_url: str | None) -> None:
    """A URL given must be of its kind and its server must answer (within infra's connect
    timeout); None is not checked."""
    __tracebackhide__ = True
    try:
        if database_url is not None:
            libpq_url(database_url)  # the scheme first: its ValueError names the URL
            infra.postgres_version(database_url)
        if redis_url is not None:
            infra.redis_version(redis_url)
    except (ValueError, infra.InfraError) as exc:
        raise NotebookParameterError(f"{exc}") from None


@dataclass
class Summary:
    """The claims one notebook judged, written as `<notebook>.summary.json`."""

    notebook: Notebook
    results: list[ClaimResult] = field(default_factory=list)

    def record(
        self,
        claim_id: str,
        figure: float | None,
        evidence_name: str,
        cell: str | int,
        note: str = "",
    ) -> None:
        """Judge `claim_id` on `figure` (None: not yet measured, with `note` saying why);
        `evidence_name` is a file in the output folder (ignored when `figure` is None).
        Returns nothing, so a cell that ends with it shows no stray output."""
        nb = self.notebook
        result = judge(
            claim_id,
            figure,
            unit=get_claim(claim_id).unit,
            evidence=None if figure is None else nb.evidence(evidence_name),
            notebook=nb.name,
            cell=cell,
            note=note,
        )
        self.results.append(result)

    def write(
        self, parameters: Mapping[str, JsonValue], seeds: Mapping[str, int]
    ) -> NotebookSummary:
        """Write the summary beside the figures, with the run's provenance."""
        nb = self.notebook
        summary = NotebookSummary(
            notebook=nb.name,
            results=tuple(self.results),
            provenance=collect_provenance(
                database_url=nb.database_url,
                redis_url=nb.redis_url,
                backend=nb.backend,
                profile=nb.profile,
                parameters=parameters,
                seeds=seeds,
            ),
        )
        write_summary(nb.out / f"{nb.name}.summary.json", summary)
        return summary

    def rows(self) -> list[dict[str, str]]:
        """One row per judged claim, in the words an architect reads."""
        rows = []
        for result in self.results:
            claim = get_claim(result.claim_id)
            rows.append(
                {
                    "claim": result.claim_id,
                    "the review says": claim.words_en,
                    "confirmed when": claim.expectation,
                    "measured": "—" if result.figure is None else f"{result.figure:g} {claim.unit}",
                    "verdict": str(result.verdict),
                    "note": result.note,
                }
            )
        return rows

    def show(self) -> None:
        """Display `rows()` as a table, each verdict coloured as in the report's scorecard."""
        rows = self.rows()
        if not rows:
            return
        header = "".join(f"<th{_LEFT}>{escape(column)}</th>" for column in rows[0])
        body = "".join(
            "<tr>" + "".join(_cell(column, value) for column, value in row.items()) + "</tr>"
            for row in rows
        )
        table = f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"
        display(HTML(table))  # type: ignore[no-untyped-call]


_LEFT = ' style="text-align:left;vertical-align:top"'


def _cell(column: str, value: str) -> str:
    style = _LEFT
    if column == "verdict":
        background, colour = _VERDICT_COLOURS[Verdict(value)]
        style = f'{_LEFT[:-1]};background:{background};color:{colour}"'
    return f"<td{style}>{escape(value)}</td>"


# The scorecard's colours (templates/index.html.j2): background, text.
_VERDICT_COLOURS: Mapping[Verdict, tuple[str, str]] = {
    Verdict.CONFIRMED: ("#dafbe1", "#116329"),
    Verdict.REFUTED: ("#ffebe9", "#a40e26"),
    Verdict.PARTIAL: ("#fff8c5", "#7d4e00"),
    Verdict.NOT_MEASURABLE: ("#eaeef2", "#57606a"),
    Verdict.NOT_YET_MEASURED: ("#ddf4ff", "#0a3069"),
}


@dataclass
class Notebook:
    """One notebook run: its name, profile, output folder, services and summary."""

    name: MeasuredBy
    profile: Profile
    out: Path
    backend: str
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str | None = None
    summary: Summary = field(init=False)
    _cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def __post_init__(self) -> None:
        self.summary = Summary(self)

    def sized(self, *, smoke: int, full: int) -> int:
        """The size for this run's profile."""
        return smoke if self.profile == "smoke" else full

    def evidence(self, name: str) -> str:
        """`name` in the output folder, relative to the report folder (its parent)."""
        return f"{self.out.name}/{name}"

    def show(self, fig: Figure, name: str) -> None:
        """Save `fig` as `name` in the output folder, display it (embedded in the HTML
        report) and close it.

        `display` rather than `plt.show()`: under a non-inline backend (papermill without
        matplotlib-inline) `plt.show()` puts nothing in the notebook."""
        fig.tight_layout()
        fig.savefig(self.out / name, dpi=110)
        display(fig)  # type: ignore[no-untyped-call]
        plt.close(fig)

    def close(self) -> None:
        """Drop what `start` created (run namespace, servers); runs at kernel exit too."""
        self._cleanup.close()


def start(
    name: MeasuredBy,
    *,
    profile: object,
    output_dir: str | Path | None = None,
    sizes: Mapping[str, object] | None = None,
    positive: Mapping[str, object] | None = None,
    database_url: str | None = None,
    redis_url: str | None = None,
    redis_prefix: str | None = None,
    services: bool = False,
    settings: Settings | None = None,
) -> Notebook:
    """Check the parameters and set the notebook up: the profile, `sizes` (positive whole
    numbers) and `positive` (numbers above zero), then the services.

    With `services`, the notebook gets PostgreSQL and Redis: the URLs given (both or
    neither), checked to answer; or, with neither, servers from `infra.provision` with the
    settings' backend (read from the environment by default: `auto`, so external when
    RUSTOK_DATABASE_URL and RUSTOK_REDIS_URL are set, else embedded or containers) and a run
    namespace of its own, dropped at kernel exit. Given URLs with no `redis_prefix` get a
    fresh prefix under the settings' one, whose keys are deleted at exit. Without `services`
    the URLs are not used (the notebook runs in-process). The output folder defaults to
    reports/notebooks/<name>.
    """
    __tracebackhide__ = True
    checked = check_profile(profile)
    check_sizes(sizes or {})
    check_positive(positive or {})
    if services and (database_url is None) != (redis_url is None):
        raise NotebookParameterError(
            "give both database_url and redis_url, or neither (to provision servers)"
        )
    if services and database_url is not None:
        check_reachable(database_url, redis_url)
    out = Path(output_dir) if output_dir else DEFAULT_OUTPUT_ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    if not services:
        return Notebook(name, checked, out, backend="none")
    settings = settings or Settings()
    if database_url is not None and redis_url is not None:
        notebook = Notebook(
            name, checked, out, "external", libpq_url(database_url), redis_url, redis_prefix
        )
        if redis_prefix is None:
            notebook.redis_prefix = f"{settings.redis_prefix}nb:{name}:{secrets.token_hex(4)}:"
            notebook._cleanup.callback(infra.delete_prefix, redis_url, notebook.redis_prefix)
    else:
        notebook = _provisioned(name, checked, out, settings)
    atexit.register(notebook.close)
    return notebook


def _provisioned(name: MeasuredBy, profile: Profile, out: Path, settings: Settings) -> Notebook:
    __tracebackhide__ = True
    cleanup = contextlib.ExitStack()
    try:
        found = cleanup.enter_context(infra.provision(settings.backend, settings))
        namespace = cleanup.enter_context(infra.run_namespace(found, name))
    except infra.InfraError as exc:
        cleanup.close()
        raise NotebookParameterError(f"no PostgreSQL/Redis for the notebook: {exc}") from None
    return Notebook(
        name,
        profile,
        out,
        found.backend,
        namespace.database_url,
        namespace.redis_url,
        namespace.redis_prefix,
        _cleanup=cleanup,
    )
