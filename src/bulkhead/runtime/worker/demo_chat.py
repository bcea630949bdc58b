"""DEMO chat model: a tiny causal LM with RANDOM weights that produces MEANINGLESS text.

This backend exists so that the whole serving path (tokenization, prompt templating,
incremental decoding with a key/value cache, streaming, usage accounting) can be exercised
end to end on any machine, offline, in well under a second of start-up time. It is NOT a
language model anyone should read the output of.

Everything is built in memory at start-up and nothing is written to disk:

* a byte-level BPE tokenizer trained with the ``tokenizers`` library on a small corpus that
  ships in this file, and
* a two-layer Llama-style transformer whose weights come from ``torch.manual_seed(seed)``.

The same seed therefore always yields the same tokenizer, the same weights and, for greedy
decoding, the same completions.
"""

from __future__ import annotations

import inspect
import math
import secrets
from collections.abc import Sequence
from typing import Any, Final

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from .backends import FinishReason, SamplingParams, force_offline_mode
from .errors import ApiError

DEMO_NOTICE: Final = "DEMO model with random weights; its output is meaningless text."
END_OF_TEXT: Final = "<|endoftext|>"
PADDING: Final = "<|pad|>"
SPECIAL_TOKENS: Final = (END_OF_TEXT, PADDING)
CONTEXT_WINDOW: Final = 2048
TARGET_VOCAB_SIZE: Final = 512
# Temperatures below this are treated as greedy: dividing logits by a near-zero number
# would overflow to infinity and turn the softmax into NaNs.
_MIN_TEMPERATURE: Final = 1e-5

# A few paragraphs of plain English for the tokenizer to learn merges from. The content is
# irrelevant; it only has to be fixed so that token ids are reproducible across runs.
_CORPUS: Final = (
    "system: You are a helpful assistant.\n",
    "user: Hello! Can you tell me what the weather is like today?\n",
    "assistant: I do not have access to live data, but I can help you plan your day.\n",
    "user: What is the capital of France?\nassistant: The capital of France is Paris.\n",
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.",
    "A gateway sits between many tenants and the models that serve them. Each request is",
    " checked, counted and routed to a worker that runs one model in its own sandbox.",
    "Workers speak plain HTTP over a local socket, stream tokens as they are produced and",
    " report how many tokens each prompt and completion used, so that quotas can be kept.",
    "Numbers like 0 1 2 3 4 5 6 7 8 9 10 100 1000 and symbols like , . ; : ! ? ( ) [ ] { }",
    " appear in ordinary text, in code such as print('hello, world') and in lists: a, b, c.",
    "Once upon a time there was a small model that knew nothing at all, and it talked anyway.",
    "It said the same things in the same order every time it was given the same seed.",
)


