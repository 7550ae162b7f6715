"""The ``ecsd`` command: serve, db upgrade, and administration of users, projects and access keys.

Administration commands work directly on the database (SQLite in ``--data-dir`` or PostgreSQL with
``--database-url``), so they need no running server and no credentials; whoever can run them can
read the database anyway. A running server notices a revoked key within a few seconds (its caches).
"""

from __future__ import annotations

import contextlib
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
@click.option("--driver", type=click.Choice(["simulated", "local"]), default="simulated", show_default=True,
              help="simulated: no machines, ECSD_SIM_DELAY per step; local: QEMU servers on this host "
                   "(docs/drivers.md).")
@click.option("--no-worker", is_flag=True, help="Serve the API only; jobs run in `ecsd worker` processes.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(host, port, data_dir, database_url, driver, no_worker, log_level) -> None:
    """Run the API (and, unless --no-worker, the job worker) on HOST:PORT.

    Secret access keys are stored encrypted with the key in DATA_DIR/secret.key (made at first
    start), or with ECSD_SECRET_KEY when it is set: give every process that shares one PostgreSQL
    database the same ECSD_SECRET_KEY.
    """
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
    # The standard asyncio loop, not uvloop: under uvloop a connection among 32 that receive large
    # responses (a 210 KB server list page) kept missing its turn (p99 50-64 ms against 28-37 ms), and
    # the short requests were no faster (bench/analysis.md).
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False,
                loop="asyncio", http="httptools", lifespan="on", timeout_graceful_shutdown=15)


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
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def worker(data_dir, database_url, driver, name, max_jobs, grace, log_level) -> None:
    """Run jobs only (no API): scale out beside `ecsd serve --no-worker` on a shared PostgreSQL."""

    import uvloop

    from ecsd import worker as worker_module

    settings = _settings(data_dir, database_url, driver=driver)
    if name:
        settings.worker_name = name
    settings.max_inflight_jobs = max_jobs
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvloop.run(worker_module.run(settings, grace))


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


# --- administration ----------------------------------------------------------------------------------------

_json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@contextlib.contextmanager
def _admin_store(data_dir: str | None, database_url: str | None):
    """The database of this installation, migrated to the current schema (as `ecsd serve` would)."""
    from ecsd.store import migrate
    from ecsd.store.db import Store

    settings = _settings(data_dir, database_url)
    if settings.database_url is None:
        os.makedirs(settings.data_dir, mode=0o700, exist_ok=True)
    store = Store(settings.url)
    try:
        migrate.upgrade(store.engine)
        yield settings, store
    finally:
        store.close()


def _when(ts: float | None) -> str:
    from ecsd.domain import clock

    return clock.iso_s(ts) if ts is not None else "-"


def _table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    click.echo(click.style(line, bold=True))
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        click.echo("(none)")


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _domain_id(conn, domain: str) -> str:
    from ecsd.domain import identity

    found = identity.find_domain(conn, domain)
    if found is None:
        raise click.ClickException(f"no domain named {domain!r}")
    return found["id"]


def _user(conn, user: str, domain: str | None) -> dict:
    """A user by name or id, within --domain when given (user names are unique per domain only)."""
    from ecsd.domain import identity

    if domain is not None:
        found = identity.find_user(conn, _domain_id(conn, domain), user)
        if found is None:
            raise click.ClickException(f"no user {user!r} in domain {domain!r}")
        return found
    matches = identity.find_users(conn, user)
    if not matches:
        raise click.ClickException(f"no user {user!r}")
    if len(matches) > 1:
        raise click.ClickException(f"several domains have a user named {user!r}: give --domain")
    return matches[0]


def _read_password(password: str | None, password_stdin: bool) -> str:
    if password is not None and password_stdin:
        raise click.UsageError("give either --password or --password-stdin, not both")
    if password_stdin:
        password = click.get_text_stream("stdin").readline().rstrip("\r\n")
    elif password is None:
        if not sys.stdin.isatty():
            raise click.UsageError("no password: use --password-stdin or --password")
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8 or len(password) > 1024:
        raise click.ClickException("the password must be 8 to 1024 characters long")
    return password


@main.group()
def users() -> None:
    """IAM users (who may log in with a password or sign with access keys)."""


@users.command("create")
@click.argument("name")
@click.option("--domain", required=True, help="The user's domain (account); created if it does not exist.")
@click.option("--password", default=None,
              help="The password (visible in the process list: prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input.")
