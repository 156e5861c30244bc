"""Once a second during a load run: the API's server-side series from /metrics (dispatcher
depth, outbox backlog and lag, breaker states, tenant cache stats) and the CPU of each process
the run started (psutil, children included), into `server_metrics.csv` (time, series, value).

A wanted series the API does not export (yet) is recorded as missing, not an error: the
report and the thresholds say "not measured" for it.
"""

from __future__ import annotations

import contextlib
import csv
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from rustok_ref.lab.load_processes import ManagedProcess

WANTED_PREFIXES = (
    "rustok_dispatcher_depth",
    "rustok_outbox_pending",
    "rustok_outbox_lag_seconds",
    "rustok_breaker_state",
    "rustok_tenant_cache",
)
CPU_SERIES = "process_cpu_percent"
_SERIES = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """`name{a="1",b="2"}` with the labels sorted, so that spellings compare equal."""
    if not labels:
        return name
    inner = ",".join(f'{key}="{labels[key]}"' for key in sorted(labels))
    return f"{name}{{{inner}}}"


def normal_series(text: str) -> str:
    """A series as a scenario writes it, in `series_key` form."""
    match = _SERIES.fullmatch(text.strip())
    if match is None:
        return text
    return series_key(match["name"], dict(_LABEL.findall(match["labels"] or "")))


def read_metrics(client: httpx.Client) -> dict[str, float]:
    """Every sample of the API's /metrics by series key; empty if it does not answer."""
    try:
        response = client.get("/metrics")
    except httpx.HTTPError:
        return {}
    if response.status_code != 200:
        return {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[series_key(sample.name, sample.labels)] = float(sample.value)
    return values


@dataclass
class Sampler:
    """Samples until stopped, in a daemon thread; `rows` and the CSV grow together."""

    api_url: str | None
    processes: Callable[[], Sequence[ManagedProcess]]
    out: Path
    period_s: float = 1.0
    rows: list[tuple[float, str, float]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _cpu: dict[int, psutil.Process] = field(default_factory=dict)

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def missing(self) -> list[str]:
        """The wanted series the API never exported during the run."""
        return [
            prefix
            for prefix in WANTED_PREFIXES
            if not any(name.startswith(prefix) for name in self.seen)
        ]

    def series(self, key: str) -> list[float]:
        return [value for _, name, value in self.rows if name == key]

    def cpu_by_role(self) -> dict[str, list[float]]:
        by_role: dict[str, list[float]] = {}
        prefix = f'{CPU_SERIES}{{role="'
        for _, name, value in self.rows:
            if name.startswith(prefix):
                by_role.setdefault(name[len(prefix) : -2], []).append(value)
        return by_role

    def _run(self) -> None:
        client = httpx.Client(base_url=self.api_url or "http://127.0.0.1", timeout=2.0)
        with self.out.open("w", newline="") as file, contextlib.closing(client):
            writer = csv.writer(file)
            writer.writerow(["time", "series", "value"])
            while not self._stop.is_set():
                started = time.monotonic()
                now = time.time()
                batch = list(self._metrics(client)) if self.api_url else []
                batch += [(CPU_SERIES + f'{{role="{role}"}}', cpu) for role, cpu in self._cpus()]
                for name, value in batch:
                    self.rows.append((now, name, value))
                    writer.writerow([f"{now:.3f}", name, value])
                file.flush()
                self._stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    def _metrics(self, client: httpx.Client) -> Iterable[tuple[str, float]]:
        for name, value in read_metrics(client).items():
            if name.startswith(WANTED_PREFIXES) and not name.endswith("_created"):
                self.seen.add(name)
                yield name, value

    def _cpus(self) -> Iterable[tuple[str, float]]:
        """Each process's CPU since the last sample, in % of one core, its children summed
        (the first sample of a new process primes psutil and reads 0)."""
        for process in self.processes():
            total = 0.0
            for member in process.tree():
                watched = self._cpu.setdefault(member.pid, member)
                with contextlib.suppress(psutil.Error):
                    total += watched.cpu_percent(None)
            if process.alive():
                yield process.role, total
