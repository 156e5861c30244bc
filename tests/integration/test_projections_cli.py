"""`rustok-ref projection rebuild`, as a user runs it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rustok_ref.cli import app
from rustok_ref.config import Settings

pytestmark = pytest.mark.integration


def test_rebuild_replays_the_published_events_of_a_known_view(
    app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUSTOK_DATABASE_URL", app_settings.database_url or "")
    result = CliRunner().invoke(app, ["projection", "rebuild", "tenant_view"])
    assert result.exit_code == 0, result.output
    assert "tenant_view: rebuilt from" in result.output


def test_an_unknown_view_is_refused_naming_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["projection", "rebuild", "nope"])
    assert result.exit_code == 1
    assert "known: order_view, product_view, tenant_view" in result.output
