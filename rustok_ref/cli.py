"""The `rustok-ref` command line: one sub-command per job, each a thin shell over a module.

Exit codes everywhere: 0 success, 1 the harness failed or a run aborted, 2 a threshold or
check failed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="RusToK reference implementation: services, review notebooks, scenarios, metrics.",
)
infra_app = typer.Typer(no_args_is_help=True, help="Provision real PostgreSQL and Redis.")
app.add_typer(infra_app, name="infra")


@infra_app.command("up")
def infra_up(
    backend: Annotated[str, typer.Option(help="auto, external, containers or embedded")] = "auto",
) -> None:
    """Start (or find) PostgreSQL and Redis, print their URLs, hold until Ctrl-C."""
    from rustok_ref.config import Settings
    from rustok_ref.lab import infra

    try:
        with infra.provision(backend, Settings()) as services:
            typer.echo(f"backend: {services.backend}")
            typer.echo(f"RUSTOK_DATABASE_URL={services.database_url}")
            typer.echo(f"RUSTOK_REDIS_URL={services.redis_url}")
            typer.echo("ready; Ctrl-C stops what was started", err=True)
            _wait_for_interrupt()
    except infra.InfraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _wait_for_interrupt() -> None:
    """Block until SIGINT or SIGTERM, then return so context managers clean up."""
    import signal
    import threading

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()


@infra_app.command("check")
def infra_check() -> None:
    """Say which backends work on this machine (each is started and stopped)."""
    from rich.console import Console
    from rich.table import Table

    from rustok_ref.lab import infra

    table = Table("backend", "works", "detail")
    checks = infra.check_backends()
    for check in checks:
        table.add_row(check.backend, "yes" if check.works else "no", check.detail)
    Console().print(table)
    if not any(check.works for check in checks):
        raise typer.Exit(1)


@app.command("metrics")
def metrics(
    path: Annotated[str, typer.Argument(help="A git repository (bare too) or a plain folder.")],
    rev: Annotated[
        str | None, typer.Option(help="Measure this revision, read through git without a checkout.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Count files, lines, tests and complexity of the Python and Rust code under PATH."""
    from pathlib import Path

    from rich.console import Console

    from rustok_ref.lab import codemetrics

    try:
        measured = codemetrics.measure(Path(path), rev)
    except codemetrics.MetricsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(measured.to_json())
        return
    console = Console()
    for table in codemetrics.tables(measured):
        console.print(table)


@app.command("report")
def report(
    backend: Annotated[str, typer.Option(help="auto, external, containers or embedded")] = "auto",
    profile: Annotated[str, typer.Option(help="smoke (CI-sized) or full")] = "smoke",
    skip_tests: Annotated[bool, typer.Option("--skip-tests", help="no test phase")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(help="run only this notebook (repeatable), e.g. 01_sprint_metrics"),
    ] = None,
) -> None:
    """Render the review report: tests, every notebook, the scorecard -> reports/latest/."""
    from rustok_ref.lab import infra
    from rustok_ref.lab.report import ReportError, ReportOptions, run_report

    if profile not in ("smoke", "full"):
        typer.echo(f"error: --profile must be smoke or full, not {profile!r}", err=True)
        raise typer.Exit(1)
    options = ReportOptions(
        backend=backend,
        profile="smoke" if profile == "smoke" else "full",
        skip_tests=skip_tests,
        only=tuple(only or ()),
    )
    try:
        result = run_report(options)
    except (ReportError, infra.InfraError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"report: {result.run_dir / 'index.html'}")
    raise typer.Exit(result.exit_code)


