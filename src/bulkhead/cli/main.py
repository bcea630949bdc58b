"""Top-level command, global options and error handling."""

from __future__ import annotations

from typing import Annotated

import typer

from bulkhead.cli import (
    access,
    admin,
    audit,
    finetune,
    gpu,
    init,
    k8s,
    key,
    kms,
    login,
    model,
    quota,
    serve,
    tenant,
    upstream,
    vectors,
    worker,
)
from bulkhead.cli.client import ApiError
from bulkhead.cli.output import fail
from bulkhead.errors import ConfigError

app = typer.Typer(
    name="bulkhead",
    no_args_is_help=True,
    add_completion=False,
    help="Bulkhead: a secure multi-tenant gateway for LLMs.",
)


@app.callback()
def _options(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(help="Server URL (env BULKHEAD_URL).")] = None,
    api_key: Annotated[
        str | None, typer.Option("--key", help="API key (env BULKHEAD_KEY).")
    ] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data dir (env BULKHEAD_DATA_DIR).")] = None,
) -> None:
    ctx.obj = {"server": server, "key": api_key, "data_dir": data_dir}


app.command("init")(init.init)
app.command("serve")(serve.serve)
app.command("login")(login.login)
app.command("logout")(login.logout)
app.add_typer(tenant.app, name="tenant")
app.add_typer(key.app, name="key")
app.add_typer(model.app, name="model")
app.add_typer(audit.app, name="audit")
app.add_typer(kms.app, name="kms")
app.add_typer(access.app, name="access")
app.add_typer(admin.app, name="admin")
app.add_typer(quota.app, name="quota")
app.add_typer(gpu.app, name="gpu")
app.add_typer(worker.app, name="worker")
app.add_typer(upstream.app, name="upstream")
app.add_typer(k8s.app, name="k8s")
app.add_typer(finetune.app, name="finetune")
app.add_typer(vectors.app, name="vectors")


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except ApiError as exc:
        raise SystemExit(fail(exc.describe()).exit_code) from None
    except ConfigError as exc:
        raise SystemExit(fail(exc.message, code=2).exit_code) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(1) from None
    except Exception as exc:  # click's usage errors carry their own exit code
        code = getattr(exc, "exit_code", None)
        if code is not None and hasattr(exc, "show"):
            exc.show()
            raise SystemExit(code) from None
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)
