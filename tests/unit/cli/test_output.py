"""`emit`, `secret` and `fail`: what a person sees at 80 columns, and what a tenant's
text can (not) do to the operator's terminal."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from bulkhead.cli import output
from bulkhead.cli.output import Column, Format, Rank, emit, fail, safe, secret

TENANT = {
    "id": "ten_841d0e177c8ec99be2d4",
    "name": "acme-corporation-eu-west",
    "tier": "shared",
    "status": "active",
    "created_at": "2026-12-06T09:18:15.870187Z",
}
OTHER = {**TENANT, "id": "ten_1d5a664b44935fffef1f", "name": "demo"}
COLUMNS = ("name", "tier", "status", "id", "created_at")


@pytest.fixture(autouse=True)
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """An 80-column terminal, without colour."""
    monkeypatch.setattr(output, "console", Console(width=80, color_system=None))


def printed(capsys: pytest.CaptureFixture[str], *args: object, **kwargs: object) -> str:
    emit(*args, **kwargs)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "…" not in out
    return out


def test_a_list_keeps_its_identifiers_whole_and_names_what_it_left_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = printed(capsys, [TENANT, OTHER], False, COLUMNS, "tenants")
    for value in (TENANT["id"], TENANT["name"], OTHER["id"]):
        assert value in out
    assert TENANT["created_at"] not in out
    assert "not shown at this width: created_at (-o wide shows them)" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_wide_prints_every_column_past_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    out = printed(capsys, [TENANT, OTHER], False, COLUMNS, output=Format.WIDE)
    assert TENANT["created_at"] in out and "not shown" not in out
    assert max(len(line) for line in out.splitlines()) > 80


def test_json_by_flag_or_by_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert json.loads(printed(capsys, TENANT, True, COLUMNS)) == TENANT
    assert json.loads(printed(capsys, TENANT, False, COLUMNS, output=Format.JSON)) == TENANT


def test_an_object_too_wide_for_one_row_prints_one_line_a_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = printed(capsys, TENANT, False, COLUMNS).splitlines()
    assert lines[0] == "name        acme-corporation-eu-west"
    assert lines[3] == "id          ten_841d0e177c8ec99be2d4", "no padding after a value"
    assert len(lines) == len(COLUMNS)


def test_an_object_that_fits_is_one_row(capsys: pytest.CaptureFixture[str]) -> None:
    out = printed(capsys, {"model": "demo-chat", "tenant": "acme", "granted": True}, False)
    assert out.splitlines()[1].split() == ["demo-chat", "acme", "True"]


def test_identifiers_wider_than_the_terminal_print_as_records(
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest = "ab" * 32
    files = [
        {"name": "model.safetensors", "bytes": 1024, "sha256": digest},
        {"name": "tokenizer.json", "bytes": 12, "sha256": "cd" * 32},
    ]
    out = printed(capsys, files, False, ("name", Column("sha256", Rank.KEY), "bytes"), "files")
    assert f"sha256  {digest}\n" in out and "\n\nname    tokenizer.json\n" in out


def test_list_cells_wrap_between_items_never_inside_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tenants = [f"tenant-number-{i:02}" for i in range(12)]
    row = {"name": "vllm-production-eu", "tenants": tenants}
    out = printed(capsys, [row], False, ("name", Column("tenants", Rank.KEY)))
    for tenant in tenants:
        assert tenant in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_markup_in_server_text_is_printed_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"id": "k1", "name": "[/bad]"}, {"id": "k2", "name": "[red]not red[/red]"}]
    out = printed(capsys, rows, False, ("id", "name"), "[bold]keys")
    assert "[/bad]" in out and "[red]not red[/red]" in out and "[bold]keys" in out


def test_control_characters_are_shown_not_obeyed(capsys: pytest.CaptureFixture[str]) -> None:
    name = "ok\x1b]52;c;ZXZpbA==\x07\x1b[2J\r\u202eevil\x9b"
    out = printed(capsys, [{"id": "k1", "name": name}], False, ("id", "name"))
    for raw in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert raw not in out
    assert "ok\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\r\\u202eevil\\x9b" in out


def test_text_keeps_its_lines_but_not_its_escapes() -> None:
    assert safe("forbid (\n\tprincipal\x1b[31m\r);", lines=True) == (
        "forbid (\n\tprincipal\\x1b[31m\\r);"
    )


def test_an_error_with_brackets_is_printed_not_parsed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exit_ = fail("The model '[/bad]' does not exist\x1b[2J.", code=2)
    assert exit_.exit_code == 2
    assert capsys.readouterr().err == "error: The model '[/bad]' does not exist\\x1b[2J.\n"


def test_a_secret_is_alone_on_its_own_line(capsys: pytest.CaptureFixture[str]) -> None:
    secret("secret (shown once)", "bk_abc_" + "x" * 120)
    assert capsys.readouterr().out == "secret (shown once):\nbk_abc_" + "x" * 120 + "\n"
