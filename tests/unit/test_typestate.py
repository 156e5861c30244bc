"""The type-state layer under mypy --strict: every illegal transition is a type error with
the expected code on its own line, every legal one type-checks, and the two call files
cover the whole transition table, so the review's "invalid transitions impossible" (P1.3)
is checked for every pair rather than for the one example it gives."""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

from rustok_ref.commerce.states import ORDER_TABLE, PRODUCT_TABLE, TransitionTable
from rustok_ref.lab.paths import REPO_ROOT

pytestmark = pytest.mark.timeout(300)  # mypy on a cold cache

ILLEGAL = Path("tests/typestate/illegal_calls.py")
LEGAL = Path("tests/typestate/legal_calls.py")
OUTPUT = REPO_ROOT / "reports" / "typestate" / "mypy-output.txt"
TABLES: dict[str, TransitionTable[Any, Any]] = {"order": ORDER_TABLE, "product": PRODUCT_TABLE}

_MARKER = re.compile(r"#\s*E:\s*(?P<code>[\w-]+)\s*$")
_CALL = re.compile(r"\b(?P<machine>order|product)_(?P<status>\w+)\.(?P<event>\w+)\(\)")
_ERROR = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")

Pair = tuple[str, StrEnum, StrEnum]
Errors = dict[Path, dict[int, list[str]]]


@pytest.fixture(scope="module")
def mypy_errors() -> Errors:
    """Errors by file and line from one mypy run over both files, with the shared cache."""
    args = [str(ILLEGAL), str(LEGAL), "--strict", "--config-file", "pyproject.toml"]
    with contextlib.chdir(REPO_ROOT):
        stdout, stderr, status = mypy_api.run([*args, "--cache-dir", ".mypy_cache"])
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(stdout + stderr)
    assert status in (0, 1), f"mypy crashed (exit {status}):\n{stdout}{stderr}"
    errors: Errors = defaultdict(lambda: defaultdict(list))
    for match in map(_ERROR.match, stdout.splitlines()):
        if match:
            errors[Path(match["path"])][int(match["line"])].append(match["code"])
    return errors


def _expected_codes(path: Path) -> dict[int, list[str]]:
    lines = (REPO_ROOT / path).read_text().splitlines()
    return {
        number: [marker["code"]]
        for number, line in enumerate(lines, start=1)
        if (marker := _MARKER.search(line))
    }


def _pairs(path: Path, *, marked: bool) -> list[Pair]:
    """(machine, state, event) of every table call on marked (or unmarked) lines."""
    pairs = []
    for line in (REPO_ROOT / path).read_text().splitlines():
        call = _CALL.search(line)
        if call and bool(_MARKER.search(line)) == marked:
            table = TABLES[call["machine"]]
            state = next(s for s in table.states if s.value == call["status"])
            event = next(e for e in table.events if e.value == call["event"])
            pairs.append((call["machine"], state, event))
    return pairs


def _all_pairs(*, legal: bool) -> set[Pair]:
    return {
        (machine, state, event)
        for machine, table in TABLES.items()
        for state in table.states
        for event in table.events
        if ((state, event) in table.transitions) == legal
    }


def test_each_illegal_line_gets_exactly_its_expected_error(mypy_errors: Errors) -> None:
    expected = _expected_codes(ILLEGAL)
    assert expected, "no `# E:` markers found"
    assert dict(mypy_errors[ILLEGAL]) == expected


def test_every_legal_call_type_checks(mypy_errors: Errors) -> None:
    assert not _expected_codes(LEGAL)
    assert dict(mypy_errors[LEGAL]) == {}


def test_mypy_reports_nothing_outside_the_call_files(mypy_errors: Errors) -> None:
    elsewhere = {path: dict(lines) for path, lines in mypy_errors.items() if lines}
    elsewhere.pop(ILLEGAL, None)
    elsewhere.pop(LEGAL, None)
    assert elsewhere == {}


def test_the_illegal_file_holds_every_pair_the_table_leaves_out() -> None:
    pairs = _pairs(ILLEGAL, marked=True)
    assert len(pairs) == len(set(pairs)), "a pair appears twice"
    assert set(pairs) == _all_pairs(legal=False)


def test_the_legal_file_holds_every_transition_of_the_table() -> None:
    assert set(_pairs(LEGAL, marked=False)) == _all_pairs(legal=True)
