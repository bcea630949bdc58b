"""Command-line entry point: ``python -m bulkhead.runtime.worker``.

The supervisor starts one worker per model, writes the worker's bearer token as the first
line of its stdin (so the token never appears in ``ps`` output or the environment), and
waits for a single ``READY <socket>`` line on stdout before routing traffic to it.
An ``hf-causal`` worker then reads its model files from stdin as length-prefixed frames
(`frames`), so its decrypted weights live in memory only and never in a file.
With ``--mtls`` the worker next reads its SVID from stdin, serves TLS, admits only the
gateway's certificate, and keeps reading renewed SVIDs until stdin closes (`identity`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final, NoReturn

from aiohttp import web

from bulkhead.runtime.lineage import die_with_supervisor

from . import frames
from .server import (
    ModelRunner,
    WorkerConfig,
    build_chat_app,
    build_embed_app,
    remove_stale_socket,
    serve,
)

if TYPE_CHECKING:
    from .identity import WorkerIdentity

# smollm2-135m: a model bundled in an installed package (`bundled`), found by its kind.
# hf-causal-lora: a fine-tuned model, base + LoRA adapter, all of it on stdin (`lora`).
KINDS: Final = ("demo-chat", "minilm-embed", "hf-causal", "smollm2-135m", "hf-causal-lora")
TORCH_KINDS: Final = frozenset({"hf-causal", "smollm2-135m", "hf-causal-lora"})
WEIGHTS_ON_STDIN: Final = frozenset({"hf-causal", "hf-causal-lora"})
MAX_TOKEN_BYTES: Final = 4096
MAX_MODEL_NAME_LENGTH: Final = 256

logger = logging.getLogger("bulkhead.runtime.worker")


class StartupError(Exception):
    """A problem with the arguments or the token that makes the worker refuse to start."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bulkhead.runtime.worker",
        description="Serve one local model over HTTP on a Unix domain socket. The bearer "
        "token that clients must present is read from the first line of stdin.",
    )
    parser.add_argument("--socket", required=True, type=Path, help="Unix socket path to create")
    parser.add_argument("--kind", required=True, choices=KINDS, help="which model to serve")
    parser.add_argument("--model-name", required=True, help="name reported in responses")
    parser.add_argument("--seed", type=int, default=0, help="weight seed of demo-chat")
    parser.add_argument(
        "--mtls", action="store_true", help="read SVIDs from stdin and serve mutual TLS"
    )
    args = parser.parse_args(argv)
    if not args.model_name or len(args.model_name) > MAX_MODEL_NAME_LENGTH:
        parser.error(f"--model-name must be 1 to {MAX_MODEL_NAME_LENGTH} characters long")
    return args


def read_token() -> bytes:
    """Read the bearer token from the first line of stdin."""
    line = sys.stdin.buffer.readline(MAX_TOKEN_BYTES + 2)
    token = line.rstrip(b"\r\n")
    if not token:
        raise StartupError("no token on the first line of stdin")
    if len(token) > MAX_TOKEN_BYTES or any(byte <= 0x20 or byte >= 0x7F for byte in token):
        raise StartupError(
            f"the token must be 1 to {MAX_TOKEN_BYTES} printable ASCII characters, no spaces"
        )
    return token