@_json_flag
@_data_dir
@_db_url
def users_create(name, domain, password, password_stdin, as_json, data_dir, database_url) -> None:
    """Create user NAME in --domain."""
    from ecsd.domain import identity

    if not 0 < len(name) <= 64 or not 0 < len(domain) <= 64:
        raise click.ClickException("user and domain names must be 1 to 64 characters long")
    secret = _read_password(password, password_stdin)
    with _admin_store(data_dir, database_url) as (_, store):
        def run(conn):
            domain_id, new_domain = identity.ensure_domain(conn, domain)
            if identity.find_user(conn, domain_id, name) is not None:
                raise click.ClickException(f"domain {domain!r} already has a user {name!r}")
            return identity.create_user(conn, domain_id, name, secret), domain_id, new_domain

        user_id, domain_id, new_domain = store.run_sync(run)
    if as_json:
        _emit_json({"id": user_id, "name": name, "domain_id": domain_id, "domain_name": domain})
        return
    if new_domain:
        click.echo(f"Created domain {domain} ({domain_id}).")
    click.echo(f"Created user {name} ({user_id}) in domain {domain}.")


@users.command("list")
@click.option("--domain", default=None, help="Only users of this domain.")
@_json_flag
@_data_dir
@_db_url
def users_list(domain, as_json, data_dir, database_url) -> None:
    """List users with their domains and projects."""
    from ecsd.domain import identity

    with _admin_store(data_dir, database_url) as (_, store):
        rows = store.run_sync(lambda conn: identity.list_users(
            conn, _domain_id(conn, domain) if domain is not None else None))
    if as_json:
        _emit_json([{"id": r["id"], "name": r["name"], "domain_id": r["domain_id"],
                     "domain_name": r["domain_name"], "enabled": bool(r["enabled"]),
                     "created_at": _when(r["created_at"]), "projects": r["projects"]} for r in rows])
        return
    _table(["DOMAIN", "USER", "ID", "ENABLED", "PROJECTS"],
           [[r["domain_name"], r["name"], r["id"], "yes" if r["enabled"] else "no",
             ",".join(r["projects"]) or "-"] for r in rows])


@main.group()
def projects() -> None:
    """Projects (the scope of servers, jobs and key pairs) and their members."""


@projects.command("create")
@click.argument("name")
@click.option("--domain", required=True, help="The project's domain; created if it does not exist.")
@click.option("--description", default="", help="Free text.")
@_json_flag
@_data_dir
@_db_url
def projects_create(name, domain, description, as_json, data_dir, database_url) -> None:
    """Create project NAME in --domain (its id is what goes into /v1/{project_id}/...)."""
    from ecsd.domain import identity

    if not 0 < len(name) <= 64 or not 0 < len(domain) <= 64:
        raise click.ClickException("project and domain names must be 1 to 64 characters long")
    with _admin_store(data_dir, database_url) as (_, store):
        def run(conn):
            domain_id, new_domain = identity.ensure_domain(conn, domain)
            if identity.find_project(conn, domain_id, name) is not None:
                raise click.ClickException(f"domain {domain!r} already has a project {name!r}")
            return identity.create_project(conn, domain_id, name, description), domain_id, new_domain

        project_id, domain_id, new_domain = store.run_sync(run)
    if as_json:
        _emit_json({"id": project_id, "name": name, "domain_id": domain_id, "domain_name": domain,
                    "description": description})
        return
    if new_domain:
        click.echo(f"Created domain {domain} ({domain_id}).")
    click.echo(f"Created project {name} ({project_id}) in domain {domain}.")


@projects.command("add-member")
@click.argument("project")
@click.option("--user", "user", required=True, help="User name or id.")
@click.option("--domain", required=True, help="The domain of both the project and the user.")
@_data_dir
@_db_url
def projects_add_member(project, user, domain, data_dir, database_url) -> None:
    """Let --user use PROJECT (a name or id in --domain)."""
    from ecsd.domain import identity

    with _admin_store(data_dir, database_url) as (_, store):
        def run(conn):
            domain_id = _domain_id(conn, domain)
            proj = identity.find_project(conn, domain_id, project)
            if proj is None:
                raise click.ClickException(f"no project {project!r} in domain {domain!r}")
            member = _user(conn, user, domain)
            if identity.is_member(conn, member["id"], proj["id"]):
                return proj, member, False
            identity.add_member(conn, member["id"], proj["id"])
            return proj, member, True

        proj, member, added = store.run_sync(run)
    verb = "is now" if added else "was already"
    click.echo(f"User {member['name']} {verb} a member of project {proj['name']} ({proj['id']}).")


