"""Top-level command, global options and error handling.

Each command's module is imported when that command runs (or when the whole
help is asked for): `bulkhead serve` then loads none of the client commands
and what they print with (rich, yaml, the Kubernetes renderer), and gives the
gateway a start-up without the garbage collector (`main`); a plain `serve`
command line is parsed without typer, whose parser loads pydantic
(`cli/serveargs.py`), and typer itself is not imported (`cli/_app.py`).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bulkhead.cli.client import ApiError
from bulkhead.errors import ConfigError

if TYPE_CHECKING:
    from bulkhead.cli.serveargs import ServeOptions

# name -> (module under bulkhead.cli, its function); None: the module's `app`, a group.
# In the order `bulkhead --help` lists them.
COMMANDS: dict[str, tuple[str, str | None]] = {
    "init": ("init", "init"),
    "serve": ("servecmd", "serve"),
    "login": ("login", "login"),
    "logout": ("login", "logout"),
    **{
        group: (group, None)
        for group in (
            "tenant",
            "key",
            "model",
            "audit",
            "kms",
            "access",
            "admin",
            "quota",
            "gpu",
            "worker",
            "upstream",
            "k8s",
            "finetune",
            "vectors",
        )
    },
}
# The global options that take a value (`--data-dir X` or `--data-dir=X`).
_VALUED = frozenset({"--server", "--key", "--data-dir"})


def command_of(argv: Sequence[str]) -> str | None:
    """The command `argv` runs, past the global options; None for the help, an option
    not known here or a name that is no command (the whole app answers those)."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
        elif arg.split("=", 1)[0] not in _VALUED:
            return None
    return None


def __getattr__(name: str) -> Any:
    """`app`: the whole command, built when asked for (tests, documentation); `build`:
    what builds it (`cli/_app.py`, with typer, which a plain `serve` never imports)."""
    if name in ("app", "build"):
        from bulkhead.cli import _app

        return _app.build() if name == "app" else _app.build
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _serve_plain(options: ServeOptions) -> None:
    """`serve.run` as typer's `main` runs a command (typer.core `_main`): Ctrl-C is exit 130
    and a closed stdin `Abort` (exit 1 after a line break), not a traceback."""
    from bulkhead.cli import serve

    try:
        serve.run(**options)
    except EOFError:
        print(file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def main() -> None:
    command = command_of(sys.argv[1:])
    plain_serve = None
    if command == "serve":
        # What the gateway imports and builds lives as long as the process: collecting
        # it while it is made is wasted work (a tenth of its start-up's CPU).
        # `Application.startup` collects once, freezes it all and turns collection back on.
        gc.disable()
        from bulkhead.cli.serveargs import options

        plain_serve = options(sys.argv[1:])  # parsed without typer (and pydantic)
    try:
        if plain_serve is not None:
            _serve_plain(plain_serve)
            return
        from bulkhead.cli._app import run

        code = run(command)
    except ApiError as exc:
        from bulkhead.cli.output import fail

        raise SystemExit(fail(exc.describe()).exit_code) from None
    except ConfigError as exc:
        from bulkhead.cli.output import fail

        raise SystemExit(fail(exc.message, code=2).exit_code) from None
    except Exception as exc:  # click's usage errors carry their own exit code
        code = getattr(exc, "exit_code", None)
        if code is not None and hasattr(exc, "show"):
            exc.show()
            raise SystemExit(code) from None
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)
