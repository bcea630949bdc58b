"""`bulkhead k8s apply|diff|reconcile`: the rendered objects on a cluster.

The catalog is read through the management API (a platform key, like every
client command); the objects come from the renderer `register` is given; the
cluster is reached with the official `kubernetes` client, from a kubeconfig
(`--kubeconfig`, `--context`) or from inside a pod (`--in-cluster`: the service
account's token and CA).  `render` (`bulkhead.cli.k8s`) is another module's.

Exit codes: `apply` and `reconcile` 1 when any object failed; `diff` 1 when
something differs and 2 when it could not tell (as `kubectl diff`).
"""

from __future__ import annotations

import enum
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import JsonFlag, emit, fail, safe
from bulkhead.k8s._resources import TENANT_LABEL
from bulkhead.k8s.cluster import (
    Cluster,
    ClusterError,
    Connection,
    ObjectRef,
    Outcome,
    Report,
)
from bulkhead.k8s.reconcile import (
    EMPTY_CATALOG,
    CatalogUnreadable,
    ReconcileResult,
    Renderer,
    read_catalog,
    reconcile_once,
    watch,
)

# A renderer for a config file (`--config`; None: the defaults).
RendererFactory = Callable[[str | None], Renderer]


class DryRun(enum.StrEnum):
    NONE = "none"
    SERVER = "server"


Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG).")
]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context.")]
InCluster = Annotated[
    bool, typer.Option("--in-cluster", help="Use the pod's service account token and CA.")
]
ServiceAccountDir = Annotated[
    Path,
    typer.Option(
        "--service-account-dir", hidden=True, help="Where the service account token is mounted."
    ),
]
AllowEmpty = Annotated[
    bool,
    typer.Option(
        "--allow-empty-catalog", help="Prune even when the catalog lists no tenant at all."
    ),
]
ConfigFile = Annotated[str | None, typer.Option("--config", help="Renderer config (YAML/JSON).")]
Tenant = Annotated[str | None, typer.Option("--tenant", help="Only this tenant's objects.")]
All = Annotated[bool, typer.Option("--all", help="Every tenant's objects.")]
_SA_DIR = Connection().service_account_dir


def register(app: typer.Typer, renderer: RendererFactory | None = None) -> None:
    """Add `apply`, `diff` and `reconcile` to `app` (the `bulkhead k8s` group)."""
    commands = _Commands(renderer)
    app.command("apply")(commands.apply)
    app.command("diff")(commands.diff)
    app.command("reconcile")(commands.reconcile)


