"""The learned injection scorer: a linear model over hashed n-grams, shipped in the package.

`weights.f16` holds one little-endian float16 weight per bucket;
`model.json` the bias, the weight of "this text came from a tool", the
decision threshold chosen on the dev split, and the SHA-256 of the weights
(checked on load).  Scores are read in windows of `window` positions, so an
instruction in a long document is not diluted by the text around it; the
score is the highest window's (a shorter window for mostly Chinese text).

`LearnedScorer` is what the detector holds: nothing is read from disk until
its first `score`, and every tenant shares the one loaded copy (about 1 MB).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bulkhead.errors import ConfigError
from bulkhead.guard.learned._features import DIM, NGRAMS, NGRAMS_CJK, SPLIT, WORDS, features

DATA = Path(__file__).resolve().parent / "data"
REASON = "learned"
"""The reason a verdict of the learned stage carries (`injection:learned` in the audit log)."""

CHUNK = 8192
"""The most characters scored at once (a longer text is scored piece by piece)."""
FloatArray = npt.NDArray[np.float32]
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def is_cjk(text: str) -> bool:
    """Whether at least a quarter of `text`'s characters are Chinese (which threshold applies)."""
    return not text.isascii() and 4 * len(_CJK.findall(text)) >= len(text)


@dataclass(frozen=True)
class LinearModel:
    weights: FloatArray
    bias: float
    indirect: float
    threshold: float
    """The probability at which the stage flags a text that is not mostly Chinese (mapped to
    0.5 on the detector's scale)."""
    window: int
    threshold_cjk: float = 0.5
    """The same for a mostly Chinese text (`is_cjk`): each script's own dev-split point, since
    the model's scores are not on one scale across the two."""
    window_cjk: int = 128
    """The window for a mostly Chinese text: a Chinese character carries about a word, so
    the window that holds one instruction is shorter (chosen on the dev split)."""

    def threshold_for(self, text: str) -> float:
        return self.threshold_cjk if is_cjk(text) else self.threshold

    def logit(self, text: str, *, indirect: bool = False, cjk: bool | None = None) -> float:
        """The model's log-odds that `text` is an injection (its highest-scoring window;
        `cjk`: whether `text` is mostly Chinese, if the caller already knows)."""
        where, buckets, positions = features(text)
        if len(buckets) == 0:
            return self.bias + (self.indirect if indirect else 0.0)
        if cjk is None:
            cjk = is_cjk(text)
        w = self.window_cjk if cjk else self.window
        contrib = np.bincount(where, weights=self.weights[buckets], minlength=positions)
        counts = np.bincount(where, minlength=positions).astype(np.float64)
        if positions <= w:
            best = float(contrib.sum()) / math.sqrt(float(counts.sum()))
        else:
            sums = np.cumsum(np.concatenate(([0.0], contrib)))
            sizes = np.cumsum(np.concatenate(([0.0], counts)))
            best = float(np.max((sums[w:] - sums[:-w]) / np.sqrt(sizes[w:] - sizes[:-w])))
        return best + self.bias + (self.indirect if indirect else 0.0)

    def probability(self, text: str, *, indirect: bool = False, cjk: bool | None = None) -> float:
        z = self.logit(text, indirect=indirect, cjk=cjk)
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def score(self, text: str, *, indirect: bool = False) -> float:
        """The probability on the detector's scale: the calibrated threshold maps to 0.5."""
        cjk = is_cjk(text)
        p = self.probability(text, indirect=indirect, cjk=cjk)
        t = self.threshold_cjk if cjk else self.threshold
        if p < t:  # rounded, but never up to the threshold
            return min(round(0.5 * p / t, 4), 0.4999)
        return round(min(1.0, 0.5 + 0.5 * (p - t) / (1.0 - t)), 4)


def read_model(directory: Path = DATA) -> LinearModel:
    """The model in `directory`; `ConfigError` if its files are missing or do not match."""
    try:
        meta = json.loads((directory / "model.json").read_text(encoding="utf-8"))
        raw = (directory / "weights.f16").read_bytes()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"learned guard model in {directory}: {type(exc).__name__}") from None
    if hashlib.sha256(raw).hexdigest() != meta.get("weights_sha256"):
        raise ConfigError(f"learned guard model in {directory}: weights do not match model.json")
    if (
        meta.get("dim") != DIM
        or tuple(meta.get("ngrams", ())) != NGRAMS
        or tuple(meta.get("ngrams_cjk", ())) != NGRAMS_CJK
        or meta.get("words") != WORDS
        or meta.get("split", False) != SPLIT
    ):
        raise ConfigError(f"learned guard model in {directory}: built for other features")
    weights = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    try:
        return LinearModel(
            weights, float(meta["bias"]), float(meta["indirect"]), float(meta["threshold"]),
            int(meta["window"]), float(meta["threshold_cjk"]), int(meta["window_cjk"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"learned guard model in {directory}: model.json lacks {exc}; run make train-guards"
        ) from None


class LearnedScorer:
    """The shipped model, read on the first `score` (not at import or construction)."""

    def __init__(self, directory: Path = DATA) -> None:
        self.directory = directory
        self._model: LinearModel | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model(self) -> LinearModel:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = read_model(self.directory)
                model = self._model
        return model

    def score(self, text: str, *, indirect: bool = False) -> float:
        """`text`'s score on the detector's scale (>= 0.5: the stage flags it).

        A long text is read in pieces of `CHUNK` characters (overlapping by a
        window), so the arrays stay small: the highest piece's score.
        """
        model = self.model()
        overlap = max(model.window, model.window_cjk)
        if len(text) <= CHUNK + overlap:
            return model.score(text, indirect=indirect)
        return max(
            model.score(text[start : start + CHUNK + overlap], indirect=indirect)
            for start in range(0, len(text), CHUNK)
        )

    def __repr__(self) -> str:
        return f"LearnedScorer(loaded={self.loaded})"


_SHARED: LearnedScorer | None = None
_SHARED_LOCK = threading.Lock()


def shared_scorer() -> LearnedScorer:
    """The process's one scorer over the shipped model (loaded on its first score)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = LearnedScorer()
        return _SHARED
