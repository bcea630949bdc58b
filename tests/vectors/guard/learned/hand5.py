"""Compose the fifth hand's texts (`hand5_en.py`, `hand5_zh.py`, session 15) into cases.

Like the third and fourth hands (`hand3.render_hand`): train and dev only (25 %
dev, by the SHA-256 of `hand5:`, language and text), so the frozen test splits
stay as they were.  Its attacks are mostly Chinese: system-prompt exfiltration
asked indirectly, role-play set-ups, instructions inside documents and tool
results, and obfuscated instructions; the indirect and obfuscated ones are also
planted in carriers (of both languages for the indirect ones).  Case ids start
with `hand5-`.
"""

from __future__ import annotations

from types import ModuleType

from tests.vectors.guard.learned import hand3, hand5_en, hand5_zh
from tests.vectors.guard.learned.varied import Case

TEXTS: dict[str, ModuleType] = {"en": hand5_en, "zh": hand5_zh}
_PLANTED = ("indirect", "obfuscation")
_SEEDS = (20261231, 20261232)


def split_of(lang: str, text: str) -> str:
    return hand3.split_of(lang, text, "hand5")


def render() -> dict[str, list[Case]]:
    """The fifth hand's composed cases of train (three times) and dev."""
    return hand3.render_hand("hand5", TEXTS, _PLANTED, _SEEDS)
