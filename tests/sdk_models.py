"""Check a response of an official Huawei Cloud SDK client against the SDK's own model declarations.

The SDK's deserialiser is lenient: it converts every value with the constructor of the declared
Python type (``str(5)`` gives ``"5"``, ``bool("false")`` gives ``True``, a dict sent for a ``str``
field becomes its repr) and says nothing about fields the server left out. Looking at the
deserialised object alone therefore cannot reveal a wrong type. :func:`check_response` walks the
deserialised model *and* the raw JSON the server sent side by side, guided by each model class's
``openapi_types`` (attribute -> declared type) and ``attribute_map`` (attribute -> JSON key), and
returns one line per problem (an empty list when all is well):

* ``missing``: a declared field that is absent from the JSON, ``null``, or ``None`` on the model,
  unless the caller lists it as optional for that model class;
* ``type``: a JSON value whose type is not the declared one. ``str`` must be a JSON string,
  ``int``/``long`` an integer (not a boolean), ``float`` a number, ``bool`` a boolean,
  ``datetime``/``date`` an ISO 8601 string, ``list[X]`` an array of X, ``dict(str, X)`` an object of X,
  and a model name an object checked the same way, recursively. ``object`` takes anything.

``optional`` maps a model class name (``"ImageInfo"``, ``"PageInfo"``, ...) to the fields that may
be missing or null there, named by attribute or by JSON key; ``"*"`` makes every field of that
class optional. Present values of optional fields are still type-checked. At the top level of a
response, declared header fields (JSON keys starting with ``X-``) are skipped when the body has
no such key.

Usage::

    resp = ims.list_images(ListImagesRequest(limit=10))
    assert check_response(resp, optional={"PageInfo": {"next_marker"}}) == []

Make the SDK's own conversion warnings errors too (``filterwarnings("error::huaweicloudsdkcore.
warning.warning.TypeConversionWarning")``): this module only reads what the deserialiser produced.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

_MISSING = object()
_LIST = re.compile(r"^list\[(.*)\]$")
_DICT = re.compile(r"^dict\(([^,]*), (.*)\)$")

Optional = Mapping[str, Iterable[str]]


def check_response(response: Any, *, optional: Optional | None = None) -> list[str]:
    """Problems of an SDK response object (its ``raw_content`` is the JSON the server sent)."""
    raw = json.loads(response.raw_content) if response.raw_content else {}
    return check_model(response, raw, optional=optional, top=True, path=type(response).__name__)


def check_model(model: Any, raw: Any, *, optional: Optional | None = None, top: bool = False,
                path: str = "") -> list[str]:
    """Problems of one SDK model object against the raw JSON value it was made from."""
    optional = optional or {}
    cls = type(model)
    path = path or cls.__name__
    if not isinstance(raw, dict):
        return [f"type: {path} should be a JSON object ({cls.__name__}), got {_kind(raw)}"]
    allowed = set(optional.get(cls.__name__, ()))
    problems: list[str] = []
    for attr, declared in cls.openapi_types.items():
        key = cls.attribute_map[attr]
        where = f"{path}.{key}"
        value = raw if key == "body" else raw.get(key, _MISSING)
        if top and value is _MISSING and key.lower().startswith("x-"):
            continue                                     # a response header, not a body field
        if value is _MISSING or value is None or getattr(model, attr, None) is None:
            if "*" not in allowed and attr not in allowed and key not in allowed:
                state = "absent" if value is _MISSING else "null" if value is None else "None on the model"
                problems.append(f"missing: {where} ({declared}) is {state}")
            if value is _MISSING or value is None:
                continue
        problems.extend(_check_value(getattr(model, attr, None), value, declared, where, cls, optional))
    return problems


def _check_value(obj: Any, raw: Any, declared: str, where: str, owner: type, optional: Optional) -> list[str]:
    m = _LIST.match(declared)
    if m:
        if not isinstance(raw, list):
            return [f"type: {where} should be {declared}, got {_kind(raw)}"]
        items = obj if isinstance(obj, list) and len(obj) == len(raw) else [None] * len(raw)
        out: list[str] = []
        for i, (o, r) in enumerate(zip(items, raw, strict=True)):
            out.extend(_check_value(o, r, m.group(1), f"{where}[{i}]", owner, optional))
        return out
    m = _DICT.match(declared)
    if m:
        if not isinstance(raw, dict):
            return [f"type: {where} should be {declared}, got {_kind(raw)}"]
        objs = obj if isinstance(obj, dict) else {}
        out = []
        for k, r in raw.items():
            out.extend(_check_value(objs.get(k), r, m.group(2), f"{where}[{k!r}]", owner, optional))
        return out
    if declared in ("str",):
        ok = isinstance(raw, str)
    elif declared in ("int", "long"):
        ok = isinstance(raw, int) and not isinstance(raw, bool)
    elif declared == "float":
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
    elif declared == "bool":
        ok = isinstance(raw, bool)
    elif declared in ("datetime", "date"):
        ok = isinstance(raw, str) and _is_iso(raw)
    elif declared == "object":
        ok = True
    elif declared == "dict":
        ok = isinstance(raw, dict)
    elif declared == "list":
        ok = isinstance(raw, list)
    else:                                                # a model class of the same SDK package
        klass = getattr(importlib.import_module(owner.__module__.rsplit(".", 1)[0]), declared)
        if obj is None or not isinstance(obj, klass):
            return [f"type: {where} was not deserialised into {declared}"]
        return check_model(obj, raw, optional=optional, path=where)
    return [] if ok else [f"type: {where} should be {declared}, got {_kind(raw)} {raw!r:.60}"]


def _is_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _kind(raw: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(raw), type(raw).__name__)
