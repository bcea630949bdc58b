"""Which files an imported model may have, and what each must hold: checked before storing.

A model directory comes from whoever built the model, so every file is
untrusted: names are flat and from a fixed list (no path components, no
pickle-based weights, which can run code when loaded), and contents are
checked by `runtime.worker.model_format`, the parser the hf-causal worker
itself loads them with.  A model that fails here gets one 400 naming the file
and the reason, and nothing is stored or registered, so no worker is ever
started on it (issue 12, items 22 and 27).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bulkhead.errors import InvalidRequest
from bulkhead.runtime.worker import model_format as fmt

SIDE_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "model.safetensors.index.json",
    }
)
# Small documents a model is configured by; the rest (vocabularies) may be large.
CONFIG_FILES = frozenset({"config.json", "generation_config.json"})
REQUIRED = ("config.json", "tokenizer.json")  # what the worker cannot start without
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy")
MAX_FILES = 256
# One name, flat: no "/", no "..", no leading dot, no control characters.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def check_name(name: str) -> str:
    """Refuse anything but the accepted flat file names; say why for pickle weights."""
    lowered = name.lower()
    if lowered.endswith(PICKLE_SUFFIXES):
        raise InvalidRequest(
            f"'{name[:255]}': pickle-based weights are refused (they can run code when "
            "loaded); convert the model to safetensors.",
            param="files",
        )
    if not _NAME.fullmatch(name) or not (lowered.endswith(".safetensors") or name in SIDE_FILES):
        raise InvalidRequest(
            f"{name[:255]!r} is not an accepted model file: only *.safetensors weights and "
            f"{', '.join(sorted(SIDE_FILES))}, each a plain name without a directory "
            "(pickle-based weights are refused).",
            param="files",
        )
    return name


def _refused(name: str, what: str, exc: fmt.ModelFormatError) -> InvalidRequest:
    return InvalidRequest(f"'{name}' is not {what}: {exc}.", param="files")


def check_weights(name: str, data: bytes) -> set[str]:
    """A safetensors file the worker can load; returns its tensor names."""
    try:
        _, entries = fmt.parse_header(data)
    except fmt.ModelFormatError as exc:
        raise _refused(name, "a valid safetensors file", exc) from None
    return {e.name for e in entries}


def check_side_file(name: str, data: bytes) -> None:
    """A JSON side file within its size and depth bounds; config.json also loadable."""
    limit = fmt.MAX_CONFIG_BYTES if name in CONFIG_FILES else fmt.MAX_SIDE_FILE_BYTES
    try:
        if not name.endswith(".json"):
            if len(data) > limit:
                raise fmt.ModelFormatError(f"it is larger than {limit} bytes")
            return
        value = fmt.load_json(data, max_bytes=limit)
        if name == "config.json":
            fmt.check_config(value)
        elif not isinstance(value, dict):
            raise fmt.ModelFormatError("it must be a JSON object")
    except fmt.ModelFormatError as exc:
        raise _refused(name, "a usable model file", exc) from None


def check_files(files: Sequence[tuple[str, bytes]]) -> None:
    """The whole directory: accepted names, no duplicates, every file loadable by the worker."""
    if not files:
        raise InvalidRequest("The model directory is empty.", param="files")
    if len(files) > MAX_FILES:
        raise InvalidRequest(f"A model may have at most {MAX_FILES} files.", param="files")
    names = [check_name(name) for name, _ in files]
    if len(set(names)) != len(names):
        raise InvalidRequest("A file name appears twice.", param="files")
    if not any(n.lower().endswith(".safetensors") for n in names):
        raise InvalidRequest("The model has no *.safetensors weights.", param="files")
    if "config.json" not in names:
        raise InvalidRequest("The model has no config.json.", param="files")
    holder: dict[str, str] = {}  # tensor name -> the weights file that holds it
    for name, data in files:
        if not name.lower().endswith(".safetensors"):
            check_side_file(name, data)
            continue
        for tensor in check_weights(name, data):
            if holder.setdefault(tensor, name) != name:
                raise InvalidRequest(
                    f"'{holder[tensor]}' and '{name}' both hold tensor {tensor[:60]!r}.",
                    param="files",
                )
    for required in REQUIRED:
        if required not in names:
            raise InvalidRequest(f"The model has no {required}.", param="files")
