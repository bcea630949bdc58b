"""LoRA adapters: what the gateway stores (`adapter_format`) and what the worker serves (`lora`).

The file checks refuse hostile configs (remote or local base paths are dropped,
never followed; odd module names, ranks and types refused), oversized files and
wrong names.  The worker test builds a tiny random LLaMA, trains nothing but
puts a non-zero adapter on it with `peft`, and checks that the hf-causal-lora
loader (base files and adapter as frames, merged) computes what peft's own
unmerged model does, and differs from the base.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from bulkhead.runtime.worker import adapter_format as af
from bulkhead.testing.fake_runner import fake_adapter

CONFIG = {"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}


def files(config: Any = CONFIG, weights: bytes | None = None) -> list[tuple[str, bytes]]:
    good = dict(fake_adapter())
    raw = config if isinstance(config, bytes) else json.dumps(config).encode()
    return [(af.ADAPTER_CONFIG, raw), (af.ADAPTER_WEIGHTS, weights or good[af.ADAPTER_WEIGHTS])]


def safetensors(shapes: dict[str, list[int]], dtype: str = "F32") -> bytes:
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = shape[0] * shape[1] * 4 if len(shape) == 2 else 4
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def test_a_config_is_reduced_to_its_lora_settings() -> None:
    hostile = {
        **CONFIG,
        "base_model_name_or_path": "https://evil.example/model",
        "revision": "main",
        "modules_to_save": ["lm_head"],
        "init_lora_weights": "loftq",
        "loftq_config": {"path": "/etc/passwd"},
        "auto_mapping": {"base_model_class": "os.system"},
    }
    checked = dict(af.check_adapter(files(hostile)))
    stored = json.loads(checked[af.ADAPTER_CONFIG])
    assert stored == {
        "bias": "none",
        "lora_alpha": 4,
        "lora_dropout": 0.0,
        "peft_type": "LORA",
        "r": 2,
        "target_modules": ["q_proj"],
        "task_type": "CAUSAL_LM",
    }


@pytest.mark.parametrize(
    "config",
    [
        b"[]",
        b"{not json",
        b"{" * 200 + b"}" * 200,
        {**CONFIG, "peft_type": "PREFIX_TUNING"},
        {**CONFIG, "r": 0},
        {**CONFIG, "r": 10_000},
        {**CONFIG, "r": "2"},
        {**CONFIG, "r": True},
        {**CONFIG, "lora_alpha": -1},
        {**CONFIG, "target_modules": ".*"},
        {**CONFIG, "target_modules": ["../../etc/passwd"]},
        {**CONFIG, "target_modules": ["model.layers.0.q_proj"]},
        {**CONFIG, "target_modules": []},
        {**CONFIG, "target_modules": ["q"] * 65},
        {k: v for k, v in CONFIG.items() if k != "target_modules"},
        json.dumps({**CONFIG, "pad": "x" * (af.MAX_CONFIG_BYTES + 1)}).encode(),
    ],
)
def test_hostile_configs_are_refused(config: Any) -> None:
    with pytest.raises(af.AdapterFormatError):
        af.check_adapter(files(config))


@pytest.mark.parametrize(
    "names",
    [
        ["adapter_config.json"],
        ["adapter_config.json", "adapter_model.bin"],
        ["adapter_config.json", "adapter_model.safetensors", "extra.json"],
        ["adapter_config.json", "adapter_config.json"],
        ["../adapter_config.json", "adapter_model.safetensors"],
    ],
)
def test_only_the_two_files_of_an_adapter_are_accepted(names: list[str]) -> None:
    given = dict(files())
    offered = [(n, given.get(Path(n).name, b"{}")) for n in names]
    with pytest.raises(af.AdapterFormatError, match="exactly"):
        af.check_adapter(offered)


A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"


@pytest.mark.parametrize(
    "weights",
    [
        b"not safetensors",
        safetensors({A: [2, 4]}),  # no B
        safetensors({A: [3, 4], B: [4, 3]}),  # rank 3, the config says 2
        safetensors({A: [2, 4], B: [4, 2], "lm_head.weight": [4, 4]}),  # not LoRA
        safetensors({A: [2, 4], B: [4, 2], "base_model.model.x.lora_embedding_A": [2, 4]}),
        safetensors({A: [2, 4], B: [4, 2]}, dtype="I32"),
        safetensors({A: [2], B: [4, 2]}),
    ],
)
def test_bad_weights_are_refused(weights: bytes) -> None:
    with pytest.raises(af.AdapterFormatError):
        af.check_adapter(files(weights=weights))


def test_oversized_weights_are_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(af, "MAX_WEIGHTS_BYTES", 64)
    with pytest.raises(af.AdapterFormatError, match="larger"):
        af.check_adapter(files())


# --- the worker -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    from tests.integration.test_model_import import save_tiny_llama

    directory = tmp_path_factory.mktemp("tiny")
    save_tiny_llama(directory)
    wanted = {"config.json", "model.safetensors", "tokenizer.json"}
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name in wanted}


def trained_adapter(tiny: dict[str, bytes]) -> tuple[list[tuple[str, bytes]], Any]:
    """A non-zero adapter on the tiny model, and peft's own (unmerged) model with it."""
    import torch

    from bulkhead.finetune import train
    from bulkhead.finetune.contract import Hyper
    from bulkhead.runtime.worker import hf_causal

    model = hf_causal.build_model(tiny["config.json"], hf_causal.load_state(tiny)).float()
    tuned = train.add_lora(model, Hyper(lora_rank=4))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    tuned.train(False)
    return train.adapter_files(tuned), tuned


def test_the_worker_serves_base_plus_adapter_from_frames(tiny: dict[str, bytes]) -> None:
    import torch

    from bulkhead.runtime.worker import hf_causal, lora

    adapter, reference = trained_adapter(tiny)
    frames = [*adapter, *((af.BASE_PREFIX + n, d) for n, d in tiny.items())]
    chat = lora.load_chat_model(frames)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    base = hf_causal.ImportedChatModel(tiny).model
    with torch.no_grad():
        served, wanted, plain = chat.model(ids).logits, reference(ids).logits, base(ids).logits
    assert torch.allclose(served, wanted, atol=1e-4)
    assert not torch.allclose(served, plain, atol=1e-3)
    assert not hasattr(chat.model, "peft_config")  # merged: the base's own code path


def test_the_worker_refuses_frames_it_does_not_expect(tiny: dict[str, bytes]) -> None:
    from bulkhead.runtime.worker import hf_causal, lora

    adapter = list(fake_adapter())
    base = [(af.BASE_PREFIX + n, d) for n, d in tiny.items()]
    for frames in (
        adapter,  # no base
        [*adapter, *base, (af.BASE_BUNDLED, b"smollm2-135m")],  # two bases
        [*adapter, *base, ("/etc/passwd", b"")],
        [*adapter, (af.BASE_BUNDLED, b"../../weights")],
    ):
        with pytest.raises(hf_causal.ModelFilesError):
            lora.load_chat_model(frames)
    # An adapter whose modules the base lacks does not load either.
    hostile = [(af.ADAPTER_CONFIG, json.dumps({**CONFIG, "target_modules": ["nope"]}).encode())]
    with pytest.raises(hf_causal.ModelFilesError):
        lora.load_chat_model([*hostile, adapter[1], *base])
