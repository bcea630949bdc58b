"""Where a request body's texts are: every string that reaches the upstream, with whose it is.

The guards scan what the model sees, and the model sees more than message
contents: names, tool and function definitions (names, descriptions, the
descriptions in their parameter schemas), tool calls and results, content
parts, `prompt`, `suffix`, `input`, documents.  So every string of the body
is a slot, except the few that are not text: the model's name and a few
enum-like settings, and in messages the strings the API defines as binary
data, links the server fetches, ids and part types (`_NOT_TEXT`: a string
under such a key; an object or array under it is still searched, so a
schema property called `data` hides nothing).  A field added to the API
tomorrow is scanned without anyone remembering to list it.

Each slot has a role, which decides how the injection detector reads it:
a message's role for its texts; `tool_call` for the calls an assistant
message makes (the model's own words: not scanned for injection); `tool`
for tool definitions, schemas and documents (material the user did not
write: indirect); `user` for prompts and inputs; `field` for every other
string (`stop`, `user`, `metadata`, ...: entities only, since a stop
sequence such as `<|im_end|>` is no injection).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

SlotPath = tuple[str | int, ...]

# Keys whose string values, in a message, are not text for the model.
_NOT_TEXT = frozenset({"url", "data", "file_data", "file_id", "id", "tool_call_id", "type"})
# Top-level settings that name things rather than say them.
_SETTINGS = frozenset({"model", "encoding_format", "service_tier", "reasoning_effort"})
_FIRST = ("prompt", "input", "suffix")  # the prompt, in the place the model reads it
_SKIPPED = _SETTINGS | {"messages", *_FIRST}
_TEXTUAL = (str, list, dict)
_NOTHING: frozenset[str] = frozenset()
_TOP_ROLES = {
    "tools": "tool",
    "functions": "tool",
    "tool_choice": "tool",
    "response_format": "tool",
    "documents": "tool",
}
# The roles every chat template knows; any other role string is text the model sees.
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_CALLS = frozenset({"tool_calls", "function_call"})


@dataclass(frozen=True, slots=True)
class TextSlot:
    """One string of a request body: where it is, whose it is, what it says."""

    path: SlotPath
    role: str
    text: str = field(repr=False)

    @property
    def where(self) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path).lstrip(".")


def text_slots(request: dict[str, Any]) -> Iterator[TextSlot]:
    """Every text of a chat, completions or embeddings body (see the module docstring).

    Messages come first, then `prompt`, `input` and `suffix`, then the rest
    in the body's order, so pseudonyms are numbered as the model reads them.
    """
    messages = request.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, dict):
                yield from _message_slots(("messages", i), message)
    elif messages is not None:  # not a chat's shape, but whatever it is gets scanned
        yield from _strings(("messages",), messages, "user", _NOTHING)
    for key in _FIRST:
        if key in request:
            yield from _strings((key,), request[key], "user", _NOTHING)
    for key, value in request.items():
        if key not in _SKIPPED and isinstance(value, _TEXTUAL):
            yield from _strings((key,), value, _TOP_ROLES.get(key, "field"), _NOTHING)


def _message_slots(path: SlotPath, message: dict[str, Any]) -> Iterator[TextSlot]:
    role = message.get("role")
    speaker = role if isinstance(role, str) else "user"
    for key, value in message.items():
        if key == "role":
            if isinstance(value, str) and value not in _ROLES:
                yield TextSlot((*path, key), "user", value)
        elif isinstance(value, str):  # most often the content: no walk needed
            if value and key not in _NOT_TEXT:
                yield TextSlot((*path, key), speaker, value)
        elif isinstance(value, _TEXTUAL):
            whose = "tool_call" if key in _CALLS else speaker
            yield from _strings((*path, key), value, whose, _NOT_TEXT)


def _strings(path: SlotPath, value: Any, role: str, not_text: frozenset[str]) -> Iterator[TextSlot]:
    """The strings under `value`, depth first in order, without recursion."""
    stack: list[tuple[SlotPath, Any]] = [(path, value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            if node and not (not_text and where[-1] in not_text):
                yield TextSlot(where, role, node)
        elif isinstance(node, dict):
            stack.extend(((*where, k), v) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(node))))


def text_at(request: Any, path: SlotPath) -> Any:
    node = request
    for key in path:
        node = node[key]
    return node


def with_texts(request: dict[str, Any], rewrites: dict[SlotPath, str]) -> dict[str, Any]:
    """A copy of `request` with the strings at `rewrites`' paths replaced (the original if none).

    Only the objects on the way to a rewritten string are copied; the rest is
    shared with the original, which is left as it was.
    """
    if not rewrites:
        return request
    out = dict(request)
    copied: dict[SlotPath, Any] = {(): out}
    for path, text in rewrites.items():
        node: Any = out
        for depth in range(1, len(path)):
            prefix = path[:depth]
            child = copied.get(prefix)
            if child is None:
                child = copied[prefix] = copy.copy(node[path[depth - 1]])
                node[path[depth - 1]] = child
            node = child
        node[path[-1]] = text
    return out
