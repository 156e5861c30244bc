"""`rustok-ref load SCENARIO`: one load run from a scenario file, start to report.

Provision PostgreSQL and Redis (or take `--target-url` and skip what it cannot reach), seed
tenants, start the fault proxies, the API behind them and the relay beside it, check the
steady state, run Locust headless in processes of its own (master and workers when asked),
lay the fault timeline over the load, sample the server every second, check the steady state
again, run the rollbacks (whatever happened), evaluate the thresholds, and write
`reports/<run-id>/load/` with the journal and the rendered report.

Exit codes: 0 every threshold held, 2 one failed (or the steady state deviated), 1 the run
aborted (bad scenario, a process died, Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from rustok_ref.config import Settings
from rustok_ref.lab import infra
from rustok_ref.lab.faults import ProxySet
from rustok_ref.lab.load_ledger import leftovers_after
from rustok_ref.lab.load_measure import (
    LOCUST_PREFIX,
    load_histogram,
    locust_totals,
    measurements,
)
from rustok_ref.lab.load_processes import (
    ManagedProcess,
    free_port,
    start_api,
    start_workers,
    stop_all,
)
from rustok_ref.lab.load_sampler import Sampler, normal_series, read_metrics
from rustok_ref.lab.load_settle import wait_until_ready
from rustok_ref.lab.load_targets import CacheFlushTarget, RelayTarget, admin_client, admin_post
from rustok_ref.lab.paths import REPO_ROOT
from rustok_ref.lab.provenance import collect_provenance
from rustok_ref.lab.scenario import Probe, Profile, Scenario, load_scenario
from rustok_ref.lab.thresholds import evaluate
from rustok_ref.lab.timeline import (
    Fault,
    FaultTarget,
    FaultTimeline,
    ProviderTarget,
    proxy_targets,
)

EXIT_PASS, EXIT_ABORTED, EXIT_FAILED = 0, 1, 2
LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
LOCUST_CONF = REPO_ROOT / "locust.conf"
RENDERER = REPO_ROOT / "notebooks" / "renderers" / "load_report.ipynb"
GENERATOR_BOUND_CPU = 80.0  # % of one core: above it, the generator limits what it measures
START_TIMEOUT_S = 60.0  # Locust to start the load (workers to connect)
STOP_GRACE_S = 60.0  # Locust to stop after the stages end
STATUS_EVERY_S = 5.0  # the live line's period when stderr is not a terminal
LOAD_STATES = frozenset({"spawning", "running"})  # Locust's runner states once the load is on


class LoadAbortError(RuntimeError):
    """The run cannot go on; the message goes into the journal."""


@dataclass(frozen=True)
class LoadOptions:
    scenario: Path
    profile: Profile = "smoke"
    target_url: str | None = None
    keys_file: Path | None = None
    locust_workers: int = 0
    api_workers: int = 1
    backend: str = "auto"
    reports_dir: Path = REPO_ROOT / "reports"
    compare: str | None = None
    render: bool = True


@dataclass
class LoadRun:
    """The state of one run, which the journal is written from."""

    options: LoadOptions
    scenario: Scenario
    run_id: str
    run_dir: Path
    journal: dict[str, Any] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    api_url: str | None = None
    database: Settings | None = None  # the run's own database, when this run provisioned it
    admin_headers: dict[str, str] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def process(self, role: str) -> ManagedProcess:
        return next(p for p in reversed(self.processes) if p.role == role)

    def write_journal(self) -> None:
        text = json.dumps(self.journal, indent=2, default=str, allow_nan=False)
        (self.run_dir / "journal.json").write_text(text + "\n")


def run_load(options: LoadOptions, echo: Callable[[str], None] | None = None) -> int:
    """Run a scenario; the exit code. Invalid scenarios raise ScenarioError before anything
    starts."""
    say = echo or (lambda line: print(line, file=sys.stderr))
    scenario = load_scenario(options.scenario)
    if options.target_url is not None and options.keys_file is None:
        raise LoadAbortError("--target-url needs --keys-file (the keys `rustok-ref seed` wrote)")
    created = datetime.now(UTC)
    run_id = f"{created:%Y%m%dT%H%M%SZ}-{scenario.name}-{options.profile}"
    run_dir = options.reports_dir / run_id / "load"
    run_dir.mkdir(parents=True, exist_ok=True)
    run = LoadRun(options, scenario, run_id, run_dir)
    run.journal = {
        "run_id": run_id,
        "scenario": scenario.name,
        "scenario_file": str(options.scenario),
        "profile": options.profile,
        "status": "running",
        "reason": None,
        "target_url": options.target_url,
        "disabled": [],
        "settings": {"app": scenario.app, "api_workers": options.api_workers},
        "locust_workers": options.locust_workers,
        "created": created.isoformat(),
    }
    say(f"load run {run_id}: {run_dir}")
    previous = signal.signal(signal.SIGINT, _on_interrupt(run))
    try:
        exit_code = _run(run, say)
    finally:
        signal.signal(signal.SIGINT, previous)
    if options.render and (run_dir / f"{LOCUST_PREFIX}_stats_history.csv").exists():
        exit_code = _render(run, say) or exit_code
    elif options.render:
        say("no load ran, so there is no report to render: journal.json says why")
    say(f"load run {run_id}: {run.journal['status']}, exit {exit_code}")
    return exit_code


def _on_interrupt(run: LoadRun) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        run.journal["status"] = "interrupted"
        run.journal["reason"] = "interrupted (SIGINT)"
        run.stop.set()

    return handler


def _run(run: LoadRun, say: Callable[[str], None]) -> int:
    """Everything but the report; rollbacks and teardown always run."""
    with contextlib.ExitStack() as stack:
        try:
            proxies = _provision(run, stack, say)
            _load(run, proxies, stack, say)
        except LoadAbortError as exc:
            if run.journal["status"] != "interrupted":
                run.journal.update(status="aborted", reason=str(exc))
        except Exception as exc:  # anything unexpected still gets the rollbacks and journal
            run.journal.update(status="aborted", reason=f"{type(exc).__name__}: {exc}")
        finally:
            stop_all(run.processes)
            run.journal["processes"] = _process_journal(run)
            run.write_journal()
    return _exit_code(run.journal)


def _provision(
    run: LoadRun, stack: contextlib.ExitStack, say: Callable[[str], None]
) -> ProxySet | None:
    """Servers, namespace, seed, proxies, relay and API; or the target's keys file."""
    options, journal = run.options, run.journal
    if options.target_url is not None:
        assert options.keys_file is not None
        run.api_url = options.target_url.rstrip("/")
        tenants_file = run.run_dir / "tenants.json"
        tenants_file.write_bytes(options.keys_file.read_bytes())
        journal["disabled"].append(
            "provisioning, seeding, the API, relay and fault proxies (--target-url): "
            "faults on postgres, redis and relay are skipped, events_lost and "
            "sagas_incomplete are not measured (no database to read)"
        )
        _admin_headers(run, json.loads(tenants_file.read_text()))
        journal["provenance"] = _provenance(run, None, "target")
        return None
    services = stack.enter_context(infra.provision(options.backend))
    namespace = stack.enter_context(infra.run_namespace(services, f"load_{run.scenario.name}"))
    journal["provenance"] = _provenance(run, services, services.backend)
    run.database = direct = Settings(
        database_url=namespace.database_url,
        redis_url=namespace.redis_url,
        redis_prefix=namespace.redis_prefix,
        backend="external",
    )
    seed = run.scenario.load.profile(options.profile).seed
    say(f"seeding {seed.tenants} tenants, {seed.products} products each on average (Zipf)")
    tenants = seed_tenants(direct, seed.tenants, seed.products)
    (run.run_dir / "tenants.json").write_text(json.dumps(tenants, indent=1))
    _admin_headers(run, tenants)
    proxies = stack.enter_context(ProxySet())
    database, redis_url = namespace.database_url, namespace.redis_url
    pg = proxies.add("postgres", _address(database, 5432))
    rd = proxies.add("redis", _address(redis_url, 6379))
    env = {
        **run.scenario.environment(),
        "RUSTOK_DATABASE_URL": _through(database, pg.port),
        "RUSTOK_REDIS_URL": _through(redis_url, rd.port),
        "RUSTOK_REDIS_PREFIX": namespace.redis_prefix,
        "RUSTOK_BACKEND": "external",
        "RUSTOK_API_RUN_WORKERS": "false",
    }
    run.journal["settings"]["env"] = {k: v for k, v in env.items() if not k.endswith("_URL")}
    run.processes.append(start_workers(env, run.run_dir))
    api, run.api_url = start_api(env, run.run_dir, workers=options.api_workers)
    run.processes.append(api)
    return proxies


