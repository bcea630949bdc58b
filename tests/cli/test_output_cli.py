"""What a person sees at an 80-column terminal: whole identifiers, `-o wide`, `--json` on
every command that prints, secrets on a line of their own, errors naming the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import as_admin, as_json, assert_clean_failure
from tests.support.gateway import GatewayThread

# Commands that print nothing a script would read as data. A new command either takes
# `--json` or is added here with the reason.
WITHOUT_JSON: dict[str, str] = {
    "k8s diff": "a unified diff per object, like `kubectl diff`; scripts read its exit code",
}


def leaf_commands() -> list[tuple[str, set[str]]]:
    """Every command a user can run, with the options it takes."""
    import typer.main

    from bulkhead.cli.main import app

    found: list[tuple[str, set[str]]] = []

    def walk(command: object, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            params = getattr(command, "params", [])
            found.append((" ".join(path), {o for p in params for o in getattr(p, "opts", [])}))
            return
        for name, child in children.items():
            walk(child, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_that_prints_takes_json() -> None:
    commands = leaf_commands()
    assert len(commands) > 50
    missing = {name for name, opts in commands if "--json" not in opts}
    assert missing == set(WITHOUT_JSON)


def test_a_listing_keeps_every_id_whole_at_80_columns(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.grant("admin:keys.create", unique)
    for n in range(3):
        name = f"{unique}-a-rather-long-key-name-{n}"
        created = as_admin(gateway, tmp_path, "key", "create", "--tenant", unique, "--name", name)
        assert created.returncode == 0, created.stderr
    listed = as_json(gateway, tmp_path, "key", "list", "--tenant", unique)
    table = as_admin(gateway, tmp_path, "key", "list", "--tenant", unique)
    assert table.returncode == 0, table.stderr
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    for key in listed:
        assert key["id"] in table.stdout and key["name"] in table.stdout
    wide = as_admin(gateway, tmp_path, "key", "list", "--tenant", unique, "-o", "wide")
    assert wide.returncode == 0, wide.stderr
    assert len(wide.stdout.splitlines()[0]) >= len(table.stdout.splitlines()[0])
    assert (
        json.loads(
            as_admin(gateway, tmp_path, "key", "list", "--tenant", unique, "-o", "json").stdout
        )
        == listed
    )


def test_a_printed_secret_is_a_whole_line_of_its_own(
    gateway: GatewayThread, tmp_path: Path, unique: str
) -> None:
    gateway.tenant(unique)
    gateway.grant("admin:keys.create", unique)
    result = as_admin(gateway, tmp_path, "key", "create", "--tenant", unique, "--name", "x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n")
    (line,) = [x for x in result.stdout.splitlines() if "bk_" in x]
    assert line.strip().startswith("bk_") and " " not in line.strip()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("tenant", "create", "{t}x", "--tier", "platinum"), "--tier"),
        (("tenant", "set-limits", "{t}", "--requests-per-minute", "-5"), "--requests-per-minute"),
        (("key", "create", "--tenant", "{t}", "--expires", "soon"), "--expires"),
    ],
)
def test_an_error_names_the_flag_that_was_wrong(
    gateway: GatewayThread, tmp_path: Path, unique: str, args: tuple[str, ...], flag: str
) -> None:
    gateway.tenant(unique)
    result = as_admin(gateway, tmp_path, *(a.format(t=unique) for a in args))
    assert result.returncode != 0
    assert_clean_failure(result, flag)
