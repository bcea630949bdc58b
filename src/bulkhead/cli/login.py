"""`bulkhead login` / `bulkhead logout`: a person's sign-in session as the CLI's credential.

`login` sends a password (prompted, never a flag, so it stays out of shell
history and `ps`) and, when the server asks for one, a one-time code, and
keeps the session token in the CLI profile (0600) next to the key `init`
wrote; while it is there, commands use it instead of that key.  `login
--enrol` is a new platform principal's first sign-in (`cli/enrolment.py`).
`logout` ends the session on the server and removes it from the profile.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bulkhead.cli import enrolment
from bulkhead.cli.client import (
    ApiError,
    Client,
    Profile,
    profile_path,
    read_profile,
    resolve_profile,
)
from bulkhead.cli.common import given_as
from bulkhead.cli.output import JsonFlag, emit, fail, safe


def _root(ctx: typer.Context) -> dict[str, Any]:
    return ctx.find_root().obj or {}


def _ask(text: str, *, secret: bool) -> str:
    # A terminal gets a hidden prompt; a pipe (scripts, tests) is read a line at a time.
    return str(typer.prompt(text, hide_input=secret and sys.stdin.isatty(), err=True))


def _second_factor(body: dict[str, Any], code: str) -> dict[str, Any]:
    """A six-digit code is a TOTP; anything longer is a recovery code."""
    code = code.strip()
    field = "totp" if code.isdigit() and len(code) <= 8 else "recovery_code"
    return {**body, field: code}


def _sign_in(client: Client, body: dict[str, Any], code: str | None) -> Any:
    if code:
        body = _second_factor(body, code)
    try:
        return client.request("POST", "/auth/v1/login", body, authenticated=False)
    except ApiError as exc:
        if exc.code != "mfa_required" or code is not None:
            raise
    code = _ask("One-time code (or a recovery code)", secret=False)
    return client.request("POST", "/auth/v1/login", _second_factor(body, code), authenticated=False)


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Replace the profile atomically; it holds credentials, so only its owner may read it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=2))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


EnrolFlag = Annotated[
    bool,
    typer.Option(
        "--enrol",
        help="First sign-in of a new platform principal: its enrolment secret, a new "
        "password, then a code from the authenticator it prints.",
    ),
]
SecretStdinFlag = Annotated[
    bool,
    typer.Option(
        "--secret-stdin", help="With --enrol: read the enrolment secret from stdin's first line."
    ),
]


def login(
    ctx: typer.Context,
    principal: Annotated[str, typer.Option(help="Principal (user) name.")],
    tenant: Annotated[
        str | None, typer.Option(help="Tenant name; leave out for a platform principal.")
    ] = None,
    role: Annotated[str | None, typer.Option(help="Role to act with, if it holds several.")] = None,
    totp: Annotated[
        str | None, typer.Option("--totp", help="One-time code; prompted for if needed.")
    ] = None,
    enrol: EnrolFlag = False,
    secret_stdin: SecretStdinFlag = False,
    json_: JsonFlag = False,
) -> None:
    """Sign in with a password (prompted) and keep the session in the CLI profile."""
    root = _root(ctx)
    url = resolve_profile(root.get("server"), None, root.get("data_dir")).url
    if enrol or secret_stdin:
        if tenant or not enrol:
            raise fail("--enrol is for platform principals; --secret-stdin goes with it", code=2)
        server = Client(Profile(url=url, key=None))
        signed = enrolment.enrol(server, principal, role, secret_stdin=secret_stdin, as_json=json_)
    else:
        body: dict[str, Any] = {"principal": principal, "password": _ask("Password", secret=True)}
        body |= {k: v for k, v in (("tenant", tenant), ("role", role)) if v}
        fields = {**given_as(ctx, recovery_code="totp"), "password": "the password typed"}
        signed = _sign_in(Client(Profile(url=url, key=None), fields=fields), body, totp)
    path = profile_path(root.get("data_dir"))
    saved = read_profile(path)
    saved.update(url=url, session=signed["token"], session_expires_at=signed["expires_at"])
    _write_private(path, saved)
    who = f"{tenant}/{principal}" if tenant else principal
    result = {
        "principal": who,
        "role": signed["role"],
        "mfa": signed["mfa"],
        "expires_at": signed["expires_at"],
        "profile": str(path),
    }
    if "recovery_codes" in signed:
        result["recovery_codes"] = signed["recovery_codes"]
    if json_:
        emit(result, True)
        return
    until = f"({signed['role']}), session until {signed['expires_at']}"
    typer.echo(safe(f"signed in as {who} {until}"))


def logout(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """End the profile's session on the server and remove it from the profile."""
    root = _root(ctx)
    path = profile_path(root.get("data_dir"))
    saved = read_profile(path)
    token = saved.get("session")
    if not token:
        raise fail("not signed in: the profile holds no session")
    url = resolve_profile(root.get("server"), None, root.get("data_dir")).url
    ended_here = True
    try:
        Client(Profile(url=url, key=token)).post("/auth/v1/logout")
    except ApiError as exc:
        if exc.status != 401:  # Unreachable or failing: keep the session, so a retry can end it.
            raise
        ended_here = False  # It had ended already (expired, revoked, or logged out elsewhere).
    for name in ("session", "session_expires_at"):
        saved.pop(name, None)
    _write_private(path, saved)
    if json_:
        emit({"revoked": ended_here, "profile": str(path)}, True)
        return
    typer.echo("signed out" if ended_here else "signed out (the session had already ended)")