def seed_tenants(settings: Settings, tenants: int, products: int) -> list[dict[str, Any]]:
    """The seed's keys file content, written by H4a's seed (`rustok_ref.lab.seed`) in this
    process; `products` per tenant on average (the seed spreads them Zipf-style)."""
    from rustok_ref.bootstrap import services, wire
    from rustok_ref.lab.seed import SeedPlan, run_seed

    plan = SeedPlan(tenants=tenants, products=max(tenants, tenants * products), prefix="load")

    async def seed() -> list[dict[str, Any]]:
        async with wire(settings) as container, services(container) as built:
            return [tenant.to_json() for tenant in await run_seed(built, plan)]

    return asyncio.run(seed())


def _admin_headers(run: LoadRun, tenants: Sequence[Mapping[str, Any]]) -> None:
    if tenants:
        first = tenants[0]
        run.admin_headers = {"X-Tenant-ID": first["slug"], "X-API-Key": first["keys"]["admin"]}


def _load(
    run: LoadRun, proxies: ProxySet | None, stack: contextlib.ExitStack, say: Callable[[str], None]
) -> None:
    assert run.api_url is not None
    client = stack.enter_context(admin_client(run.api_url, run.admin_headers))
    providers = {
        name: stack.enter_context(ProviderTarget(run.api_url, name, headers=run.admin_headers))
        for name in ("payment", "shipping")
    }
    rollbacks = _rollbacks(run, proxies, providers, client)
    try:
        _settle(run, say)
        run.journal["steady_state_before"] = check_steady_state(
            run, run.scenario.steady_state.probes
        )
        if any(p["status"] == "deviated" for p in run.journal["steady_state_before"]):
            raise LoadAbortError("the steady state did not hold before the load")
        sampler = Sampler(run.api_url, lambda: run.processes, run.run_dir / "server_metrics.csv")
        sampler.start()
        try:
            faults, targets = _timeline_parts(run, proxies, providers, client)
            _drive_locust(run, FaultTimeline(faults, targets), say)
        finally:
            sampler.stop()
            run.journal["metrics_missing"] = sampler.missing()
            run.journal["cpu"] = _cpu_journal(sampler)
        run.journal["steady_state_after"] = check_steady_state(
            run, run.scenario.steady_state.probes
        )
        run.journal["deviated"] = any(
            p["status"] == "deviated" for p in run.journal["steady_state_after"]
        )
        _evaluate(run, sampler, say)
    finally:
        run.journal["rollbacks"] = [_rollback(name, action) for name, action in rollbacks]


