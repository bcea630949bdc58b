"""The README's guard table names every guard setting with its default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bulkhead.guard import GuardConfig

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_guard_setting_has_a_row_with_its_default() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Guards") :].split("\n\n", 3)[2]
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2] for line in table.splitlines()[2:]}
    config = GuardConfig()
    for field in dataclasses.fields(GuardConfig):
        assert field.name in rows, field.name
        value = getattr(config, field.name)
        if isinstance(value, bool):
            assert rows[field.name].strip() == ("on" if value else "off"), field.name
        elif isinstance(value, int | float | str):
            assert str(value) in rows[field.name], field.name