class _Commands:
    def __init__(self, renderer: RendererFactory | None):
        self.renderer = renderer

    def _render(self, ctx: typer.Context, config: str | None, tenant: str | None) -> list[Any]:
        if self.renderer is None:
            raise fail("no renderer is wired into this command", code=2)
        try:
            tenants, models, limits = read_catalog(client(ctx))
        except CatalogUnreadable as exc:
            raise fail(f"cannot read the catalog: {exc}") from None
        try:
            objects = self.renderer(config)(tenants, models, limits)
        except Exception as exc:  # The renderer's complaint, on one line, not a traceback.
            raise fail(f"render failed: {type(exc).__name__}: {exc}") from None
        if tenant is not None:
            objects = [o for o in objects if _labels(o).get(TENANT_LABEL) == tenant]
            if not objects:
                raise fail(f"nothing rendered for tenant {tenant!r}")
        return objects

    def apply(
        self,
        ctx: typer.Context,
        tenant: Tenant = None,
        all_: All = False,
        dry_run: Annotated[
            DryRun, typer.Option("--dry-run", help="server: the API server checks, stores nothing.")
        ] = DryRun.NONE,
        prune: Annotated[
            bool, typer.Option("--prune", help="Delete what Bulkhead owns and no longer renders.")
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Take over fields another manager owns.")
        ] = False,
        allow_empty: AllowEmpty = False,
        config: ConfigFile = None,
        kubeconfig: Kubeconfig = None,
        context: Context = None,
        in_cluster: InCluster = False,
        service_account_dir: ServiceAccountDir = _SA_DIR,
        json_: JsonFlag = False,
    ) -> None:
        """Server-side apply the rendered objects (field manager `bulkhead`)."""
        if (tenant is None) == (not all_):
            raise fail("give --tenant T or --all", code=2)
        objects = self._render(ctx, config, tenant)
        cluster = _cluster(kubeconfig, context, in_cluster, service_account_dir)
        server = dry_run is DryRun.SERVER
        report = cluster.apply(objects, force=force, dry_run=server)
        if prune and not allow_empty and not any(TENANT_LABEL in _labels(o) for o in objects):
            raise fail(EMPTY_CATALOG)
        if prune:
            try:
                report.outcomes += cluster.prune(objects, tenant=tenant, dry_run=server).outcomes
            except ClusterError as exc:
                report.add(Outcome(ObjectRef("", "prune", "", "*"), "failed", exc.message))
        _print(report, json_)
        if not report.ok:
            raise typer.Exit(1)

    def diff(
        self,
        ctx: typer.Context,
        tenant: Tenant = None,
        all_: All = False,
        config: ConfigFile = None,
        kubeconfig: Kubeconfig = None,
        context: Context = None,
        in_cluster: InCluster = False,
        service_account_dir: ServiceAccountDir = _SA_DIR,
    ) -> None:
        """A unified diff per object from the live one to what applying would make."""
        if (tenant is None) == (not all_):
            raise fail("give --tenant T or --all", code=2)
        objects = self._render(ctx, config, tenant)
        cluster = _cluster(kubeconfig, context, in_cluster, service_account_dir)
        diffs = cluster.diff(objects)
        for d in diffs:
            if d.error:
                typer.echo(f"error: {d.ref}: {safe(d.error)}", err=True)
            elif d.text:
                typer.echo(safe(d.text, lines=True), nl=False)
        if any(d.error for d in diffs):
            raise typer.Exit(2)
        if any(d.changed for d in diffs):
            raise typer.Exit(1)

    def reconcile(
        self,
        ctx: typer.Context,
        watch_: Annotated[bool, typer.Option("--watch", help="Keep going until SIGTERM.")] = False,
        interval: Annotated[
            float, typer.Option("--interval", min=0.05, help="Seconds between runs.")
        ] = 30.0,
        max_backoff: Annotated[
            float, typer.Option("--max-backoff", min=0.05, help="Longest wait after failures.")
        ] = 300.0,
        allow_empty: AllowEmpty = False,
        config: ConfigFile = None,
        kubeconfig: Kubeconfig = None,
        context: Context = None,
        in_cluster: InCluster = False,
        service_account_dir: ServiceAccountDir = _SA_DIR,
        json_: JsonFlag = False,
    ) -> None:
        """Apply what the catalog renders and prune what it no longer does; once or --watch."""
        if self.renderer is None:
            raise fail("no renderer is wired into this command", code=2)
        render = self.renderer(config)
        cluster = _cluster(kubeconfig, context, in_cluster, service_account_dir)
        source = client(ctx)

        def step() -> ReconcileResult:
            return reconcile_once(source, render, cluster, allow_empty=allow_empty)

        if not watch_:
            result = step()
            _print_result(result, json_)
            if not result.ok:
                raise typer.Exit(1)
            return
        with _log_to_stderr(), _stop_on_signals() as stop:
            watch(
                step,
                stop=stop,
                interval_s=interval,
                max_backoff_s=max(max_backoff, interval),
                on_result=lambda r: _print_result(r, json_),
            )


def _cluster(
    kubeconfig: str | None, context: str | None, in_cluster: bool, sa_dir: Path
) -> Cluster:
    if in_cluster and (kubeconfig or context):
        raise fail("--in-cluster takes no --kubeconfig or --context", code=2)
    connection = Connection(
        in_cluster=in_cluster, kubeconfig=kubeconfig, context=context, service_account_dir=sa_dir
    )
    try:
        return Cluster.connect(connection)
    except ClusterError as exc:
        raise fail(exc.message) from None


def _labels(obj: Any) -> dict[str, Any]:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def _print(report: Report, json_: bool) -> None:
    if json_:
        emit({"ok": report.ok, "counts": report.counts(), "outcomes": _rows(report)}, True)
        return
    for outcome in report.outcomes:
        typer.echo(safe(outcome.line()), err=outcome.error is not None)


def _rows(report: Report) -> list[dict[str, Any]]:
    return [
        {"object": str(o.ref), "action": o.action, "error": o.error, "dry_run": o.dry_run}
        for o in report.outcomes
    ]


def _print_result(result: ReconcileResult, json_: bool) -> None:
    if json_:
        rows = _rows(result.applied) + _rows(result.pruned)
        body = {"ok": result.ok, "error": result.error, "counts": result.counts()}
        emit({**body, "outcomes": rows}, True)
        return
    if result.error:
        typer.echo(f"error: {safe(result.error)}", err=True)
    _print(result.applied, False)
    _print(result.pruned, False)


@contextmanager
def _log_to_stderr() -> Iterator[None]:
    """While watching, each action is logged to stderr (unless logging is set up already)."""
    logger = logging.getLogger("bulkhead.k8s")
    real = [h for h in logger.handlers if not isinstance(h, logging.NullHandler)]
    if real or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event SIGTERM and SIGINT set; the previous handlers come back afterwards."""
    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
