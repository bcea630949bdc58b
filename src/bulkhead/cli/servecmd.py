"""`bulkhead serve` as a typer command: the command line `cli/serveargs.py` leaves to typer
(`--help`, an option it does not know, a value that looks like an option).  A plain one
runs `serve.run` without importing this module, typer or click (`cli/main.py`)."""

from __future__ import annotations

from typing import Annotated

import typer

from bulkhead.cli import serve as serving
from bulkhead.cli.flags import JsonFlag, data_dir_option


def serve(
    ctx: typer.Context,
    data_dir: Annotated[str | None, typer.Option(help="Data dir (env BULKHEAD_DATA_DIR).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the public API.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Metrics port (0: off).")] = None,
    tls_cert: Annotated[
        str | None,
        typer.Option(help="PEM certificate chain: serve over TLS (env BULKHEAD_TLS_CERT)."),
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option(help="PEM private key of --tls-cert (env BULKHEAD_TLS_KEY).")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Serve the OpenAI-compatible API, the management APIs and /healthz."""
    serving.run(
        data_dir=data_dir_option(ctx, data_dir),
        host=host,
        port=port,
        metrics_port=metrics_port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        json_=json_,
    )
