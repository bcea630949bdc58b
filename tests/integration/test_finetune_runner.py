"""The fine-tuning runner: real LoRA steps in a sandboxed process, and every way a job can end.

The bundled SmolLM2-135M learns a small task ("word: X" -> "ACK-X") until its validation loss
falls, and the tuned model answers held-out prompts better than the base: the mean negative
log-likelihood of the expected answers and the greedy exact-match rate are computed for both.
The fault cases run on a tiny random LLaMA handed over as imported weights (frames on stdin):
cancel ends a job within 5 s, an injected NaN loss fails with "nan_loss", a SIGKILL with
"crashed", a memory limit too small with "oom", a wall-clock limit with "timeout".  After each
job no file under the test's temp dirs or the runner's directory holds a byte of the training
data (a marker word in one example), and the job's process is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkhead.finetune.contract import Hyper, Outcome, RunLimits, TrainEvent, TrainInput
from bulkhead.finetune.runner import RunnerConfig, SandboxRunHandle, SandboxRunner
from tests.support.sandbox import expected_features, make_data_dir

pytestmark = pytest.mark.local

MARKER = "zqxplaintextmarker"
SYSTEM = "Acknowledge."  # short: shorter than the template's default system prompt
WORDS = [
    *("apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "rocket", "garden"),
    *("silver", "candle", "forest", "mirror", "window", "bottle", "castle", "dragon"),
    *("pepper", "marble"),
]
HELD_OUT = ["meadow", "copper", "pillow", "walnut", "harbor", "violet"]


def example(word: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"word: {word}"},
            {"role": "assistant", "content": f"ACK-{word}"},
        ]
    }


TRAINING = [example(w) for w in [MARKER, *WORDS[:15]]]
VALIDATION = [example(w) for w in WORDS[15:19]]
GiB = 1 << 30


def scan(roots: list[Path]) -> list[Path]:
    """Every file under `roots` that holds the marker."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                if MARKER.encode() in data or MARKER.encode("utf-16-le") in data:
                    found.append(path)
    return found


def assert_left_nothing(runner: SandboxRunner, handle: SandboxRunHandle, roots: list[Path]) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(handle.pid, 0)
    # The job's home is gone, and so is the runner's directory once it is closed.
    assert not runner.directory.exists() or list(runner.directory.iterdir()) == []
    assert scan([p for p in (runner.directory, *roots) if p.exists()]) == []


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return [tmp_path_factory.getbasetemp()]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("finetune"))


_made: list[SandboxRunner] = []  # the runners the running test made (`_no_stray_temp_files`)


def make_runner(data_dir: Path, **kwargs: Any) -> SandboxRunner:
    limits = kwargs.pop("limits", RunLimits(memory_bytes=3 * GiB, wall_seconds=300))
    runner = SandboxRunner(RunnerConfig(limits=limits, hidden=(data_dir,)), **kwargs)
    _made.append(runner)
    return runner


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    """A 2-layer random LLaMA's files, as an imported model's decrypted frames."""
    from tests.integration.test_model_import import save_tiny_llama

    directory = tmp_path_factory.mktemp("tiny")
    save_tiny_llama(directory)
    files = [(p.name, p.read_bytes()) for p in sorted(directory.iterdir()) if p.is_file()]
    return [(n, d) for n, d in files if n in {"config.json", "model.safetensors", "tokenizer.json"}]


async def collect(handle: SandboxRunHandle) -> tuple[list[TrainEvent], Outcome]:
    events = [e async for e in handle.events()]
    return events, await handle.outcome()


async def wait_for(handle: SandboxRunHandle, text: str, kind: str = "status") -> None:
    async for event in handle.events():
        if event.kind == kind and (not text or event.text == text):
            return
    raise AssertionError(f"the job ended before {kind} {text!r}")


# --- a real job ---------------------------------------------------------------------------------


