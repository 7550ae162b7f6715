"""``ecsd serve``, ``ecsd worker``, ``ecsd db upgrade`` and ``ecsd operator-token``: running the service,
its database and its emulator controls."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import click

from ecsd import __version__
from ecsd.cli.base import _data_dir, _db_url, _settings, main
from ecsd.config import Settings


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id of the request being
    served (when there is one) and the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        from ecsd.metrics import request_id

        item = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        rid = request_id.get()
        if rid:
            item["request_id"] = rid
        if record.exc_info:
            item["exception"] = self.formatException(record.exc_info)
        return json.dumps(item, ensure_ascii=False)


JsonFormatter.converter = time.gmtime


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


_log_level = click.option("--log-level", default="warning", show_default=True,
                          type=click.Choice(["debug", "info", "warning", "error"]))
_log_format = click.option("--log-format", default="text", show_default=True, type=click.Choice(["text", "json"]),
                           help="json: one object per line, with the request id of the request logging it.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@_data_dir
@_db_url
@click.option("--driver", type=click.Choice(["simulated", "local"]), default="simulated", show_default=True,
              help="simulated: no machines, ECSD_SIM_DELAY per step; local: QEMU servers on this host "
                   "(docs/drivers.md).")
@click.option("--no-worker", is_flag=True, help="Serve the API only; jobs run in `ecsd worker` processes.")
@_log_level
@_log_format
@click.option("--seed", "seed_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A seed file (JSON or YAML: projects, users, images, key pairs, servers) applied on the "
                   "first start [env ECSD_SEED] (docs/testing-with-ecsd.md).")
@click.option("--fault-images", is_flag=True, default=None,
              help="Put the two fault-injection images in the public catalogue [env ECSD_FAULT_IMAGES].")
@click.option("--emulator/--no-emulator", default=None,
              help="Serve the emulator controls under /_ecsd/ to the operator token (simulated driver only; "
                   "on by default) [env ECSD_EMULATOR].")
def serve(host, port, data_dir, database_url, driver, no_worker, log_level, log_format, seed_file, fault_images,
          emulator) -> None:
    """Run the API (and, unless --no-worker, the job worker) on HOST:PORT.

    Secret access keys are stored encrypted with the key in DATA_DIR/secret.key (made at first
    start), or with ECSD_SECRET_KEY when it is set: give every process that shares one PostgreSQL
    database the same ECSD_SECRET_KEY.
    """
    import uvicorn

    from ecsd.app import create_app, prepare_store, write_credentials
    from ecsd.http.server import HttpLimits, fit_to_fd_limit, protocol_class

    settings = _settings(data_dir, database_url, host=host, port=port, driver=driver, seed_file=seed_file,
                         fault_images=fault_images, emulator=emulator)
    settings.run_worker = not no_worker
    _setup_logging(log_level, log_format)
    store, creds = prepare_store(settings)
    store.close()
    if creds is not None:
        path = write_credentials(settings, creds)
        click.echo(f"First start: demo credentials written to {path}")
        _print_quickstart(settings, creds)
    click.echo(f"ecsd {__version__} listening on {settings.endpoint} "
               f"(database: {'PostgreSQL' if settings.database_url else settings.url[len('sqlite:///'):]}, "
               f"driver: {settings.driver}, worker: {'on' if settings.run_worker else 'off'}"
               f"{', emulator controls: /_ecsd/' if settings.emulator_enabled else ''})")
    sys.stdout.flush()
    # The standard asyncio loop, not uvloop: under uvloop a connection among 32 that receive large
    # responses (a 210 KB server list page) kept missing its turn (p99 50-64 ms against 28-37 ms), and
    # the short requests were no faster (bench/analysis.md).
    # The HTTP server is uvicorn's httptools protocol with ecsd's limits on heads, bodies, timeouts and
    # connections (http/server.py, docs/security.md). No WebSocket: ecsd serves none.
    limits = fit_to_fd_limit(HttpLimits.from_env())
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level, access_log=False,
                            loop="asyncio", http=protocol_class(limits), ws="none", lifespan="on",
                            timeout_keep_alive=limits.keep_alive_timeout, timeout_graceful_shutdown=15,
                            server_header=False, proxy_headers=False,   # X-Forwarded-For is not trusted
                            # json: uvicorn's own records go through the same handler (no config of its own)
                            **({"log_config": None} if log_format == "json" else {}))
    uvicorn.Server(config).run()


@main.command()
@_data_dir
@_db_url
@click.option("--driver", type=click.Choice(["simulated", "local"]), default="simulated", show_default=True,
              help="simulated: no machines, ECSD_SIM_DELAY per step; local: QEMU servers on this host "
                   "(docs/drivers.md).")
@click.option("--name", default=None, help="Worker name for leases [default: host:pid]. A worker restarted "
                                           "under the same name takes its unfinished jobs back at once.")
@click.option("--max-jobs", default=10000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Jobs this worker runs at once.")
@click.option("--grace", default=10.0, show_default=True, type=click.FloatRange(0, 3600),
              help="Seconds running steps may take to finish on SIGTERM.")
@_log_level
@_log_format
@click.option("--metrics-port", default=None, type=click.IntRange(1, 65535),
              help="Serve this worker's Prometheus metrics at /metrics on this port (docs/operations.md) "
                   "[default: not served].")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="The address the metrics port binds (no authentication: keep it private).")
def worker(data_dir, database_url, driver, name, max_jobs, grace, log_level, log_format, metrics_port,
           metrics_host) -> None:
    """Run jobs only (no API): scale out beside `ecsd serve --no-worker` on a shared PostgreSQL."""

    import uvloop

    from ecsd import worker as worker_module

    settings = _settings(data_dir, database_url, driver=driver)
    if name:
        settings.worker_name = name
    settings.max_inflight_jobs = max_jobs
    _setup_logging(log_level, log_format)
    uvloop.run(worker_module.run(settings, grace, metrics_port, metrics_host))


def _print_quickstart(settings: Settings, creds: dict) -> None:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": creds["user_name"], "password": creds["password"], "domain": {"name": creds["domain_name"]}}}},
        "scope": {"project": {"name": creds["project_name"]}}}}
    click.echo("Get a token with:")
    click.echo(f"  curl -si -X POST {settings.endpoint}/v3/auth/tokens -H 'Content-Type: application/json' \\\n"
               f"    -d '{json.dumps(body)}' | grep -i x-subject-token")
    if creds.get("ak"):
        click.echo("Or sign requests with the Huawei Cloud SDK (AK/SK):")
        click.echo(f"  ak:         {creds['ak']}")
        click.echo(f"  sk:         {creds['sk']}")
        click.echo(f"  project_id: {creds['project_id']}")
        click.echo(f"  endpoint:   {settings.endpoint}")
        click.echo("  e.g. EcsClient.new_builder().with_credentials(BasicCredentials(ak, sk, project_id))"
                   f".with_endpoint(\"{settings.endpoint}\").build()")


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


@main.command("operator-token")
@_data_dir
def operator_token_command(data_dir) -> None:
    """Print the operator token of the emulator controls under /_ecsd/ (docs/testing-with-ecsd.md).

    It is derived from the secret key (ECSD_SECRET_KEY, else DATA_DIR/secret.key), unless
    ECSD_OPERATOR_TOKEN sets it. Whoever holds it can reset the installation: keep it like the key.
    """
    from ecsd.app import operator_credentials

    settings = _settings(data_dir, None)
    if not settings.emulator:
        raise click.ClickException("the emulator controls are off (ECSD_EMULATOR=0)")
    if settings.operator_token is None and not (settings.secret_key or os.path.exists(settings.secret_key_file)):
        raise click.ClickException(f"no secret key in {settings.data_dir}: start `ecsd serve` once first")
    click.echo(operator_credentials(settings)["operator_token"])
