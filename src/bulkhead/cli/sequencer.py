"""`bulkhead audit sequencer`: run only the audit sequencer (`bulkhead.app.sequencing`).

For a deployment that gives the sequencer a process of its own (the Kubernetes
package's `bulkhead-audit-sequencer`). It listens on nothing. SIGTERM or SIGINT
stops it: the audit writer commits what it holds, a last checkpoint is signed,
and it exits 0.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from bulkhead.cli.flags import data_dir_option
from bulkhead.cli.output import JsonFlag
from bulkhead.settings import load


def sequencer(
    ctx: typer.Context,
    data_dir: Annotated[str | None, typer.Option(help="Data dir (env BULKHEAD_DATA_DIR).")] = None,
    json_: JsonFlag = False,
) -> None:
    """Sign the audit log's checkpoints until SIGTERM (no listener, no workers)."""
    from bulkhead.app import run_sequencer  # Only init, serve and this wire the app.

    settings = load(data_dir=data_dir_option(ctx, data_dir))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()

    def _stop(sig: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _say("running (SIGTERM stops it)", json_)
    run_sequencer(settings, stop)
    _say("stopped", json_)


def _say(status: str, json_: bool) -> None:
    """A line on stderr, or with --json one JSON object a line on stdout."""
    if json_:
        typer.echo(json.dumps({"sequencer": status.split(" ", 1)[0]}))
    else:
        typer.echo(f"bulkhead audit sequencer {status}", err=True)
