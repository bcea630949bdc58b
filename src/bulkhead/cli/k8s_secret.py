"""`bulkhead k8s pull-secret`: the Secret a private model's server pulls its weights with.

The init container of an imported model's server (`bulkhead model pull`,
rendered by `bulkhead.k8s.render.workloads`) reads a key of the model's own
tenant from the Secret `pull_secret(model)` in the tenant's serve namespace.
This mints that key through the management API (a platform admin, under a
grant for `admin:keys.create` on the tenant, as any tenant key): role
`model_developer`, limited to that one model, with an expiry, so the key in the
cluster can call and pull that model and nothing else of the tenant.  It
prints the Secret (or writes it, mode 0600) for the operator to apply: the
renderer never holds a key, and neither does `apply`.  The Secret is not
labelled `managed-by: bulkhead` (prune never lists Secrets anyway); it goes
with its namespace when the tenant is deleted, and the key with the tenant.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, TextIO
from urllib.parse import quote

import typer
import yaml

from bulkhead.cli.common import client
from bulkhead.cli.key import parse_duration
from bulkhead.cli.output import JsonFlag, fail
from bulkhead.k8s.render import model_object, pull_secret, serve_namespace
from bulkhead.k8s.render.names import TENANT
from bulkhead.k8s.render.workloads import ARTIFACT_SECRET_KEY


def secret_object(tenant: str, model: str, key: str) -> dict[str, Any]:
    labels = {TENANT: tenant, "bulkhead.dev/model": model_object(model)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": pull_secret(model),
            "namespace": serve_namespace(tenant),
            "labels": labels,
        },
        "type": "Opaque",
        "stringData": {ARTIFACT_SECRET_KEY: key},
    }


def pull_secret_command(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="The tenant that owns the model.")],
    model: Annotated[str, typer.Option(help="An imported (private, local) model of the tenant.")],
    expires: Annotated[str, typer.Option(help="The key's lifetime, e.g. 90d.")] = "90d",
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the Secret here (mode 0600).")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Mint a model developer key limited to one imported model and print its Secret (YAML;
    --json for JSON)."""
    api = client(ctx)
    # The file is made (new, never through a link) before a key exists, so a path that
    # cannot take the Secret leaves no live key behind.
    target = _create(out) if out is not None else None
    try:
        text = _mint(api, tenant, model, expires, json_)
    except BaseException:
        if target is not None and out is not None:
            target.close()
            out.unlink(missing_ok=True)
        raise
    if target is None:
        typer.echo(text, nl=False)
        return
    with target:
        target.write(text)
    typer.echo(f"wrote {out}: apply it with kubectl apply -f {out}", err=True)


def _create(out: Path) -> TextIO:
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise fail(f"--output: cannot create {out}: {exc.strerror}", code=2) from None
    return os.fdopen(fd, "w", encoding="utf-8")


def _mint(api: Any, tenant: str, model: str, expires: str, json_: bool) -> str:
    """The Secret of a new model developer key limited to `model`, as text."""
    found = next((m for m in api.get("/admin/v1/models")["data"] if m.get("name") == model), None)
    if found is None or found.get("owner") != tenant or not found.get("artifact"):
        raise fail(f"--model: {tenant} has no imported model named {model!r}", code=2)
    body = {
        "role": "model_developer",
        "models": [model],
        "name": f"k8s-pull-{model}"[:128],
        "expires_in_s": parse_duration(expires),
    }
    created = api.post(f"/admin/v1/tenants/{quote(tenant, safe='')}/keys", body)
    secret = secret_object(tenant, model, created["secret"])
    return json.dumps(secret, indent=2) + "\n" if json_ else yaml.safe_dump(secret, sort_keys=False)
