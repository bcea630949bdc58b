"""Ctrl-C (or a closed stdin) while `bulkhead serve` starts ends it as typer's path ends it,
whichever parser read the command line: exit 130 (1), not a traceback."""

from __future__ import annotations

import importlib
import sys

import pytest

from bulkhead.cli import serve as serve_module
from bulkhead.cli.serveargs import options

# `bulkhead.cli.main` the module (the package exports its `main` function by that name).
main_module = importlib.import_module("bulkhead.cli.main")


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--port", "8080"],  # plain: parsed without typer
        ["serve", "--host", "-x"],  # a value that looks like an option: parsed by typer
    ],
)
@pytest.mark.parametrize(("error", "code"), [(KeyboardInterrupt, 130), (EOFError, 1)])
def test_an_interrupted_start_exits_as_typer_has_it_on_either_path(
    argv: list[str], error: type[BaseException], code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(**_: object) -> None:
        raise error

    monkeypatch.setattr(serve_module, "run", interrupted)
    monkeypatch.setattr(sys, "argv", ["bulkhead", *argv])
    try:
        with pytest.raises(SystemExit) as exited:
            main_module.main()
    except (EOFError, KeyboardInterrupt):  # escaped: it would end pytest's own run
        pytest.fail(f"{error.__name__} escaped `main` for {argv}")
    assert exited.value.code == code
    assert (options(argv) is None) == ("-x" in argv)
