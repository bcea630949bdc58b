"""The browser's verifier (`console/static/verify.js`) run by node against Python's vectors.

`verify_vectors.py` builds a log, bundles and event proofs with the Python
implementation and records the Python verifier's verdict on each (tampered
ones included); `verify.test.mjs` (node's own test runner, `node --test`)
checks that the JavaScript reaches the same verdicts, and that it passes the
RFC 6962 inclusion vectors (`tests/vectors/rfc6962`) and opens the signed
checkpoint vectors (`tests/vectors/checkpoint`).  Without node the test
fails, it does not skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.console import verify_vectors

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def test_verify_js_agrees_with_the_python_verifier(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the browser verifier's tests run in node 20+.")
    vectors = tmp_path / "vectors.json"
    written = verify_vectors.write(vectors)
    # The vectors must hold both verdicts, or the comparison proves little.
    verdicts = [case["verdict"]["ok"] for case in written["bundles"].values()]
    assert verdicts.count(True) == 2 and verdicts.count(False) >= 20
    ran = subprocess.run(
        [node, "--experimental-detect-module", "--test", str(HERE / "verify.test.mjs")],
        cwd=ROOT,
        env={**os.environ, "BULKHEAD_VERIFY_VECTORS": str(vectors)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-3000:]
    assert "# fail 0" in ran.stdout