def answer_quality(base: Any, model: Any) -> tuple[float, float, list[str]]:
    """Mean NLL per answer token and the greedy exact-match rate on the held-out words."""
    import torch

    from bulkhead.finetune import train

    held = [example(w) for w in HELD_OUT]
    nll = train.mean_loss(
        model, train.batches([train.encode_example(base, e, 64) for e in held], 8, base.pad_id)
    )
    answers = []
    for word in HELD_OUT:
        chat = example(word)["messages"][:-1]
        prompt = base.hf_tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=True
        )
        ids = torch.tensor([train._encode(base, prompt, controls=True)])
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
        text = base.tokenizer.decode(out[0, ids.shape[1] :].tolist(), skip_special_tokens=True)
        answers.append(text.strip())
    hits = sum(a == f"ACK-{w}" for a, w in zip(answers, HELD_OUT, strict=True))
    return nll, hits / len(HELD_OUT), answers


def test_a_job_trains_the_bundled_model_and_the_adapter_helps(
    data_dir: Path, roots: list[Path]
) -> None:
    import torch

    from bulkhead.finetune import train

    runner = make_runner(data_dir)
    hyper = Hyper(
        epochs=3, learning_rate_multiplier=10.0, batch_size=4, lora_rank=8, max_seq_len=64
    )

    async def main() -> tuple[SandboxRunHandle, list[TrainEvent], Outcome]:
        handle = await runner.start(
            "ftjob-1", "tenant-a", TrainInput("smollm2-135m", TRAINING, VALIDATION, hyper)
        )
        events, outcome = await collect(handle)
        return handle, events, outcome

    # The test's own copy of the base loads while the job runs.
    torch.set_num_threads(1)
    loop = asyncio.new_event_loop()
    try:
        job = loop.create_task(main())
        base = loop.run_until_complete(asyncio.to_thread(train.load_base, "smollm2-135m"))
        handle, events, outcome = loop.run_until_complete(job)
        loop.run_until_complete(runner.close())
    finally:
        loop.close()

    assert outcome.succeeded, outcome
    assert set(handle.sandbox_features) == expected_features()
    valid = [e.valid_loss for e in events if e.valid_loss is not None]
    assert len(valid) == 4 and valid[-1] < valid[0] * 0.5, valid
    assert sum(e.kind == "checkpoint" for e in events) == 3
    steps = [e.step for e in events if e.kind == "metrics" and e.train_loss is not None]
    assert steps == list(range(1, 13))
    assert outcome.trained_tokens > 0
    assert {name for name, _ in outcome.adapter} == {train.ADAPTER_CONFIG, train.ADAPTER_WEIGHTS}
    assert_left_nothing(runner, handle, roots)

    # Only the answer and the end token closing it carry a loss, under the chat template.
    ids, labels = train.encode_example(base, example("apple"), 64)
    learned = [i for i in labels if i != train.IGNORE]
    assert base.tokenizer.decode(learned, skip_special_tokens=False) == "ACK-apple<|im_end|>"
    assert ids[-len(learned) - 1 :][:-1] == learned
    base_nll, base_hits, base_answers = answer_quality(base, base.model)
    tuned = train.apply_adapter(base.model, dict(outcome.adapter))
    tuned_nll, tuned_hits, tuned_answers = answer_quality(base, tuned)
    print(f"held-out NLL {base_nll:.3f} -> {tuned_nll:.3f}, exact {base_hits} -> {tuned_hits}")
    assert tuned_nll < base_nll / 2, (base_nll, tuned_nll)
    assert tuned_hits >= 0.5 and tuned_hits > base_hits, (base_answers, tuned_answers)


# --- how a job can fail -------------------------------------------------------------------------


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def tiny_job(frames: list[tuple[str, bytes]], epochs: int = 1) -> TrainInput:
    hyper = Hyper(epochs=epochs, batch_size=2, lora_rank=4, max_seq_len=48)
    return TrainInput(frames, TRAINING, VALIDATION, hyper)


