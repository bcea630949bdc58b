"""Compose the sixth hand's texts (`hand6_en.py`, `hand6_zh.py`, session 15) into cases.

Like the third to fifth hands (`hand3.render_hand`): train and dev only (25 %
dev, by the SHA-256 of `hand6:`, language and text), so the frozen test splits
stay as they were.  Written for issue 19 (texts by unseen authors): mostly
Chinese role-play, indirect system-prompt exfiltration and instructions inside
new carriers (minutes, reviews, resumes, calendar invites, CSV rows, subtitles,
commit messages, receipts, search results), a few zero-width obfuscated texts,
and many hard benign prompts sharing their vocabulary; the indirect and
obfuscated ones are also planted in carriers.  Case ids start with `hand6-`.
"""

from __future__ import annotations

from types import ModuleType

from tests.vectors.guard.learned import hand3, hand6_en, hand6_zh
from tests.vectors.guard.learned.varied import Case

TEXTS: dict[str, ModuleType] = {"en": hand6_en, "zh": hand6_zh}
_PLANTED = ("indirect", "obfuscation")
_SEEDS = (20261241, 20261242)


def split_of(lang: str, text: str) -> str:
    return hand3.split_of(lang, text, "hand6")


def render() -> dict[str, list[Case]]:
    """The sixth hand's composed cases of train (three times) and dev."""
    return hand3.render_hand("hand6", TEXTS, _PLANTED, _SEEDS)
