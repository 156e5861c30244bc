"""What each notebook found, in one schema, and the scorecard the report builds from it.

A notebook calls `judge` with a claim id and the figure it measured; the claim's rule (see
`claims`) computes the verdict, so none is ever typed in. A `ClaimResult` re-checks the
id, the unit, the measuring notebook and the verdict whenever it is built, including when a
summary file is read back, so a stale or hand-edited summary fails the report instead of
reaching the architect. `scorecard` lists every registered claim, measured or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rustok_ref.lab.claims import (
    CLAIMS,
    AtLeast,
    AtMost,
    Claim,
    Equals,
    MeasuredBy,
    NotMeasurable,
    ProgressValues,
    UnknownClaimError,
    Verdict,
    WithinRatio,
    get_claim,
)
from rustok_ref.lab.provenance import Provenance

__all__ = [
    "AtLeast",
    "AtMost",
    "ClaimResult",
    "Equals",
    "NotMeasurable",
    "NotebookSummary",
    "ScorecardRow",
    "UnknownClaimError",
    "Verdict",
    "WithinRatio",
    "judge",
    "read_summary",
    "scorecard",
    "write_summary",
]

Cell = str | Annotated[int, Field(ge=0)]


def _verdict(claim: Claim, figure: float | None, *, unit: str | None, notebook: str) -> Verdict:
    if unit != claim.unit:
        raise ValueError(f"{claim.id}: unit {unit!r} differs from the claim's unit {claim.unit!r}")
    if claim.measurable and notebook != claim.measured_by:
        raise ValueError(f"{claim.id} is measured by {claim.measured_by}, not by {notebook}")
    return claim.verdict_for(figure)


class ClaimResult(BaseModel):
    """One claim as a notebook checked it. `evidence` is a path relative to the run's report
    folder (a figure or a data file); `cell` the notebook cell's id or index."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    claim_id: str
    verdict: Verdict
    figure: float | None
    unit: str | None
    evidence: str | None
    notebook: MeasuredBy
    cell: Cell
    note: str = ""

    @field_validator("claim_id")
    @classmethod
    def _registered(cls, claim_id: str) -> str:
        get_claim(claim_id)  # UnknownClaimError propagates: it fails the report
        return claim_id

    @field_validator("evidence")
    @classmethod
    def _relative(cls, evidence: str | None) -> str | None:
        if evidence is not None:
            path = PurePosixPath(evidence)
            if not evidence or path.is_absolute() or ".." in path.parts:
                raise ValueError(f"evidence must be a path inside the report folder: {evidence!r}")
        return evidence

    @model_validator(mode="after")
    def _computed(self) -> ClaimResult:
        claim = get_claim(self.claim_id)
        expected = _verdict(claim, self.figure, unit=self.unit, notebook=self.notebook)
        if self.verdict is not expected:
            raise ValueError(
                f"{self.claim_id}: verdict {self.verdict} disagrees with its rule "
                f"({claim.expectation}), which gives {expected} for {self.figure}"
            )
        if self.figure is not None and self.evidence is None:
            raise ValueError(f"{self.claim_id}: a measured figure needs its evidence")
        return self


class NotebookSummary(BaseModel):
    """`<notebook>.summary.json`: the claims one notebook (or scenario) checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notebook: MeasuredBy
    results: tuple[ClaimResult, ...]
    provenance: Provenance

    @model_validator(mode="after")
    def _consistent(self) -> NotebookSummary:
        seen: set[str] = set()
        for result in self.results:
            if result.notebook != self.notebook:
                raise ValueError(
                    f"{result.claim_id} was judged by {result.notebook}, not by {self.notebook}"
                )
            if result.claim_id in seen:
                raise ValueError(f"{result.claim_id} is judged twice in {self.notebook}")
            seen.add(result.claim_id)
        return self


class ScorecardRow(BaseModel):
    """A line of the report's scorecard: the claim, what it expects (and how it is measured,
    and its progress-table values, if any), and what was found."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    claim_id: str
    section: str
    words_en: str
    expectation: str
    method: str
    progress: ProgressValues | None
    verdict: Verdict
    figure: float | None
    unit: str | None
    notebook: MeasuredBy | None
    evidence: str | None
    cell: Cell | None
    note: str


def judge(
    claim_id: str,
    figure: float | None,
    *,
    unit: str | None,
    evidence: str | None,
    notebook: MeasuredBy,
    cell: str | int,
    note: str = "",
) -> ClaimResult:
    """The result for a claim: its rule's verdict on `figure` (None: not yet measured).

    Raises UnknownClaimError for an unregistered id, ValueError for a unit other than the
    claim's, a notebook other than the one that measures it, or a NaN or infinite figure.
    """
    claim = get_claim(claim_id)
    verdict = _verdict(claim, figure, unit=unit, notebook=notebook)
    return ClaimResult(
        claim_id=claim_id,
        verdict=verdict,
        figure=figure,
        unit=unit,
        evidence=evidence,
        notebook=notebook,
        cell=cell,
        note=note,
    )


def write_summary(path: Path | str, summary: NotebookSummary) -> None:
    """Write `summary` as indented JSON (the `<notebook>.summary.json` beside its figures)."""
    Path(path).write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_summary(path: Path | str) -> NotebookSummary:
    """The summary at `path`, re-validated against the registry (unknown ids raise)."""
    return NotebookSummary.model_validate_json(Path(path).read_text(encoding="utf-8"))


def scorecard(summaries: Iterable[NotebookSummary]) -> list[ScorecardRow]:
    """One row per registered claim, in registry order; claims no summary checked come out
    not-yet-measured, or not-measurable with the reason. A claim judged by two summaries
    raises ValueError."""
    results: dict[str, ClaimResult] = {}
    for summary in summaries:
        for result in summary.results:
            if result.claim_id in results:
                raise ValueError(
                    f"{result.claim_id} is judged twice: by "
                    f"{results[result.claim_id].notebook} and {result.notebook}"
                )
            results[result.claim_id] = result
    return [_row(claim, results.get(claim.id)) for claim in CLAIMS.values()]


def _row(claim: Claim, result: ClaimResult | None) -> ScorecardRow:
    unmeasured_note = claim.rule.reason if isinstance(claim.rule, NotMeasurable) else ""
    return ScorecardRow(
        claim_id=claim.id,
        section=claim.section,
        words_en=claim.words_en,
        expectation=claim.expectation,
        method=claim.method,
        progress=claim.progress,
        verdict=claim.verdict_for(None) if result is None else result.verdict,
        figure=None if result is None else result.figure,
        unit=claim.unit,  # a result's unit is the claim's: ClaimResult checks it
        notebook=claim.measured_by if result is None else result.notebook,
        evidence=None if result is None else result.evidence,
        cell=None if result is None else result.cell,
        note=unmeasured_note if result is None else result.note,
    )