outbox_app = typer.Typer(no_args_is_help=True, help="The transactional outbox.")
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("prune")
def outbox_prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age of published rows to delete: 7d, 12h, 30m.")
    ] = "7d",
) -> None:
    """Delete published outbox rows older than --older-than (pending and dead rows stay)."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from rustok_ref.config import Settings
    from rustok_ref.events import outbox
    from rustok_ref.storage import create_engine, create_sessionmaker

    age = _parse_duration(older_than)
    settings = Settings()
    if settings.database_url is None:
        typer.echo(
            "error: RUSTOK_DATABASE_URL is not set; `rustok-ref infra up` prints one", err=True
        )
        raise typer.Exit(1)

    async def run() -> int:
        engine = create_engine(settings)
        try:
            return await outbox.prune(create_sessionmaker(engine), age)
        finally:
            await engine.dispose()

    try:
        removed = asyncio.run(run())
    except (OSError, SQLAlchemyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"pruned {removed} published outbox rows older than {older_than}")


def _parse_duration(text: str) -> timedelta:
    """'7d', '12h', '30m' or '45s' as a timedelta; exit 1 on anything else."""
    import re

    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    match = re.fullmatch(r"(\d+)([dhms])", text.strip())
    if match is None:
        typer.echo(f"error: {text!r} is not a duration such as 7d, 12h, 30m or 45s", err=True)
        raise typer.Exit(1)
    return timedelta(**{units[match[2]]: int(match[1])})


scenario_app = typer.Typer(
    no_args_is_help=True,
    help="Scenario files: load stages, fault timeline, steady state, thresholds.",
)
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("validate")
def scenario_validate(
    files: Annotated[list[str], typer.Argument(help="Scenario YAML files, e.g. scenarios/*.yaml")],
) -> None:
    """Check scenario files before any run: OK per file, or each problem with its line and field.

    Exit 0 when all are valid, 2 when one is not, 1 when one cannot be read.
    """
    from rustok_ref.lab.scenario import ScenarioError, load_scenario

    exit_code = 0
    for file in files:
        try:
            scenario = load_scenario(file)
        except OSError as exc:
            typer.echo(f"error: {file}: {exc.strerror or exc}", err=True)
            exit_code = 1
        except ScenarioError as exc:
            typer.echo(str(exc), err=True)
            exit_code = exit_code or 2
        else:
            smoke, full = scenario.load.smoke, scenario.load.full
            faults = len(scenario.faults.smoke) + len(scenario.faults.full)
            typer.echo(
                f"OK {file}: smoke {smoke.duration:g} s, full {full.duration:g} s, "
                f"{faults} faults, {len(scenario.thresholds)} thresholds"
            )
    raise typer.Exit(exit_code)


projection_app = typer.Typer(no_args_is_help=True, help="Read views fed by the event streams.")
app.add_typer(projection_app, name="projection")


@projection_app.command("rebuild")
def projection_rebuild(
    name: Annotated[str, typer.Argument(help="The view to rebuild, e.g. tenant_view.")],
) -> None:
    """Empty a read view and replay every published event it handles, in one transaction."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from rustok_ref.bootstrap import projections
    from rustok_ref.config import Settings
    from rustok_ref.storage import create_engine, create_sessionmaker

    views = projections()
    if name not in views:
        typer.echo(f"error: unknown view {name!r}; known: {', '.join(sorted(views))}", err=True)
        raise typer.Exit(1)

    async def rebuild() -> int:
        engine = create_engine(Settings())
        try:
            return await views[name].rebuild(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    try:
        replayed = asyncio.run(rebuild())
    except (ValueError, OSError, SQLAlchemyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{name}: rebuilt from {replayed} events")


saga_app = typer.Typer(no_args_is_help=True, help="Sagas: finish or undo what a crash left.")
app.add_typer(saga_app, name="saga")


@saga_app.command("recover")
def saga_recover(
    saga: Annotated[
        list[str],
        typer.Option(
            "--saga",
            help="MODULE:FACTORY, a function of the wired container returning saga "
            "definitions (repeatable; PYTHONPATH must reach MODULE).",
        ),
    ] = ["rustok_ref.commerce.checkout:definitions"],  # noqa: B006 (typer reads it, never mutates)
    idle_for: Annotated[
        str, typer.Option("--idle-for", help="Take up sagas unchanged this long: 1m, 30s, 0s.")
    ] = "1m",
    limit: Annotated[int, typer.Option(min=1, help="At most this many sagas.")] = 100,
) -> None:
    """Finish or undo the sagas a crash left running or compensating (every tenant).

    Exit 0 when each ended completed or compensated, 2 when one was parked as failed or
    skipped (no definition, or another runner has it), 1 when recovery could not run.
    """
    import asyncio
    import importlib

    from sqlalchemy.exc import SQLAlchemyError

    from rustok_ref.bootstrap import wire
    from rustok_ref.config import Settings
    from rustok_ref.saga import RecoveryReport, SagaOrchestrator, SagaState

    age = _parse_duration(idle_for)
    factories = []
    for spec in saga:
        module_name, _, attribute = spec.partition(":")
        try:
            factories.append(getattr(importlib.import_module(module_name), attribute))
        except (ImportError, AttributeError, ValueError) as exc:
            typer.echo(f"error: cannot load saga definitions {spec!r}: {exc}", err=True)
            raise typer.Exit(1) from exc

    async def run() -> RecoveryReport:
        async with wire(Settings()) as container:
            definitions = [found for factory in factories for found in factory(container)]
            orchestrator = SagaOrchestrator(container.sessions, definitions)
            return await orchestrator.recover(idle_for=age, limit=limit)

    try:
        report = asyncio.run(run())
    except (ValueError, OSError, SQLAlchemyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for done in report.finished:
        reason = f" ({done.failure_reason})" if done.state is SagaState.FAILED else ""
        typer.echo(f"{done.id} {done.saga_type}: {done.state}{reason}")
    for saga_id, why in report.skipped:
        typer.echo(f"{saga_id}: skipped, {why}")
    parked = [done for done in report.finished if done.state is SagaState.FAILED]
    typer.echo(
        f"recovered {len(report.finished) - len(parked)}, parked {len(parked)}, "
        f"skipped {len(report.skipped)}"
    )
    if parked or report.skipped:
        raise typer.Exit(2)


@app.command("relay")
def relay(
    once: Annotated[
        bool, typer.Option("--once", help="Publish what is due now, then exit.")
    ] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Rows claimed per cycle.")] = 100,
    lease: Annotated[
        str, typer.Option("--lease", help="Take over claims older than this: 30s, 1m, 0s.")
    ] = "30s",
) -> None:
    """Publish the outbox to Redis Streams, in order per aggregate, until SIGTERM or Ctrl-C
    (the batch in hand is finished first).

    Exit 0 when stopped (or, with --once, when nothing is due), 1 when it cannot run.
    """
    import asyncio
    import signal

    from redis.exceptions import RedisError
    from sqlalchemy.exc import SQLAlchemyError

    from rustok_ref.bootstrap import wire
    from rustok_ref.config import Settings
    from rustok_ref.events.relay import OutboxRelay, RelayConfig, RelayMetrics, relay_crash_after

    settings = Settings()
    config = RelayConfig(batch_size=batch, lease_s=_parse_duration(lease).total_seconds())
    crash_after = relay_crash_after(test_hooks=settings.test_hooks, crash_at=settings.crash_at)

    async def run() -> RelayMetrics:
        async with wire(settings) as container:
            outbox_relay = OutboxRelay(
                container.sessions,
                container.redis,
                prefix=settings.redis_prefix,
                config=config,
                crash_after=crash_after,
            )
            if once:
                while True:
                    result = await outbox_relay.run_once()
                    if result.broker_error is not None:
                        raise OSError(f"Redis unreachable: {result.broker_error}")
                    if result.claimed == 0:
                        break
            else:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, stop.set)
                await outbox_relay.run(stop)
            return outbox_relay.metrics()

    try:
        done = asyncio.run(run())
    except (ValueError, OSError, SQLAlchemyError, RedisError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"relay {done.worker_id}: published {done.published}, retried {done.retried}, "
        f"dead {done.dead}, lost {done.lost}, released {done.released}"
    )


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    graceful_timeout: Annotated[
        int,
        typer.Option(
            min=0, help="Seconds requests and open WebSockets get to finish after SIGTERM."
        ),
    ] = 10,
) -> None:
    """Serve the REST and GraphQL API under uvicorn until SIGTERM or Ctrl-C (requests in
    flight finish first, for at most --graceful-timeout: an open subscription would
    otherwise hold a worker forever). Settings come from the RUSTOK_* variables."""
    import os
    import tempfile

    import uvicorn

    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # every worker writes its samples here; /metrics sums the live ones
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rustok-metrics-")
    uvicorn.run(
        "rustok_ref.api.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=graceful_timeout,
    )


apikey_app = typer.Typer(no_args_is_help=True, help="API keys (shown once, stored hashed).")
app.add_typer(apikey_app, name="apikey")


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="The tenant's slug, domain or id.")],
    role: Annotated[str, typer.Option(help="admin, staff or customer.")] = "customer",
    label: Annotated[str | None, typer.Option(help="A note stored with the key.")] = None,
) -> None:
    """Create a key for the tenant and print it once (only its SHA-256 is stored)."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from rustok_ref.api.auth import ApiKeys, Role
    from rustok_ref.bootstrap import wire
    from rustok_ref.config import Settings
    from rustok_ref.errors import RustokError
    from rustok_ref.tenancy.identifiers import validate_any
    from rustok_ref.tenancy.repository import load_tenant

    try:
        chosen = Role(role)
    except ValueError as exc:
        typer.echo(f"error: unknown role {role!r}; use admin, staff or customer", err=True)
        raise typer.Exit(1) from exc

    async def run() -> str:
        async with wire(Settings()) as container:
            found = await load_tenant(container.sessions, validate_any(tenant))
            if found is None:
                raise ValueError(f"no tenant {tenant!r}")
            issued = await ApiKeys(container.sessions).create(found.id, chosen, label=label)
            return issued.token

    try:
        token = asyncio.run(run())
    except (ValueError, OSError, SQLAlchemyError, RustokError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(token)


@app.command("seed")
def seed_database(
    tenants: Annotated[int, typer.Option(min=1, help="Tenants to create.")],
    products: Annotated[
        int, typer.Option(min=1, help="Products in all, split over tenants by a Zipf law.")
    ],
    orders: Annotated[int, typer.Option(min=0, help="Submitted orders in all (same split).")] = 0,
    seed: Annotated[
        int, typer.Option(min=0, help="Makes slugs, prices and orders repeatable.")
    ] = 0,
    prefix: Annotated[str, typer.Option(help="Slugs read <prefix>-<seed>-<rank>.")] = "seed",
    keys_file: Annotated[
        str | None, typer.Option("--keys-file", help="Also write the JSON to this file.")
    ] = None,
) -> None:
    """Create skewed tenants with commerce on, published products, orders and a key per
    role; print as JSON what load scenarios need (slug, weight, keys, product ids).

    Exit 1, before writing anything, when a slug is taken or the sizes do not fit.
    """
    import asyncio
    import json
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress
    from sqlalchemy.exc import SQLAlchemyError

    from rustok_ref.bootstrap import services, wire
    from rustok_ref.config import Settings
    from rustok_ref.errors import RustokError
    from rustok_ref.lab.seed import SeededTenant, SeedError, SeedPlan, run_seed

    plan = SeedPlan(tenants=tenants, products=products, orders=orders, seed=seed, prefix=prefix)

    async def run() -> list[SeededTenant]:
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("seeding", total=products + orders)
            async with wire(Settings()) as container, services(container) as built:
                return await run_seed(
                    built, plan, advance=lambda done: progress.advance(task, done)
                )

    try:
        seeded = asyncio.run(run())
    except (SeedError, ValueError, OSError, SQLAlchemyError, RustokError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    text = json.dumps([shop.to_json() for shop in seeded], indent=2)
    if keys_file is not None:
        Path(keys_file).write_text(text + "\n")
    typer.echo(text)
    typer.echo(f"seeded {len(seeded)} tenants, {products} products, {orders} orders", err=True)


@app.command("load")
def load(
    scenario: Annotated[
        str, typer.Argument(help="A scenario file, e.g. scenarios/redis_outage.yaml")
    ],
    profile: Annotated[str, typer.Option(help="smoke (under a minute) or full.")] = "smoke",
    target_url: Annotated[
        str | None,
        typer.Option(help="Load a running API instead: no provisioning, seeding or server."),
    ] = None,
    keys_file: Annotated[
        str | None, typer.Option(help="With --target-url: the keys `rustok-ref seed` wrote.")
    ] = None,
    locust_workers: Annotated[
        int, typer.Option(min=0, help="Locust workers beside a master (0: one local process).")
    ] = 0,
    api_workers: Annotated[int, typer.Option(min=1, help="uvicorn workers of the API.")] = 1,
    backend: Annotated[str, typer.Option(help="auto, external, containers or embedded.")] = "auto",
    reports_dir: Annotated[str, typer.Option(help="Where reports/<run-id>/load/ goes.")] = "",
    compare: Annotated[
        str | None, typer.Option(help="A earlier run id to put beside this one in the report.")
    ] = None,
    render: Annotated[bool, typer.Option(help="Render the report notebook.")] = True,
) -> None:
    """Run a load scenario against a fresh stack and write reports/<run-id>/load/.

    Exit 0 when every threshold held, 2 when one failed or the steady state deviated, 1 when
    the run aborted (invalid scenario, a process died, Ctrl-C).
    """
    from pathlib import Path

    from rustok_ref.lab.load import EXIT_ABORTED, LoadAbortError, LoadOptions, run_load
    from rustok_ref.lab.notebook import NotebookParameterError, check_profile
    from rustok_ref.lab.paths import REPO_ROOT
    from rustok_ref.lab.scenario import ScenarioError

    try:
        options = LoadOptions(
            scenario=Path(scenario),
            profile=check_profile(profile),
            target_url=target_url,
            keys_file=Path(keys_file) if keys_file else None,
            locust_workers=locust_workers,
            api_workers=api_workers,
            backend=backend,
            reports_dir=Path(reports_dir) if reports_dir else REPO_ROOT / "reports",
            compare=compare,
            render=render,
        )
        code = run_load(options, echo=lambda line: typer.echo(line, err=True))
    except (NotebookParameterError, ScenarioError, LoadAbortError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_ABORTED) from exc
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # `python -m rustok_ref.cli`, as subprocesses of the harness run it
    main()
