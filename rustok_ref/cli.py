"""The `rustok-ref` command line: one sub-command per job, each a thin shell over a module.

Exit codes everywhere: 0 success, 1 the harness failed or a run aborted, 2 a threshold or
check failed.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="RusToK reference implementation: services, review notebooks, scenarios, metrics.",
)
infra_app = typer.Typer(no_args_is_help=True, help="Provision real PostgreSQL and Redis.")
app.add_typer(infra_app, name="infra")


def main() -> None:
    """Console-script entry point."""
    app()
