"""Which columns a table shows at a terminal's width, and how wide each one is.

Pure arithmetic on the cells' text, kept apart from rich so that it can be
read and tested on its own. The rule is the one a person copying an id out
of an 80-column terminal needs: an identifier (an id, a name, a secret) is
printed whole on one line or the table is changed around it. Lower-value
columns go first (`Rank.DETAIL`: timestamps, yes/no flags, long notes), then
the others wrap (between words, never inside one), then they go too. When the
identifiers alone are wider than the terminal, `Layout.fits` says so and the
caller prints one `field  value` line each instead. Nothing is cut with "…".
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len

# Columns are set apart by two spaces, with no rules or edges (like `kubectl get`):
# every column of an 80-column terminal goes to text, and a line copies clean.
GAP = 2
# The narrowest a column that may wrap is made, unless its text is narrower.
# (It wraps between words, so it is never narrower than its longest word.)
MIN_WRAP = 10


class Rank(enum.IntEnum):
    """How much a column matters when the terminal is narrow (lower matters more)."""

    KEY = 0  # an id, a name, a secret: printed whole, never dropped
    MAIN = 1  # kept while there is room; wraps when narrow
    DETAIL = 2  # timestamps, flags, long notes: the first to go


# Column names that identify something a person copies into the next command.
_KEY_NAMES = frozenset(
    {
        "id",
        "name",
        "secret",
        "key",
        "tenant",
        "principal",
        "owner",
        "model",
        "email",
        "uuid",
        "spiffe_id",
        "credential",
        "deployment",
        "target",
        "setting",
        "limit",
        "origin",
    }
)
_DETAIL_NAMES = frozenset({"description", "reason", "note", "notes"})


def rank_of(name: str, values: Sequence[object]) -> Rank:
    """A column's rank from its name, and from its values for yes/no columns."""
    if name in _KEY_NAMES or name.endswith("_id"):
        return Rank.KEY
    if name in _DETAIL_NAMES or name.endswith("_at"):
        return Rank.DETAIL
    shown = [v for v in values if v is not None]
    if shown and all(isinstance(v, bool) for v in shown):
        return Rank.DETAIL
    return Rank.MAIN


@dataclass(frozen=True, slots=True)
class Measured:
    """A column's needs: `natural` fits every cell on one line; `least` is the narrowest
    it may get without cutting anything that must stay whole."""

    name: str
    rank: Rank
    natural: int
    least: int
    wraps: bool  # False: every cell stays on one line (a scalar identifier)


def measure(name: str, rank: Rank, cells: Sequence[str], items: Sequence[str]) -> Measured:
    """`items` are the entries of list cells: each stays whole, as each word of the others
    does, so a column wraps between them and never inside one."""
    natural = max([cell_len(name), *(cell_len(c) for c in cells)])
    if rank is Rank.KEY and not items:
        return Measured(name, rank, natural, natural, wraps=False)
    words = items or [word for c in cells for word in c.split()]
    whole = max([0, *(cell_len(w) for w in words)])
    return Measured(name, rank, natural, max(whole, min(natural, MIN_WRAP)), wraps=True)


@dataclass(frozen=True, slots=True)
class Layout:
    shown: tuple[Measured, ...]
    widths: tuple[int, ...]
    hidden: tuple[str, ...]
    fits: bool  # False: the identifiers alone are wider than the terminal


def table_width(widths: Sequence[int]) -> int:
    return sum(widths) + GAP * max(len(widths) - 1, 0)


def natural_fit(columns: Sequence[Measured], width: int) -> bool:
    return table_width([c.natural for c in columns]) <= width


def plan(columns: Sequence[Measured], width: int | None) -> Layout:
    """The columns shown and their widths; `width=None` shows every column whole (-o wide)."""
    if width is None:
        return Layout(tuple(columns), tuple(c.natural for c in columns), (), fits=True)
    shown = list(columns)
    # Lower-value columns go while the rest cannot be shown whole.
    while not natural_fit(shown, width) and _drop(shown, Rank.DETAIL):
        pass
    # Then the others may wrap, and go (rightmost first) when even that is too wide.
    while table_width([c.least for c in shown]) > width and _drop(shown, Rank.MAIN):
        pass
    kept = {c.name for c in shown}
    hidden = tuple(c.name for c in columns if c.name not in kept)
    budget = width - table_width([0] * len(shown))
    fits = sum(c.least for c in shown) <= budget
    return Layout(tuple(shown), tuple(share(shown, budget)), hidden, fits)


def _drop(shown: list[Measured], rank: Rank) -> bool:
    """Remove the rightmost column of `rank` or lower value; False when there is none."""
    for i in range(len(shown) - 1, -1, -1):
        if shown[i].rank >= rank:
            del shown[i]
            return True
    return False


def share(columns: Sequence[Measured], budget: int) -> list[int]:
    """Natural widths, narrowing the widest columns (never below `least`) until they fit."""
    widths = [c.natural for c in columns]
    excess = sum(widths) - budget
    while excess > 0:
        room = [(w, i) for i, w in enumerate(widths) if w > columns[i].least]
        if not room:
            break
        _, widest = max(room)
        widths[widest] -= 1
        excess -= 1
    return widths
