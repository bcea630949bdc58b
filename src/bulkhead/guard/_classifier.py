"""The pluggable injection classifier: a tenant's own local model next to the rules.

Nothing here is required and nothing is downloaded.  `load_classifier`
checks a directory and returns at once; `transformers` is imported and the
model loaded only when the first text is scored, so a gateway that never
sees a tenant with a model never pays for either.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bulkhead.errors import ConfigError


@runtime_checkable
class InjectionClassifier(Protocol):
    """Anything that scores a text's likelihood of being a prompt injection."""

    def score(self, text: str) -> float:
        """A probability in [0, 1] that `text` is an injection attempt."""
        ...


DEFAULT_POSITIVE_LABELS = ("injection", "jailbreak", "label_1", "malicious", "unsafe")


class TransformersClassifier:
    """A `transformers` text-classification model directory, loaded on first use, on CPU
    unless `device` says otherwise; `positive_labels` name the classes that mean injection.
    """

    def __init__(
        self,
        path: Path,
        *,
        positive_labels: tuple[str, ...] = DEFAULT_POSITIVE_LABELS,
        device: str = "cpu",
        max_chars: int = 4000,
    ) -> None:
        self.path = path
        self._positive = frozenset(label.lower() for label in positive_labels)
        self._device = device
        self._max_chars = max_chars
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def score(self, text: str) -> float:
        results = self._load()(text[: self._max_chars], top_k=None, truncation=True)
        rows = results[0] if results and isinstance(results[0], list) else results
        return max(
            (float(r["score"]) for r in rows if str(r["label"]).lower() in self._positive),
            default=0.0,
        )

    def _load(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                # Imported here, not at the top: most gateways never load a model.
                from transformers import pipeline

                self._pipeline = pipeline(
                    "text-classification",
                    model=str(self.path),
                    tokenizer=str(self.path),
                    device=self._device,
                    # A directory path never reaches the hub; a model's own code never runs.
                    trust_remote_code=False,
                )
            return self._pipeline

    def __repr__(self) -> str:
        return f"TransformersClassifier({self.path.name!r})"


def load_classifier(path: str | Path, **options: Any) -> TransformersClassifier:
    """A lazy classifier for the model directory at `path`; raises `ConfigError` if it
    is not a model directory (no `config.json`).  Loads nothing yet.
    """
    directory = Path(path)
    if not (directory / "config.json").is_file():
        raise ConfigError(f"guard classifier: {directory} is not a model directory")
    return TransformersClassifier(directory, **options)
