"""Backends, run namespaces, cleanup and the sweep, on the real servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from rustok_ref.config import Settings
from rustok_ref.lab import infra

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _databases(services: infra.Services) -> set[str]:
    with psycopg.connect(services.database_url) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}


def test_run_namespace_is_migrated_and_fully_removed(services: infra.Services) -> None:
    with infra.run_namespace(services, "ns") as ns:
        with psycopg.connect(ns.database_url) as conn:
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version is not None
        client = redis.Redis.from_url(ns.redis_url)
        client.mset({ns.redis_prefix + f"k{i}": i for i in range(1200)})
        outsider = "rustok:outsider-" + ns.run_id
        client.set(outsider, 1)
        assert ns.database_name in _databases(services)
    assert ns.database_name not in _databases(services)
    assert list(client.scan_iter(match=ns.redis_prefix + "*")) == []
    assert client.get(outsider) == b"1", "cleanup must touch only the run's own prefix"
    client.delete(outsider)
    client.close()


def test_delete_prefix_refuses_everything_and_escapes_glob_characters(
    services: infra.Services,
) -> None:
    with pytest.raises(ValueError, match="empty prefix"):
        infra.delete_prefix(services.redis_url, "")
    client = redis.Redis.from_url(services.redis_url)
    client.set("rustok:glob[1]:a", 1)
    client.set("rustok:glob1:a", 1)
    assert infra.delete_prefix(services.redis_url, "rustok:glob[1]:") == 1
    assert client.get("rustok:glob1:a") == b"1"
    client.delete("rustok:glob1:a")
    client.close()


def test_sweep_drops_day_old_runs_and_keeps_recent_ones(services: infra.Services) -> None:
    old, recent = "rustok_sweepold_20200101000000_0000", "rustok_sweepnew_20200101000000_0001"
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        for name, age in ((old, timedelta(days=2)), (recent, timedelta(hours=1))):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            stamp = f"{infra.RUN_COMMENT} created={(datetime.now(UTC) - age).isoformat()}"
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(name), sql.Literal(stamp)
                )
            )
    client = redis.Redis.from_url(services.redis_url)
    client.set(f"rustok:{old}:leftover", 1)
    swept = infra.sweep_stale(services)
    assert old in swept and recent not in swept
    assert old not in _databases(services) and recent in _databases(services)
    assert client.get(f"rustok:{old}:leftover") is None
    client.close()
    infra.drop_database(services, recent)


@pytest.mark.docker
def test_containers_backend_fails_fast_naming_the_socket_and_the_alternatives() -> None:
    if infra.docker_available()[0]:
        pytest.skip("a Docker engine answers here")  # cannot happen on this machine kind
    with pytest.raises(infra.InfraError) as caught:
        infra.select_backend("containers", Settings()).start()
    message = str(caught.value)
    assert infra.docker_socket() in message
    assert "--backend embedded" in message and "--backend external" in message


def test_external_backend_without_urls_says_what_to_set() -> None:
    with pytest.raises(infra.InfraError, match="RUSTOK_DATABASE_URL"):
        infra.ExternalBackend(None, None).start()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(infra.InfraError, match="choose one of"):
        infra.select_backend("kubernetes", Settings())


def test_auto_prefers_external_urls_when_both_are_set() -> None:
    settings = Settings(database_url="postgresql://u@127.0.0.1:1/db", redis_url="redis://x:1/0")
    assert isinstance(infra.select_backend("auto", settings), infra.ExternalBackend)


@pytest.mark.timeout(240)
def test_embedded_backend_serves_real_postgres_16_and_redis_on_tcp() -> None:
    with infra.provision("embedded") as services:
        assert services.database_url.startswith("postgresql://postgres@127.0.0.1:")
        port = services.database_url.rsplit(":", 1)[1].split("/")[0]
        if shutil.which("psql"):
            out = subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    port,
                    "-U",
                    "postgres",
                    "-tAc",
                    "SHOW server_version",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        else:
            with psycopg.connect(services.database_url) as conn:
                out = str(conn.execute("SHOW server_version").fetchone())
        assert out.strip().startswith("16")
        client = redis.Redis.from_url(services.redis_url)
        assert client.ping() is True
        assert client.info("server")["redis_version"].startswith("6.2")
        client.close()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(services.redis_url, socket_connect_timeout=1).ping()


@pytest.mark.timeout(300)
def test_two_test_sessions_at_once_do_not_see_each_other(tmp_path: Path) -> None:
    env = {**os.environ, "PROBE_DIR": str(tmp_path)}
    env.pop("COVERAGE_PROCESS_START", None)
    probes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                str(REPO / "tests/fixtures/isolation_probe.py"),
            ],
            cwd=REPO,
            env={**env, "PROBE_NAME": name},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("probe-one", "probe-two")
    ]
    outputs = [probe.communicate(timeout=280)[0] for probe in probes]
    for probe, output in zip(probes, outputs, strict=True):
        assert probe.returncode == 0, output
    run_ids = {path.read_text() for path in tmp_path.glob("*.ready")}
    assert len(run_ids) == 2, "each session must get its own database"