def build_tokenizer() -> Tokenizer:
    """Train the demo byte-level BPE tokenizer in memory; this takes a few milliseconds.

    A beginning-of-text marker is added to every encoded prompt so that even an empty
    prompt gives the model one token to condition on.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TARGET_VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer=trainer)
    end_id = _special_id(tokenizer, END_OF_TEXT)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{END_OF_TEXT} $A", special_tokens=[(END_OF_TEXT, end_id)]
    )
    # Treat special-token strings typed by users as ordinary text, so that nobody can end
    # a generation early or smuggle control tokens in through message content.
    tokenizer.encode_special_tokens = True
    return tokenizer


def _special_id(tokenizer: Tokenizer, token: str) -> int:
    """Return the id of a special token that the trainer was told to add."""
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise RuntimeError(f"the demo tokenizer lacks the special token {token}")
    return token_id


def build_model(vocab_size: int, end_id: int, seed: int) -> Any:
    """Create the random-weight two-layer Llama model, seeded for reproducibility."""
    force_offline_mode()
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=CONTEXT_WINDOW,
        # A wider initialisation than the usual 0.02 gives peakier logits, so greedy output
        # wanders through the vocabulary instead of repeating a single token.
        initializer_range=0.5,
        bos_token_id=end_id,
        eos_token_id=end_id,
        pad_token_id=end_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.train(False)  # Inference only: no dropout.
    return model


def _cache_keyword(model: Any) -> str:
    """Return the name of the forward() argument that takes the key/value cache.

    transformers 5 renamed ``past_key_values`` to ``cache``; supporting both keeps the worker
    working across the versions that the ``local`` extra allows.
    """
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


class CausalChatModel:
    """A causal LM and its ``tokenizers`` tokenizer, served by the chat routes.

    The demo model below and imported models (`hf_causal`) share this code path.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        model: Any,
        end_id: int,
        *,
        context_window: int,
        printable_only: bool = False,
        extra_end_ids: Sequence[int] = (),
    ) -> None:
        self._tokenizer = tokenizer
        self._end_id = end_id
        self._end_ids = frozenset({end_id, *extra_end_ids})
        self._model = model
        # Where the weights are: the CPU, or the CUDA device the worker is pinned to.
        self.device: torch.device = next(model.parameters()).device
        self.context_window = context_window
        self.vocab_size: int = int(model.config.vocab_size)
        self._cache_keyword = _cache_keyword(self._model)
        self._banned = self._banned_token_mask(printable_only)

    @property
    def model(self) -> Any:
        """The torch model generation runs."""
        return self._model

    def replace_model(self, model: Any) -> None:
        """Generate with `model` from now on (the same architecture: a fine-tuned copy)."""
        self._model = model
        self._cache_keyword = _cache_keyword(model)

    def _banned_token_mask(self, printable_only: bool) -> torch.Tensor:
        """Mark the tokens that generation must never pick.

        Ids the tokenizer does not know are always banned.  With ``printable_only``
        (the demo), so are special tokens other than end-of-text, which decode to nothing,
        and raw byte tokens, which decode to control characters or broken UTF-8: that
        keeps the (meaningless) demo output printable and easy to eyeball in logs.
        """
        banned = torch.zeros(self.vocab_size, dtype=torch.bool)
        known = self._tokenizer.get_vocab_size()
        banned[known:] = True
        if not printable_only:
            return banned
        for token_id in range(min(known, self.vocab_size)):
            if token_id == self._end_id:
                continue
            text = self.decode([token_id])
            if not (text and text.isascii() and all(c.isprintable() or c == "\n" for c in text)):
                banned[token_id] = True
        return banned

    def render_chat(self, messages: Sequence[tuple[str, str]]) -> str:
        """Render ``role: content`` lines followed by ``assistant:`` as the prompt."""
        lines = "".join(f"{role}: {content}\n" for role, content in messages)
        return f"{lines}assistant:"

    def start_chat(
        self, messages: Sequence[tuple[str, str]], params: SamplingParams
    ) -> DemoGeneration:
        """Render the conversation and start it; a model with a chat template overrides this."""
        return self.start(self.render_chat(messages), params)

    def start(self, prompt: str, params: SamplingParams) -> DemoGeneration:
        """Tokenize the prompt and return a generation that is ready to step."""
        return self.start_ids(self._tokenizer.encode(prompt).ids, params)

    def start_ids(self, prompt_ids: list[int], params: SamplingParams) -> DemoGeneration:
        """Return a generation of the tokenized prompt, ready to step."""
        # A model needs at least one token to condition on, even for an empty prompt.
        prompt_ids = prompt_ids or [self._end_id]
        if len(prompt_ids) + params.max_tokens > self.context_window:
            raise ApiError(
                400,
                f"This model's maximum context length is {self.context_window} tokens; the prompt "
                f"uses {len(prompt_ids)} and {params.max_tokens} were requested for the "
                "completion.",
                code="context_length_exceeded",
            )
        return DemoGeneration(self, prompt_ids, params)

    def forward(self, input_ids: list[int], cache: Any) -> tuple[torch.Tensor, Any]:
        """Run the model on ``input_ids`` and return the last logits and the updated cache."""
        with torch.inference_mode():
            output = self._model(
                input_ids=torch.tensor([input_ids], device=self.device),
                use_cache=True,
                **{self._cache_keyword: cache},
            )
        new_cache = output.get("cache")
        if new_cache is None:
            new_cache = output.get("past_key_values")
        # Sampling runs on the CPU, with the request's own CPU generator.
        return output.logits[0, -1].float().cpu(), new_cache

    def pick_token(
        self,
        logits: torch.Tensor,
        temperature: float,
        generator: torch.Generator,
        top_p: float = 1.0,
    ) -> int:
        """Choose the next token greedily or by temperature and nucleus sampling.

        Only allowed tokens are candidates; ``top_p`` keeps the likeliest ones whose
        probabilities add up to it (at least one).
        """
        logits = logits.float().masked_fill(self._banned, -math.inf)
        if temperature < _MIN_TEMPERATURE:
            return int(torch.argmax(logits))
        probabilities = torch.softmax(logits / temperature, dim=-1)
        if top_p < 1.0:
            ordered, order = torch.sort(probabilities, descending=True)
            # A token stays if the mass of the likelier ones is still below top_p.
            drop = torch.cumsum(ordered, dim=-1) - ordered >= top_p
            drop[0] = False
            probabilities = probabilities.clone()
            probabilities[order[drop]] = 0.0
        return int(torch.multinomial(probabilities, 1, generator=generator))

    def is_end(self, token_id: int) -> bool:
        """Return True for an end-of-text token."""
        return token_id in self._end_ids

    def decode(self, token_ids: list[int]) -> str:
        """Decode generated ids; incomplete UTF-8 at the end becomes U+FFFD."""
        text: str = self._tokenizer.decode(token_ids, skip_special_tokens=True)
        return text


