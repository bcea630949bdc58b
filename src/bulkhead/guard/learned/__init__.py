"""The learned second stage of injection detection: hashed character n-grams and a
logistic regression, trained by `train.py` on the project's own data
(tests/vectors/guard/learned) and shipped in `data/`.  `make train-guards`
rebuilds the files bit for bit.
"""

from bulkhead.guard.learned._model import (
    REASON,
    LearnedScorer,
    LinearModel,
    read_model,
    shared_scorer,
)

__all__ = ["REASON", "LearnedScorer", "LinearModel", "read_model", "shared_scorer"]
