"""Compose the fourth hand's texts (`hand4_en.py`, `hand4_zh.py`, session 14) into cases.

Like the third hand (`hand3.py`, whose composition this reuses): train and dev
only (25 % dev, by the SHA-256 of `hand4:`, language and text), so the frozen
test splits stay as they were.  Its attacks are role-play set-ups, instructions
inside documents and tool results, and obfuscated instructions; the indirect
and obfuscated ones are also planted in carriers (of both languages for the
indirect ones).  Case ids start with `hand4-`.
"""

from __future__ import annotations

from types import ModuleType

from tests.vectors.guard.learned import hand3, hand4_en, hand4_zh
from tests.vectors.guard.learned.varied import Case

TEXTS: dict[str, ModuleType] = {"en": hand4_en, "zh": hand4_zh}
_PLANTED = ("indirect", "obfuscation")
_SEEDS = (20261221, 20261222)


def split_of(lang: str, text: str) -> str:
    return hand3.split_of(lang, text, "hand4")


def render() -> dict[str, list[Case]]:
    """The fourth hand's composed cases of train (three times) and dev."""
    return hand3.render_hand("hand4", TEXTS, _PLANTED, _SEEDS)
