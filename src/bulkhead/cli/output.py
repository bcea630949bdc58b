"""Printing results: a table for people, JSON (`--json`, `-o json`) for machines.

Every command prints through `emit`, so every table follows one rule (see
`_layout`): identifiers are never cut; at the terminal's width lower-value
columns are dropped first and named under the table, and `-o wide` prints
every column whole. An object that does not fit in one row (or a list whose
identifiers alone are wider than the terminal) is printed as `field  value`
lines instead. A secret is never put in a table: `secret` prints it alone on
its own line. Text from the server is shown as text, never read as rich markup
or passed to the terminal as control characters.
"""

from __future__ import annotations

import enum
import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bulkhead.cli._layout import (
    GAP,
    Layout,
    Measured,
    Rank,
    measure,
    natural_fit,
    plan,
    rank_of,
    table_width,
)
from bulkhead.cli.flags import JsonFlag

__all__ = [
    "Column",
    "Format",
    "JsonFlag",
    "Output",
    "Rank",
    "console",
    "emit",
    "errors",
    "fail",
    "json_wanted",
    "safe",
    "secret",
]


class Format(enum.StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"


Output = Annotated[
    Format,
    typer.Option(
        "-o",
        "--output",
        case_sensitive=False,
        help="table (fits the terminal), wide (every column, whole) or json (same as --json).",
    ),
]
console = Console()
errors = Console(stderr=True, soft_wrap=True)


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: `key` in the data; `rank` overrides the one its name implies."""

    key: str
    rank: Rank | None = None


ColumnSpec = str | Column


def emit(
    data: Any,
    as_json: bool,
    columns: Sequence[ColumnSpec] | None = None,
    title: str = "",
    *,
    output: Format = Format.TABLE,
) -> None:
    """Print `data` (an object or a list of them) as JSON or as a table of `columns`."""
    if json_wanted(as_json, output):
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    rows: list[Mapping[str, Any]] = data if isinstance(data, list) else [data]
    specs = [c if isinstance(c, Column) else Column(c) for c in (columns or _keys(rows))]
    measured = [_measure(rows, spec) for spec in specs]
    if output is Format.WIDE:
        _print_table(rows, plan(measured, None), title, wide=True)
        return
    layout = plan(measured, _width())
    if not layout.fits or (isinstance(data, dict) and not natural_fit(measured, _width())):
        _print_records(rows, measured, title)  # an object, or identifiers too wide for a row
    else:
        _print_table(rows, layout, title, wide=False)


def json_wanted(json_: bool, output: Format) -> bool:
    """Whether `--json` or `-o json` asked for JSON."""
    return json_ or output is Format.JSON


def _keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(rows[0].keys()) if rows else []


def secret(label: str, value: str) -> None:
    """Print a secret alone on its own line, after its label, so it copies whole.

    Both come from the server: a control character or line break in either is shown
    as an escape, so the secret stays one line and cannot drive the terminal."""
    typer.echo(f"{safe(label)}:")
    typer.echo(safe(value))


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(Text.assemble(("error:", "red"), " ", safe(message)), highlight=False)
    return typer.Exit(code)


# Control characters (C0, DEL, C1) and the Unicode bidirectional controls: text a
# tenant sets (a key's name, say) must not move the cursor, retitle the window,
# write the clipboard or reorder what an operator reads.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_IN_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")  # keeps \t and \n


def safe(text: str, *, lines: bool = False) -> str:
    """`text` with its control characters shown as escapes (`\\x1b`, `\\u202e`); with
    `lines`, tabs and line breaks are kept (a file's text)."""
    unsafe = _UNSAFE_IN_TEXT if lines else _UNSAFE
    return unsafe.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{safe(str(k))}={cell(v)}" for k, v in value.items()) or "-"
    return safe(str(value))


def _items(values: Sequence[Any]) -> list[str]:
    """The entries of a column's list (and mapping) cells, each of which stays whole."""
    items = [v for value in values if isinstance(value, list | dict) for v in value]
    return [cell(v) for v in items]


def _measure(rows: Sequence[Mapping[str, Any]], spec: Column) -> Measured:
    values = [row.get(spec.key) for row in rows]
    rank = spec.rank if spec.rank is not None else rank_of(spec.key, values)
    return measure(spec.key, rank, [cell(v) for v in values], _items(values))


def _width() -> int:
    return console.width


def _print_table(
    rows: Sequence[Mapping[str, Any]], layout: Layout, title: str, *, wide: bool
) -> None:
    table = _table(rows, layout, title)
    if wide:
        # Every column whole: as wide as it needs, for the terminal to wrap if it must.
        Console(width=max(_width(), table_width(layout.widths))).print(table)
        return
    console.print(table)
    if layout.hidden:
        note = f"not shown at this width: {safe(', '.join(layout.hidden))} (-o wide shows them)"
        # Within the width too: a column name is never cut, the note breaks between words.
        for line in textwrap.wrap(note, width=max(_width(), 20), break_long_words=False):
            console.print(Text(line, style="dim"), soft_wrap=True)


def _table(rows: Sequence[Mapping[str, Any]], layout: Layout, title: str) -> Table:
    table = Table(
        title=Text(safe(title)) if title else None,
        box=None,
        padding=(0, GAP // 2),
        pad_edge=False,
        show_edge=False,
    )
    for column, width in zip(layout.shown, layout.widths, strict=True):
        header = Text(safe(column.name))  # a response's own field names, where none are given
        table.add_column(header, width=width, no_wrap=not column.wraps, overflow="fold")
    for row in rows:
        table.add_row(*[Text(cell(row.get(c.name))) for c in layout.shown])
    return table


def _print_records(
    rows: Sequence[Mapping[str, Any]], measured: Sequence[Measured], title: str
) -> None:
    """Each object as `field  value` lines, left to the terminal to wrap: nothing pads or
    breaks a value, so a long id still copies whole."""
    if title:
        typer.echo(safe(title))
    names = [safe(column.name) for column in measured]  # a response's own field names
    width = max((cell_len(name) for name in names), default=0)
    for i, row in enumerate(rows):
        if i:
            typer.echo("")
        for name, column in zip(names, measured, strict=True):
            typer.echo(f"{name:<{width}}  {cell(row.get(column.name))}")
