"""The processes a load run starts: the API, the background workers, Locust; each in its own
session (so a Ctrl-C reaches the driver only, which stops them in order), logged to a file,
and stopped with SIGTERM, then SIGKILL, together with any child it forked (uvicorn's
workers), so nothing outlives the run.

`start_api` is the shape tests/api_support.run_server uses, moved here for the load driver.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ManagedProcess:
    """One child process of the run, by role (api, workers, locust, locust-worker-1...)."""

    role: str
    command: list[str]
    log: Path
    env: Mapping[str, str] = field(repr=False)
    process: subprocess.Popen[bytes] | None = None
    cwd: Path | None = None

    def start(self) -> ManagedProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                env=dict(self.env),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tree(self) -> list[psutil.Process]:
        """The process and its descendants (empty once it has exited)."""
        if not self.alive() or self.pid is None:
            return []
        try:
            parent = psutil.Process(self.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout_s: float = STOP_TIMEOUT_S, signum: int = signal.SIGTERM) -> None:
        """`signum` to the process, wait, then SIGKILL whatever of its tree is left."""
        if self.process is None:
            return
        tree = self.tree()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _, left = psutil.wait_procs(tree, timeout=5.0)
        for child in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def cli_command(*args: str) -> list[str]:
    """`rustok-ref ARGS` run by this interpreter (as the harness's subprocesses are)."""
    return [sys.executable, "-m", "rustok_ref.cli", *args]


def start_api(
    env: Mapping[str, str], log_dir: Path, *, workers: int = 1, port: int | None = None
) -> tuple[ManagedProcess, str]:
    """`rustok-ref serve` on a free loopback port; returns it and its URL once /healthz
    answers. RuntimeError (with the log's tail) if it exits or does not answer in time."""
    port = port or free_port()
    command = cli_command("serve", "--port", str(port), "--workers", str(workers))
    command += ["--log-level", "warning"]
    api = ManagedProcess("api", command, log_dir / "api.log", {**os.environ, **env}).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(api, url + "/healthz")
    except BaseException:
        api.stop()
        raise
    return api, url


def wait_healthy(process: ManagedProcess, url: str, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if not process.alive():
            raise RuntimeError(
                f"the {process.role} exited with {process.returncode}:\n{process.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {process.role} did not answer in time:\n{process.log_tail()}")
        time.sleep(0.1)


def start_workers(env: Mapping[str, str], log_dir: Path) -> ManagedProcess:
    """The outbox relay and the read views' consumers in their own process (the API runs
    without them), so that a fault can kill and restart them."""
    command = [sys.executable, "-m", "rustok_ref.lab.load_workers"]
    return ManagedProcess("relay", command, log_dir / "relay.log", {**os.environ, **env}).start()


def stop_all(processes: Sequence[ManagedProcess]) -> None:
    """Stop in reverse order of starting (load first, the API last)."""
    for process in reversed(processes):
        process.stop()
