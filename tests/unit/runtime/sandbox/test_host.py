"""What the host probe finds, and how paths a dropped uid cannot reach are found."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.support.sandbox import expected_features

from bulkhead.runtime.sandbox import Feature, probe_host
from bulkhead.runtime.sandbox._host import (
    blocked_ancestor,
    gpu_devices,
    inside_any,
    interpreter_paths,
    may_access,
    outermost,
    readable,
)

NOBODY = 65534


def test_every_feature_this_machine_should_offer_is_found() -> None:
    host = probe_host()
    missing = {f: why for f, why in host.missing.items() if f in expected_features()}
    assert not missing, missing


def test_reasons_are_given_for_what_is_missing() -> None:
    host = probe_host()
    assert all(isinstance(why, str) and why for why in host.missing.values())
    assert set(host.missing) <= set(Feature)


def test_interpreter_paths_cover_the_standard_library_and_this_package() -> None:
    paths = interpreter_paths()
    assert inside_any(os.path.realpath(os.__file__), paths)
    assert inside_any(os.path.realpath(pytest.__file__), paths)
    assert list(paths) == sorted(paths) and outermost(paths) == paths


def test_outermost_drops_nested_paths_but_not_lookalikes() -> None:
    assert outermost(["/a/b", "/a", "/ab", "/a/b/c", "/x"]) == ("/a", "/ab", "/x")


def test_a_private_directory_blocks_what_is_beneath_it(open_tmp: Path) -> None:
    private = open_tmp / "home"
    inner = private / "venv" / "lib"
    inner.mkdir(parents=True)
    os.chmod(private, 0o700)
    assert blocked_ancestor(str(inner), NOBODY) == str(private)
    os.chmod(private, 0o711)
    assert blocked_ancestor(str(inner), NOBODY) is None
    assert readable(str(inner), NOBODY)


def test_owner_group_and_other_bits_are_read_in_that_order(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    os.chmod(path, 0o604)
    assert may_access(str(path), NOBODY, 4)
    os.chown(path, NOBODY, 0)
    assert may_access(str(path), NOBODY, 4 | 2)
    os.chmod(path, 0o004)
    assert not may_access(str(path), NOBODY, 4)  # the owner's bits rule, not the others'


def test_gpu_devices_are_found_by_name(tmp_path: Path) -> None:
    (tmp_path / "nvidia0").touch()
    (tmp_path / "nvidiactl").touch()
    (tmp_path / "nvidia-caps").mkdir()
    (tmp_path / "nvidia-caps" / "nvidia-cap1").touch()
    (tmp_path / "sda").touch()
    found = [Path(p).name for p in gpu_devices(tmp_path)]
    assert sorted(found) == ["nvidia-cap1", "nvidia0", "nvidiactl"]
