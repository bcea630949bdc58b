# ruff: noqa: E501
"""Snapshot benign English prose from the project's own documentation into `docs_benign.jsonl`.

    python -m tests.vectors.guard.learned.make_docs_benign

Run in session 10 and again in session 11 (before the docs of that session
were written, dropping every sentence that names the platform's notes outside
the repository, `_OUTSIDE`); the file is committed, so later documentation
changes do not move the data.  The project's docs talk about injection, system prompts,
canaries, secrets and guards without being attacks: hard benign text.  Used for
train (80 %) and dev (20 %, by a hash of the text), never for the test split.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from tests.vectors.guard.learned.generate import HERE

ROOT = HERE.parents[3]
SOURCES = ("README.md", "docs/architecture.md", "docs/threat-model.md", "docs/benchmarks.md",
           "docs/scale-out.md", "docs/kubernetes.md")  # fmt: skip
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(])")
# The platform's notes outside this repository: never named in its data.
_OUTSIDE = re.compile(r"(?:\.\./|/work/)shared\b")
_MARKUP = re.compile(r"[`*_|#>]|\[([^\]]*)\]\([^)]*\)")


def sentences(text: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        if block.lstrip().startswith(("|", "```", "    ", "#")):
            continue
        prose = " ".join(line.strip(" -") for line in block.splitlines())
        prose = _MARKUP.sub(lambda m: m.group(1) or "", prose)
        for s in _SENTENCE.split(prose):
            s = " ".join(s.split())
            if _OUTSIDE.search(s):
                continue
            if 40 <= len(s) <= 400 and sum(c.isalpha() for c in s) > 0.6 * len(s):
                out.append(s)
    return out


def main() -> None:
    rows, seen = [], set()
    for name in SOURCES:
        for n, s in enumerate(sentences((ROOT / name).read_text(encoding="utf-8"))):
            if s in seen:
                continue
            seen.add(s)
            split = "dev" if hashlib.sha256(s.encode()).digest()[0] % 5 == 0 else "train"
            rows.append({"id": f"docs-{Path(name).stem}-{n:04d}", "injection": False, "kind": "benign",
                         "lang": "en", "pattern": f"docs:{name}", "role": "user", "split": split,
                         "text": s})  # fmt: skip
    with (HERE / "docs_benign.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
