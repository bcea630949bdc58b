"""The options every command declares alike, apart from the table printer and the API client.

`bulkhead serve` takes its flags from here, so that starting the gateway loads
neither rich nor the HTTP client of the client commands (docs/architecture.md,
"Start-up"; `tests/unit/test_app_imports.py` pins it).
"""

from __future__ import annotations

from typing import Annotated

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def data_dir_option(ctx: typer.Context, given: str | None) -> str | None:
    """The command's `--data-dir`, else the global one."""
    return given or (ctx.find_root().obj or {}).get("data_dir")
