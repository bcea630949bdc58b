# ruff: noqa: E501
"""Write `handwritten.jsonl` and `handwritten2.jsonl` from their `_src.py` (python -m tests.vectors.guard.learned.make_handwritten)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.vectors.guard.learned import handwritten2_src, handwritten_src

HERE = Path(__file__).resolve().parent


def render(second: bool = False) -> str:
    rows, prefix = (handwritten2_src.ROWS, "hw2") if second else (handwritten_src.ROWS, "hw")
    lines = []
    for n, (lang, kind, role, injection, text) in enumerate(rows):
        row = {"id": f"{prefix}-{lang}-{n:03d}", "injection": injection, "kind": kind, "lang": lang,
               "role": role, "text": text}  # fmt: skip
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (HERE / "handwritten.jsonl").write_text(render(), encoding="utf-8")
    (HERE / "handwritten2.jsonl").write_text(render(second=True), encoding="utf-8")
