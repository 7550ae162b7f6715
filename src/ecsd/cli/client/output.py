"""Printing on stdout: JSON for scripts, aligned plain-text tables and field lists for people.

Tables are plain text (bold headers on a terminal only): ids are never cut, whatever the width, so
that a table can be read by ``awk`` as well.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import click


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "(none)") -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    click.echo(click.style(line(headers), bold=True))
    for row in cells:
        click.echo(line(row))
    if not cells:
        click.echo(empty)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """``name: value`` lines, the names aligned."""
    items = [(k, _cell(v)) for k, v in pairs]
    pad = max((len(k) for k, _ in items), default=0) + 1
    for key, value in items:
        click.echo(f"{click.style((key + ':').ljust(pad), bold=True)} {value}")
