"""`bulkhead k8s render`: each tenant's Kubernetes objects, from the catalog.

The catalog is read through the management API with a platform key (tenants,
their limits, models); nothing is sent to a cluster.  The objects go to
stdout as one multi-document YAML stream, or with `-o DIR` one file per
object, `DIR/<namespace or _cluster>/<kind>-<name>.yaml`.  The cluster side
(apply, diff, reconcile) lives in `k8s_cluster`, registered here with the
renderer it applies (`catalog_renderer`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
import yaml

from bulkhead.cli.common import client
from bulkhead.cli.k8s_cluster import register
from bulkhead.cli.k8s_secret import pull_secret_command
from bulkhead.cli.output import JsonFlag, fail
from bulkhead.errors import BulkheadError
from bulkhead.k8s.config import K8sConfig, load
from bulkhead.k8s.reconcile import Renderer
from bulkhead.k8s.render import ModelView, TenantView, node_labels, render_all, render_tenant

app = typer.Typer(no_args_is_help=True, help="Kubernetes: each tenant's isolation as objects.")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="The cluster's settings (YAML or JSON; images by digest)."),
]


def read_config(path: Path | None) -> K8sConfig:
    return K8sConfig().check() if path is None else load(path)


def fetch_tenant(api: Any, name: str) -> TenantView:
    path = f"/admin/v1/tenants/{quote(name, safe='')}"
    return TenantView.from_api(api.get(path), api.get(f"{path}/limits"))


def fetch_catalog(
    ctx: typer.Context, tenant: str | None
) -> tuple[list[TenantView], list[ModelView]]:
    """The tenants asked for (one, or every one) with their limits, and every model."""
    api = client(ctx)
    if tenant is not None:
        tenants = [fetch_tenant(api, tenant)]
    else:
        names = sorted(t["name"] for t in api.get("/admin/v1/tenants")["data"])
        tenants = [fetch_tenant(api, name) for name in names]
    models = [ModelView.from_api(m) for m in api.get("/admin/v1/models")["data"]]
    return tenants, models


class _PlainDumper(yaml.SafeDumper):
    """Safe YAML without anchors and aliases: a value the renderer shares between two
    places is written out in each, as a person reading a manifest expects."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """One multi-document YAML stream, keys in the order rendered."""
    return yaml.dump_all(
        objects, Dumper=_PlainDumper, sort_keys=False, explicit_start=True, width=100
    )


def to_json(objects: list[dict[str, Any]]) -> str:
    """A `v1` List of the objects (kubectl reads it as it reads the YAML stream)."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2) + "\n"


def file_path(item: dict[str, Any], suffix: str = ".yaml") -> Path:
    meta = item["metadata"]
    folder = Path(meta.get("namespace") or "_cluster")
    return folder / f"{item['kind'].lower()}-{meta['name']}{suffix}"


def write_tree(objects: list[dict[str, Any]], root: Path, *, as_json: bool = False) -> None:
    for item in objects:
        path = root / file_path(item, ".json" if as_json else ".yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(item, indent=2) + "\n" if as_json else to_yaml([item])
        path.write_text(text, encoding="utf-8")


@app.command("render")
def render(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="The tenant to render.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every tenant, and the platform's GPU objects.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Write one file per object under this folder."),
    ] = None,
    config: ConfigOption = None,
    json_: JsonFlag = False,
) -> None:
    """Render a tenant's (or every tenant's) namespaces, quotas, policies and model servers
    (YAML; --json for a v1 List, or JSON files under -o)."""
    if (tenant is None) == (not all_):
        raise fail("name one of --tenant T or --all", code=2)
    settings = read_config(config)
    tenants, models = fetch_catalog(ctx, tenant)
    try:
        if all_:
            objects = render_all(tenants, models, settings)
        else:
            objects = render_tenant(tenants[0], models, settings)
    except BulkheadError as exc:
        raise fail(exc.message) from None
    if out is None:
        typer.echo(to_json(objects) if json_ else to_yaml(objects), nl=False)
    else:
        write_tree(objects, out, as_json=json_)
        typer.echo(f"{len(objects)} objects written under {out}", err=True)
    if any(o["kind"] == "ConfigMap" for o in objects):
        shown = ", ".join(f"{k}={v}" for k, v in node_labels(settings).items())
        typer.echo(f"label each MIG node: {shown}", err=True)


def catalog_renderer(path: str | None) -> Renderer:
    """What `apply`, `diff` and `reconcile` render: every tenant, as `render --all` does."""
    settings = read_config(Path(path) if path else None)

    def render(
        tenants: list[dict[str, Any]], models: list[dict[str, Any]], limits: dict[str, Any]
    ) -> list[dict[str, Any]]:
        views = [TenantView.from_api(t, limits.get(str(t.get("name")))) for t in tenants]
        return render_all(views, [ModelView.from_api(m) for m in models], settings)

    return render


register(app, renderer=catalog_renderer)
app.command("pull-secret")(pull_secret_command)
