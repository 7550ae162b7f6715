"""``ecsd quotas show|set``: a project's quotas (instances, vCPUs, RAM) and usage, on the database.

    ecsd quotas show PROJECT [--domain D] [--json]
    ecsd quotas set PROJECT [--domain D] [--instances N] [--cores N] [--ram MB] [--reset] [--json]

PROJECT is a project name or id (a name shared by several domains needs ``--domain``). A value of -1
means unlimited (as in Nova); ``--reset`` restores the defaults first. A running server applies a
change at its next create (quotas are read at every acceptance, domain/quotas.py).
"""

from __future__ import annotations

import click

from ecsd.cli.base import _admin_store, _data_dir, _db_url, _domain_id, _emit_json, _json_flag, _table, main

_LABELS = {"instances": "instances", "cores": "cores (vCPUs)", "ram": "ram (MB)"}


def _project(conn, project: str, domain: str | None) -> dict:
    """A project by name or id, within --domain when given."""
    from ecsd.domain import identity

    if domain is not None:
        found = identity.find_project(conn, _domain_id(conn, domain), project)
        if found is None:
            raise click.ClickException(f"no project {project!r} in domain {domain!r}")
        return {**found, "domain_name": domain}
    every = identity.list_projects(conn)
    matches = [p for p in every if p["id"] == project] or [p for p in every if p["name"] == project]
    if not matches:
        raise click.ClickException(f"no project {project!r}")
    if len(matches) > 1:
        raise click.ClickException(f"several domains have a project named {project!r}: give --domain")
    return matches[0]


def _emit(proj: dict, current: dict, as_json: bool) -> None:
    if as_json:
        _emit_json({"project_id": proj["id"], "project_name": proj["name"], "domain_name": proj["domain_name"],
                    "quotas": {r: {"limit": q["limit"], "in_use": q["in_use"], "default": q["override"] is None}
                               for r, q in current.items()}})
        return
    click.echo(f"Project {proj['name']} ({proj['id']}) in domain {proj['domain_name']}:")
    _table(["RESOURCE", "QUOTA", "IN USE", "SOURCE"],
           [[_LABELS[r], "unlimited" if q["limit"] < 0 else q["limit"], q["in_use"],
             "default" if q["override"] is None else "override"] for r, q in current.items()])
    for r, q in current.items():
        if 0 <= q["limit"] < q["in_use"]:
            click.echo(f"Note: the {r} quota is below the usage; creates are refused until it falls to "
                       f"{q['limit']} (deletes still go on).")


@main.group()
def quotas() -> None:
    """Project quotas: instances, vCPUs and RAM that creates may use (-1: unlimited)."""


@quotas.command("show")
@click.argument("project")
@click.option("--domain", default=None, help="The project's domain (needed when the name is not unique).")
@_json_flag
@_data_dir
@_db_url
def quotas_show(project, domain, as_json, data_dir, database_url) -> None:
    """Show PROJECT's quotas and what it uses of them."""
    from ecsd.domain import quotas as q

    with _admin_store(data_dir, database_url) as (_, store):
        def run(conn):
            proj = _project(conn, project, domain)
            return proj, q.project_quotas(conn, proj["id"])

        proj, current = store.run_sync(run)
    _emit(proj, current, as_json)


_value = click.IntRange(min=-1, max=2**31 - 1)


@quotas.command("set")
@click.argument("project")
@click.option("--domain", default=None, help="The project's domain (needed when the name is not unique).")
@click.option("--instances", type=_value, default=None, help="Servers the project may have (-1: unlimited).")
@click.option("--cores", type=_value, default=None, help="vCPUs its servers may have (-1: unlimited).")
@click.option("--ram", type=_value, default=None, help="RAM in MB its servers may have (-1: unlimited).")
@click.option("--reset", is_flag=True, help="Restore the defaults (before applying any value given).")
@_json_flag
@_data_dir
@_db_url
def quotas_set(project, domain, instances, cores, ram, reset, as_json, data_dir, database_url) -> None:
    """Set PROJECT's quotas; a running server applies them at its next create."""
    from ecsd.domain import quotas as q

    given = {r: v for r, v in (("instances", instances), ("cores", cores), ("ram", ram)) if v is not None}
    if not given and not reset:
        raise click.UsageError("give --instances, --cores, --ram or --reset")
    values: dict[str, int | None] = dict.fromkeys(q.RESOURCES) if reset else {}
    values.update(given)
    with _admin_store(data_dir, database_url) as (_, store):
        def run(conn):
            proj = _project(conn, project, domain)
            try:
                return proj, q.set_quotas(conn, proj["id"], values)
            except (ValueError, LookupError) as exc:
                raise click.ClickException(str(exc)) from None

        proj, current = store.run_sync(run)
    _emit(proj, current, as_json)
