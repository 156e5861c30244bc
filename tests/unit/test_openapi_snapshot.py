"""The REST contract as OpenAPI, snapshotted as JSON: a change to a route, a body or an error
response shows up in review as a diff of
`__snapshots__/test_openapi_snapshot/test_openapi_document.json`. `app.openapi()` needs no
lifespan, so no database or Redis is touched."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from rustok_ref.api.app import create_app
from rustok_ref.config import Settings


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def test_openapi_document(snapshot_json: SnapshotAssertion) -> None:
    assert create_app(Settings()).openapi() == snapshot_json
