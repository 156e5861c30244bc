"""The notebook helper's services: the URLs it is handed, or a run namespace of its own that
is dropped when the kernel exits, so notebooks leave nothing behind under nbval, papermill or
JupyterLab."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from rustok_ref.config import Settings
from rustok_ref.lab import infra, notebook

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _databases(services: infra.Services) -> set[str]:
    with psycopg.connect(services.database_url) as conn:
        return {str(row[0]) for row in conn.execute("SELECT datname FROM pg_database").fetchall()}


def test_given_urls_are_used_as_they_are(
    run_ns: infra.RunNamespace, app_settings: Settings, tmp_path: Path
) -> None:
    nb = notebook.start(
        "02_tenant_cache", profile="smoke", output_dir=tmp_path, services=True,
        database_url=run_ns.database_url, redis_url=run_ns.redis_url,
        redis_prefix=run_ns.redis_prefix, settings=app_settings,
    )  # fmt: skip
    assert (nb.backend, nb.database_url, nb.redis_url, nb.redis_prefix) == (
        "external",
        run_ns.database_url,
        run_ns.redis_url,
        run_ns.redis_prefix,
    )
    client = redis.Redis.from_url(run_ns.redis_url)
    client.set(run_ns.redis_prefix + "kept", 1)
    nb.close()  # the report owns this namespace: nothing of it is dropped
    assert client.get(run_ns.redis_prefix + "kept") == b"1"
    client.delete(run_ns.redis_prefix + "kept")
    client.close()


def test_urls_without_a_prefix_get_one_of_their_own_deleted_at_close(
    run_ns: infra.RunNamespace, app_settings: Settings, tmp_path: Path
) -> None:
    nb = notebook.start(
        "02_tenant_cache", profile="smoke", output_dir=tmp_path, services=True,
        database_url=run_ns.database_url, redis_url=run_ns.redis_url, settings=app_settings,
    )  # fmt: skip
    assert nb.redis_prefix is not None
    assert nb.redis_prefix.startswith(run_ns.redis_prefix + "nb:02_tenant_cache:")
    client = redis.Redis.from_url(run_ns.redis_url)
    client.set(nb.redis_prefix + "mine", 1)
    nb.close()
    assert client.get(nb.redis_prefix + "mine") is None
    client.close()


def test_no_urls_provision_a_namespace_that_close_drops(
    services: infra.Services, run_ns: infra.RunNamespace, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=services.database_url, redis_url=services.redis_url,
        redis_prefix=run_ns.redis_prefix, backend="external",
    )  # fmt: skip
    nb = notebook.start(
        "05_outbox", profile="smoke", output_dir=tmp_path, services=True, settings=settings
    )
    assert nb.backend == "external"
    assert nb.database_url is not None and nb.redis_prefix is not None
    name = nb.database_url.rsplit("/", 1)[1]
    assert name.startswith("rustok_05outbox_")
    with psycopg.connect(nb.database_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() is not None
    nb.close()
    assert name not in _databases(services)


def test_the_namespace_is_dropped_when_the_kernel_exits(
    services: infra.Services, tmp_path: Path
) -> None:
    script = (
        "import sys\n"
        "from rustok_ref.lab import notebook\n"
        "nb = notebook.start('05_outbox', profile='smoke', output_dir=sys.argv[1], services=True)\n"
        "print(nb.database_url.rsplit('/', 1)[1])\n"
    )
    env = {
        **os.environ,
        "RUSTOK_DATABASE_URL": services.database_url,
        "RUSTOK_REDIS_URL": services.redis_url,
        "RUSTOK_BACKEND": "auto",
    }
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    name = done.stdout.strip().splitlines()[-1]
    assert name.startswith("rustok_05outbox_")
    assert name not in _databases(services)


def test_an_unreachable_url_stops_before_anything_is_created(tmp_path: Path) -> None:
    with pytest.raises(notebook.NotebookParameterError, match="did not answer"):
        notebook.start(
            "02_tenant_cache", profile="smoke", output_dir=tmp_path / "out", services=True,
            database_url="postgresql://postgres@127.0.0.1:1/postgres",
            redis_url="redis://127.0.0.1:1/0",
        )  # fmt: skip
    assert not (tmp_path / "out").exists()
