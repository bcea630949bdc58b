"""LoRA training throughput on this CPU for the bundled model (SmolLM2-135M), and the time
from `create` to a servable adapter through the API.

    python bench/finetune_bench.py [--steps 8] [--batch 4] [--seq-len 128] [--rank 8] [--threads 1]
    python bench/finetune_bench.py --serve 200 [--epochs 1] [--batch 4] [--seq-len 64] [--rank 8]

Loads the bundled model the way the runner's training process does
(`bulkhead.finetune.train.load_base`), wraps it with LoRA adapters of `--rank`, and runs
`--steps` real optimizer steps (forward, backward, AdamW) on batches of `--batch` chats,
each cut to exactly `--seq-len` tokens, the loss on the assistant's tokens only.  The first
step is a warm-up and is not timed.  Prints training tokens/s (every token of every sequence
goes through forward and backward) and seconds per step.  `--threads 1` is what a training
job gets; 0 keeps torch's default (every core).

`--serve N` starts a real gateway (SQLite, workers on, the real sandboxed runner), uploads a
JSONL file of N short chats, creates a job on `smollm2-135m` through `/v1/fine_tuning/jobs`
and prints the seconds from `create` to `succeeded` (trained, adapter stored and registered)
and to the first successful chat completion on the `ft:` model (its worker loaded the base
and applied the adapter).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
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


def short_example(index: int) -> dict[str, object]:
    """One chat of a small task, about 40 tokens under the template."""
    return {
        "messages": [
            {"role": "system", "content": "Acknowledge."},
            {"role": "user", "content": f"word: w{index}"},
            {"role": "assistant", "content": f"ACK-w{index}"},
        ]
    }


def serve(args: argparse.Namespace) -> None:
    """Seconds from `create` to `succeeded`, and to the first chat on the tuned model."""
    import openai
    from tests.support.gateway import GatewayThread

    with tempfile.TemporaryDirectory() as where:
        env = {"BULKHEAD_FINE_TUNING_JOBS": "1"}
        gw = GatewayThread(Path(where) / "data", None, workers=True, env=env).start()
        try:
            gw.must("POST", "/admin/v1/models", {"name": "base", "worker": "smollm2-135m"})
            gw.tenant("bench")
            gw.must("POST", "/admin/v1/models/base/grants", {"tenant": "bench"})
            gw.must("PATCH", "/admin/v1/tenants/bench/guard", {"canary": False})
            key = gw.key("bench", role="model_developer")
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
            data = "".join(json.dumps(short_example(i)) + "\n" for i in range(args.serve))
            upload = client.files.create(
                file=("t.jsonl", io.BytesIO(data.encode())),
                purpose="fine-tune",  # type: ignore[arg-type]
            )
            started = time.perf_counter()
            job = client.fine_tuning.jobs.create(
                model="base",
                training_file=upload.id,
                hyperparameters={"n_epochs": args.epochs, "batch_size": args.batch},
                extra_body={"bulkhead": {"lora_rank": args.rank, "max_seq_len": args.seq_len}},
            )
            while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in (
                "succeeded", "failed", "cancelled",
            ):  # fmt: skip
                time.sleep(0.5)
            trained = time.perf_counter() - started
            if job.status != "succeeded" or job.fine_tuned_model is None:
                raise SystemExit(f"the job ended {job.status}: {job.error}")
            body = {"model": job.fine_tuned_model, "max_tokens": 8, "temperature": 0}
            body["messages"] = short_example(10_000)["messages"][:-1]
            while (answer := gw.call("POST", "/v1/chat/completions", key, body)).status == 503:
                time.sleep(0.2)
            servable = time.perf_counter() - started
            assert answer.status == 200, answer.body
        finally:
            gw.stop()
    text = answer.body["choices"][0]["message"]["content"]
    print(
        f"{args.serve} examples, {args.epochs} epoch(s), batch {args.batch}, rank {args.rank}, "
        f"{job.trained_tokens} trained tokens: create -> succeeded {trained:.1f} s, "
        f"create -> first chat on {job.fine_tuned_model.split(':')[0]}:… {servable:.1f} s "
        f"(answer {text!r})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--serve", type=int, default=0, help="examples for the create->serve run")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the --serve job")
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
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
