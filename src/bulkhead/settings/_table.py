"""The settings table's rows: a `Settings` field with its variable, default, range and help."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bulkhead.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Source:
    """What `load` reads from: the environment, the command line's values by field
    name, and the settings read so far (the table is in dependency order)."""

    env: Mapping[str, str]
    given: Mapping[str, Any]
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the table: a `Settings` field and where its value comes from."""

    name: str
    env: str | None  # None: fixed, not configurable
    help: str
    default: Any = None
    lo: int | None = None
    hi: int | None = None
    flag: str | None = None  # the command-line option that wins over `env`
    choices: tuple[str, ...] = ()
    shown: str | None = None  # the default as the README shows it, where not `default`
    parse: Callable[[Setting, Source], Any] | None = None

    @property
    def kind(self) -> str:
        if self.parse is not None or self.default is None:
            return "text"
        return type(self.default).__name__

    def read(self, source: Source) -> Any:
        """The value from the command line, else `env`, else the default; checked."""
        if self.parse is not None:
            return self.parse(self, source)
        if self.choices:
            return self.choose(source)
        given = source.given.get(self.name)
        if isinstance(self.default, bool):
            return source.env.get(self.variable, "1") not in ("0", "false", "no")
        if isinstance(self.default, int):
            if given is not None:
                return self.check(self.flag or self.variable, given)
            return read_int(source.env, self.variable, self.default, self.low, self.high)
        return given or source.env.get(self.variable) or self.default

    def choose(self, source: Source) -> str:
        """One of `choices`."""
        value = str(source.env.get(self.variable) or self.default).strip().lower()
        if value not in self.choices:
            choices = ", ".join(self.choices)
            raise ConfigError(f"{self.variable} must be one of {choices}, got {value!r}")
        return value

    def check(self, name: str, value: int) -> int:
        if not self.low <= value <= self.high:
            raise ConfigError(f"{name} must be between {self.low} and {self.high}, got {value}")
        return value

    @property
    def variable(self) -> str:
        assert self.env is not None
        return self.env

    @property
    def low(self) -> int:
        assert self.lo is not None
        return self.lo

    @property
    def high(self) -> int:
        assert self.hi is not None
        return self.hi


def setting(
    env: str | None,
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    secret: bool = False,
    **more: Any,
) -> Any:
    """A `Settings` field that is also a row of the table (see `Setting`)."""
    row = {"env": env, "help": help, **more}
    if default is dataclasses.MISSING:
        return field(repr=not secret, metadata={"setting": row})
    return field(default=default, repr=not secret, metadata={"setting": row})


def rows_of(table: type) -> tuple[Setting, ...]:
    """`table`'s rows, one per field of the dataclass, in its order."""
    return tuple(
        Setting(
            f.name,
            default=None if f.default is dataclasses.MISSING else f.default,
            **f.metadata["setting"],
        )
        for f in dataclasses.fields(table)
    )


def read_rows(
    rows: tuple[Setting, ...], env: Mapping[str, str], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Every configurable row's value, read in order (a row may use those before it)."""
    source = Source(env, given, values := {})
    for row in rows:
        if row.env is not None:
            values[row.name] = row.read(source)
    return values


def read_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def markdown(rows: tuple[Setting, ...]) -> str:
    """The README's configuration table of `rows`."""
    lines = ["| setting | default | range | |", "|---|---|---|---|"]
    for row in rows:
        if row.env is None:
            continue
        name = f"`{row.flag}` / `{row.env}`" if row.flag else f"`{row.env}`"
        lines.append(f"| {name} | {_shown(row)} | {_range(row)} | {row.help} |")
    return "\n".join(lines) + "\n"


def _range(row: Setting) -> str:
    if row.choices:
        return ", ".join(f"`{choice}`" for choice in row.choices)
    if row.lo is None or row.hi is None:
        return ""
    return f"{row.lo:,} to {row.hi:,}"


def _shown(row: Setting) -> str:
    if row.shown is not None:
        return row.shown
    if row.default is None or row.default == ():
        return "none"
    if isinstance(row.default, str):
        return f"`{row.default}`"
    return str(row.default)
