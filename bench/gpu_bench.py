"""GPU placement: MIG planner latency, and shared-tier throughput on a real GPU.

    .venv/bin/python bench/gpu_bench.py [--workers 4] [--seconds 10] [--size 8192]

The planner part runs anywhere: p50 and worst latency of `plan` for typical
requests, and the time a hard refusal takes (bounded by the search budget).
The GPU part needs torch with CUDA and an NVIDIA GPU (MIG off): one worker
process alone runs fp16 matrix multiplications for `--seconds`, then
`--workers` processes do the same at once, each pinned the way the shared
tier pins workers (`assign(Tier.SHARED, …, memory_fraction=1/workers)` and
`worker_env`); their summed throughput against the lone worker's is the
shared-tier figure (target: >= 95%).  Without CUDA that part says why and
is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bulkhead.domain import Tier
from bulkhead.errors import InvalidRequest
from bulkhead.runtime.gpu import (
    Device,
    assign,
    devices,
    gpu_model,
    parse_profiles,
    plan,
    system_inventory,
)
from bulkhead.runtime.gpu import worker_env as pinned_env

REQUESTS = (
    ("issue example, 1 GPU", "3g.40gb,2g.20gb,1g.10gb", 1),
    ("seven 1g, 1 GPU", "1g.10gb:7", 1),
    ("full, 8 GPUs", "3g.40gb:8,2g.20gb:8,1g.10gb+me:8,1g.10gb:8", 8),
    ("mixed, 16 GPUs", "7g.80gb:4,4g.40gb:4,3g.40gb:12,2g.20gb:8,1g.20gb:8", 16),
    (
        "hard refusal, 16 GPUs",
        "7g.80gb:6,4g.40gb:4,3g.40gb:10,2g.20gb:4,1g.20gb:4,1g.10gb:3,1g.10gb+me:5",
        16,
    ),
)

WORKER = r"""
import json, os, sys, time, torch
from bulkhead.runtime.gpu import apply_memory_cap
apply_memory_cap(torch.cuda, os.environ)
size, start_at, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
a = torch.randn(size, size, device="cuda", dtype=torch.float16)
b = torch.randn(size, size, device="cuda", dtype=torch.float16)
for _ in range(3):
    a @ b
torch.cuda.synchronize()
time.sleep(max(0.0, start_at - time.time()))
done, ends = 0, time.time() + seconds
while time.time() < ends:
    for _ in range(8):
        a @ b
    torch.cuda.synchronize()
    done += 8
print(json.dumps({"matmuls": done}))
"""


def bench_planner() -> None:
    model = gpu_model("h100-80gb")
    print("MIG planner on h100-80gb (ms): p50, worst of 20")
    for label, profiles, gpus in REQUESTS:
        samples, outcome = [], ""
        for _ in range(20):
            started = time.perf_counter()
            try:
                plan(model, parse_profiles(profiles), gpus=gpus)
                outcome = "layout"
            except InvalidRequest as exc:
                outcome = exc.code or "refused"
            samples.append((time.perf_counter() - started) * 1000)
        print(f"  {label:<24} {statistics.median(samples):9.2f} {max(samples):9.2f}  {outcome}")


def run_workers(count: int, device: Device, size: int, seconds: float) -> int:
    env = pinned_env(os.environ, assign(Tier.SHARED, device, memory_fraction=1 / count))
    start_at = time.time() + 20  # time for every process to load torch and warm up
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(size), str(start_at), str(seconds)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = [p.communicate(timeout=seconds + 120)[0] for p in procs]
    return sum(json.loads(out.strip().splitlines()[-1])["matmuls"] for out in outputs)


def bench_shared(workers: int, size: int, seconds: float) -> None:
    try:
        import torch
    except ImportError:
        print("shared tier: skipped, torch is not installed")
        return
    if not torch.cuda.is_available():
        print("shared tier: skipped, torch has no CUDA here")
        return
    whole = [d for d in devices(system_inventory()) if not d.is_mig and not d.mig_enabled]
    if not whole:
        print("shared tier: skipped, no GPU with MIG off")
        return
    alone = run_workers(1, whole[0], size, seconds)
    together = run_workers(workers, whole[0], size, seconds)
    flops = 2 * size**3
    print(f"shared tier on {whole[0].uuid}, fp16 {size}x{size} matmuls for {seconds:.0f} s:")
    print(f"  1 worker alone:      {alone * flops / seconds / 1e12:8.1f} TFLOP/s")
    print(f"  {workers} workers together: {together * flops / seconds / 1e12:8.1f} TFLOP/s")
    print(f"  shared / single:     {together / alone:8.1%}  (target >= 95%)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=8192)
    args = parser.parse_args()
    bench_planner()
    bench_shared(args.workers, args.size, args.seconds)


if __name__ == "__main__":
    main()