def _rollbacks(
    run: LoadRun,
    proxies: ProxySet | None,
    providers: Mapping[str, ProviderTarget],
    client: httpx.Client,
) -> list[tuple[str, Callable[[], None]]]:
    def clear_faults() -> None:
        if proxies is not None:
            proxies.reset()

    def reset_providers() -> None:
        for provider in providers.values():
            provider.reset()

    def restart_relay() -> None:
        if proxies is not None and not run.process("relay").alive():
            _restart_relay(run)

    def flush_caches() -> None:
        admin_post(client, "/admin/caches/flush")

    actions: dict[str, Callable[[], None]] = {
        "clear_faults": clear_faults,
        "reset_providers": reset_providers,
        "flush_caches": flush_caches,
        "restart_relay": restart_relay,
    }
    return [(name, actions[name]) for name in run.scenario.rollbacks]


def _rollback(name: str, action: Callable[[], None]) -> dict[str, Any]:
    try:
        action()
    except Exception as exc:  # one rollback failing must not keep the others from running
        return {"name": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"name": name, "ok": True, "error": None}


def _restart_relay(run: LoadRun) -> None:
    env = {k: v for k, v in run.process("relay").env.items()}
    run.processes.append(start_workers(env, run.run_dir))


def _timeline_parts(
    run: LoadRun,
    proxies: ProxySet | None,
    providers: Mapping[str, ProviderTarget],
    client: httpx.Client,
) -> tuple[list[Fault], dict[str, FaultTarget]]:
    """The faults this run can apply and their targets; the others journaled as disabled."""
    targets: dict[str, FaultTarget] = {
        **providers,
        "tenant_cache": CacheFlushTarget(client),
    }
    if proxies is not None:
        targets |= proxy_targets(proxies)
        targets["relay"] = RelayTarget(lambda: run.process("relay"), lambda: _restart_relay(run))
    faults = []
    for fault in run.scenario.faults_for(run.options.profile):
        if fault.target in targets:
            faults.append(fault)
        else:
            run.journal["disabled"].append(f"fault {fault.label} at {fault.start:g} s")
    run.journal["faults_planned"] = [f.model_dump(mode="json") for f in faults]
    return faults, targets


def _settle(run: LoadRun, say: Callable[[str], None]) -> None:
    """Wait for /readyz (the relay publishing the seed's events) before the steady state is
    judged; the wait, and the last refusal when it never got ready, go into the journal."""
    assert run.api_url is not None
    say("waiting for /readyz (the relay publishes the seed's events)")
    settled = wait_until_ready(run.api_url, say)
    run.journal["settle_s"] = settled.seconds
    if not settled.ready:
        run.journal["settle_refusal"] = settled.refusal


