"""`rustok-ref infra up` and `infra check`, as a user runs them."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis
from typer.testing import CliRunner

from rustok_ref.cli import app
from rustok_ref.lab import infra

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).with_name("rustok-ref"))


@pytest.mark.timeout(240)
def test_infra_up_embedded_serves_psql_and_redis_cli_until_interrupted() -> None:
    process = subprocess.Popen(
        [CLI, "infra", "up", "--backend", "embedded"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = {}
        while len(urls) < 2:
            line = process.stdout.readline()
            assert line, f"infra up ended early: {process.stderr.read() if process.stderr else ''}"
            if line.startswith("RUSTOK_"):
                name, _, value = line.strip().partition("=")
                urls[name] = value
        database_url, redis_url = urls["RUSTOK_DATABASE_URL"], urls["RUSTOK_REDIS_URL"]
        pg_port = database_url.rsplit(":", 1)[1].split("/")[0]
        redis_port = redis_url.rsplit(":", 1)[1].split("/")[0]
        if shutil.which("psql"):
            version = subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    pg_port,
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
            with psycopg.connect(database_url) as conn:
                version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        assert version.strip().startswith("16")
        if shutil.which("redis-cli"):
            pong = subprocess.run(
                ["redis-cli", "-h", "127.0.0.1", "-p", redis_port, "ping"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert pong.strip() == "PONG"
        else:
            assert redis.Redis.from_url(redis_url).ping()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()


@pytest.mark.docker
def test_infra_up_with_containers_fails_clearly_here() -> None:
    if infra.docker_available()[0]:
        pytest.skip("a Docker engine answers here")
    result = CliRunner().invoke(app, ["infra", "up", "--backend", "containers"])
    assert result.exit_code == 1
    assert "no Docker engine answered" in result.output
    assert "--backend embedded" in result.output


@pytest.mark.timeout(240)
def test_infra_check_says_which_backends_work_here() -> None:
    result = CliRunner().invoke(app, ["infra", "check"], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "yes" in rows["embedded"] and "PostgreSQL 16" in rows["embedded"]
    assert "no" in rows["containers"] or infra.docker_available()[0]
