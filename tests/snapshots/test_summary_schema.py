"""The JSON schema of a notebook summary, snapshotted: the report, its renderers and old
summary files depend on it, so any change must show up in review as a diff."""

from __future__ import annotations

from syrupy.assertion import SnapshotAssertion

from rustok_ref.lab.summary import NotebookSummary


def test_notebook_summary_schema(snapshot: SnapshotAssertion) -> None:
    assert NotebookSummary.model_json_schema() == snapshot
