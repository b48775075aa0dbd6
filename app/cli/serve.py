"""`cact demo` and `cact serve`: sample data, and the server itself."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.cli.common import now, ready_database
from app.ops.pdeathsig import PARENT_PID_ENV
from app.settings import EX_CONFIG, get_settings


def demo() -> None:
    """Load the demo: accounts, a sample bank and blueprint, an open session DEMO with 36
    participants. Safe to run again: nothing is added twice."""
    from app.demo import load_demo

    database = ready_database()
    settings = get_settings()
    with database.transaction() as db:
        report = load_demo(db, settings=settings, now=now())
    typer.echo(report.describe())


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for the LAN)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL for more than 1)")] = 1,
) -> None:
    """Serve the app, production style: no reload, N worker processes."""
    import uvicorn

    settings = get_settings()
    # Checks (or, for an empty database, creates) the key once, before workers start. An old
    # schema is EX_CONFIG here too: the unit does not migrate, so restarting cannot fix it.
    database = ready_database(older_code=EX_CONFIG)
    database.dispose()
    # Workers stop when this process dies, even by kill -9 (app/ops/pdeathsig.py).
    os.environ[PARENT_PID_ENV] = str(os.getpid())
    if workers > 1 and settings.is_sqlite:
        typer.secho(
            "Note: several workers on SQLite share one write lock; PostgreSQL scales further.",
            fg=typer.colors.YELLOW, err=True,
        )
    # Workers count metrics in shared files; set up before they start (app/ops/metrics.py).
    from app.ops.metrics import prepare_for_workers

    prepare_for_workers(settings)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        log_level="info",
        # An idle keep-alive connection that the server closes just as a client reuses it
        # fails that request (the load bench saw it at uvicorn's 5 s, which is also httpx's
        # idle expiry). Keeping idle connections longer than clients and nginx's upstream
        # pool (60 s) do lets the client side close first.
        timeout_keep_alive=75,
        # Proctors' live streams never end by themselves: a restart waits for them at most
        # this long (their pages reconnect on their own to the new process).
        timeout_graceful_shutdown=5,
    )
