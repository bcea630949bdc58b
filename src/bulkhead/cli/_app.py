"""The `bulkhead` command as a typer app: its global options, its commands, and how it ends.

Apart from `cli/main.py` so that a plain `bulkhead serve` (`cli/serveargs.py`) imports
neither typer nor click.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer

from bulkhead.cli.main import COMMANDS


def _options(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(help="Server URL (env BULKHEAD_URL).")] = None,
    api_key: Annotated[
        str | None, typer.Option("--key", help="API key (env BULKHEAD_KEY).")
    ] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data dir (env BULKHEAD_DATA_DIR).")] = None,
) -> None:
    ctx.obj = {"server": server, "key": api_key, "data_dir": data_dir}


def build(only: str | None = None) -> typer.Typer:
    """The `bulkhead` command with every command, or with `only` that one."""
    cli = typer.Typer(
        name="bulkhead",
        no_args_is_help=True,
        add_completion=False,
        help="Bulkhead: a secure multi-tenant gateway for LLMs.",
    )
    cli.callback()(_options)
    for name, (module_name, function) in COMMANDS.items():
        if only not in (None, name):
            continue
        module = importlib.import_module(f"bulkhead.cli.{module_name}")
        if function is None:
            cli.add_typer(module.app, name=name)
        else:
            cli.command(name)(getattr(module, function))
    return cli


def run(command: str | None) -> Any:
    """Run the command line with the app for `command` (None: the whole app); its result,
    or SystemExit with typer's exit code."""
    try:
        return build(command)(standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(1) from None