class DemoChatModel(CausalChatModel):
    """The DEMO chat backend. Its completions are meaningless by construction."""

    def __init__(self, seed: int = 0) -> None:
        # One intra-op thread: the model is tiny, and several workers may share a host.
        torch.set_num_threads(1)
        tokenizer = build_tokenizer()
        end_id = _special_id(tokenizer, END_OF_TEXT)
        model = build_model(tokenizer.get_vocab_size(), end_id, seed)
        super().__init__(
            tokenizer, model, end_id, context_window=CONTEXT_WINDOW, printable_only=True
        )


class DemoGeneration:
    """One completion of the DEMO model, decoded incrementally with a key/value cache."""

    def __init__(
        self, model: CausalChatModel, prompt_ids: list[int], params: SamplingParams
    ) -> None:
        self._model = model
        self._params = params
        self._pending_input = prompt_ids
        self._cache: Any = None
        self._generated: list[int] = []
        self._emitted_chars = 0
        self._done = False
        # A private generator per request keeps seeded requests reproducible no matter how
        # many other requests run in between.
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        self._generator = torch.Generator().manual_seed(seed)
        self.prompt_tokens = len(prompt_ids)
        self.completion_tokens = 0
        self.finish_reason: FinishReason | None = None

    def step(self) -> str | None:
        """Decode one token and return its text (may be empty); None once finished."""
        if self._done:
            return None
        if self.finish_reason is not None:
            self._done = True
            return None
        if self.completion_tokens >= self._params.max_tokens:
            return self._finish("length")
        logits, self._cache = self._model.forward(self._pending_input, self._cache)
        token = self._model.pick_token(
            logits, self._params.temperature, self._generator, self._params.top_p
        )
        if self._model.is_end(token):
            return self._finish("stop")
        self._generated.append(token)
        self._pending_input = [token]
        self.completion_tokens += 1
        piece = self._new_text(final=False)
        if self.finish_reason is not None:  # a stop sequence was reached
            self._cache = None
        return piece

    def close(self) -> None:
        """Drop the key/value cache; further steps report the generation as finished."""
        self._cache = None
        self._done = True

    def _finish(self, reason: FinishReason) -> str:
        """Record why generation ended and flush any text held back so far."""
        self.finish_reason = reason
        self._cache = None
        return self._new_text(final=True)

    def _new_text(self, *, final: bool) -> str:
        """Return the text added since the last call.

        Byte-level tokens can end in the middle of a multi-byte UTF-8 character, which
        decodes to U+FFFD; such a tail is held back until the next token completes it, so
        streamed pieces always concatenate to the same text as a non-streamed completion.
        """
        text = self._model.decode(self._generated)
        if not final and text.endswith("\ufffd"):
            return ""
        end = len(text)
        if self._params.stop and not final:
            end = self._stop_point(text)
        piece = text[self._emitted_chars : end]
        self._emitted_chars = max(self._emitted_chars, end)
        return piece

    def _stop_point(self, text: str) -> int:
        """How much of ``text`` may be sent, given the stop sequences.

        At a stop sequence the generation finishes ("stop") and the text before it is
        all there is.  Otherwise a tail that could still become a stop sequence is held
        back until the next tokens show whether it does.
        """
        stops = self._params.stop
        longest = max(len(s) for s in stops)
        start = max(0, self._emitted_chars - longest)
        found = [i for s in stops if (i := text.find(s, start)) >= 0]
        if found:
            self.finish_reason = "stop"
            return min(found)
        for size in range(min(longest - 1, len(text) - self._emitted_chars), 0, -1):
            tail = text[-size:]
            if any(s.startswith(tail) for s in stops):
                return len(text) - size
        return len(text)
