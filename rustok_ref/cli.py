"""The `rustok-ref` command line: one sub-command per job, each a thin shell over a module.

Exit codes everywhere: 0 success, 1 the harness failed or a run aborted, 2 a threshold or
check failed.
"""

from __future__ import annotations

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


def main() -> None:
    """Console-script entry point."""
    app()
