"""A throwaway SoftHSM2 token for the PKCS#11 tests.

The token lives in a temporary directory named by its own ``softhsm2.conf``;
``SOFTHSM2_CONF`` is set in ``os.environ`` before anything loads the library,
because SoftHSM reads it once, when the module is initialised.  A process can
therefore hold one such token, which is why the fixture is session-scoped.
Missing SoftHSM2 is a failure, never a skip: `make test` installs it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


class SoftHsm(NamedTuple):
    module_path: str
    label: str
    pin: str


def module_path() -> str | None:
    given = os.environ.get("BULKHEAD_SOFTHSM_MODULE")
    if given:
        return given if Path(given).exists() else None
    return next((path for path in MODULE_CANDIDATES if Path(path).exists()), None)


@pytest.fixture(scope="session")
def softhsm() -> Iterator[SoftHsm]:
    """Yield (module_path, token label, user PIN) of a fresh, initialised token."""
    util, module = shutil.which("softhsm2-util"), module_path()
    if util is None or module is None:
        pytest.fail("SoftHSM2 is not installed (run `make services`, or apt-get install softhsm2)")
    root = Path(tempfile.mkdtemp(prefix="bulkhead-softhsm-"))
    tokens = root / "tokens"
    tokens.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label, pin = "bulkhead-test", "pin-" + secrets.token_hex(8)
    try:
        so_pin = "so-" + secrets.token_hex(8)
        done = subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.fail(f"softhsm2-util --init-token failed: {done.stderr.strip()}")
        yield SoftHsm(module, label, pin)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
        shutil.rmtree(root, ignore_errors=True)
