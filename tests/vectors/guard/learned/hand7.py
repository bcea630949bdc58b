"""Compose the seventh hand's texts (`hand7_en.py`, `hand7_zh.py`, session 17) into cases.

Like the third to sixth hands (`hand3.render_hand`): train and dev only (25 %
dev, by the SHA-256 of `hand7:`, language and text), so the frozen test splits
stay as they were.  Written for issue 19 by an author new to the project, in
registers the earlier hands barely use (net slang, dialect, classical and
bureaucratic prose, chat fragments, JSON / YAML / HTML / code): mostly Chinese
role-play, indirect system-prompt exfiltration, instructions inside emails, web
pages, tool results and code comments, obfuscation (zero-width, full-width,
pinyin, spacing, near-homographs, mixed language), and as many hard benign
prompts sharing their vocabulary; the indirect and obfuscated ones are also
planted in carriers.  Case ids start with `hand7-`.
"""

from __future__ import annotations

from types import ModuleType

from tests.vectors.guard.learned import hand3, hand7_en, hand7_zh
from tests.vectors.guard.learned.varied import Case

TEXTS: dict[str, ModuleType] = {"en": hand7_en, "zh": hand7_zh}
_PLANTED = ("indirect", "obfuscation")
_SEEDS = (20261751, 20261752)


def split_of(lang: str, text: str) -> str:
    return hand3.split_of(lang, text, "hand7")


def render() -> dict[str, list[Case]]:
    """The seventh hand's composed cases of train (three times) and dev."""
    return hand3.render_hand("hand7", TEXTS, _PLANTED, _SEEDS)
