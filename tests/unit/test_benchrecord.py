"""The bench JSON schema and issue 10's targets table: every row judged, kept and found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rustok_ref.lab.benchrecord import (
    TARGETS,
    BenchRun,
    NotMeasured,
    Target,
    compare,
    ratio_table,
    read_runs,
    target_row_for,
    untargeted,
)

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_with(*results, not_measured=(), created=None) -> BenchRun:
    return BenchRun(
        run_id=f"{(created or datetime(2026, 1, 1, tzinfo=UTC)):%Y%m%dT%H%M%SZ}-abcdef0",
        created=created or datetime(2026, 1, 1, tzinfo=UTC),
        provenance={},
        results=list(results),
        not_measured=list(not_measured),
    )


def result(name: str, subject: float, baseline: float, target: Target | None = None):
    return compare(name, "s", "b", [subject] * 3, [baseline] * 3, iterations=1, target=target)


def test_the_table_has_one_row_per_path_of_issue_10() -> None:
    assert len(TARGETS) == 13
    assert len({row.id for row in TARGETS}) == len({row.path for row in TARGETS}) == 13


@pytest.mark.parametrize("row", TARGETS, ids=lambda row: row.id)
def test_each_row_names_a_benchmark_that_exists(row) -> None:
    sources = "".join(path.read_text() for path in BENCHMARKS.glob("test_*.py"))
    assert row.benchmark.partition("[")[0] in sources
    assert row.test is None or f"def {row.test}(" in sources


def test_the_ratio_spread_comes_from_rounds_taken_side_by_side() -> None:
    measured = compare("x", "s", "b", [2.0, 3.0, 8.0], [1.0, 3.0, 2.0], iterations=1)
    assert measured.ratio == pytest.approx(3.0 / 2.0)
    assert (measured.ratio_stats.min, measured.ratio_stats.max) == (1.0, 4.0)


def test_a_throughput_ratio_is_the_inverse_and_is_judged_at_least() -> None:
    rate = Target(measure="throughput", op=">=", value=0.5)
    measured = compare("x", "s", "b", [4.0], [1.0], iterations=1, target=rate)
    assert measured.ratio == pytest.approx(0.25)
    assert measured.meets_target is False


def test_a_parametrised_case_is_judged_by_its_row_and_only_that_case() -> None:
    row = target_row_for("test_async_hit_against_a_raw_moka_get[recommended-target0]")
    assert row is not None and row.id == "tenant_cache.async_hit"
    assert target_row_for("test_async_hit_against_a_raw_moka_get[v1-None]") is None
    assert target_row_for("test_sync_rejection_against_pybreaker").id == "breaker.sync_rejection"


def test_every_row_is_kept_a_missing_one_with_its_reason() -> None:
    breaker = TARGETS[3]
    skipped = TARGETS[4]
    run = run_with(
        result(breaker.benchmark, 1.0, 4.0, breaker.target),
        result("test_sync_closed_call_against_a_plain_call", 3.0, 1.0),
        not_measured=[NotMeasured(name=skipped.benchmark, outcome="skipped", reason="no Redis")],
    )
    rows = ratio_table(run)
    assert [row.row for row in rows] == list(TARGETS)
    by_id = {row.row.id: row for row in rows}
    assert by_id[breaker.id].meets_target is True
    assert by_id[skipped.id].missing_reason == "skipped: no Redis"
    assert by_id["flags.warm"].meets_target is None
    assert "no benchmark named" in by_id["flags.warm"].missing_reason
    assert [r.name for r in untargeted(run)] == ["test_sync_closed_call_against_a_plain_call"]


def test_a_row_recorded_under_its_own_name_is_explained_by_its_test() -> None:
    api = next(row for row in TARGETS if row.test)
    failed = NotMeasured(name=api.test, outcome="failed", reason="server did not start")
    filled = next(row for row in ratio_table(run_with(not_measured=[failed])) if row.row is api)
    assert filled.missing_reason == "failed: server did not start"


def test_a_ceiling_is_shown_beside_its_row() -> None:
    relay = next(row for row in TARGETS if row.ceiling)
    run = run_with(result(relay.benchmark, 2.0, 1.0, relay.target), result(relay.ceiling, 4.0, 1.0))
    filled = next(row for row in ratio_table(run) if row.row is relay)
    assert filled.ceiling is not None and filled.ceiling.name == relay.ceiling


def test_runs_are_read_oldest_first_and_other_json_is_not_a_run(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    newer = run_with(created=start + timedelta(hours=1))
    older = run_with(created=start)
    for run in (newer, older):
        run.write(tmp_path)
    (tmp_path / "relay-ramp-20260101T000000Z.json").write_text("{}")
    (tmp_path / "api-latency-20260101T000000000000Z.json").write_text("{}")
    assert [run.run_id for run in read_runs(tmp_path)] == [older.run_id, newer.run_id]
