"""`BULKHEAD_VECTOR_CACHE_MB`: the memory one replica gives loaded vector store indexes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkhead.errors import ConfigError
from bulkhead.settings import load


def test_the_vector_cache_is_a_bounded_setting(tmp_path: Path) -> None:
    assert load(data_dir=tmp_path, env={}).vector_cache_mb == 512
    assert load(data_dir=tmp_path, env={"BULKHEAD_VECTOR_CACHE_MB": "64"}).vector_cache_mb == 64
    for bad in ("0", "15", "2000000", "lots"):
        with pytest.raises(ConfigError, match="BULKHEAD_VECTOR_CACHE_MB"):
            load(data_dir=tmp_path, env={"BULKHEAD_VECTOR_CACHE_MB": bad})
