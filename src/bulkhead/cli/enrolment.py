"""`bulkhead login --enrol`: a new platform principal's first sign-in.

Its creator handed it a one-time enrolment secret.  The secret is read from
a hidden prompt (or stdin's first line with `--secret-stdin`), never from
the command line, where `ps` and shell history would keep it.  The server
answers an authenticator URI, printed once for the person to add to their
app; then a new password (hidden, asked twice on a terminal) and a code from
the authenticator finish it: the server sets both, answers ten recovery
codes (printed once) and a session, which `login` keeps in the profile.
Nothing is set until that last step, so an enrolment cut off half-way is
started again with the same secret.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from bulkhead.cli.client import ApiError, Client
from bulkhead.cli.output import safe

TRIES = 3


def _ask(text: str, *, secret: bool, twice: bool = False) -> str:
    # A terminal gets a hidden prompt; a pipe (scripts, tests) is read a line at a time.
    tty = sys.stdin.isatty()
    return str(
        typer.prompt(text, hide_input=secret and tty, confirmation_prompt=twice and tty, err=True)
    )


def _show(text: str, *, as_json: bool) -> None:
    """What the person must see once; on stderr when stdout is for the JSON answer."""
    typer.echo(text, err=as_json)


def enrol(
    server: Client, principal: str, role: str | None, *, secret_stdin: bool, as_json: bool
) -> dict[str, Any]:
    """Enrol `principal`; the server's answer: its recovery codes and session."""
    secret = sys.stdin.readline().strip() if secret_stdin else _ask("Enrolment secret", secret=True)
    body: dict[str, Any] = {"principal": principal, "enrolment_secret": secret}
    started = server.request("POST", "/auth/v1/enrol", body, authenticated=False)
    _show("Add this authenticator to your app (shown once: it makes your codes):", as_json=as_json)
    _show(safe(str(started["otpauth_uri"])), as_json=as_json)
    body["password"] = _ask("New password (at least 12 characters)", secret=True, twice=True)
    if role:
        body["role"] = role
    finished = _finish(server, body)
    if not as_json:
        typer.echo("recovery codes (shown once; keep them offline, each works once):")
        for code in finished["recovery_codes"]:
            typer.echo(safe(str(code)))
    return dict(finished)


def _finish(server: Client, body: dict[str, Any]) -> Any:
    for attempt in range(1, TRIES + 1):
        code = _ask("One-time code from the authenticator", secret=False)
        try:
            return server.request(
                "POST", "/auth/v1/enrol/confirm", {**body, "totp": code}, authenticated=False
            )
        except ApiError as exc:
            if exc.code != "invalid_totp" or attempt == TRIES:
                raise
            typer.echo("That code was wrong or used already; wait for the next one.", err=True)
    raise AssertionError("unreachable")
