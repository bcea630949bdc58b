"""Fixtures of the sandbox tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A fresh directory that every user may pass through (pytest's own is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="bulkhead-sandbox-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
