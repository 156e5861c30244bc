"""The claims registry and the summary API: every claim of the review is registered once,
verdicts come from rules, and a summary survives a trip through JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from rustok_ref.lab.claims import (
    CLAIMS,
    AtLeast,
    AtMost,
    Claim,
    NotMeasurable,
    ProgressValues,
    UnknownClaimError,
    Verdict,
    _registry,
    get_claim,
)
from rustok_ref.lab.provenance import LockedPackage, Provenance
from rustok_ref.lab.summary import (
    ClaimResult,
    NotebookSummary,
    judge,
    read_summary,
    scorecard,
    write_summary,
)

# The review's progress table, row by row (including the two rows seed/README.md leaves out).
PROGRESS_TABLE = {
    "progress.architecture-score": ("8.7/10", "9.0/10", "9.5/10"),
    "progress.test-coverage": ("31%", "40%", "50%+"),
    "progress.code-complexity": ("Medium", "Low-Medium", "Low"),
    "progress.production-readiness": ("85%", "90%", "100%"),
    "progress.maintainability": ("Good", "Excellent", "Excellent"),
    "progress.scalability": ("Good", "Excellent", "Excellent"),
    "progress.security-score": ("85%", "90%", "95%+"),
}
NOBODY_CAN_MEASURE = [
    "progress.architecture-score",
    "progress.production-readiness",
    "progress.security-score",
    "progress.maintainability",
    "progress.scalability",
]
# seed/README.md's four weak spots: breaker, saga, moka loader, flags.
WEAK_SPOTS = [
    "weak.breaker-cumulative-failures",
    "weak.saga-crash-unrecoverable",
    "weak.moka-caches-only-found",
    "weak.flags-read-per-request",
]
RECOMMENDATIONS = ["P1.1", "P1.2", "P1.3", "P2.1", "P2.2", "T1", "T2", "T3", "A1", "A2", "A3"]
SPRINT1_FIGURES = {
    "sprint1.event-validation.loc": (260, "lines"),
    "sprint1.event-validation.tests": (25, "tests"),
    "sprint1.tenant-sanitization.loc": (505, "lines"),
    "sprint1.tenant-sanitization.tests": (30, "tests"),
    "sprint1.backpressure.loc": (464, "lines"),
    "sprint1.eventbus-audit": (100, "percent"),
    "sprint1.test-coverage": (31, "percent"),
    "sprint1.p0-complete": (4, "tasks"),
}


def _provenance() -> Provenance:
    return Provenance(
        git_sha="0" * 40,
        git_dirty=False,
        packages=(LockedPackage(name="pydantic", locked="2.0", installed="2.0", mismatch=False),),
        python_version="3.11.7",
        postgres_version="16.4",
        redis_version="7.0.15",
        backend="external",
        profile="smoke",
        parameters={"tenants": 10, "ratios": [0.5, 1.0]},
        seeds={"hypothesis": 1},
        cpu_count=2,
        load_average=(0.1, 0.2, 0.3),
        timestamp=datetime(2026, 2, 12, 15, 46, tzinfo=UTC),
    )


def _loc_reduction(figure: float | None = -70.0) -> ClaimResult:
    return judge(
        "P1.1.loc-reduction",
        figure,
        unit="percent",
        evidence="figures/tenant_cache_loc.png",
        notebook="02_tenant_cache",
        cell="loc-cell",
    )


# -- the registry ----------------------------------------------------------------------


def test_each_claim_is_registered_under_its_own_id() -> None:
    assert all(claim_id == claim.id for claim_id, claim in CLAIMS.items())


def test_a_duplicate_id_is_refused() -> None:
    claim = CLAIMS["P1.2.fail-fast"]
    with pytest.raises(ValueError, match=r"duplicate claim id 'P1\.2\.fail-fast'"):
        _registry([claim, claim])


def test_the_registry_is_immutable() -> None:
    with pytest.raises(TypeError):
        CLAIMS["P1.2.fail-fast"] = CLAIMS["P1.2.fail-fast"]  # type: ignore[index]


@pytest.mark.parametrize(("claim_id", "values"), PROGRESS_TABLE.items())
def test_every_progress_row_is_registered_with_its_values(
    claim_id: str, values: tuple[str, str, str]
) -> None:
    assert get_claim(claim_id).progress == ProgressValues(*values)


def test_no_other_claim_carries_progress_values() -> None:
    assert {c.id for c in CLAIMS.values() if c.progress is not None} == set(PROGRESS_TABLE)


@pytest.mark.parametrize("claim_id", NOBODY_CAN_MEASURE)
def test_judgement_rows_are_not_measurable_and_say_why(claim_id: str) -> None:
    claim = get_claim(claim_id)
    assert not claim.measurable
    assert isinstance(claim.rule, NotMeasurable)
    assert claim.rule.reason


@pytest.mark.parametrize("claim_id", ["progress.test-coverage", "progress.code-complexity"])
def test_measurable_progress_rows_are_partial_at_the_after_sprint_2_value(claim_id: str) -> None:
    claim = get_claim(claim_id)
    assert claim.measured_by == "01_sprint_metrics"
    assert isinstance(claim.rule, AtLeast | AtMost)
    assert claim.rule.partial_limit is not None


def test_coverage_row_judges_the_review_values() -> None:
    claim = get_claim("progress.test-coverage")
    assert claim.verdict_for(31) is Verdict.REFUTED
    assert claim.verdict_for(40) is Verdict.PARTIAL
    assert claim.verdict_for(50) is Verdict.CONFIRMED


@pytest.mark.parametrize("claim_id", WEAK_SPOTS)
def test_the_four_weak_spots_are_registered(claim_id: str) -> None:
    claim = get_claim(claim_id)
    assert claim.measurable
    assert claim.section.startswith("seed/README.md")


@pytest.mark.parametrize("recommendation", RECOMMENDATIONS)
def test_every_recommendation_has_claims(recommendation: str) -> None:
    assert any(claim_id.startswith(f"{recommendation}.") for claim_id in CLAIMS)


@pytest.mark.parametrize(("claim_id", "stated"), SPRINT1_FIGURES.items())
def test_sprint1_figures_are_registered(claim_id: str, stated: tuple[float, str]) -> None:
    claim = get_claim(claim_id)
    assert (claim.figure, claim.unit) == stated


def test_the_headline_p11_claim_is_minus_74_percent() -> None:
    claim = get_claim("P1.1.loc-reduction")
    assert (claim.figure, claim.unit, claim.measured_by) == (-74, "percent", "02_tenant_cache")
    assert claim.words_ru == "Сокращение кода: 580 строк → ~150 строк (-74%)"
    assert claim.verdict_for(-74) is Verdict.CONFIRMED
    assert claim.verdict_for(-39) is Verdict.REFUTED


def test_measurable_claims_say_how_and_where_they_are_measured() -> None:
    for claim in CLAIMS.values():
        assert claim.words_en
        if claim.measurable:
            assert claim.unit and claim.method and claim.measured_by, claim.id


def test_a_measurable_claim_without_a_method_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a unit, measured_by, method"):
        Claim("x.y", "s", "words", None, AtMost(0), unit="calls")


def test_an_unknown_id_names_itself_and_close_ids() -> None:
    with pytest.raises(UnknownClaimError) as caught:
        get_claim("P1.1.loc-reduce")
    assert caught.value.claim_id == "P1.1.loc-reduce"
    assert "P1.1.loc-reduction" in caught.value.suggestions
    assert "'P1.1.loc-reduce'" in str(caught.value)
    assert "did you mean 'P1.1.loc-reduction'" in str(caught.value)


def test_an_unknown_id_far_from_any_claim_says_so() -> None:
    with pytest.raises(UnknownClaimError, match="no registered claim id is close"):
        get_claim("zzzz")


# -- judge -----------------------------------------------------------------------------


def test_judge_computes_the_verdict() -> None:
    assert _loc_reduction(-70.0).verdict is Verdict.CONFIRMED
    assert _loc_reduction(-60.0).verdict is Verdict.PARTIAL
    assert _loc_reduction(-30.0).verdict is Verdict.REFUTED


def test_judge_without_a_figure_is_not_yet_measured() -> None:
    result = judge(
        "P1.2.fail-fast",
        None,
        unit="connections",
        evidence=None,
        notebook="03_circuit_breaker",
        cell=4,
    )
    assert result.verdict is Verdict.NOT_YET_MEASURED


def test_judge_rejects_a_unit_other_than_the_claims() -> None:
    with pytest.raises(ValueError, match="unit 'lines' differs from the claim's unit 'percent'"):
        judge(
            "P1.1.loc-reduction",
            -70.0,
            unit="lines",
            evidence="loc.png",
            notebook="02_tenant_cache",
            cell=1,
        )


def test_judge_rejects_a_notebook_other_than_the_claims() -> None:
    with pytest.raises(ValueError, match="measured by 02_tenant_cache, not by 03_circuit_breaker"):
        judge(
            "P1.1.loc-reduction",
            -70.0,
            unit="percent",
            evidence="loc.png",
            notebook="03_circuit_breaker",
            cell=1,
        )


@pytest.mark.parametrize("figure", [float("nan"), float("inf")])
def test_judge_rejects_a_figure_that_is_not_a_number(figure: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        _loc_reduction(figure)


def test_judge_rejects_an_unknown_claim() -> None:
    with pytest.raises(UnknownClaimError, match=r"P1\.2\.fail-fast"):
        judge(
            "P1.2.failfast",
            0,
            unit="connections",
            evidence="x",
            notebook="03_circuit_breaker",
            cell=1,
        )


def test_a_claim_nobody_can_measure_takes_no_figure() -> None:
    with pytest.raises(ValueError, match="not measurable"):
        judge(
            "progress.security-score",
            90,
            unit="percent",
            evidence="x",
            notebook="01_sprint_metrics",
            cell=1,
        )
    result = judge(
        "progress.security-score",
        None,
        unit="percent",
        evidence=None,
        notebook="01_sprint_metrics",
        cell=1,
    )
    assert result.verdict is Verdict.NOT_MEASURABLE


def test_a_measured_figure_needs_evidence() -> None:
    with pytest.raises(ValidationError, match="needs its evidence"):
        judge(
            "P1.2.fail-fast",
            0,
            unit="connections",
            evidence=None,
            notebook="03_circuit_breaker",
            cell=1,
        )


@pytest.mark.parametrize("evidence", ["/tmp/loc.png", "../loc.png", "figs/../../loc.png", ""])
def test_evidence_stays_inside_the_report_folder(evidence: str) -> None:
    with pytest.raises(ValidationError, match="inside the report folder"):
        judge(
            "P1.2.fail-fast",
            0,
            unit="connections",
            evidence=evidence,
            notebook="03_circuit_breaker",
            cell=1,
        )


def test_a_typed_in_verdict_is_refused() -> None:
    typed_in = _loc_reduction(-30.0).model_dump() | {"verdict": "confirmed"}
    with pytest.raises(ValidationError, match="disagrees with its rule"):
        ClaimResult.model_validate(typed_in)


# -- summaries and the scorecard -------------------------------------------------------


def test_a_summary_survives_a_trip_through_json(tmp_path: Path) -> None:
    summary = NotebookSummary(
        notebook="02_tenant_cache",
        results=(
            _loc_reduction(-70.0),
            judge(
                "P1.1.stampede",
                1,
                unit="loads",
                evidence="stampede.csv",
                notebook="02_tenant_cache",
                cell=7,
                note="100 concurrent misses",
            ),
            judge(
                "P1.1.eviction",
                None,
                unit="entries",
                evidence=None,
                notebook="02_tenant_cache",
                cell="c9",
            ),
        ),
        provenance=_provenance(),
    )
    path = tmp_path / "02_tenant_cache.summary.json"
    write_summary(path, summary)
    assert read_summary(path) == summary


def test_reading_a_summary_with_an_unknown_claim_fails(tmp_path: Path) -> None:
    summary = NotebookSummary(
        notebook="02_tenant_cache", results=(_loc_reduction(),), provenance=_provenance()
    )
    path = tmp_path / "stale.summary.json"
    write_summary(path, summary)
    path.write_text(path.read_text().replace("P1.1.loc-reduction", "P1.1.loc-cut"))
    with pytest.raises(UnknownClaimError, match=r"P1\.1\.loc-cut"):
        read_summary(path)


def test_a_summary_holds_its_own_notebooks_results_once() -> None:
    with pytest.raises(ValidationError, match="judged twice"):
        NotebookSummary(
            notebook="02_tenant_cache",
            results=(_loc_reduction(), _loc_reduction()),
            provenance=_provenance(),
        )
    with pytest.raises(ValidationError, match="not by 03_circuit_breaker"):
        NotebookSummary(
            notebook="03_circuit_breaker", results=(_loc_reduction(),), provenance=_provenance()
        )


def test_the_scorecard_covers_every_claim_in_registry_order() -> None:
    summary = NotebookSummary(
        notebook="02_tenant_cache", results=(_loc_reduction(-70.0),), provenance=_provenance()
    )
    rows = scorecard([summary])
    assert [row.claim_id for row in rows] == list(CLAIMS)
    by_id = {row.claim_id: row for row in rows}
    measured = by_id["P1.1.loc-reduction"]
    assert (measured.verdict, measured.figure, measured.evidence, measured.cell) == (
        Verdict.CONFIRMED,
        -70.0,
        "figures/tenant_cache_loc.png",
        "loc-cell",
    )
    unmeasured = by_id["P1.2.fail-fast"]
    assert (unmeasured.verdict, unmeasured.notebook) == (
        Verdict.NOT_YET_MEASURED,
        "03_circuit_breaker",
    )
    judgement = by_id["progress.architecture-score"]
    assert judgement.verdict is Verdict.NOT_MEASURABLE
    assert judgement.note == "a reviewer's score with no stated rubric or formula"
    assert judgement.progress == ProgressValues("8.7/10", "9.0/10", "9.5/10")


def test_scorecard_rows_serialise_for_the_report_index() -> None:
    rows = scorecard([])
    dumped = {row.claim_id: row.model_dump(mode="json") for row in rows}
    assert dumped["progress.test-coverage"]["progress"] == {
        "now": "31%",
        "after_sprint_2": "40%",
        "goal": "50%+",
    }
    assert dumped["P1.2.fail-fast"]["expectation"] == "≤ 0 connections"


def test_the_scorecard_of_nothing_lists_every_claim_unmeasured() -> None:
    verdicts = {row.verdict for row in scorecard([])}
    assert verdicts == {Verdict.NOT_YET_MEASURED, Verdict.NOT_MEASURABLE}


def test_a_claim_judged_by_two_summaries_fails_the_scorecard() -> None:
    summary = NotebookSummary(
        notebook="02_tenant_cache", results=(_loc_reduction(),), provenance=_provenance()
    )
    with pytest.raises(ValueError, match="judged twice"):
        scorecard([summary, summary])
