"""The Mermaid diagram is generated from the transition table, so it cannot drift from the
rules: one edge per table entry, a start arrow, an end arrow per terminal state, and a
snapshot so that a change to the diagram shows up in review."""

from __future__ import annotations

import re
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from rustok_ref.commerce.states import ORDER_TABLE, PRODUCT_TABLE, TransitionTable, mermaid

TABLES = [ORDER_TABLE, PRODUCT_TABLE]
_EDGE = re.compile(r"^\s+(\w+) --> (\w+) : (\w+)$")


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_one_edge_per_table_entry(table: TransitionTable[Any, Any]) -> None:
    edges = [m.groups() for m in map(_EDGE.match, mermaid(table).splitlines()) if m]
    expected = [(s.value, t.value, e.value) for (s, e), t in table.transitions.items()]
    assert sorted(edges) == sorted(expected)
    assert len(edges) == len(table.transitions)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_start_and_terminal_arrows(table: TransitionTable[Any, Any]) -> None:
    lines = [line.strip() for line in mermaid(table).splitlines()]
    assert lines[0] == "stateDiagram-v2"
    assert [line for line in lines if line.startswith("[*] -->")] == [
        f"[*] --> {table.initial.value}"
    ]
    assert [line for line in lines if line.endswith("--> [*]")] == [
        f"{state.value} --> [*]" for state in table.terminal
    ]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_diagram_snapshot(table: TransitionTable[Any, Any], snapshot: SnapshotAssertion) -> None:
    assert mermaid(table) == snapshot
