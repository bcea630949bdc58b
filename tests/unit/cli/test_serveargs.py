"""A plain `bulkhead serve` command line is parsed without typer (and so without pydantic);
anything else is left to typer, which answers it as before."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from bulkhead.cli import serve as serve_module
from bulkhead.cli.main import build
from bulkhead.cli.serveargs import ServeOptions, options

_NONE = ServeOptions(
    data_dir=None,
    host=None,
    port=None,
    metrics_port=None,
    tls_cert=None,
    tls_key=None,
    json_=False,
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve"], {}),
        (["serve", "--port", "8080", "--host=0.0.0.0"], {"port": 8080, "host": "0.0.0.0"}),
        (
            ["--data-dir", "/d", "serve", "--metrics-port", "0"],
            {"data_dir": "/d", "metrics_port": 0},
        ),
        (["--data-dir=/g", "serve", "--data-dir", "/s"], {"data_dir": "/s"}),
        (["--data-dir=/g", "serve", "--data-dir="], {"data_dir": "/g"}),
        (["--server", "http://h", "--key", "bk_x", "serve", "--json"], {"json_": True}),
        (
            ["serve", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
            {"tls_cert": "c.pem", "tls_key": "k.pem"},
        ),
        (["serve", "--port", "1", "--port", "2"], {"port": 2}),
        (["--data-dir", "serve", "serve"], {"data_dir": "serve"}),
    ],
)
def test_plain_command_lines_parse_as_typer_parses_them(
    argv: list[str], expected: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert options(argv) == {**_NONE, **expected}
    ran: list[dict[str, object]] = []
    monkeypatch.setattr(serve_module, "run", lambda **kwargs: ran.append(kwargs))
    command = typer.main.get_command(build("serve"))
    command.main(argv, standalone_mode=False)
    assert ran == [options(argv)]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--data-dir", "/d"],
        ["serve", "--help"],
        ["serve", "--nope"],
        ["serve", "--port"],
        ["serve", "--port", "http"],
        ["serve", "--port", "-1"],
        ["serve", "--port", "+1"],
        ["serve", "--port", "١٢"],  # Arabic-Indic digits: isdigit, not a plain port
        ["serve", "--port", "9" * 5000],  # past `int`'s digit limit: typer's "not an integer"
        ["serve", "--metrics-port=" + "0" * 4301],
        ["serve", "--host", "--json"],
        ["serve", "--server", "http://h"],
        ["--json", "serve"],
        ["serve", "extra"],
        ["tenant", "list"],
    ],
)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert options(argv) is None


def test_serve_starts_without_pydantic_or_typer() -> None:
    code = (
        "import importlib, sys\n"
        "serve = importlib.import_module('bulkhead.cli.serve')\n"
        "loaded = lambda: [m for m in ('pydantic', 'typer', 'click') if m in sys.modules]\n"
        "serve.run = lambda **kwargs: print(kwargs['port'], *loaded())\n"
        "sys.argv = ['bulkhead', 'serve', '--port', '9']\n"
        "importlib.import_module('bulkhead.cli.main').main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["9"]
