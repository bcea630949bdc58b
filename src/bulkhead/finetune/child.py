"""The training process: ``python -m bulkhead.runtime.sandbox PLAN bulkhead.finetune.child``.

It runs confined (own uid, no network, memory cgroup, rlimits, seccomp, Landlock, no data dir)
and touches no file but the bundled model's, read-only.  On stdin, from the runner:

    one JSON line   {"base": "smollm2-135m" | null, "hyper": {...}, "nan_at_step": int | null}
    frames          (`bulkhead.runtime.worker.frames`) "examples/training.json",
                    "examples/validation.json" and, for an imported base, "model/<file>"

On stdout, one JSON object a line: events ({"kind": "status" | "metrics" | "checkpoint" |
"message", ...}), then {"kind": "end", "status": "succeeded" | "failed", ...}; after a success
the adapter files follow as frames.  Errors are reported by class, never with their message,
which could quote the training data.

Its stderr says nothing once this module runs: before a byte of the examples is read, fd 2
(and so `sys.stderr`, stray prints, the libraries' warnings and progress bars, a C
extension's own writes, a traceback) is pointed at /dev/null.  Whatever reads the process's
stderr (the runner's bounded tail, a pod's container log on a node's disk) so only sees
what the sandbox said before the trainer started, never the tenant's data.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, BinaryIO, Final

EXIT_FAILED: Final = 1
TRAINING: Final = "examples/training.json"
VALIDATION: Final = "examples/validation.json"
MODEL_PREFIX: Final = "model/"


def _emitter(out: BinaryIO) -> Any:
    def emit(event: dict[str, Any]) -> None:
        out.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        out.flush()

    return emit


def _run(stdin: BinaryIO, stdout: BinaryIO) -> int:
    emit = _emitter(stdout)
    header = json.loads(stdin.readline(1 << 16))
    emit({"kind": "status", "text": "loading"})
    import torch

    # The runner sets OMP_NUM_THREADS from the job's limits (one thread by default).
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1)))
    from bulkhead.finetune import train
    from bulkhead.finetune.contract import Hyper
    from bulkhead.runtime.worker import frames
    from bulkhead.runtime.worker.hf_causal import ModelFilesError

    files = dict(frames.decode(stdin))
    hyper = Hyper(**header["hyper"])
    training = json.loads(files.pop(TRAINING))
    validation = json.loads(files.pop(VALIDATION))
    model_files = {k.removeprefix(MODEL_PREFIX): v for k, v in files.items()}
    del files
    try:
        base = train.load_base(header["base"] if header["base"] else model_files)
        del model_files
        emit({"kind": "status", "text": "training"})
        result = train.train(
            base, training, validation, hyper, emit, nan_at_step=header.get("nan_at_step")
        )
    except train.NanLoss as exc:
        return _failed(emit, "nan_loss", str(exc))
    except (train.NoTrainableTokens, ModelFilesError) as exc:
        return _failed(emit, "invalid_data", str(exc))
    emit({"kind": "end", "status": "succeeded", "tokens": result.tokens})
    for chunk in frames.encode(result.adapter):
        stdout.write(chunk)
    stdout.flush()
    return 0


def _failed(emit: Any, reason: str, message: str) -> int:
    emit({"kind": "end", "status": "failed", "reason": reason, "message": message})
    return EXIT_FAILED


def silence_stderr() -> None:
    """Send fd 2 to /dev/null (see the module's docstring); raises if it cannot."""
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
    finally:
        os.close(null)


def main() -> int:
    stdout = sys.stdout.buffer
    try:
        silence_stderr()
        # Nothing else may write to the event stream: stray prints go to stderr (nowhere).
        sys.stdout = sys.stderr
        return _run(sys.stdin.buffer, stdout)
    except MemoryError:
        return _failed(_emitter(stdout), "oom", "the job ran out of memory")
    except Exception as exc:
        # The class only: a message could quote the training data.
        return _failed(_emitter(stdout), "crashed", f"the trainer failed: {type(exc).__name__}")


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)
