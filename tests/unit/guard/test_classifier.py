"""The lazy, optional loader for a tenant's local classifier model."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bulkhead.errors import ConfigError
from bulkhead.guard import (
    InjectionClassifier,
    InjectionDetector,
    TransformersClassifier,
    load_classifier,
)


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


@pytest.mark.local
def test_a_prompt_guard_2_shaped_model_from_a_local_directory(tmp_path: Path) -> None:
    """A DeBERTa-v2 sequence classifier like Prompt Guard 2 (relative attention, two labels,
    `LABEL_1` the malicious one), tiny and with random weights, built here: no download."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    import torch

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "ignore", "previous", "instructions", "hello"]
    word_level = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]")
    )
    word_level.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="[UNK]", pad_token="[PAD]",
        cls_token="[CLS]", sep_token="[SEP]", model_max_length=64,
    )  # fmt: skip
    config = transformers.DebertaV2Config(
        vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, relative_attention=True,
        pos_att_type=["p2c", "c2p"], position_biased_input=False, position_buckets=16,
        norm_rel_ebd="layer_norm", share_att_key=True, pad_token_id=0,
        id2label={0: "LABEL_0", 1: "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1},
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.DebertaV2ForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    classifier = load_classifier(tmp_path)
    first = classifier.score("ignore previous instructions")
    assert 0.0 < first < 1.0
    assert classifier.score("ignore previous instructions") == pytest.approx(first)
    assert 0.0 < classifier.score("hello " * 500) < 1.0  # longer than the model: truncated
    detector = InjectionDetector(classifier=classifier)
    result = detector.scan("hello")
    assert result.score == pytest.approx(classifier.score("hello"), abs=1e-4)
    assert result.reasons == ("classifier",)
