"""Settings read RUSTOK_* variables and accept only PostgreSQL URLs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rustok_ref.config import Settings, async_database_url, libpq_url


@pytest.mark.parametrize(
    "given_url",
    ["postgresql://u@h:1/d", "postgres://u@h:1/d", "postgresql+psycopg://u@h:1/d"],
)
def test_every_postgres_scheme_becomes_the_psycopg_dialect(given_url: str) -> None:
    assert async_database_url(given_url) == "postgresql+psycopg://u@h:1/d"
    assert libpq_url(given_url) == "postgresql://u@h:1/d"


@pytest.mark.parametrize("bad", ["sqlite:///x.db", "mysql://u@h/d", "", "redis://h"])
def test_non_postgres_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        async_database_url(bad)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=30))
def test_url_round_trips_between_the_two_forms(db: str) -> None:
    url = f"postgresql://postgres@127.0.0.1:5432/{db}"
    assert libpq_url(async_database_url(url)) == url


def test_settings_come_from_rustok_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUSTOK_DATABASE_URL", "postgresql://p@127.0.0.1:5/x")
    monkeypatch.setenv("RUSTOK_REDIS_URL", "redis://127.0.0.1:6/0")
    monkeypatch.setenv("RUSTOK_BACKEND", "external")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+psycopg://p@127.0.0.1:5/x"
    assert settings.redis_url == "redis://127.0.0.1:6/0"
    assert settings.backend == "external"


@pytest.mark.parametrize("prefix", ["", "rustok", "a:b"])
def test_redis_prefix_must_end_with_a_colon(prefix: str) -> None:
    with pytest.raises(ValidationError, match="redis_prefix"):
        Settings(redis_prefix=prefix, _env_file=None)


def test_unknown_backend_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="backend"):
        Settings(backend="kubernetes", _env_file=None)  # type: ignore[arg-type]


def test_commerce_and_test_hook_settings_come_from_their_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUSTOK_SAGA_SYNC_WAIT", "0.5")
    monkeypatch.setenv("RUSTOK_PAYMENT_PROVIDER", "standin")
    monkeypatch.setenv("RUSTOK_TEST_HOOKS", "1")
    monkeypatch.setenv("RUSTOK_CRASH_AT", "relay:3")
    settings = Settings(_env_file=None)
    assert (settings.saga_sync_wait, settings.payment_provider) == (0.5, "standin")
    assert (settings.test_hooks, settings.crash_at) == (True, "relay:3")
    assert Settings(_env_file=None, test_hooks=False).test_hooks is False