def check_steady_state(run: LoadRun, probes: Sequence[Probe]) -> list[dict[str, Any]]:
    """Each probe's observation: ok, deviated, or missing (a metric not exported)."""
    assert run.api_url is not None
    results = []
    with httpx.Client(base_url=run.api_url, headers=run.admin_headers, timeout=5.0) as client:
        metrics = read_metrics(client) if any(p.metric for p in probes) else {}
        for probe in probes:
            observed: float | None
            if probe.http is not None:
                try:
                    observed = client.get(probe.http).status_code
                except httpx.HTTPError:
                    observed = None
            else:
                assert probe.metric is not None
                observed = metrics.get(normal_series(probe.metric))
            if observed is None and probe.metric is not None:
                status = "missing"
            else:
                status = "ok" if observed is not None and probe.holds(observed) else "deviated"
            results.append(
                {
                    "name": probe.name,
                    "probe": probe.http or probe.metric,
                    "tolerance": probe.tolerance,
                    "observed": observed,
                    "status": status,
                }
            )
    return results


def _locust_processes(run: LoadRun) -> list[ManagedProcess]:
    assert run.api_url is not None
    scenario_file = run.options.scenario.resolve()
    env = {
        **os.environ,
        "RUSTOK_SCENARIO": str(scenario_file),
        "RUSTOK_PROFILE": run.options.profile,
        "RUSTOK_LOAD_TENANTS": str(run.run_dir / "tenants.json"),
        "RUSTOK_LOAD_OUT": str(run.run_dir),
    }
    base = [sys.executable, "-m", "locust", "--config", str(LOCUST_CONF), "-f", str(LOCUSTFILE)]
    master = [*base, "--headless", "--host", run.api_url, "--only-summary"]
    master += ["--csv", str(run.run_dir / LOCUST_PREFIX), "--csv-full-history"]
    master += ["--json-file", str(run.run_dir / LOCUST_PREFIX), "--exit-code-on-error", "0"]
    workers = run.options.locust_workers
    if workers == 0:
        return [ManagedProcess("locust", master, run.run_dir / "locust.log", env, cwd=REPO_ROOT)]
    port = free_port()
    master += ["--master", "--master-bind-port", str(port), "--expect-workers", str(workers)]
    processes = [ManagedProcess("locust", master, run.run_dir / "locust.log", env, cwd=REPO_ROOT)]
    for number in range(1, workers + 1):
        command = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
        log = run.run_dir / f"locust-worker-{number}.log"
        processes.append(
            ManagedProcess(f"locust-worker-{number}", command, log, env, cwd=REPO_ROOT)
        )
    return processes


def _drive_locust(run: LoadRun, timeline: FaultTimeline, say: Callable[[str], None]) -> None:
    """Run Locust to its end, the timeline from the moment the load starts."""
    duration = run.scenario.load.profile(run.options.profile).duration
    locusts = _locust_processes(run)
    for process in locusts:
        run.processes.append(process.start())
    master = locusts[0]
    status_file = run.run_dir / "status.json"
    started: float | None = None
    deadline = time.monotonic() + START_TIMEOUT_S
    last_line = 0.0
    try:
        while master.alive():
            if run.stop.is_set():
                raise LoadAbortError("interrupted (SIGINT)")
            _check_alive(run)
            status = _read_status(status_file)
            if started is None and status.get("state") in LOAD_STATES:
                started = time.monotonic()
                run.journal["load_started_at"] = time.time()
                timeline.start()
            if started is None and time.monotonic() > deadline:
                raise LoadAbortError(f"Locust did not start the load:\n{master.log_tail()}")
            if started is not None and time.monotonic() > started + duration + STOP_GRACE_S:
                raise LoadAbortError("Locust did not stop after the last stage")
            if started is not None and time.monotonic() - last_line >= _line_period():
                last_line = time.monotonic()
                _status_line(say, time.monotonic() - started, duration, status)
            run.stop.wait(1.0)
    finally:
        timeline.stop()
        run.journal["faults"] = [entry.as_dict() for entry in timeline.journal]
        run.journal["load_ended_at"] = time.time()
        for process in reversed(locusts):  # the master last: it merges the workers' data
            process.stop()
    if master.returncode != 0:
        raise LoadAbortError(f"Locust exited with {master.returncode}:\n{master.log_tail()}")


def _check_alive(run: LoadRun) -> None:
    for process in run.processes:
        if process.role == "api" and not process.alive():
            raise LoadAbortError(
                f"the API exited mid-run with {process.returncode}:\n{process.log_tail()}"
            )


