"""`bulkhead` imports only the command it runs (`cli.main`); each still loads when it runs.

`bulkhead serve` must start the gateway without the client commands' modules
and what they print with (docs/benchmarks.md, "Start-up footprint"), and with
the collector off until `Application.startup` turns it on.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest

from bulkhead.cli import main as cli_main
from bulkhead.cli.main import COMMANDS, build, command_of


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["serve"], "serve"),
        (["--data-dir", "/d", "serve", "--port", "1"], "serve"),
        (["--data-dir=/d", "--key", "bk_x", "--server", "http://h", "tenant", "list"], "tenant"),
        (["k8s", "render"], "k8s"),
        ([], None),
        (["--help"], None),
        (["--data-dir", "/d"], None),
        (["--unknown", "serve"], None),
        (["no-such-command"], None),
    ],
)
def test_the_command_is_found_past_the_global_options(argv: list[str], command: str | None) -> None:
    assert command_of(argv) == command


def test_the_whole_command_has_every_command_in_order() -> None:
    whole = build()
    names = [c.name for c in whole.registered_commands]
    names += [g.name for g in whole.registered_groups]
    assert names == list(COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_loads_alone(name: str) -> None:
    alone = build(name)
    names = [c.name for c in alone.registered_commands]
    names += [g.name for g in alone.registered_groups]
    assert names == [name]


def test_serve_turns_the_collector_off_and_only_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["bulkhead", "serve", "--help"])
    try:
        cli_main()  # prints the help
        assert not gc.isenabled()  # `Application.startup` turns it on (test_app_imports)
    finally:
        gc.enable()
    monkeypatch.setattr(sys, "argv", ["bulkhead", "tenant", "--help"])
    cli_main()
    assert gc.isenabled()


# The client commands' printing and their own modules: none is the gateway's.
CLIENT_ONLY = ("rich", "yaml", "bulkhead.k8s", "bulkhead.cli.output", "bulkhead.cli.tenant")


def test_serving_imports_none_of_the_client_commands() -> None:
    script = (
        "import json, sys\n"
        "from bulkhead.cli.main import build\n"
        "build('serve')\n"
        "from bulkhead.app import build, server_ssl_context\n"
        "import uvicorn, bulkhead.web.drain\n"
        f"prefixes = {CLIENT_ONLY!r}\n"
        "found = {m for m in sys.modules for p in prefixes if m == p or m.startswith(p + '.')}\n"
        "print(json.dumps(sorted(found)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
