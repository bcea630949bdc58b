"""Train the learned injection stage (`make train-guards`, or `python -m` this module).

Reads `train.jsonl` and `dev.jsonl` from `--data` (tests/vectors/guard/learned),
fits an L2-regularised logistic regression over the hashed n-grams by full-batch
Adam in float64 (numpy only: no download, no outside library), rounds the
weights to float16, and chooses the threshold on the dev split: the lowest
probability at which at most `DEV_FPR` of dev's benign prompts and `HARD_FPR`
of its hand-written benign prompts are flagged, once for mostly Chinese texts
and once for the rest (`is_cjk`: the scorer picks the threshold the same way).
Each (language, label, hand-written or not) group weighs the same in the loss:
the few hundred hand-written texts count as much as the many template ones; the licensed
public prompts (session 14, ids `public-`) are on the template side of that split.
Examples are read in file order and every sum is a `numpy.bincount`, so two runs
write the same bytes.  The test split and the evaluation sets are never read here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bulkhead.guard.learned._features import BITS, DIM, NGRAMS, WORDS, features
from bulkhead.guard.learned._model import DATA, LinearModel, is_cjk

WINDOW = 128
WINDOW_CJK = 48
"""The scoring window for mostly Chinese texts (session 14, chosen on dev: 24 to 128 tried)."""
EPOCHS = 150
LEARNING_RATE = 0.05
L2 = 1e-6
DEV_FPR = 0.01
HARD_FPR = 0.015
"""The most of dev's hand-written benign prompts (the hard ones) the threshold may flag
(2 % until session 14: 1.5 % leaves headroom below the 2 % target for text we did not write)."""
HAND_WRITTEN = ("varied-", "hand3-", "hand4-", "hand5-")
"""The id prefixes of hand-written cases (sessions 11, 12, 14 and 15), as opposed to template
ones."""
ROLE_FEATURE = False
"""Whether "this text came from a tool" is a feature.  Off since session 11: in the
template data only attacks came from tools, so the weight learned that a tool result
is suspect in itself, and flagged benign tool results."""

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def group_of(case: dict[str, Any]) -> tuple[str, bool, bool]:
    """The case's group in the loss: language, label, and whether it is hand-written
    (`HAND_WRITTEN`) rather than template-generated or documentation."""
    return case["lang"], case["injection"], case["id"].startswith(HAND_WRITTEN)


class Design:
    """The sparse design matrix as (row, column, value) triples, plus labels and weights."""

    def __init__(self, cases: list[dict[str, Any]]) -> None:
        rows, cols, vals = [], [], []
        for i, case in enumerate(cases):
            found = features(case["text"])[1]
            rows.append(np.full(len(found), i, dtype=np.int64))
            cols.append(found)
            vals.append(np.full(len(found), 1.0 / math.sqrt(max(1, len(found)))))
        self.rows: I64 = np.concatenate(rows)
        self.cols: I64 = np.concatenate(cols)
        self.vals: F64 = np.concatenate(vals)
        self.n = len(cases)
        self.y: F64 = np.array([float(c["injection"]) for c in cases])
        self.tool: F64 = np.array([float(ROLE_FEATURE and c["role"] != "user") for c in cases])
        groups = Counter(group_of(c) for c in cases)
        share = 1.0 / len(groups)
        self.weight: F64 = np.array([share * self.n / groups[group_of(c)] for c in cases])

    def margins(self, w: F64) -> F64:
        found = np.bincount(self.rows, weights=w[self.cols] * self.vals, minlength=self.n)
        return found.astype(np.float64)


def fit(
    design: Design, *, epochs: int = EPOCHS, lr: float = LEARNING_RATE
) -> tuple[F64, float, float]:
    """Weights, bias and tool weight minimising the weighted log loss plus `L2`."""
    params = np.zeros(DIM + 2)
    m, v = np.zeros_like(params), np.zeros_like(params)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    total = float(design.weight.sum())
    for step in range(1, epochs + 1):
        w, bias, tool = params[:DIM], params[DIM], params[DIM + 1]
        z = design.margins(w) + bias + tool * design.tool
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))
        g_row = (p - design.y) * design.weight / total
        grad = np.empty_like(params)
        grad[:DIM] = np.bincount(
            design.cols, weights=g_row[design.rows] * design.vals, minlength=DIM
        )
        grad[:DIM] += L2 * w
        grad[DIM] = g_row.sum()
        grad[DIM + 1] = (g_row * design.tool).sum()
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        params -= lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)
    return params[:DIM], float(params[DIM]), float(params[DIM + 1])


def threshold_for(
    model: LinearModel,
    dev: list[dict[str, Any]],
    fpr: float,
    hard_fpr: float = HARD_FPR,
    *,
    cjk: bool = False,
) -> float:
    """The lowest probability that flags at most `fpr` of dev's benign cases and at most
    `hard_fpr` (but at least one) of its hand-written (hard) benign cases, among the texts
    of one script (`cjk`: mostly Chinese, as the scorer decides)."""
    found: dict[bool, list[float]] = {True: [], False: []}
    for c in dev:
        if not c["injection"] and is_cjk(c["text"]) == cjk:
            p = model.probability(c["text"], indirect=c["role"] != "user")
            found[c["id"].startswith(HAND_WRITTEN)].append(p)
    cut = 0.5
    for hard, share in ((False, fpr), (True, hard_fpr)):
        scores = sorted(found[hard], reverse=True)
        # At least one hard case may be flagged: with 46 Chinese ones, 2 % would
        # allow none, and the threshold would be set by the single hardest text.
        allowed = max(1, int(share * len(scores))) if hard else int(share * len(scores))
        if len(scores) > allowed:
            cut = max(cut, scores[allowed])
    return float(np.nextafter(cut, 1.0))


def train(
    data: Path, out: Path, *, epochs: int = EPOCHS, dev_fpr: float = DEV_FPR
) -> dict[str, Any]:
    """Fit on `data`/train.jsonl, calibrate on dev.jsonl, write `out`/weights.f16 and model.json."""
    cases, dev = load(data / "train.jsonl"), load(data / "dev.jsonl")
    w, bias, tool = fit(Design(cases), epochs=epochs)
    raw = w.astype("<f2").tobytes()
    weights = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    model = LinearModel(weights, bias, tool, 0.5, WINDOW, window_cjk=WINDOW_CJK)
    threshold = threshold_for(model, dev, dev_fpr)
    threshold_cjk = threshold_for(model, dev, dev_fpr, cjk=True)
    meta = {
        "bias": bias, "bits": BITS, "dim": DIM, "epochs": epochs, "indirect": tool, "l2": L2,
        "learning_rate": LEARNING_RATE, "ngrams": list(NGRAMS), "threshold": threshold,
        "threshold_cjk": threshold_cjk,
        "words": WORDS,
        "dev_fpr": dev_fpr, "hard_fpr": HARD_FPR, "role_feature": ROLE_FEATURE, "window": WINDOW,
        "window_cjk": WINDOW_CJK,
        "weights_sha256": hashlib.sha256(raw).hexdigest(),
        "data": {name: hashlib.sha256((data / name).read_bytes()).hexdigest()
                 for name in ("train.jsonl", "dev.jsonl")},
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.f16").write_bytes(raw)
    (out / "model.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("tests/vectors/guard/learned"))
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    meta = train(args.data, args.out, epochs=args.epochs)
    digest = meta["weights_sha256"][:12]
    print(f"wrote {args.out}: thresholds {meta['threshold']:.4f} / {meta['threshold_cjk']:.4f} "
          f"(Chinese), weights {digest}")  # fmt: skip


if __name__ == "__main__":
    main()
