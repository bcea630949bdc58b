"""The worker's HTTP server: an OpenAI-compatible subset over a Unix domain socket.

Only the gateway talks to this server, through a socket that only the worker's user can
open, and every request must still carry the bearer token the supervisor handed over on
stdin. Responses mimic the OpenAI API closely enough that the gateway can proxy them
unchanged.

All model work runs on one dedicated thread (see ``ModelRunner``), so the event loop keeps
answering ``/healthz`` while a completion is being computed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import ssl
import stat
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from signal import SIGINT, SIGTERM
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from .backends import ChatBackend, EmbedBackend
from .errors import SERVER_ERROR, ApiError, error_body
from .routes import (
    GENERIC_SERVER_ERROR,
    ChatRoutes,
    EmbeddingRoutes,
    ModelRunner,
    json_response,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ModelRunner",
    "WorkerConfig",
    "build_chat_app",
    "build_embed_app",
    "json_response",
    "serve",
]

# 2048 embedding inputs of a few hundred characters each exceed aiohttp's 1 MiB default.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024
# In-flight streams get this long to finish when the worker is asked to stop.
SHUTDOWN_GRACE_SECONDS: Final = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Identity and credentials of this worker, fixed at start-up."""

    kind: str
    model_name: str
    token: bytes
    notice: str | None = None
    # In mTLS mode: raises ApiError unless the caller's certificate is the gateway's.
    check_peer: Callable[[ssl.SSLObject | None], None] | None = None


# --------------------------------------------------------------------------------------
# Middlewares
# --------------------------------------------------------------------------------------


def _error_middleware(kind: str) -> Middleware:
    """Render every failure as an OpenAI error and never leak internals to the client."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return json_response(exc.body(), status=exc.status)
        except web.HTTPException as exc:
            return _http_error(request, exc, kind)
        except Exception:
            # The traceback goes to stderr, which the supervisor collects; the client only
            # learns that something went wrong.
            logger.exception("Unhandled error in %s %s", request.method, request.path)
            return json_response(error_body(GENERIC_SERVER_ERROR, error_type=SERVER_ERROR), 500)

    return middleware


def _http_error(request: web.Request, exc: web.HTTPException, kind: str) -> web.Response:
    """Translate aiohttp's routing and body-size errors into OpenAI-shaped JSON."""
    if exc.status == 404:
        message = (
            f"Invalid URL ({request.method} {request.path}); a {kind} worker does not serve it."
        )
    elif exc.status == 405:
        message = f"Method {request.method} is not allowed for {request.path}."
    elif exc.status == 413:
        message = f"The request body is larger than {MAX_BODY_BYTES} bytes."
    else:
        message = exc.reason
    response = json_response(error_body(message), status=exc.status)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def _auth_middleware(token: bytes) -> Middleware:
    """Require ``Authorization: Bearer <token>`` on every request, /healthz included."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        presented = credential.strip().encode("utf-8", "surrogateescape")
        # compare_digest runs in time independent of where the strings differ.
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented, token):
            raise ApiError(401, "Invalid or missing worker token.", code="invalid_api_key")
        return await handler(request)

    return middleware


def _peer_middleware(check: Callable[[ssl.SSLObject | None], None]) -> Middleware:
    """Check the caller's certificate once per TLS connection, at its first request.

    The certificate cannot change within a connection, and a connection's later
    requests must not fail because the certificate it was opened with has since
    lapsed: rotation at half the lifetime gives new connections new certificates.
    """
    admitted: weakref.WeakKeyDictionary[ssl.SSLObject, bool] = weakref.WeakKeyDictionary()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport else None
        if ssl_object is None or ssl_object not in admitted:
            check(ssl_object)  # raises for a plaintext connection
            if ssl_object is not None:
                admitted[ssl_object] = True
        return await handler(request)

    return middleware


# --------------------------------------------------------------------------------------
# Application and serving
# --------------------------------------------------------------------------------------


def _base_app(config: WorkerConfig) -> web.Application:
    """Create the application with the middlewares and ``/healthz`` shared by all kinds."""
    middlewares = [_error_middleware(config.kind)]
    if config.check_peer is not None:
        middlewares.append(_peer_middleware(config.check_peer))
    middlewares.append(_auth_middleware(config.token))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    health: dict[str, object] = {"status": "ok", "kind": config.kind, "model": config.model_name}
    health["demo"] = config.notice is not None
    if config.notice is not None:
        health["notice"] = config.notice

    async def healthz(request: web.Request) -> web.StreamResponse:
        return json_response(health)

    app.router.add_get("/healthz", healthz)
    return app


def build_chat_app(
    config: WorkerConfig, backend: ChatBackend, runner: ModelRunner
) -> web.Application:
    """Build the application of a text generation worker."""
    app = _base_app(config)
    routes = ChatRoutes(backend, runner, config.model_name)
    app.router.add_post("/v1/chat/completions", routes.chat_completions)
    app.router.add_post("/v1/completions", routes.completions)
    return app


def build_embed_app(
    config: WorkerConfig, backend: EmbedBackend, runner: ModelRunner
) -> web.Application:
    """Build the application of an embedding worker."""
    app = _base_app(config)
    routes = EmbeddingRoutes(backend, runner, config.model_name)
    app.router.add_post("/v1/embeddings", routes.embeddings)
    return app


def remove_stale_socket(path: Path) -> None:
    """Delete a socket left behind by a previous run, but never any other kind of file.

    Refusing to unlink regular files and symlinks means a wrong ``--socket`` argument
    cannot make the worker delete something that is not its own.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it.")
    path.unlink()


async def _listen(
    runner: web.AppRunner, path: Path, ssl_context: ssl.SSLContext | None = None
) -> None:
    """Bind the Unix socket so that only this user can ever connect to it.

    The umask makes the socket 0600 from the moment it exists; the chmod afterwards is
    belt and braces for platforms that ignore the umask for sockets.
    """
    remove_stale_socket(path)
    previous_umask = os.umask(0o177)
    try:
        await web.UnixSite(runner, str(path), ssl_context=ssl_context).start()
    finally:
        os.umask(previous_umask)
    os.chmod(path, 0o600)


async def serve(
    app: web.Application,
    path: Path,
    on_ready: Callable[[], None],
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve ``app`` on the Unix socket ``path`` (over TLS with a context) until SIGTERM."""
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (SIGTERM, SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    listening = False
    try:
        await _listen(runner, path, ssl_context)
        listening = True
        on_ready()
        await stop.wait()
        logger.info("Stop signal received; shutting down.")
    finally:
        await runner.cleanup()
        # Only a socket this process bound is removed; a file that made _listen refuse to
        # start is left alone.
        if listening:
            path.unlink(missing_ok=True)
