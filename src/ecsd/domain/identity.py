"""Domains, users, projects and tokens: the IAM side a caller needs before any ECS call.

Passwords are stored as scrypt hashes (domain/passwords.py; logins, with their throttles, in
domain/logins.py); tokens as the SHA-256 of their value. A validated token is
cached in memory for a few seconds so that the hot path does not hit the database per request;
revocation in another process therefore takes effect within the cache's ttl (``domain/cache.py``) seconds.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain.errors import EcsError
from ecsd.domain.passwords import hash_password, verify_password  # noqa: F401 - re-exported
from ecsd.store.schema import domains, memberships, projects, tokens, users


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Identity:
    """Who is calling, and in which project (a project-scoped token or an AK/SK's user)."""

    user_id: str
    user_name: str
    domain_id: str
    domain_name: str
    project_id: str
    project_name: str
    expires_at: float
    issued_at: float


# --- records ------------------------------------------------------------------------------------------

def create_domain(conn: Connection, name: str) -> str:
    domain_id = clock.new_hex_id()
    conn.execute(domains.insert().values(id=domain_id, name=name, created_at=clock.now()))
    return domain_id


def create_user(conn: Connection, domain_id: str, name: str, password: str | None,
                *, password_hash: str | None = None) -> str:
    """A new user; ``password_hash`` instead of ``password`` when it was hashed off the event loop."""
    user_id = clock.new_hex_id()
    conn.execute(users.insert().values(id=user_id, domain_id=domain_id, name=name,
                                       password_hash=password_hash or hash_password(password or ""),
                                       created_at=clock.now()))
    return user_id


def create_project(conn: Connection, domain_id: str, name: str, description: str = "") -> str:
    project_id = clock.new_hex_id()
    conn.execute(projects.insert().values(id=project_id, domain_id=domain_id, name=name,
                                          description=description, created_at=clock.now()))
    return project_id


def add_member(conn: Connection, user_id: str, project_id: str) -> None:
    conn.execute(memberships.insert().values(user_id=user_id, project_id=project_id))


# --- tokens ----------------------------------------------------------------------------------------------

_UNAUTHORIZED = "The request you have made requires authentication."


def _unauthorized(detail: str) -> EcsError:
    return EcsError("Common.0013", detail, status=401)


def issue_token_for(conn: Connection, user: dict, *, project_id: str | None, project_name: str | None,
                    project_domain_id: str | None, project_domain_name: str | None,
                    ttl: float) -> tuple[str, Identity]:
    """A project-scoped token for ``user`` (``logins.find_login_user``'s row), whose password was
    verified. Returns the token value and its identity; 401 when the user may not use the project."""
    pq = select(projects.c.id, projects.c.name, projects.c.enabled).join(
        memberships, and_(memberships.c.project_id == projects.c.id, memberships.c.user_id == user["id"]))
    if project_id:
        pq = pq.where(projects.c.id == project_id)
    else:
        pdomain = project_domain_id or user["did"]
        if project_domain_name and not project_domain_id:
            pdomain = conn.execute(select(domains.c.id).where(domains.c.name == project_domain_name)).scalar()
        pq = pq.where(and_(projects.c.name == project_name, projects.c.domain_id == pdomain))
    project = conn.execute(pq).first()
    if project is None or not project.enabled:
        raise _unauthorized("The user has no access to the requested project.")

    value = "ecsd_" + secrets.token_urlsafe(48)
    issued = clock.now()
    conn.execute(tokens.insert().values(token_hash=token_hash(value), user_id=user["id"], project_id=project.id,
                                        issued_at=issued, expires_at=issued + ttl))
    return value, Identity(user["id"], user["name"], user["did"], user["dname"], project.id, project.name,
                           issued + ttl, issued)


def lookup_token(conn: Connection, value: str) -> Identity | None:
    row = conn.execute(
        select(tokens.c.user_id, tokens.c.project_id, tokens.c.expires_at, tokens.c.issued_at,
               tokens.c.revoked, users.c.name.label("uname"), users.c.enabled.label("uenabled"),
               domains.c.id.label("did"), domains.c.name.label("dname"), projects.c.name.label("pname"))
        .join(users, users.c.id == tokens.c.user_id)
        .join(domains, domains.c.id == users.c.domain_id)
        .join(projects, projects.c.id == tokens.c.project_id)
        .where(tokens.c.token_hash == token_hash(value))
    ).first()
    if row is None or row.revoked or not row.uenabled or row.expires_at <= clock.now():
        return None
    return Identity(row.user_id, row.uname, row.did, row.dname, row.project_id, row.pname,
                    row.expires_at, row.issued_at)


def revoke_token(conn: Connection, value: str) -> bool:
    res = conn.execute(tokens.update().where(tokens.c.token_hash == token_hash(value)).values(revoked=True))
    return res.rowcount > 0



def user_projects(conn: Connection, user_id: str) -> list[dict]:
    rows = conn.execute(
        select(projects).join(memberships, memberships.c.project_id == projects.c.id)
        .where(memberships.c.user_id == user_id).order_by(projects.c.name)
    ).all()
    return [dict(r._mapping) for r in rows]


def user_in_domain(conn: Connection, user_id: str, domain_id: str) -> bool:
    return conn.execute(select(users.c.id).where(and_(users.c.id == user_id, users.c.domain_id == domain_id))
                        ).first() is not None


# --- AK/SK callers ---------------------------------------------------------------------------------------

# An AK/SK identity is rebuilt from the key for every request (then cached for a few seconds); its
# "expiry" only bounds how long a cache may keep it.
SIGNED_IDENTITY_TTL = 3600.0


def scoped_identity(conn: Connection, user_id: str, project_id: str) -> Identity | None:
    """``user_id`` acting in ``project_id``, if the user is an enabled member of that enabled project."""
    row = conn.execute(
        select(users.c.name.label("uname"), users.c.enabled.label("uenabled"), domains.c.id.label("did"),
               domains.c.name.label("dname"), domains.c.enabled.label("denabled"),
               projects.c.name.label("pname"), projects.c.enabled.label("penabled"))
        .join(domains, domains.c.id == users.c.domain_id)
        .join(memberships, memberships.c.user_id == users.c.id)
        .join(projects, projects.c.id == memberships.c.project_id)
        .where(and_(users.c.id == user_id, projects.c.id == project_id))
    ).first()
    if row is None or not (row.uenabled and row.denabled and row.penabled):
        return None
    now = clock.now()
    return Identity(user_id, row.uname, row.did, row.dname, project_id, row.pname,
                    now + SIGNED_IDENTITY_TTL, now)


# --- administration (the ``ecsd`` command) ------------------------------------------------------------------

def find_domain(conn: Connection, name_or_id: str) -> dict | None:
    row = conn.execute(select(domains).where(domains.c.name == name_or_id)).first() or conn.execute(
        select(domains).where(domains.c.id == name_or_id)).first()
    return dict(row._mapping) if row else None


def ensure_domain(conn: Connection, name: str) -> tuple[str, bool]:
    """The id of domain ``name`` (or id), creating it if needed. Returns ``(id, created)``."""
    found = find_domain(conn, name)
    if found is not None:
        return found["id"], False
    return create_domain(conn, name), True


def find_user(conn: Connection, domain_id: str, name_or_id: str) -> dict | None:
    cols = select(users.c.id, users.c.name, users.c.domain_id, users.c.enabled, users.c.created_at)
    for cond in (users.c.name == name_or_id, users.c.id == name_or_id):
        row = conn.execute(cols.where(and_(users.c.domain_id == domain_id, cond))).first()
        if row is not None:
            return dict(row._mapping)
    return None


def find_project(conn: Connection, domain_id: str, name_or_id: str) -> dict | None:
    for cond in (projects.c.name == name_or_id, projects.c.id == name_or_id):
        row = conn.execute(select(projects).where(and_(projects.c.domain_id == domain_id, cond))).first()
        if row is not None:
            return dict(row._mapping)
    return None


def is_member(conn: Connection, user_id: str, project_id: str) -> bool:
    return conn.execute(select(memberships.c.user_id).where(and_(
        memberships.c.user_id == user_id, memberships.c.project_id == project_id))).first() is not None


def list_users(conn: Connection, domain_id: str | None = None) -> list[dict]:
    """Users with their domain and the names of their projects, ordered by domain and name."""
    q = (select(users.c.id, users.c.name, users.c.enabled, users.c.created_at, users.c.locked_until,
                users.c.failed_logins, domains.c.id.label("domain_id"), domains.c.name.label("domain_name"))
         .join(domains, domains.c.id == users.c.domain_id).order_by(domains.c.name, users.c.name))
    if domain_id is not None:
        q = q.where(users.c.domain_id == domain_id)
    rows = [dict(r._mapping) for r in conn.execute(q).all()]
    member_of: dict[str, list[str]] = {}
    for m in conn.execute(select(memberships.c.user_id, projects.c.name).join(
            projects, projects.c.id == memberships.c.project_id).order_by(projects.c.name)).all():
        member_of.setdefault(m.user_id, []).append(m.name)
    for r in rows:
        r["projects"] = member_of.get(r["id"], [])
    return rows


def list_projects(conn: Connection, domain_id: str | None = None) -> list[dict]:
    q = (select(projects.c.id, projects.c.name, projects.c.description, projects.c.enabled,
                domains.c.name.label("domain_name"))
         .join(domains, domains.c.id == projects.c.domain_id).order_by(domains.c.name, projects.c.name))
    if domain_id is not None:
        q = q.where(projects.c.domain_id == domain_id)
    return [dict(r._mapping) for r in conn.execute(q).all()]


def find_users(conn: Connection, name_or_id: str) -> list[dict]:
    """Users in any domain whose id or name is ``name_or_id`` (an id match comes alone)."""
    cols = select(users.c.id, users.c.name, users.c.domain_id)
    by_id = conn.execute(cols.where(users.c.id == name_or_id)).all()
    if by_id:
        return [dict(r._mapping) for r in by_id]
    return [dict(r._mapping) for r in conn.execute(cols.where(users.c.name == name_or_id)).all()]
