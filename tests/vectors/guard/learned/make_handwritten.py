# ruff: noqa: E501
"""Write `handwritten.jsonl` from `handwritten_src.py` (python -m tests.vectors.guard.learned.make_handwritten)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.vectors.guard.learned.handwritten_src import ROWS

HERE = Path(__file__).resolve().parent


def render() -> str:
    lines = []
    for n, (lang, kind, role, injection, text) in enumerate(ROWS):
        row = {"id": f"hw-{lang}-{n:03d}", "injection": injection, "kind": kind, "lang": lang,
               "role": role, "text": text}  # fmt: skip
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (HERE / "handwritten.jsonl").write_text(render(), encoding="utf-8")
