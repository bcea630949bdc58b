"""The guard corpus: detection quality floors, and the corpus pinned to its generator.

Precision and recall are counted on exact spans: a finding counts only if
its entity and its start and end match a label.  The floors are the issue's
targets (PII recall >= 98%, precision >= 95%; injection recall >= 90% at
<= 2% false positives); `bench/guard_bench.py` prints the figures.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from bulkhead.guard import Entity, EntityScanner, InjectionDetector, prc_id_valid
from tests.unit.guard.reference import luhn_complete
from tests.vectors.guard import generate

THRESHOLD = 0.5


def load(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


PII = load(generate.PII)
INJECTION = load(generate.INJECTION)


def test_generator_reproduces_files() -> None:
    for path, text in generate.render().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name}: run the generator"


def test_corpus_size_and_coverage() -> None:
    assert len(PII) + len(INJECTION) >= 300
    labelled = Counter(e["type"] for case in PII for e in case["entities"])
    assert set(labelled) == {e.value for e in Entity}
    assert sum(1 for c in PII if not c["entities"]) >= 80
    assert {c["lang"] for c in PII} == {"en", "zh"} == {c["lang"] for c in INJECTION}
    assert sum(c["injection"] for c in INJECTION) >= 100
    assert sum(not c["injection"] for c in INJECTION) >= 100


def test_labels_are_well_formed() -> None:
    """Spans point at text, and checksummed values pass the reference checks."""
    for case in PII:
        for label in case["entities"]:
            value = case["text"][label["start"] : label["end"]]
            assert value and value == value.strip(), case["id"]
            digits = "".join(c for c in value if c.isdigit() or c in "Xx")
            if label["type"] == "card":
                assert luhn_complete(digits[:-1]) == digits, case["id"]
            if label["type"] == "prc_id":
                assert prc_id_valid(digits), case["id"]


def _pii_counts() -> tuple[Counter[str], Counter[str], Counter[str]]:
    scanner = EntityScanner()
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for case in PII:
        expected = {(e["type"], e["start"], e["end"]) for e in case["entities"]}
        found = {(f.entity.value, f.start, f.end) for f in scanner.find(case["text"])}
        for counter, items in (
            (tp, expected & found),
            (fp, found - expected),
            (fn, expected - found),
        ):
            counter.update(entity for entity, *_ in items)
    return tp, fp, fn


def test_pii_precision_and_recall_overall() -> None:
    tp, fp, fn = (sum(c.values()) for c in _pii_counts())
    assert tp / (tp + fp) >= 0.95
    assert tp / (tp + fn) >= 0.98


@pytest.mark.parametrize("entity", [e.value for e in Entity])
def test_pii_precision_and_recall_per_entity(entity: str) -> None:
    tp, fp, fn = _pii_counts()
    assert tp[entity] / (tp[entity] + fp[entity]) >= 0.9
    assert tp[entity] / (tp[entity] + fn[entity]) >= 0.9


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_injection_recall_and_false_positive_rate(lang: str) -> None:
    detector = InjectionDetector()
    cases = [c for c in INJECTION if c["lang"] == lang]
    flagged = [
        (c["injection"], detector.scan_messages([(c["role"], c["text"])]).score >= THRESHOLD)
        for c in cases
    ]
    positives = [hit for label, hit in flagged if label]
    negatives = [hit for label, hit in flagged if not label]
    assert sum(positives) / len(positives) >= 0.90
    assert sum(negatives) / len(negatives) <= 0.02