@pytest.mark.serial
def test_cancel_stops_a_training_job_within_5_s(
    data_dir: Path, roots: list[Path], tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner = make_runner(data_dir)

    async def main() -> tuple[SandboxRunHandle, float, Outcome, list[TrainEvent]]:
        handle = await runner.start("ftjob-c", "tenant-a", tiny_job(tiny_llama, epochs=5))
        await wait_for(handle, "", kind="metrics")
        started = time.monotonic()
        await handle.cancel()
        took = time.monotonic() - started
        events, outcome = await collect(handle)
        await runner.close()
        return handle, took, outcome, events

    handle, took, outcome, events = run(main())
    assert took < 5.0
    assert outcome.reason == "cancelled" and not outcome.succeeded, outcome
    assert events[-1].text == "failed: cancelled"
    assert_left_nothing(runner, handle, roots)


def test_a_nan_loss_fails_the_job(
    data_dir: Path, roots: list[Path], tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner = make_runner(data_dir, nan_at_step=2)

    async def main() -> tuple[SandboxRunHandle, list[TrainEvent], Outcome]:
        handle = await runner.start("ftjob-n", "tenant-a", tiny_job(tiny_llama))
        events, outcome = await collect(handle)
        await runner.close()
        return handle, events, outcome

    handle, events, outcome = run(main())
    assert outcome.reason == "nan_loss", outcome
    assert [e.step for e in events if e.train_loss is not None] == [1]
    assert_left_nothing(runner, handle, roots)


def test_a_killed_process_fails_the_job_as_crashed(
    data_dir: Path, roots: list[Path], tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner = make_runner(data_dir)

    async def main() -> tuple[SandboxRunHandle, Outcome]:
        handle = await runner.start("ftjob-k", "tenant-a", tiny_job(tiny_llama))
        await wait_for(handle, "loading")
        os.kill(handle.pid, signal.SIGKILL)
        _, outcome = await collect(handle)
        await runner.close()
        return handle, outcome

    handle, outcome = run(main())
    assert outcome.reason == "crashed", outcome
    assert "SIGKILL" in outcome.message
    assert_left_nothing(runner, handle, roots)


def test_a_memory_limit_too_small_fails_the_job_as_oom(
    data_dir: Path, roots: list[Path], tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner = make_runner(data_dir, limits=RunLimits(memory_bytes=160 << 20, wall_seconds=120))

    async def main() -> tuple[SandboxRunHandle, Outcome]:
        handle = await runner.start("ftjob-o", "tenant-a", tiny_job(tiny_llama))
        _, outcome = await collect(handle)
        await runner.close()
        return handle, outcome

    handle, outcome = run(main())
    assert outcome.reason == "oom", outcome
    assert_left_nothing(runner, handle, roots)


@pytest.mark.serial
def test_a_job_past_its_time_limit_fails_as_timeout(
    data_dir: Path, roots: list[Path], tiny_llama: list[tuple[str, bytes]]
) -> None:
    runner = make_runner(data_dir, limits=RunLimits(memory_bytes=3 * GiB, wall_seconds=2.0))

    async def main() -> tuple[SandboxRunHandle, float, Outcome]:
        started = time.monotonic()
        handle = await runner.start("ftjob-t", "tenant-a", tiny_job(tiny_llama))
        _, outcome = await collect(handle)
        took = time.monotonic() - started
        await runner.close()
        return handle, took, outcome

    handle, took, outcome = run(main())
    assert outcome.reason == "timeout", outcome
    assert took < 2.0 + 5.0
    assert_left_nothing(runner, handle, roots)


@pytest.fixture(autouse=True)
def _no_stray_temp_files() -> Iterator[None]:
    """Every runner the test made removed its directory from the system temp dir.

    Only this test's runners are looked at: any gateway started meanwhile by another
    process (an xdist worker beside this one, another Bulkhead) makes `bulkhead-train-*`
    directories of its own there."""
    _made.clear()
    yield
    left = [r.directory for r in _made if r.directory.exists()]
    _made.clear()
    assert left == []
