"""The lazy, optional loader for a tenant's local classifier model."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bulkhead.errors import ConfigError
from bulkhead.guard import InjectionClassifier, TransformersClassifier, load_classifier


def test_missing_model_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_classifier(tmp_path / "nope")
    with pytest.raises(ConfigError):
        load_classifier(tmp_path)  # a directory, but no config.json


def test_loading_is_lazy_and_uses_the_local_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text("{}")
    calls: list[dict[str, Any]] = []

    def pipeline(task: str, **kwargs: Any) -> Any:
        calls.append({"task": task, **kwargs})
        return lambda text, **kw: [[{"label": "INJECTION", "score": 0.8},
                                    {"label": "SAFE", "score": 0.2}]]  # fmt: skip

    fake = types.ModuleType("transformers")
    fake.pipeline = pipeline  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "transformers", fake)

    classifier = load_classifier(tmp_path)
    assert isinstance(classifier, TransformersClassifier)
    assert isinstance(classifier, InjectionClassifier)
    assert calls == []  # nothing is loaded until the first text
    assert classifier.score("hello") == 0.8
    assert classifier.score("again") == 0.8
    assert len(calls) == 1
    assert calls[0]["task"] == "text-classification"
    assert calls[0]["model"] == str(tmp_path) and calls[0]["trust_remote_code"] is False
    assert str(tmp_path.name) in repr(classifier)


def test_labels_other_than_the_positive_ones_score_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text("{}")
    fake = types.ModuleType("transformers")
    fake.pipeline = lambda task, **kw: (  # type: ignore[attr-defined]
        lambda text, **k: [{"label": "BENIGN", "score": 0.99}]
    )
    monkeypatch.setitem(sys.modules, "transformers", fake)
    assert load_classifier(tmp_path).score("hi") == 0.0
    custom = load_classifier(tmp_path, positive_labels=("benign",))
    assert custom.score("hi") == 0.99
