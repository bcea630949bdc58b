"""The settings table (`bulkhead.settings.SETTINGS`): the README's table, defaults and ranges
all come from it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bulkhead.errors import ConfigError
from bulkhead.settings import SETTINGS, Setting, Settings, load, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN, END = "<!-- settings table: generated", "<!-- end of settings table -->"


def test_the_readme_table_is_the_generated_one() -> None:
    text = README.read_text()
    start = text.index("\n", text.index(BEGIN)) + 1
    assert text[start : text.index(END)] == markdown_table(), (
        "README.md's configuration table is stale: paste `python -m bulkhead.settings` into it"
    )


def test_the_module_prints_the_table() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "bulkhead.settings"], capture_output=True, text=True, check=True
    ).stdout
    assert printed == markdown_table()


def test_every_field_is_one_row_and_every_variable_is_named_once() -> None:
    assert [row.name for row in SETTINGS] == [f.name for f in dataclasses.fields(Settings)]
    names = [row.env for row in SETTINGS if row.env is not None]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"BULKHEAD_[A-Z0-9_]+", name) for name in names)
    assert all(row.help for row in SETTINGS)


def test_an_empty_environment_gives_every_default(tmp_path: Path) -> None:
    settings = load(data_dir=tmp_path, env={})
    for row in SETTINGS:
        if row.name not in ("data_dir", "database_url"):
            assert getattr(settings, row.name) == row.default, row.name


@pytest.mark.parametrize("row", [r for r in SETTINGS if r.lo is not None], ids=lambda r: r.env)
def test_each_range_is_enforced_and_names_its_variable(tmp_path: Path, row: Setting) -> None:
    env, lo, hi = row.env, row.lo, row.hi
    assert env is not None and lo is not None and hi is not None
    load(data_dir=tmp_path, env={env: str(lo)})
    load(data_dir=tmp_path, env={env: str(hi)})
    for outside in (lo - 1, hi + 1):
        with pytest.raises(ConfigError) as caught:
            load(data_dir=tmp_path, env={env: str(outside)})
        assert env in caught.value.message
    with pytest.raises(ConfigError, match=env):
        load(data_dir=tmp_path, env={env: "ten"})


def test_secrets_stay_out_of_the_repr(tmp_path: Path) -> None:
    secret = "t0ken-that-must-not-show"
    env = {
        "BULKHEAD_ALERT_WEBHOOK_URL": f"https://hooks.example/{secret}",
        "BULKHEAD_KMS_MASTER_KEY": secret,
        "BULKHEAD_REDIS_URL": f"redis://:{secret}@redis",
        "BULKHEAD_OTLP_HEADERS": f"authorization=Bearer%20{secret}",
    }
    assert secret not in repr(load(data_dir=tmp_path, env=env))
