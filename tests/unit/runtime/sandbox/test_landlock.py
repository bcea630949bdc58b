"""The Landlock binding: rights per ABI, and a real ruleset in a child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.support.sandbox import expected_features

from bulkhead.runtime.sandbox import Feature
from bulkhead.runtime.sandbox import _landlock as landlock


def test_each_abi_handles_the_rights_it_knows() -> None:
    assert landlock.handled_fs(1) == (1 << 13) - 1
    assert landlock.handled_fs(2) & landlock.REFER
    assert not landlock.handled_fs(2) & landlock.TRUNCATE
    assert landlock.handled_fs(3) & landlock.TRUNCATE
    assert not landlock.handled_fs(4) & landlock.IOCTL_DEV
    assert landlock.handled_fs(7) & landlock.IOCTL_DEV
    assert not landlock.writable(7) & landlock.EXECUTE


def test_restricting_without_landlock_raises() -> None:
    with pytest.raises(OSError, match="not available"):
        landlock.restrict_self([], 0)


def test_a_confined_child_reads_and_writes_only_what_its_rules_allow(open_tmp: Path) -> None:
    if Feature.LANDLOCK not in expected_features():
        pytest.skip("this kernel has no Landlock")
    outside = open_tmp / "outside.txt"
    outside.write_text("secret")
    mine = open_tmp / "mine"
    mine.mkdir()
    code = textwrap.dedent(
        f"""
        import ctypes, os
        from pathlib import Path
        from bulkhead.runtime.sandbox import _landlock as ll
        ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)
        rules = [ll.Rule(Path(p), ll.READ) for p in {sorted(set(sys.path) - {""})!r}]
        mine = Path({str(mine)!r})
        rules += [ll.Rule(Path("/usr"), ll.READ), ll.Rule(mine, ll.writable(ll.abi_version()))]
        ll.restrict_self(rules, ll.abi_version())
        (mine / "new.txt").write_text("ok")
        for attempt in (lambda: Path({str(outside)!r}).read_text(), lambda: os.listdir("/")):
            try:
                attempt()
                print("allowed")
            except PermissionError:
                print("refused")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "refused"]
    assert (mine / "new.txt").read_text() == "ok"
