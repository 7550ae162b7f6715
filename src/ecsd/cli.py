"""The ``ecsd`` command: serve, worker, db upgrade (administration commands join here)."""

from __future__ import annotations

import json
import logging
import os
import sys

import click

from ecsd import __version__
from ecsd.config import Settings, default_data_dir


def _settings(data_dir: str | None, database_url: str | None, **kw) -> Settings:
    s = Settings(**{k: v for k, v in kw.items() if v is not None})
    s.data_dir = data_dir or os.environ.get("ECSD_DATA_DIR") or default_data_dir()
    s.database_url = database_url or os.environ.get("ECSD_DATABASE_URL") or None
    return s


_data_dir = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                         help="Where the SQLite database and credentials live [default: ~/.local/share/ecsd].")
_db_url = click.option("--database-url", default=None,
                       help="postgresql://user@host:port/db to use PostgreSQL instead of SQLite.")


@click.group()
@click.version_option(__version__, prog_name="ecsd")
def main() -> None:
    """ecsd: a self-hosted Elastic Cloud Server control plane."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@_data_dir
@_db_url
@click.option("--driver", type=click.Choice(["simulated"]), default="simulated", show_default=True)
@click.option("--no-worker", is_flag=True, help="Serve the API only; jobs run in `ecsd worker` processes.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(host, port, data_dir, database_url, driver, no_worker, log_level) -> None:
    """Run the API (and, unless --no-worker, the job worker) on HOST:PORT."""
    import uvicorn

    from ecsd.app import create_app, prepare_store, write_credentials

    settings = _settings(data_dir, database_url, host=host, port=port, driver=driver)
    settings.run_worker = not no_worker
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store, creds = prepare_store(settings)
    store.close()
    if creds is not None:
        path = write_credentials(settings, creds)
        click.echo(f"First start: demo credentials written to {path}")
        _print_quickstart(settings, creds)
    click.echo(f"ecsd {__version__} listening on {settings.endpoint} "
               f"(database: {'PostgreSQL' if settings.database_url else settings.url[len('sqlite:///'):]}, "
               f"driver: {settings.driver}, worker: {'on' if settings.run_worker else 'off'})")
    sys.stdout.flush()
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False,
                loop="uvloop", http="httptools", lifespan="on", timeout_graceful_shutdown=15)


def _print_quickstart(settings: Settings, creds: dict) -> None:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": creds["user_name"], "password": creds["password"], "domain": {"name": creds["domain_name"]}}}},
        "scope": {"project": {"name": creds["project_name"]}}}}
    click.echo("Get a token with:")
    click.echo(f"  curl -si -X POST {settings.endpoint}/v3/auth/tokens -H 'Content-Type: application/json' \\\n"
               f"    -d '{json.dumps(body)}' | grep -i x-subject-token")


@main.group()
def db() -> None:
    """Database administration."""


@db.command("upgrade")
@_data_dir
@_db_url
def db_upgrade(data_dir, database_url) -> None:
    """Apply schema migrations (the server also does this at start)."""
    from ecsd.store import migrate
    from ecsd.store.db import Store

    settings = _settings(data_dir, database_url)
    if settings.database_url is None:
        os.makedirs(settings.data_dir, mode=0o700, exist_ok=True)
    store = Store(settings.url)
    applied = migrate.upgrade(store.engine)
    click.echo(f"schema at {migrate.current_revision(store.engine)}" + (" (upgraded)" if applied else ""))
    store.close()
