"""Review of issue 13 (platform principals), as an attacker: each finding, attacked.

Every test here failed on the merged code before its fix (see the review's report).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from rich.console import Console

from bulkhead.cli import output
from tests.security.test_platform_principals import create, lone  # noqa: F401
from tests.support.gateway import GatewayThread

P = "/admin/v1/principals"


def _own_key(gw: GatewayThread, key: str | None, **body: object) -> tuple[int, dict[str, object]]:
    made = gw.admin("POST", f"{P}/admin/keys", {"role": "platform_admin", **body}, key=key)
    return made.status, made.body


def test_an_expiring_admin_key_mints_nothing_that_outlives_it(
    lone: GatewayThread,  # noqa: F811
) -> None:
    status, short = _own_key(lone, None, expires_in_s=600)
    assert status == 201, short
    short_key, short_exp = str(short["secret"]), short["key"]["expires_at"]  # type: ignore[index]
    # With no expiry asked for, the new key inherits the minting key's own.
    status, body = _own_key(lone, short_key)
    assert status == 201, body
    assert body["key"]["expires_at"] == short_exp  # type: ignore[index]
    # A later expiry than its own is refused, naming the field.
    status, body = _own_key(lone, short_key, expires_in_s=86400)
    assert status == 400 and body["error"]["param"] == "expires_in_s", body  # type: ignore[index]
    # A shorter one is fine.
    status, body = _own_key(lone, short_key, expires_in_s=60)
    assert status == 201, body
    got = datetime.fromisoformat(str(body["key"]["expires_at"]))  # type: ignore[index]
    assert got <= datetime.fromisoformat(str(short_exp))


def test_an_expiring_admin_key_makes_no_principal_that_outlives_it(
    lone: GatewayThread,  # noqa: F811
) -> None:
    """A new principal's enrolment secret is a password for life: an expiring key makes none."""
    status, short = _own_key(lone, None, expires_in_s=600)
    assert status == 201, short
    key = str(short["secret"])
    for role in ("platform_admin", "platform_auditor"):
        made = create(lone, f"persist-{role}", role, key=key)
        assert made.status == 403, made.body
    # The unrestricted bootstrap key still can.
    assert create(lone, "audrey", "platform_auditor").status == 201


# The CLI: text from the server never reaches the terminal as control characters ------------

ESCAPE = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u202e"


def test_field_names_from_the_server_are_shown_not_obeyed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response's own field names become column names when a command names none."""
    monkeypatch.setattr(output, "console", Console(width=80, color_system=None))
    row = {f"limit{ESCAPE}": 1, "a-rather-long-identifier-field": "x" * 70}
    for data in (row, [row, row]):  # one object as field lines; a list as a table
        output.emit(data, False)
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\u202e" not in out, repr(out)
        assert "\\x1b" in out


def test_a_secret_and_its_label_from_the_server_are_shown_not_obeyed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output.secret(f"secret (until {ESCAPE})", f"bke_abc{ESCAPE}\nforged line")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out, repr(out)
    assert len(out.splitlines()) == 2  # the label, then the secret alone on one line
