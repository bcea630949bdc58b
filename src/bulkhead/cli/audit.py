"""`bulkhead audit …`: export, verify offline, prove, tail, public keys."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path
from typing import Annotated

import orjson
import typer

from bulkhead.audit import siem
from bulkhead.audit.bundle import BundleReport, origin_of, verify_bundle
from bulkhead.audit.checkpoint import Verifier
from bulkhead.audit.proofs import VerificationError
from bulkhead.cli.client import Client
from bulkhead.cli.common import client
from bulkhead.cli.output import Format, JsonFlag, Output, emit, errors, fail
from bulkhead.cli.sequencer import sequencer

app = typer.Typer(no_args_is_help=True, help="Read and verify the tamper-evident audit log.")
app.command("sequencer")(sequencer)  # the one command here that is not an API client


def _surface(_: Client, tenant_view: bool) -> str:
    return "/tenant/v1/audit" if tenant_view else "/admin/v1/audit"


TenantView = Annotated[bool, typer.Option("--tenant-view", help="Use the tenant API (own events).")]


@app.command("export")
def export(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="Bundle file to write.")],
    tenant: Annotated[str | None, typer.Option(help="Export this tenant's view only.")] = None,
    tenant_view: TenantView = False,
    json_: JsonFlag = False,
) -> None:
    """Export events, checkpoints, public keys (and a tenant's proofs) as one bundle."""
    c = client(ctx)
    query = f"?tenant={urllib.parse.quote(tenant)}" if tenant else ""
    bundle = c.get(_surface(c, tenant_view) + "/bundle" + query)
    output.write_text(json.dumps(bundle))
    emit(
        {
            "bundle": str(output),
            "entries": bundle["size"],
            "checkpoints": len(bundle["checkpoints"]),
        },
        json_,
    )


_MAX_KEY_FILE = 1 << 20
_MAX_CHECKPOINT_FILE = 64 * 1024


def _read_small(path: Path, limit: int, what: str) -> bytes:
    """An auditor's own file (keys, a kept checkpoint): bounded, and no traceback if missing."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise fail(f"{path}: cannot read the {what} ({type(exc).__name__})", code=2) from None
    if len(data) > limit:
        raise fail(f"{path}: the {what} is larger than {limit} bytes", code=2)
    return data


def _verifiers(path: Path) -> list[Verifier]:
    text = _read_small(path, _MAX_KEY_FILE, "key file").decode("utf-8", "replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    try:
        return [Verifier.from_vkey(ln) for ln in lines]
    except (ValueError, VerificationError) as exc:
        raise fail(f"{path}: not a verifier key file ({exc})", code=2) from None


def _origin(given: str | None, keys: list[Verifier]) -> str:
    """The log the auditor expects: --origin, else the key file's one key name."""
    if given is not None:
        return given
    try:
        return origin_of(keys)
    except VerificationError as exc:
        raise fail(f"{exc}; give it with --origin", code=2) from None


def _read_bundle(path: Path, max_bytes: int) -> object:
    """The bundle file, decoded: bounded in size, and orjson bounds nesting at 1024 levels."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise fail(f"{path}: the bundle is larger than --max-bytes ({max_bytes} bytes)")
        return orjson.loads(path.read_bytes())
    except OSError as exc:
        raise fail(f"{path}: cannot read bundle ({type(exc).__name__})") from None
    except orjson.JSONDecodeError:
        raise fail(f"{path}: not a bundle (not JSON, or nested too deeply)") from None


PublicKey = Annotated[
    Path, typer.Option(help="File of verifier keys, one per line, from the log's operator.")
]
Origin = Annotated[
    str | None,
    typer.Option(help="The log the bundle must be; by default the key file's key name."),
]
TrustedCheckpoint = Annotated[
    Path | None, typer.Option(help="A checkpoint kept earlier: the log must extend it.")
]
RequireSigned = Annotated[
    bool,
    typer.Option("--require-signed", help="Fail when entries after the last checkpoint exist."),
]
FullExport = Annotated[
    bool, typer.Option("--full", help="Fail unless the bundle is a full export.")
]
TenantId = Annotated[
    str | None,
    typer.Option("--tenant", help="Fail unless the bundle is this tenant's view (its id)."),
]
MaxBytes = Annotated[int, typer.Option(help="Refuse bundle files larger than this.")]


@app.command("verify")
def verify(
    bundle: Path,
    public_key: PublicKey,
    origin: Origin = None,
    trusted_checkpoint: TrustedCheckpoint = None,
    require_signed: RequireSigned = False,
    full: FullExport = False,
    tenant: TenantId = None,
    max_bytes: MaxBytes = 4 << 30,
    json_: JsonFlag = False,
    output: Output = Format.TABLE,
) -> None:
    """Verify a bundle offline; exit 1 naming the first bad index on any problem.

    The verdict covers the entries that a signed checkpoint covers; entries
    after the last checkpoint are counted apart as unsigned.
    """
    keys = _verifiers(public_key)
    expected = _origin(origin, keys)
    trusted = (
        _read_small(trusted_checkpoint, _MAX_CHECKPOINT_FILE, "trusted checkpoint")
        if trusted_checkpoint
        else None
    )
    data = _read_bundle(bundle, max_bytes)
    try:
        report = verify_bundle(
            data, keys, origin=expected, trusted=trusted, require_signed=require_signed
        )
    except VerificationError as exc:
        index = getattr(exc, "index", 0)
        raise fail(f"verification FAILED at index {index}: {exc}") from None
    except Exception as exc:  # A bundle is untrusted input: fail closed, never a traceback.
        raise fail(
            f"verification FAILED: the bundle cannot be checked ({type(exc).__name__})"
        ) from None
    _check_whose(report, full=full, tenant=tenant)
    _show(report, json_, output)


def _check_whose(report: BundleReport, *, full: bool, tenant: str | None) -> None:
    """--full and --tenant: what the auditor expects the bundle to cover."""
    if full and report.tenant is not None:
        # A tenant's view shows other entries as hashes: it cannot vouch for the whole log.
        raise fail("verification FAILED: this is one tenant's view, not a full export")
    if tenant is not None and report.tenant != tenant:
        # Whose view it is comes from the auditor, like the origin: never from the bundle.
        raise fail(f"verification FAILED: this is not tenant {tenant}'s view")


def _show(report: BundleReport, json_: bool, output: Format) -> None:
    emit(
        {
            "verified": True,
            "origin": report.origin,
            "entries": report.size,
            "checkpoints": report.checkpoints,
            "signed_entries": report.signed_size,
            "unsigned_entries": report.unsigned,
            "own_entries": report.own_entries,
            "tenant": report.tenant,
        },
        json_,
        output=output,
    )
    if report.unsigned:
        errors.print(
            f"warning: {report.unsigned} entries after the last checkpoint are not signed: "
            "nothing vouches for them yet, so they are not part of the verdict "
            "(--require-signed makes them an error)",
            highlight=False,
        )


@app.command("prove")
def prove(
    ctx: typer.Context, event_id: str, tenant_view: TenantView = False, json_: JsonFlag = False
) -> None:
    """Print the inclusion proof of one event in the newest checkpoint (always JSON)."""
    c = client(ctx)
    emit(c.get(f"{_surface(c, tenant_view)}/proofs/{event_id}"), True)


@app.command("tail")
def tail(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new events.")
    ] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="json (JSON lines) or syslog (RFC 5424).")
    ] = "json",
    tenant_view: TenantView = False,
    json_: JsonFlag = False,
) -> None:
    """Stream events as JSON lines or RFC 5424 syslog lines, e.g. into a SIEM."""
    if output_format not in ("json", "syslog"):
        raise fail("--format must be json or syslog", code=2)
    if json_ and output_format != "json":
        raise fail("--json prints JSON lines: leave out --format syslog, or --json", code=2)
    line = siem.jsonl if output_format == "json" else siem.syslog
    c = client(ctx)
    after = -1
    while True:
        events = c.get(f"{_surface(c, tenant_view)}/events?after={after}&limit=1000")["data"]
        for event in events:
            typer.echo(line(event))
            after = max(after, int(event["idx"]))
        if not follow:
            return
        time.sleep(1.0)


@app.command("rotate-key")
def rotate_key(ctx: typer.Context, json_: JsonFlag = False, output: Output = Format.TABLE) -> None:
    """Give the platform a new checkpoint-signing key; old checkpoints stay verifiable."""
    emit(client(ctx).post("/admin/v1/audit/keys/rotate"), json_, output=output)


@app.command("public-key")
def public_key(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file.")
    ] = None,
    tenant_view: TenantView = False,
    json_: JsonFlag = False,
) -> None:
    """Print the checkpoint signers' verifier keys (what an auditor needs)."""
    c = client(ctx)
    keys = c.get(f"{_surface(c, tenant_view)}/keys")
    text = "".join(f"{vkey}\n" for vkey in keys["verifiers"])
    if output is not None:
        output.write_text(text)
    if json_:
        emit(keys, True)
    elif output is None:
        typer.echo(text, nl=False)
