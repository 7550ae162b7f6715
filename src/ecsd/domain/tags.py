"""Server tags: the v1 API's key/value pairs and Nova's one-string tags, kept in one table.

    POST   /v1/{project_id}/cloudservers/{server_id}/tags/action   action create | delete
           (adding_tags_to_an_ecs_in_a_batch.rst, deleting_tags_from_an_ecs_in_a_batch.rst)
    GET    /v1/{project_id}/cloudservers/{server_id}/tags          (querying_tags_of_an_ecs.rst)
    GET    /v1/{project_id}/cloudservers/tags                      (querying_project_tags.rst)
    POST   /v1/{project_id}/cloudservers/resource_instances/action (querying_ecss_by_tag.rst)
    /v2.1/{project_id}/servers/{server_id}/tags[/{tag}]            (native_openstack_nova_apis/tag_management)

A Nova tag is stored as a key with an empty value (native tag_types.rst: "all characters in tags are
used as a key, and the value is empty"); both APIs show a tag as ``key=value``, or ``key`` alone when
the value is empty (the SDK's NovaServer.tags). The rules, each with its code:

* v1 create: at most 10 tags per server after the change, Ecs.0905; a key of 1-36 characters and a
  value of at most 43, else Ecs.0906; keys of ``A-Z a-z 0-9 _ -``, values also ``.``, else Ecs.0907
  (creating_an_ecs.rst, ``tags``); one key twice in a request, Ecs.0908. A key that exists gets the
  new value.
* v1 delete: a key of 1-127 characters, a value of at most 255 (the discarded page), else Ecs.0906;
  no value (or an empty one) deletes the key whatever its value, a value deletes the pair only if it
  matches. Deleting what is not there succeeds.
* Nova: a tag of 1-80 characters (Ecs.0906) without ``,`` or ``/`` (Ecs.0907: the list filters split on
  commas, a path segment cannot hold a slash), at most 50 per server (Ecs.0905).
* A change needs a live server of the project (404 Ecs.0114) that is not locked (Ecs.0605), ACTIVE or
  SHUTOFF with no operation in progress (Ecs.0100), as metadata (domain/metadata.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, false, func, not_, or_, select
from sqlalchemy.engine import Connection

from ecsd.domain import clock
from ecsd.domain import servers as srv
from ecsd.domain.errors import EcsError, invalid
from ecsd.store.schema import server_tags, servers

MAX_V1_TAGS = 10
MAX_V1_KEY, MAX_V1_VALUE = 36, 43
MAX_DELETE_KEY, MAX_DELETE_VALUE = 127, 255
MAX_NOVA_TAGS, MAX_NOVA_TAG = 50, 80
MAX_FILTER_TAGS = 50          # terms of one list filter (tags, not-tags, ...): bounds the SQL
_V1_KEY = re.compile(r"[A-Za-z0-9_-]+")
_V1_VALUE = re.compile(r"[A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True)
class Tag:
    key: str
    value: str = ""

    def shown(self) -> str:
        """``key=value``, or ``key`` when the value is empty: a tag as a server view and Nova show it."""
        return self.key if self.value == "" else f"{self.key}={self.value}"


# --- validation --------------------------------------------------------------------------------------

def _unique_keys(tags: Sequence[Tag]) -> None:
    seen: set[str] = set()
    for t in tags:
        if t.key in seen:
            raise EcsError("Ecs.0908", f"tag key {t.key} is given twice")
        seen.add(t.key)


def check_v1_create(tags: Sequence[Tag]) -> Sequence[Tag]:
    """Tags to add through the v1 API; else Ecs.0905 / 0906 / 0907 / 0908."""
    if len(tags) > MAX_V1_TAGS:
        raise EcsError("Ecs.0905", f"a server has at most {MAX_V1_TAGS} tags")
    for t in tags:
        if not 1 <= len(t.key) <= MAX_V1_KEY:
            raise EcsError("Ecs.0906", f"a tag key has 1 to {MAX_V1_KEY} characters: {t.key!r}")
        if len(t.value) > MAX_V1_VALUE:
            raise EcsError("Ecs.0906", f"a tag value has at most {MAX_V1_VALUE} characters (key {t.key})")
        if not _V1_KEY.fullmatch(t.key):
            raise EcsError("Ecs.0907", f"tag key {t.key!r} may hold only A-Z, a-z, 0-9, '_' and '-'")
        if not _V1_VALUE.fullmatch(t.value):
            raise EcsError("Ecs.0907", f"the value of tag {t.key} may hold only A-Z, a-z, 0-9, '_', '-' and '.'")
    _unique_keys(tags)
    return tags


def check_v1_delete(pairs: Sequence[tuple[str, str | None]]) -> Sequence[tuple[str, str | None]]:
    """(key, value or None) pairs to delete through the v1 API; else Ecs.0906 / 0908."""
    for key, value in pairs:
        if not 1 <= len(key) <= MAX_DELETE_KEY:
            raise EcsError("Ecs.0906", f"a tag key has 1 to {MAX_DELETE_KEY} characters: {key!r}")
        if value is not None and len(value) > MAX_DELETE_VALUE:
            raise EcsError("Ecs.0906", f"a tag value has at most {MAX_DELETE_VALUE} characters (key {key})")
    _unique_keys([Tag(k) for k, _ in pairs])
    return pairs


def check_nova_tag(tag: str) -> str:
    """One Nova tag; else Ecs.0906 (length) / Ecs.0907 (',' or '/')."""
    if not 1 <= len(tag) <= MAX_NOVA_TAG:
        raise EcsError("Ecs.0906", f"a tag has 1 to {MAX_NOVA_TAG} characters: {tag!r}")
    if "," in tag or "/" in tag:
        raise EcsError("Ecs.0907", f"a tag may not contain ',' or '/': {tag!r}")
    return tag


def check_nova_tags(tags: Sequence[str]) -> Sequence[str]:
    if len(tags) > MAX_NOVA_TAGS:
        raise EcsError("Ecs.0905", f"a server has at most {MAX_NOVA_TAGS} tags")
    for tag in tags:
        check_nova_tag(tag)
    if len(set(tags)) != len(tags):
        raise EcsError("Ecs.0908", "a tag is given twice")
    return tags


# --- reads -------------------------------------------------------------------------------------------

_OF_SERVERS = select(server_tags.c.server_id, server_tags.c.key, server_tags.c.value)


def tags_of(conn: Connection, server_ids: Iterable[str]) -> dict[str, list[Tag]]:
    """server id -> its tags by key in code point order (sorted here: the databases' collations differ),
    in one query; a server without tags is absent."""
    ids = list(server_ids)
    out: dict[str, list[Tag]] = {}
    if not ids:
        return out
    for sid, key, value in conn.execute(_OF_SERVERS.where(server_tags.c.server_id.in_(ids))):
        out.setdefault(sid, []).append(Tag(key, value))
    for found in out.values():
        found.sort(key=lambda t: t.key)
    return out


def show_server_tags(conn: Connection, project_id: str, server_id: str) -> list[Tag]:
    """The tags of a live server of the project (else 404 Ecs.0114)."""
    srv.load(conn, project_id, server_id)
    return tags_of(conn, [server_id]).get(server_id, [])


def list_project_tags(conn: Connection, project_id: str) -> list[tuple[str, list[str]]]:
    """(key, its values) over the project's live servers, keys and values sorted."""
    rows = conn.execute(select(server_tags.c.key, server_tags.c.value).distinct()
                        .select_from(server_tags.join(servers, servers.c.id == server_tags.c.server_id))
                        .where(and_(servers.c.project_id == project_id, servers.c.deleted.is_(False))))
    out: dict[str, list[str]] = {}
    for key, value in sorted(rows):
        out.setdefault(key, []).append(value)
    return list(out.items())


# --- conditions on servers ---------------------------------------------------------------------------

def _has(*terms) -> object:
    return exists().where(and_(server_tags.c.server_id == servers.c.id, *terms))


def _shown_is(text: str):
    """A tag shown as ``text``: the key alone with an empty value, or key=value split at the first '='."""
    whole = and_(server_tags.c.key == text, server_tags.c.value == "")
    key, eq, value = text.partition("=")
    if not eq:
        return whole
    return or_(whole, and_(server_tags.c.key == key, server_tags.c.value == value))


def filter_terms(raw: str | None) -> list[str]:
    """The tags of a list filter (comma-separated, empty terms dropped); more than MAX_FILTER_TAGS is Ecs.0005."""
    terms = [t for t in (raw or "").split(",") if t]
    if len(terms) > MAX_FILTER_TAGS:
        raise invalid(f"a tag filter names at most {MAX_FILTER_TAGS} tags")
    return terms


def list_conditions(tags: str | None, tags_any: str | None, not_tags: str | None,
                    not_tags_any: str | None) -> list:
    """WHERE terms on ``servers`` for the list filters, with Nova's meaning: ``tags`` all of them,
    ``tags-any`` at least one, ``not-tags`` not all of them, ``not-tags-any`` none of them."""
    cond = []
    if all_of := filter_terms(tags):
        cond.extend(_has(_shown_is(t)) for t in all_of)
    if any_of := filter_terms(tags_any):
        cond.append(or_(*(_has(_shown_is(t)) for t in any_of)))
    if not_all := filter_terms(not_tags):
        cond.append(not_(and_(*(_has(_shown_is(t)) for t in not_all))))
    if none_of := filter_terms(not_tags_any):
        cond.append(not_(or_(*(_has(_shown_is(t)) for t in none_of))))
    return cond


# --- querying servers by tag (v1) ----------------------------------------------------------------------

@dataclass(frozen=True)
class TagQuery:
    """A ``resource_instances/action`` request: each ``tags`` entry is (key, values; empty = any value)."""

    count_only: bool
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    tags_any: tuple[tuple[str, tuple[str, ...]], ...] = ()
    not_tags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    not_tags_any: tuple[tuple[str, tuple[str, ...]], ...] = ()
    name: str | None = None          # matches resource_name: a case-insensitive part of the name
    limit: int = 1000
    offset: int = 0


def _entry(key: str, values: tuple[str, ...]):
    return _has(server_tags.c.key == key, *((server_tags.c.value.in_(values),) if values else ()))


def _escape(fragment: str) -> str:
    return fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _query_conditions(project_id: str, q: TagQuery) -> list:
    cond = [servers.c.project_id == project_id, servers.c.deleted.is_(False)]
    cond.extend(_entry(k, v) for k, v in q.tags)
    if q.tags_any:
        cond.append(or_(*(_entry(k, v) for k, v in q.tags_any)))
    # not_tags: "Displays the ECSs with none of specified tags" (the reference), as not_tags_any
    if q.not_tags or q.not_tags_any:
        cond.append(not_(or_(false(), *(_entry(k, v) for k, v in (*q.not_tags, *q.not_tags_any)))))
    if q.name:
        cond.append(servers.c.name.ilike(f"%{_escape(q.name)}%", escape="\\"))
    return cond


def list_servers_by_tag(conn: Connection, project_id: str, q: TagQuery
                        ) -> tuple[int, list[tuple[str, str, list[Tag]]]]:
    """(how many servers match, the page of them newest first as (id, name, tags)); the page is empty
    for a count."""
    where = and_(*_query_conditions(project_id, q))
    total = conn.execute(select(func.count()).select_from(servers).where(where)).scalar_one()
    if q.count_only or q.limit == 0:
        return total, []
    sid = servers.c.id.collate("C") if conn.dialect.name == "postgresql" else servers.c.id
    rows = conn.execute(select(servers.c.id, servers.c.name).where(where)
                        .order_by(servers.c.created_at.desc(), sid.desc()).limit(q.limit).offset(q.offset)).all()
    tags = tags_of(conn, [r.id for r in rows])
    return total, [(r.id, r.name, tags.get(r.id, [])) for r in rows]


# --- changes -----------------------------------------------------------------------------------------

def forget_server(conn: Connection, server_id: str) -> None:
    """A deleted server's tags go with it (batch.purge_record, in the delete's last step)."""
    conn.execute(server_tags.delete().where(server_tags.c.server_id == server_id))


def _changeable(conn: Connection, project_id: str, server_id: str) -> None:
    """The server may have its tags changed (row-locked on PostgreSQL, so that two changes see each
    other's count): Ecs.0114 / Ecs.0605 / Ecs.0100 as servers.lock_for_change says."""
    srv.lock_for_change(conn, project_id, server_id, "tags")


def _current(conn: Connection, server_id: str) -> list[Tag]:
    return tags_of(conn, [server_id]).get(server_id, [])


def _put(conn: Connection, server_id: str, tags: Sequence[Tag]) -> None:
    """Set these tags (a key that exists takes the new value)."""
    if not tags:
        return
    conn.execute(server_tags.delete().where(and_(server_tags.c.server_id == server_id,
                                                 server_tags.c.key.in_([t.key for t in tags]))))
    now = clock.now()
    conn.execute(server_tags.insert(), [{"server_id": server_id, "key": t.key, "value": t.value, "created_at": now}
                                        for t in tags])


def batch_create_server_tags(conn: Connection, project_id: str, server_id: str, tags: Sequence[Tag]) -> None:
    """Add or update v1 tags (validated by :func:`check_v1_create`); more than 10 in all is Ecs.0905."""
    _changeable(conn, project_id, server_id)
    keys = {t.key for t in _current(conn, server_id)} | {t.key for t in tags}
    if len(keys) > MAX_V1_TAGS:
        raise EcsError("Ecs.0905", f"server {server_id} would have {len(keys)} tags; at most {MAX_V1_TAGS}")
    _put(conn, server_id, tags)


def batch_delete_server_tags(conn: Connection, project_id: str, server_id: str,
                             pairs: Sequence[tuple[str, str | None]]) -> None:
    """Delete v1 tags: by key when the value is None or empty, else only the matching pair."""
    _changeable(conn, project_id, server_id)
    terms = [server_tags.c.key == k if not v else and_(server_tags.c.key == k, server_tags.c.value == v)
             for k, v in pairs]
    if terms:
        conn.execute(server_tags.delete().where(and_(server_tags.c.server_id == server_id, or_(*terms))))


def nova_tags(conn: Connection, project_id: str, server_id: str) -> list[str]:
    return [t.shown() for t in show_server_tags(conn, project_id, server_id)]


def replace_nova_tags(conn: Connection, project_id: str, server_id: str, tags: Sequence[str]) -> list[str]:
    """The server's tags become exactly these (validated by :func:`check_nova_tags`)."""
    _changeable(conn, project_id, server_id)
    conn.execute(server_tags.delete().where(server_tags.c.server_id == server_id))
    _put(conn, server_id, [Tag(t) for t in tags])
    return [t.shown() for t in _current(conn, server_id)]


def add_nova_tag(conn: Connection, project_id: str, server_id: str, tag: str) -> bool:
    """Add one tag; False if the server already shows it. The 51st is Ecs.0905."""
    _changeable(conn, project_id, server_id)
    current = _current(conn, server_id)
    if any(t.shown() == tag for t in current):
        return False
    if len({t.key for t in current} | {tag}) > MAX_NOVA_TAGS:
        raise EcsError("Ecs.0905", f"server {server_id} has {len(current)} tags; at most {MAX_NOVA_TAGS}")
    _put(conn, server_id, [Tag(tag)])
    return True


def _missing(server_id: str, tag: str) -> EcsError:
    return EcsError("Common.0404", f"server {server_id} has no tag {tag}")


def check_nova_tag_exists(conn: Connection, project_id: str, server_id: str, tag: str) -> None:
    """None if the server shows this tag, else 404 Common.0404."""
    if tag not in nova_tags(conn, project_id, server_id):
        raise _missing(server_id, tag)


def delete_nova_tags(conn: Connection, project_id: str, server_id: str) -> None:
    _changeable(conn, project_id, server_id)
    conn.execute(server_tags.delete().where(server_tags.c.server_id == server_id))


def delete_nova_tag(conn: Connection, project_id: str, server_id: str, tag: str) -> None:
    """Delete the tag the server shows as ``tag``; 404 Common.0404 if it shows none."""
    _changeable(conn, project_id, server_id)
    deleted = conn.execute(server_tags.delete().where(and_(server_tags.c.server_id == server_id,
                                                           _shown_is(tag)))).rowcount
    if not deleted:
        raise _missing(server_id, tag)
