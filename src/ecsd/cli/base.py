"""What every ``ecsd`` command shares: the ``main`` group, the data-directory and database options,
the admin store, and table / JSON output.

Administration commands work directly on the database (SQLite in ``--data-dir`` or PostgreSQL with
``--database-url``), so they need no running server and no credentials; whoever can run them can
read the database anyway. A running server notices a change (a revoked key, an unlocked user, a new
quota) within a few seconds (its caches).
"""

from __future__ import annotations

import contextlib
import json
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


# --- administration helpers ----------------------------------------------------------------------------------------

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


