"""The cluster config: defaults, the file, every refusal naming its field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bulkhead.domain import Tier
from bulkhead.errors import ConfigError
from bulkhead.k8s.config import load
from tests.unit.k8s.catalog import (
    VLLM,
)

# The config file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"vllm_image": "vllm/vllm-openai:latest"}, "pinned by digest"),
        ({"bulkhead_image": "x@sha256:abc"}, "pinned by digest"),
        ({"platfrom_namespace": "x"}, "unknown key 'platfrom_namespace'"),
        ({"platform_namespace": "Bad_NS"}, "platform_namespace: a DNS label"),
        ({"gateway_port": 0}, "gateway_port: a port"),
        ({"egress_cidrs": ["10.0.0.1/8"]}, "not a CIDR"),
        ({"runtime_classes": {"gold": "kata"}}, "unknown tier 'gold'"),
        ({"mig_profile": "1g.10gb+me"}, "has no Kubernetes resource name"),
        ({"mig_profile": "9g.1gb"}, "mig_profile: The H100 80GB has no MIG profile"),
        ({"gpu_model": "v100"}, "gpu_model: Unknown GPU model"),
        ({"dedicated_taint_effect": "Never"}, "one of NoSchedule"),
        ({"gateway_labels": {"app": "a b"}}, "not a label value"),
    ],
)
def test_bad_config_is_refused_naming_the_field(
    values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    path = tmp_path / "k8s.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(path)


def test_config_loads_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "k8s.yaml"
    path.write_text(
        f"vllm_image: {VLLM}\nruntime_classes:\n  dedicated: kata\ngpu_model: a100-80gb\n"
    )
    loaded = load(path)
    assert loaded.vllm_image == VLLM and loaded.runtime_class(Tier.DEDICATED) == "kata"
    assert loaded.runtime_class(Tier.SHARED) is None
    path.write_text("vllm_image: [unclosed\n")
    with pytest.raises(ConfigError, match="not YAML or JSON"):
        load(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a map"):
        load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.yaml")