@projects.command("list")
@click.option("--domain", default=None, help="Only projects of this domain.")
@_json_flag
@_data_dir
@_db_url
def projects_list(domain, as_json, data_dir, database_url) -> None:
    """List projects."""
    from ecsd.domain import identity

    with _admin_store(data_dir, database_url) as (_, store):
        rows = store.run_sync(lambda conn: identity.list_projects(
            conn, _domain_id(conn, domain) if domain is not None else None))
    if as_json:
        _emit_json([{**r, "enabled": bool(r["enabled"])} for r in rows])
        return
    _table(["DOMAIN", "PROJECT", "ID", "ENABLED", "DESCRIPTION"],
           [[r["domain_name"], r["name"], r["id"], "yes" if r["enabled"] else "no", r["description"] or "-"]
            for r in rows])


@main.group()
def keys() -> None:
    """Access keys (AK/SK) for SDK-HMAC-SHA256 request signing."""


@keys.command("create")
@click.option("--user", "user", required=True, help="User name or id.")
@click.option("--domain", default=None, help="The user's domain (needed when the name is not unique).")
@click.option("--description", default="", help="Free text, e.g. what the key is for.")
@_json_flag
@_data_dir
@_db_url
def keys_create(user, domain, description, as_json, data_dir, database_url) -> None:
    """Create an access key for --user. The secret key (SK) is printed now and never again."""
    from ecsd.domain import access_keys

    with _admin_store(data_dir, database_url) as (settings, store):
        try:
            box = access_keys.secret_box(settings)
        except access_keys.SecretKeyError as exc:
            raise click.ClickException(str(exc)) from None

        def run(conn):
            if not access_keys.box_opens_stored_keys(conn, box):
                raise click.ClickException(
                    "the existing access keys were encrypted with another secret key: give this command "
                    "the same ECSD_SECRET_KEY (or data directory) as the server")
            member = _user(conn, user, domain)
            try:
                ak, sk = access_keys.create(conn, box, member["id"], description)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
            return member, ak, sk

        member, ak, sk = store.run_sync(run)
    if as_json:
        _emit_json({"ak": ak, "sk": sk, "user_id": member["id"], "user_name": member["name"],
                    "description": description})
        return
    click.echo(f"Created an access key for user {member['name']} ({member['id']}).")
    click.echo(f"  AK: {ak}")
    click.echo(f"  SK: {sk}")
    click.echo("The SK is shown only this once: store it now.")


@keys.command("list")
@click.option("--user", "user", default=None, help="Only keys of this user (name or id).")
@click.option("--domain", default=None, help="The user's domain (needed when the name is not unique).")
@_json_flag
@_data_dir
@_db_url
def keys_list(user, domain, as_json, data_dir, database_url) -> None:
    """List access keys (never their secrets)."""
    from ecsd.domain import access_keys

    with _admin_store(data_dir, database_url) as (_, store):
        rows = store.run_sync(lambda conn: access_keys.list_keys(
            conn, _user(conn, user, domain)["id"] if user is not None else None))
    if as_json:
        _emit_json([{**r, "created_at": _when(r["created_at"]),
                     "last_used_at": _when(r["last_used_at"]) if r["last_used_at"] else None} for r in rows])
        return
    _table(["AK", "DOMAIN", "USER", "STATUS", "CREATED", "LAST USED", "DESCRIPTION"],
           [[r["ak"], r["domain_name"], r["user_name"], r["status"], _when(r["created_at"]),
             _when(r["last_used_at"]), r["description"] or "-"] for r in rows])


@keys.command("revoke")
@click.argument("ak")
@_data_dir
@_db_url
def keys_revoke(ak, data_dir, database_url) -> None:
    """Deactivate access key AK: signatures made with it are refused from now on."""
    from ecsd.domain import access_keys

    with _admin_store(data_dir, database_url) as (_, store):
        def run(conn):
            rows = [r for r in access_keys.list_keys(conn) if r["ak"] == ak]
            if not rows:
                raise click.ClickException(f"no access key {ak!r}")
            access_keys.revoke(conn, ak)
            return rows[0]["status"]

        before = store.run_sync(run)
    if before == access_keys.INACTIVE:
        click.echo(f"Access key {ak} was already inactive.")
    else:
        click.echo(f"Revoked access key {ak} (running servers refuse it within a few seconds).")


def _attach_driver_commands() -> None:
    from ecsd.drivers.local.cli import images as images_group

    main.add_command(images_group)


_attach_driver_commands()