def _read_status(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        status: dict[str, Any] = json.loads(path.read_text())
        return status
    return {}


def _line_period() -> float:
    return 1.0 if sys.stderr.isatty() else STATUS_EVERY_S


def _status_line(
    say: Callable[[str], None], elapsed: float, duration: float, status: Mapping[str, Any]
) -> None:
    requests, failures = status.get("requests", 0), status.get("failures", 0)
    share = f" ({failures / requests:.1%})" if requests else ""
    say(
        f"[{elapsed:5.0f}/{duration:g} s] users {status.get('users', 0):4d}  "
        f"rps {status.get('rps', 0.0):7.1f}  requests {requests}  failures {failures}{share}"
    )


def _evaluate(run: LoadRun, sampler: Sampler, say: Callable[[str], None]) -> None:
    totals = locust_totals(run.run_dir)
    if totals is None:
        raise LoadAbortError("Locust wrote no JSON stats")
    histogram = load_histogram(run.run_dir)
    series = {name: sampler.series(name) for name in sampler.seen}
    leftovers = None
    if run.database is not None:
        say("counting what the load left behind (unpublished events, unfinished sagas)")
        leftovers = leftovers_after(run.database)
        run.journal["leftovers"] = leftovers.as_dict()
    observed = measurements(
        run.scenario.thresholds,
        histogram=histogram,
        totals=totals,
        series=series,
        leftovers=leftovers,
    )
    results = evaluate(run.scenario.thresholds, observed)
    run.journal["totals"] = totals.as_dict()
    run.journal["thresholds"] = [result.as_dict() for result in results]
    failed = [r for r in results if r.status == "fail"]
    deviated = run.journal.get("deviated", False)
    status = "failed" if failed or deviated else "passed"
    run.journal["status"] = status


def _cpu_journal(sampler: Sampler) -> dict[str, Any]:
    """Mean and peak CPU (% of a core) per process role, and whether Locust was the limit."""
    by_role = {
        role: {"mean": sum(values) / len(values), "max": max(values)}
        for role, values in sampler.cpu_by_role().items()
        if values
    }
    generator = [stats["mean"] for role, stats in by_role.items() if role.startswith("locust")]
    return {
        "by_role": by_role,
        "generator_bound": any(mean > GENERATOR_BOUND_CPU for mean in generator),
    }


def _process_journal(run: LoadRun) -> list[dict[str, Any]]:
    return [
        {"role": p.role, "pid": p.pid, "returncode": p.returncode, "log": p.log.name}
        for p in run.processes
    ]


def _exit_code(journal: Mapping[str, Any]) -> int:
    status = journal["status"]
    if status == "passed":
        return EXIT_PASS
    if status == "failed":
        return EXIT_FAILED
    return EXIT_ABORTED


def _provenance(run: LoadRun, services: infra.Services | None, backend: str) -> dict[str, Any]:
    provenance = collect_provenance(
        database_url=None if services is None else services.database_url,
        redis_url=None if services is None else services.redis_url,
        backend=backend,
        profile=run.options.profile,
        parameters={"scenario": run.scenario.name, "target_url": run.options.target_url},
        seeds={},
    )
    return provenance.model_dump(mode="json")


def _render(run: LoadRun, say: Callable[[str], None]) -> int:
    """The report notebook, executed into the run folder and rendered to HTML; 1 if it fails."""
    import papermill

    from rustok_ref.lab.report import KERNEL, render_html

    compare = run.options.compare
    compare_dir = str(run.options.reports_dir / compare / "load") if compare else None
    executed = run.run_dir / "load_report.ipynb"
    try:
        papermill.execute_notebook(
            str(RENDERER),
            str(executed),
            parameters={"run_dir": str(run.run_dir), "compare_dir": compare_dir},
            kernel_name=KERNEL,
            progress_bar=False,
            cwd=str(RENDERER.parent),
        )
        html = render_html(executed, run.run_dir / "load_report.html")
    except Exception as exc:  # the report failed, the run's data is still there
        run.journal["report_error"] = f"{type(exc).__name__}: {exc}"
        run.write_journal()
        say(f"the report did not render: {run.journal['report_error']}")
        return EXIT_ABORTED
    say(f"report: {html}")
    return EXIT_PASS


def _address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _through(url: str, port: int) -> str:
    """The URL with its host and port replaced by the proxy's (credentials kept)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


__all__ = ["EXIT_ABORTED", "EXIT_FAILED", "EXIT_PASS", "LoadAbortError", "LoadOptions", "run_load"]
