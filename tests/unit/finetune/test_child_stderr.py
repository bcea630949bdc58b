"""A training process's stderr never carries the tenant's data (`child`, `stderr_tail`).

The attacker's data is the training set: a trainer (or a library under it) that prints an
example, logs a loss line quoting one, warns, or dies with one in its exception must not
put it on the process's stderr, which the local runner used to share with the gateway (and
so its log files) and which a pod's container runtime writes to the node's disk.  The
child runs here as a real process, its trainer replaced by one that does all of that.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys

import pytest

from bulkhead.crypto.channel import ChannelOpener
from bulkhead.finetune import runner
from bulkhead.finetune.child import TRAINING, VALIDATION
from bulkhead.finetune.contract import TrainInput
from bulkhead.finetune.stderr_tail import MAX_TAIL_BYTES, StderrTail, scrub
from bulkhead.finetune.stream import seal_line
from bulkhead.runtime.sandbox import SandboxMode
from bulkhead.runtime.worker import frames

MARKER = "zqxsecrettrainingline"
EXAMPLE = {"messages": [{"role": "user", "content": f"my card is {MARKER} 4111-1111"}]}

# The trainer the child runs: noisy in every way a library can be, with the example in hand.
NOISY = """
import logging, os, sys, types, warnings
from bulkhead.finetune import train

logging.basicConfig(stream=sys.stderr, level=logging.INFO)  # as the sandbox configures it


def noisy_train(base, training, validation, hyper, emit, nan_at_step=None):
    line = repr(training[0])
    print("step 1 loss 2.5 on", line)
    sys.stderr.write("example: " + line + "\\n")
    os.write(2, ("raw: " + line + "\\n").encode())
    logging.getLogger("transformers").warning("truncated %s", line)
    warnings.warn("odd example " + line)
    if os.environ.get("NOISY_CRASH"):
        raise ValueError("cannot tokenize " + line)
    return types.SimpleNamespace(tokens=7, adapter=[("adapter_config.json", b"{}")])


train.load_base = lambda spec: object()
train.train = noisy_train
from bulkhead.finetune import {module}
code = {module}.main()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""


def stdin_for(job_header: bytes) -> bytes:
    data = [(TRAINING, json.dumps([EXAMPLE]).encode()), (VALIDATION, b"[]")]
    return job_header + b"".join(bytes(c) for c in frames.encode(data))


def run_child(module: str, stdin: bytes, crash: bool = False) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONWARNINGS": "always"}
    if crash:
        env["NOISY_CRASH"] = "1"
    return subprocess.run(
        [sys.executable, "-c", NOISY.replace("{module}", module)],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )


HEADER = json.dumps({"base": "x", "hyper": {}, "nan_at_step": None}).encode() + b"\n"


@pytest.mark.parametrize("crash", [False, True], ids=["succeeds", "crashes"])
def test_the_child_says_nothing_on_stderr(crash: bool) -> None:
    done = run_child("child", stdin_for(HEADER), crash=crash)
    assert done.stderr == b"", done.stderr[-2000:]
    assert MARKER.encode() not in done.stdout
    events = [json.loads(line) for line in done.stdout.split(b"\n") if line.startswith(b"{")]
    end = next(e for e in events if e["kind"] == "end")
    if crash:  # the class only, as before: the message quotes the example
        assert end == {
            "kind": "end",
            "status": "failed",
            "reason": "crashed",
            "message": "the trainer failed: ValueError",
        }
    else:
        assert end["status"] == "succeeded", events


def test_the_sealed_child_of_a_pod_says_nothing_on_stderr() -> None:
    key = os.urandom(32)
    done = run_child("stream", seal_line(key) + stdin_for(HEADER), crash=True)
    assert done.stderr == b"", done.stderr[-2000:]
    assert MARKER.encode() not in done.stdout
    plain = ChannelOpener(key).feed(done.stdout)
    assert b'"reason":"crashed"' in plain and MARKER.encode() not in plain


def test_a_child_that_cannot_silence_its_stderr_reads_no_example() -> None:
    # No /dev/null to open (as in a broken sandbox): it fails before reading stdin.
    script = (
        "import os, sys\n"
        "os.devnull = '/nonexistent/null'\n"
        "from bulkhead.finetune import child\n"
        "code = child.main()\n"
        "sys.stdout.flush()\n"
        "os._exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=stdin_for(HEADER),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert b'"reason":"crashed"' in done.stdout and b"loading" not in done.stdout


# The runner's side ---------------------------------------------------------------------------

SANDBOX_SAID = b"2026-12-07 10:00:00,123 ERROR bulkhead.sandbox: Refusing to start: no cgroup.\n"


def test_scrub_keeps_the_sandboxs_lines_and_withholds_the_rest() -> None:
    tail = (
        SANDBOX_SAID
        + f"step 3 loss 1.2 {MARKER}\n".encode()
        + f"2026-12-07 10:00:01,000 WARNING transformers: {MARKER}\n".encode()
        + b"\x1b[31mred\x1b[0m \xff\xfe\n"
    )
    lines = scrub(tail)
    assert lines == [SANDBOX_SAID.decode().strip(), "(3 other lines withheld)"]
    assert all(line.isascii() and "\x1b" not in line for line in lines)
    # A line in the sandbox's format is still cut short and printable.
    forged = b"2026-12-07 10:00:00,123 ERROR bulkhead.sandbox: " + b"\x1b]0;x\x07A" * 500 + b"\n"
    (only,) = scrub(forged)
    assert len(only) <= 200 and "\x1b" not in only and "\x07" not in only


def test_the_runner_reads_stderr_into_a_bounded_tail_and_logs_it_scrubbed(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    noisy = (
        "import os, sys\n"
        f"sys.stderr.buffer.write({SANDBOX_SAID!r})\n"
        f"line = b'example: {MARKER} ' * 50 + b'\\n'\n"
        "for _ in range(20000): os.write(2, line)\n"  # ~20 MiB: drained, never all held
        "os.write(2, b'loss 0.1\\n')\n"
    )

    async def go() -> StderrTail:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", noisy, stderr=asyncio.subprocess.PIPE
        )
        tail = StderrTail("ftjob-1", process.stderr)
        await process.wait()
        await tail.close()
        return tail

    with caplog.at_level(logging.DEBUG):
        tail = asyncio.run(go())
    assert tail.total > 20_000_000 and len(tail.tail) <= MAX_TAIL_BYTES
    assert MARKER not in caplog.text and MARKER not in capfd.readouterr().err
    (record,) = [r for r in caplog.records if "ftjob-1" in r.getMessage()]
    # The sandbox's line had scrolled out of the tail: only a count is left.
    assert "other lines withheld" in record.getMessage()


def test_the_sandbox_runners_job_gets_a_pipe_not_the_gateways_stderr(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # The real child, unconfined here, on an imported "model" that is garbage quoting data.
    job = TrainInput(
        base=[("config.json", f"{{not json {MARKER}".encode())],
        training=[EXAMPLE],
        validation=[EXAMPLE],
    )

    async def go() -> tuple[runner.SandboxRunHandle, bool]:
        jobs = runner.SandboxRunner(runner.RunnerConfig(mode=SandboxMode.OFF))
        try:
            handle = await jobs.start("ftjob-2", "tenant-a", job)
            outcome = await handle.outcome()
            return handle, outcome.succeeded
        finally:
            await jobs.close()

    with caplog.at_level(logging.DEBUG):
        handle, succeeded = asyncio.run(go())
    assert not succeeded and handle.process.stderr is not None
    assert MARKER not in caplog.text and MARKER not in capfd.readouterr().err
