"""`rustok-ref saga recover` loads the product's checkout definitions by default."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rustok_ref.cli import app
from rustok_ref.config import Settings

pytestmark = pytest.mark.integration


def test_recover_without_saga_option_uses_the_checkout_definitions(
    app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUSTOK_DATABASE_URL", app_settings.database_url or "")
    monkeypatch.setenv("RUSTOK_REDIS_URL", app_settings.redis_url or "")
    monkeypatch.setenv("RUSTOK_REDIS_PREFIX", app_settings.redis_prefix)
    result = CliRunner().invoke(app, ["saga", "recover", "--idle-for", "1h"])
    assert result.exit_code == 0, result.output


def test_an_unknown_payment_provider_is_refused(
    app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUSTOK_DATABASE_URL", app_settings.database_url or "")
    monkeypatch.setenv("RUSTOK_REDIS_URL", app_settings.redis_url or "")
    monkeypatch.setenv("RUSTOK_PAYMENT_PROVIDER", "nope")
    result = CliRunner().invoke(app, ["saga", "recover", "--idle-for", "1h"])
    assert result.exit_code == 1
    assert "unknown payment provider 'nope'" in result.output
