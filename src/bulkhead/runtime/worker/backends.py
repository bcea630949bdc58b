"""Contracts between the HTTP server and the model backends.

The server only depends on these protocols and plain data classes, so it can be imported
(and type-checked) without torch. Each backend module implements one of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

FinishReason = Literal["stop", "length"]

# Settings that keep the Hugging Face libraries from touching the network, printing progress
# bars into our logs or spawning tokenizer thread pools behind our back. The worker will run
# without network access in a sandbox, so any download attempt would only produce a slow
# failure; failing fast and predictably is better.
_OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",  # e.g. the GGUF de-quantization's progress bar
}


def force_offline_mode() -> None:
    """Force the Hugging Face libraries into offline mode.

    This must run before ``transformers`` or ``sentence_transformers`` is first imported,
    because they read these variables at import time.
    """
    os.environ.update(_OFFLINE_ENVIRONMENT)


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick completion tokens; ``temperature == 0`` means greedy decoding.

    ``top_p`` keeps the smallest set of likeliest tokens whose probabilities add up to it
    (nucleus sampling); generation ends before the first of the ``stop`` strings.
    """

    max_tokens: int
    temperature: float
    seed: int | None
    top_p: float = 1.0
    stop: tuple[str, ...] = ()


class TextGeneration(Protocol):
    """One in-progress completion, advanced one token at a time.

    Implementations are not thread-safe; the server only calls them from its single model
    thread.
    """

    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason | None

    def step(self) -> str | None:
        """Decode one more token and return the new text, possibly empty.

        Return ``None`` once the generation is finished; ``finish_reason`` is set by then.
        """

    def close(self) -> None:
        """Release the key/value cache early, for example when the client went away."""


class ChatBackend(Protocol):
    """A text generation model that serves chat and plain completions."""

    def start_chat(
        self, messages: Sequence[tuple[str, str]], params: SamplingParams
    ) -> TextGeneration:
        """Apply the model's chat template to ``(role, content)`` pairs and start it.

        Control tokens come from the template only: typed into a message they are text.
        Raises ``ApiError`` like `start`.
        """

    def start(self, prompt: str, params: SamplingParams) -> TextGeneration:
        """Tokenize ``prompt`` and return a generation that has not produced tokens yet.

        Raises ``ApiError`` when the prompt does not fit the model's context window.
        """


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """Embedding vectors (one per input, in order) and the number of input tokens."""

    vectors: list[list[float]]
    prompt_tokens: int


class EmbedBackend(Protocol):
    """A sentence embedding model."""

    dimensions: int

    def embed(self, texts: Sequence[str]) -> EmbeddingResult:
        """Embed ``texts``; raises ``ApiError`` when an input is too long for the model."""
