"""LoRA training throughput on this CPU for the bundled model (SmolLM2-135M).

    python bench/finetune_bench.py [--steps 8] [--batch 4] [--seq-len 128] [--rank 8] [--threads 1]

Loads the bundled model the way the runner's training process does
(`bulkhead.finetune.train.load_base`), wraps it with LoRA adapters of `--rank`, and runs
`--steps` real optimizer steps (forward, backward, AdamW) on batches of `--batch` chats,
each cut to exactly `--seq-len` tokens, the loss on the assistant's tokens only.  The first
step is a warm-up and is not timed.  Prints training tokens/s (every token of every sequence
goes through forward and backward) and seconds per step.  `--threads 1` is what a training
job gets; 0 keeps torch's default (every core).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bulkhead.runtime.worker.backends import force_offline_mode  # noqa: E402

force_offline_mode()

import torch  # noqa: E402

from bulkhead.finetune import train  # noqa: E402
from bulkhead.finetune.contract import BASE_LEARNING_RATE, Hyper  # noqa: E402

TEXT = (
    "The lighthouse keeper climbed the stairs at dusk, trimmed the wick, wound the clockwork "
    "and watched the storm come in over the reef while the ships turned for the harbour. "
)


def example(index: int) -> dict[str, object]:
    """A chat longer than any --seq-len used here, cut by `encode_example`."""
    return {
        "messages": [
            {"role": "user", "content": f"Story {index}: tell me about the lighthouse."},
            {"role": "assistant", "content": TEXT * 8},
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    base = train.load_base("smollm2-135m")
    load_s = time.perf_counter() - started
    hyper = Hyper(lora_rank=args.rank, batch_size=args.batch, max_seq_len=args.seq_len)
    model = train.add_lora(base.model, hyper)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=BASE_LEARNING_RATE)
    encoded = [train.encode_example(base, example(i), args.seq_len) for i in range(args.batch)]
    assert all(len(ids) == args.seq_len for ids, _ in encoded)
    (batch,) = train.batches(encoded, args.batch, base.pad_id)
    model.train(True)
    times = []
    for step in range(args.steps + 1):
        begun = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step warms up
            times.append(time.perf_counter() - begun)
    tokens = args.batch * args.seq_len
    trainable = sum(p.numel() for p in params)
    print(f"model load: {load_s:.1f} s; LoRA rank {args.rank}: {trainable:,} trainable parameters")
    print(
        f"{args.steps} steps of {args.batch} x {args.seq_len} tokens, {args.threads or 'all'} "
        f"thread(s): median {statistics.median(times):.2f} s/step, "
        f"{tokens * len(times) / sum(times):.0f} training tokens/s "
        f"(best step {tokens / min(times):.0f} tokens/s); final loss {loss.item():.3f}"
    )


if __name__ == "__main__":
    main()
