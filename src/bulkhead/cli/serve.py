"""`bulkhead serve`: run the gateway (and its local workers) in this process.

It runs `web.server` with the `BULKHEAD_HTTP_*` limits (or uvicorn,
`BULKHEAD_HTTP_SERVER=uvicorn`, which the settings refuse unless the operator
acknowledges that it leaves slow clients unbounded).  SIGTERM
drains it (`web.server`, `web.drain`): the listener closes at once, calls and
streams in flight finish (each answered only once its audit record is
durable, with `connection: close`) for up to `shutdown_grace_s`, idle
connections are left to their clients or the keep-alive timeout, and what is
left at the end of the grace period is cancelled; the application's shut-down
then commits every queued audit event and signs a last checkpoint, and the
process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import ssl
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from bulkhead.settings import Settings, load

if TYPE_CHECKING:
    from bulkhead.web.server import ServerConfig


def run(
    *,
    data_dir: str | None,
    host: str | None,
    port: int | None,
    metrics_port: int | None,
    tls_cert: str | None,
    tls_key: str | None,
    json_: bool,
) -> None:
    """`serve` with its options parsed: by typer (`cli/servecmd.py`), or by
    `cli/serveargs.py` when the command line is plain (then typer, and pydantic with its
    parser, never loads)."""
    from bulkhead.app import build, server_ssl_context  # Only init and serve wire the app.

    settings = load(
        data_dir=data_dir,
        host=host,
        port=port,
        metrics_port=metrics_port,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    application = build(settings)
    assert application.ca is not None
    context = server_ssl_context(settings, application.ca)
    scheme = "https" if context is not None else "http"
    if settings.metrics_port:
        token_file = settings.metrics_token_file
        token = token_file.read_text(encoding="utf-8").strip() if token_file else None
        application.metrics.serve(settings.metrics_host, settings.metrics_port, token)
    print(
        f"bulkhead serving on {scheme}://{settings.host}:{settings.port} "
        f"(metrics on {settings.metrics_host}:{settings.metrics_port})",
        file=sys.stderr if json_ else sys.stdout,
        flush=True,
    )
    open_files_for(settings.http_max_connections)
    _run(application, settings, context)


# Beyond two descriptors a connection (the client's and its upstream's): the database,
# the audit log, listeners, the tokenizer's and models' files, log files.
_SPARE_FILES = 1024


def open_files_for(max_connections: int) -> int:
    """Raise this process's open-file limit (`RLIMIT_NOFILE`, soft) as far as the hard
    limit allows towards what `max_connections` needs; warn, naming the setting, where
    the hard limit is lower.  Past the limit `accept` fails (EMFILE) and new clients
    wait, so the operator should know at start-up rather than under load.  Returns the
    soft limit now in force."""
    wanted = 2 * max_connections + _SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        soft = ceiling
    if soft != resource.RLIM_INFINITY and soft < wanted:
        logging.getLogger("bulkhead").warning(
            "BULKHEAD_HTTP_MAX_CONNECTIONS=%d needs about %d open files (a client's "
            "connection and its upstream's, and %d spare) but the hard limit is %d: raise "
            "it (ulimit -n, systemd LimitNOFILE=, the container runtime's nofile) or lower "
            "BULKHEAD_HTTP_MAX_CONNECTIONS",
            max_connections,
            wanted,
            _SPARE_FILES,
            soft,
        )
    return soft


def _run(application: Any, settings: Settings, context: ssl.SSLContext | None) -> None:
    if settings.http_server != "bulkhead":
        _run_uvicorn(application, settings, context)
        return
    from bulkhead.web.server import Server

    server = Server(application, server_config(settings, context))
    server.run()
    if not server.started:
        raise SystemExit(3)  # the application did not start
    logging.getLogger("bulkhead").info("drained: exiting")


def server_config(settings: Settings, context: ssl.SSLContext | None) -> ServerConfig:
    """The lean server's listener and limits, from the `BULKHEAD_HTTP_*` settings."""
    from bulkhead.web.server import ServerConfig

    return ServerConfig(
        host=settings.host,
        port=settings.port,
        ssl=context,
        keep_alive_s=settings.http_keep_alive_s,
        head_timeout_s=settings.http_head_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
        send_timeout_s=settings.http_send_timeout_s,
        grace_s=settings.shutdown_grace_s,
        max_connections=settings.http_max_connections,
    )


def _run_uvicorn(application: Any, settings: Settings, context: ssl.SSLContext | None) -> None:
    """uvicorn, as `uvicorn.run` would, with the draining server (`web.drain`)."""
    from bulkhead.web.drain import DrainingServer

    server = DrainingServer(uvicorn_config(application, settings, context))
    signal.signal(signal.SIGTERM, _drained)  # uvicorn's own handler drains first
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE


def uvicorn_config(application: Any, settings: Settings, context: ssl.SSLContext | None) -> Any:
    """uvicorn's `Config` for `bulkhead serve` (`BULKHEAD_HTTP_SERVER=uvicorn`)."""
    import uvicorn

    from bulkhead.web.drain import DrainingHttpProtocol

    return uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # uvicorn's httptools protocol, plus the ASGI TLS extension (the client certificate)
        # and the drain on SIGTERM.
        http=DrainingHttpProtocol,
        # TLS 1.2+ with modern ciphers, asking for (not demanding) client certificates.
        ssl_context_factory=(lambda config, default: context) if context is not None else None,
        lifespan="on",
        ws="none",  # HTTP only: the chain's layers guard "http" scopes, so no websockets
        access_log=False,
        log_level="warning",
        server_header=False,
        # The client address in audit events is the socket peer: forwarded-for
        # headers are not trusted unless a deployment puts a proxy in front.
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        # What uvicorn has of the lean server's limits: the idle timeout, and a cap that
        # answers 503 to calls past it (the sockets stay open). No head, body or send
        # timeout: hence `BULKHEAD_HTTP_UVICORN_UNBOUNDED` (docs/operations.md).
        timeout_keep_alive=settings.http_keep_alive_s,
        limit_concurrency=settings.http_max_connections,
    )


def _drained(sig: int, frame: FrameType | None) -> None:
    """SIGTERM once uvicorn has drained: it raises the signal again after its shut-down
    so that the default action would end the process; by then every call has been
    answered and the audit log flushed, so it ends as a clean exit (0) instead."""
    logging.getLogger("bulkhead").info("drained after SIGTERM: exiting")
