"""The notebook helper: bad parameters stop a notebook with one line, figures become
evidence, and the summary collector judges and writes what the report reads back."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import matplotlib
import pytest
from matplotlib import pyplot as plt

from rustok_ref.lab import notebook
from rustok_ref.lab.claims import Verdict
from rustok_ref.lab.notebook import NotebookParameterError
from rustok_ref.lab.summary import read_summary

matplotlib.use("Agg")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_line(error: pytest.ExceptionInfo[NotebookParameterError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_the_message_is_always_one_line() -> None:
    assert str(NotebookParameterError("first\n  second\tthird ")) == "first second third"


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_known_profiles_pass(profile: str) -> None:
    assert notebook.check_profile(profile) == profile


@pytest.mark.parametrize("profile", ["fast", "", None, "Smoke"])
def test_an_unknown_profile_stops(profile: object) -> None:
    with pytest.raises(NotebookParameterError) as error:
        notebook.check_profile(profile)
    assert _one_line(error) == f"profile must be one of smoke, full, got {profile!r}"


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "10", None])
def test_a_size_that_is_not_a_positive_whole_number_stops(bad: object) -> None:
    with pytest.raises(NotebookParameterError) as error:
        notebook.check_sizes({"events": 10, "capacity": bad})
    assert _one_line(error) == f"capacity must be a positive whole number, got {bad!r}"


def test_positive_whole_sizes_pass() -> None:
    notebook.check_sizes({"events": 1, "capacity": 10_000})


@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), float("inf"), True, "1.0", None])
def test_a_rate_that_is_not_above_zero_stops(bad: object) -> None:
    with pytest.raises(NotebookParameterError) as error:
        notebook.check_positive({"handler_ms": 1.0, "overload": bad})
    assert _one_line(error) == f"overload must be a number above zero, got {bad!r}"


def test_numbers_above_zero_pass() -> None:
    notebook.check_positive({"handler_ms": 0.25, "overload": 3})


def test_an_unreachable_database_stops_in_one_line() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
    with pytest.raises(NotebookParameterError) as error:
        notebook.check_reachable(url, None)
    assert _one_line(error).startswith(f"PostgreSQL at {url} did not answer")


def test_an_unreachable_redis_stops_in_one_line() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    with pytest.raises(NotebookParameterError) as error:
        notebook.check_reachable(None, url)
    assert _one_line(error).startswith(f"Redis at {url} did not answer")


def test_a_database_url_of_another_kind_stops() -> None:
    with pytest.raises(NotebookParameterError) as error:
        notebook.check_reachable("mysql://root@127.0.0.1/db", None)
    assert "not a PostgreSQL URL" in _one_line(error)


def test_start_checks_before_it_creates_anything(tmp_path: Path) -> None:
    with pytest.raises(NotebookParameterError, match="events must be"):
        notebook.start(
            "04_events_backpressure",
            profile="smoke",
            output_dir=tmp_path / "x",
            sizes={"events": -1},
        )
    assert not (tmp_path / "x").exists()


def test_start_wants_both_urls_or_neither() -> None:
    with pytest.raises(NotebookParameterError, match="both database_url and redis_url"):
        notebook.start(
            "02_tenant_cache", profile="smoke", services=True, redis_url="redis://127.0.0.1:6379/0"
        )


def test_an_in_process_notebook_ignores_the_urls(tmp_path: Path) -> None:
    nb = notebook.start(
        "10_errors",
        profile="full",
        output_dir=tmp_path / "10_errors",
        database_url="postgresql://nobody@127.0.0.1:1/x",
    )
    assert (nb.backend, nb.database_url, nb.redis_url) == ("none", None, None)
    assert nb.out.is_dir()
    assert nb.sized(smoke=10, full=1000) == 1000


def test_the_output_folder_defaults_to_reports_notebooks() -> None:
    nb = notebook.start("10_errors", profile="smoke")
    assert nb.out == notebook.DEFAULT_OUTPUT_ROOT / "10_errors"
    assert nb.sized(smoke=10, full=1000) == 10


@pytest.fixture
def nb(tmp_path: Path) -> notebook.Notebook:
    return notebook.start("10_errors", profile="smoke", output_dir=tmp_path / "10_errors")


def test_show_saves_the_figure_as_evidence_and_closes_it(nb: notebook.Notebook) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    nb.show(fig, "line.png")
    assert (nb.out / "line.png").stat().st_size > 0
    assert not plt.fignum_exists(fig.number)


def test_the_summary_judges_with_the_claims_rule_and_unit(nb: notebook.Notebook) -> None:
    nb.summary.record("T2.http-mapping", 100.0, "pairs.json", "mapping")
    nb.summary.record("T2.graphql-mapping", 50.0, "pairs.json", 3)
    nb.summary.record("T2.one-error-type", None, "ignored.png", "census", "not built")
    measured, low, later = nb.summary.results
    assert (measured.verdict, measured.unit, measured.evidence) == (
        Verdict.CONFIRMED,
        "percent",
        "10_errors/pairs.json",
    )
    assert (low.verdict, low.cell) == (Verdict.REFUTED, 3)
    assert (later.verdict, later.evidence, later.note) == (
        Verdict.NOT_YET_MEASURED,
        None,
        "not built",
    )


def test_the_summary_refuses_a_claim_another_notebook_measures(nb: notebook.Notebook) -> None:
    with pytest.raises(ValueError, match="measured by 06_state_machines"):
        nb.summary.record("P1.3.compile-time", 0, "x.txt", "c")
    assert nb.summary.results == []


def test_the_summary_is_written_and_reads_back(nb: notebook.Notebook) -> None:
    nb.summary.record("T2.http-mapping", 100.0, "pairs.json", "mapping")
    written = nb.summary.write({"examples": 3}, {"seed": 7})
    path = nb.out / "10_errors.summary.json"
    assert read_summary(path) == written
    document = json.loads(path.read_text())
    assert document["provenance"]["parameters"] == {"examples": 3}
    assert document["provenance"]["seeds"] == {"seed": 7}
    assert (document["provenance"]["backend"], document["provenance"]["profile"]) == (
        "none",
        "smoke",
    )


def test_the_summary_rows_speak_the_reviews_words(
    nb: notebook.Notebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[object] = []
    monkeypatch.setattr(notebook, "display", shown.append)
    nb.summary.show()
    assert shown == []  # nothing judged: nothing shown
    nb.summary.record("T2.http-mapping", 100.0, "pairs.json", "mapping")
    nb.summary.record("T2.one-error-type", None, "", "census", "later <soon>")
    rows = nb.summary.rows()
    assert [row["verdict"] for row in rows] == ["confirmed", "not-yet-measured"]
    assert rows[0]["measured"] == "100 percent"
    assert rows[0]["confirmed when"] == "≥ 100 percent"
    assert rows[1]["measured"] == "—"
    nb.summary.show()
    (table,) = shown
    html = table.data  # type: ignore[attr-defined]
    assert ';background:#dafbe1;color:#116329">confirmed</td>' in html
    assert "later &lt;soon&gt;" in html
