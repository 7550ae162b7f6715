"""``ecsd users``, ``ecsd projects`` and ``ecsd keys``: IAM administration on the database."""

from __future__ import annotations

import click

from ecsd.cli.base import (
    _admin_store,
    _data_dir,
    _db_url,
    _domain_id,
    _emit_json,
    _json_flag,
    _read_password,
    _table,
    _user,
    _when,
    main,
)


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
    from ecsd.domain import clock

    now = clock.now()

    def locked(r) -> str | None:
        return _when(r["locked_until"]) if r["locked_until"] is not None and r["locked_until"] > now else None

    if as_json:
        _emit_json([{"id": r["id"], "name": r["name"], "domain_id": r["domain_id"],
                     "domain_name": r["domain_name"], "enabled": bool(r["enabled"]),
                     "created_at": _when(r["created_at"]), "projects": r["projects"],
                     "locked_until": locked(r), "failed_logins": r["failed_logins"]} for r in rows])
        return
    _table(["DOMAIN", "USER", "ID", "ENABLED", "LOCKED UNTIL", "PROJECTS"],
           [[r["domain_name"], r["name"], r["id"], "yes" if r["enabled"] else "no", locked(r) or "-",
             ",".join(r["projects"]) or "-"] for r in rows])


@users.command("unlock")
@click.argument("user")
@click.option("--domain", default=None, help="The user's domain (needed when the name is not unique).")
@_data_dir
@_db_url
def users_unlock(user, domain, data_dir, database_url) -> None:
    """End USER's failed-login lock and forget its failed logins (a running server sees it at once)."""
    from ecsd.domain import logins

    with _admin_store(data_dir, database_url) as (_, store):
        def run(conn):
            member = _user(conn, user, domain)
            return member, logins.unlock(conn, member["id"])

        member, was_locked = store.run_sync(run)
    if was_locked:
        click.echo(f"Unlocked user {member['name']} ({member['id']}).")
    else:
        click.echo(f"User {member['name']} ({member['id']}) was not locked; its failed logins are forgotten.")


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
