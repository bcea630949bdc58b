"""`bulkhead serve`'s plain command lines, parsed without typer.

typer (0.29) coerces every option's value through a pydantic `TypeAdapter`,
so parsing `serve --port 8080` loads pydantic and pydantic-core, some 6 MB
that would stay resident in the gateway for nothing (docs/benchmarks.md,
session 15).  `options` reads the command lines an operator or a container
writes: the global `--data-dir`, `--server` and `--key` before `serve`, then
`serve`'s own options, as `--name value` or `--name=value`.  Anything else
(`--help`, an unknown option, a value that is not a plain port number - ASCII
digits, at most 18 - or that looks like an option) is left to typer, which
answers it as before: this parser accepts nothing typer would refuse, and what
it accepts means the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

_GLOBAL = {"--server": "server", "--key": "key", "--data-dir": "data_dir"}
_SERVE = {
    "--data-dir": "data_dir",
    "--host": "host",
    "--port": "port",
    "--metrics-port": "metrics_port",
    "--tls-cert": "tls_cert",
    "--tls-key": "tls_key",
}
_NUMBERS = frozenset({"port", "metrics_port"})
_MAX_DIGITS = 18


class ServeOptions(TypedDict):
    """The keyword arguments of `serve.run`."""

    data_dir: str | None
    host: str | None
    port: int | None
    metrics_port: int | None
    tls_cert: str | None
    tls_key: str | None
    json_: bool


def options(argv: Sequence[str]) -> ServeOptions | None:
    """`serve.run`'s arguments for `argv` (past the program's name), or None when typer
    should parse it."""
    given: dict[str, str] = {}
    outer: dict[str, str] = {}
    table, into, json_ = _GLOBAL, outer, False
    args, at = list(argv), 0
    while at < len(args):
        arg = args[at]
        at += 1
        if table is _GLOBAL and arg == "serve":
            table, into = _SERVE, given
            continue
        if table is _SERVE and arg == "--json":
            json_ = True
            continue
        name, equals, value = arg.partition("=")
        if name not in table:
            return None
        if not equals:
            if at == len(args):
                return None
            value, at = args[at], at + 1
        if value.startswith("-"):
            return None  # typer's to judge: an option where a value should be
        if table[name] in _NUMBERS and not _plain_number(value):
            return None
        into[table[name]] = value
    if table is not _SERVE:
        return None
    return ServeOptions(
        # `serve --data-dir` wins over the global one, as `flags.data_dir_option` has it.
        data_dir=given.get("data_dir") or outer.get("data_dir"),
        host=given.get("host"),
        port=_number(given.get("port")),
        metrics_port=_number(given.get("metrics_port")),
        tls_cert=given.get("tls_cert"),
        tls_key=given.get("tls_key"),
        json_=json_,
    )


def _plain_number(value: str) -> bool:
    """ASCII digits, few enough for `int` (past 4,300 it raises; typer answers "not an
    integer"): a port has five, so a longer one is left to typer."""
    return value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS


def _number(value: str | None) -> int | None:
    return None if value is None else int(value)