def read_stdin(kind: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The token and, for kinds that get them, the model files."""
    token = read_token()
    if kind not in WEIGHTS_ON_STDIN:
        return token, []
    try:
        return token, frames.decode(sys.stdin.buffer)
    except (frames.FrameError, UnicodeDecodeError) as exc:
        raise StartupError(f"bad model files on stdin: {exc}") from None


def read_identity() -> WorkerIdentity:
    """The first SVID; later ones are read by `WorkerIdentity.follow`."""
    from .identity import WorkerIdentity, read_identity

    try:
        return WorkerIdentity(*read_identity(sys.stdin.buffer))
    except (frames.FrameError, UnicodeDecodeError, ValueError, ssl.SSLError) as exc:
        raise StartupError(f"bad certificate on stdin: {exc}") from None


def read_startup(
    args: argparse.Namespace,
) -> tuple[bytes, list[tuple[str, bytes]], WorkerIdentity | None]:
    """Everything the supervisor sends before the worker starts serving.

    Without mTLS stdin is closed afterwards, so nothing else in the process can later
    read from the supervisor's pipe by accident; with it, stdin carries renewals.
    """
    try:
        token, files = read_stdin(args.kind)
        identity = read_identity() if args.mtls else None
    except BaseException:
        sys.stdin.close()
        raise
    if identity is None:
        sys.stdin.close()
    else:
        identity.follow(sys.stdin.buffer)
    return token, files, identity


def load_app(
    args: argparse.Namespace,
    token: bytes,
    runner: ModelRunner,
    files: list[tuple[str, bytes]] | None = None,
    check_peer: Callable[[ssl.SSLObject | None], None] | None = None,
) -> web.Application:
    """Load the model for ``args.kind`` and build its application.

    The model modules are imported here, not at the top, so that a worker only pays for
    the libraries its own kind needs.
    """
    if args.kind == "demo-chat":
        from .demo_chat import DEMO_NOTICE, DemoChatModel

        config = WorkerConfig(
            args.kind, args.model_name, token, notice=DEMO_NOTICE, check_peer=check_peer
        )
        return build_chat_app(config, DemoChatModel(seed=args.seed), runner)
    if args.kind == "hf-causal":
        from .hf_causal import ImportedChatModel

        config = WorkerConfig(args.kind, args.model_name, token, check_peer=check_peer)
        return build_chat_app(config, ImportedChatModel(dict(files or ())), runner)
    if args.kind == "hf-causal-lora":
        from .lora import load_chat_model

        config = WorkerConfig(args.kind, args.model_name, token, check_peer=check_peer)
        return build_chat_app(config, load_chat_model(files or []), runner)
    if args.kind == "smollm2-135m":
        from .bundled import BundledChatModel

        config = WorkerConfig(args.kind, args.model_name, token, check_peer=check_peer)
        return build_chat_app(config, BundledChatModel(args.kind), runner)
    from .embed import MiniLMEmbedder

    config = WorkerConfig(args.kind, args.model_name, token, check_peer=check_peer)
    return build_embed_app(config, MiniLMEmbedder(), runner)


def preload(kind: str) -> None:
    """Import the heavy libraries of `kind` before waiting for its model files.

    The supervisor decrypts and verifies an imported model while the worker
    starts; importing torch and transformers meanwhile hides that time.
    """
    if kind in TORCH_KINDS:
        import torch
        from transformers import PreTrainedModel  # noqa: F401

        from . import hf_causal  # noqa: F401

        if torch.cuda.is_available():
            # A shared GPU: cap this process's share of its memory (BULKHEAD_GPU_MEMORY_FRACTION).
            from bulkhead.runtime.gpu import apply_memory_cap

            apply_memory_cap(torch.cuda, os.environ)


def _exit_on_sigterm(signal_number: int, frame: FrameType | None) -> NoReturn:
    """Turn a SIGTERM that arrives while the model loads into a normal exit."""
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Run the worker until it is told to stop; return the process exit status."""
    # Killed by the kernel when the supervisor dies (also outside the sandbox).
    die_with_supervisor()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = parse_args(argv)
    # Until the event loop installs its own handler, SIGTERM should still exit cleanly.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    preload(args.kind)
    try:
        token, files, identity = read_startup(args)
    except StartupError as exc:
        logger.error("Refusing to start: %s.", exc)
        return 2
    try:
        # Checked before the slow model load so that a bad path fails fast; serve()
        # checks again right before binding.
        remove_stale_socket(args.socket)
    except OSError as exc:
        logger.error("Refusing to start: %s", exc)
        return 1
    runner = ModelRunner()
    try:
        try:
            check = identity.check_peer if identity is not None else None
            app = load_app(args, token, runner, files, check)
        except Exception as exc:
            # Bad imported model files: say what, never the bytes.
            logger.error(
                "Refusing to start: the model does not load: %s: %.300s", type(exc).__name__, exc
            )
            return 1
        del files
        logger.info("Loaded %s model %r.", args.kind, args.model_name)

        def announce() -> None:
            # stdout carries nothing but this line, so the supervisor can parse it blindly.
            print(f"READY {args.socket}", flush=True)

        context = identity.server_context() if identity is not None else None
        asyncio.run(serve(app, args.socket, announce, context))
    except FileExistsError as exc:
        logger.error("Refusing to start: %s", exc)
        return 1
    finally:
        runner.shutdown()
    logger.info("Worker stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
