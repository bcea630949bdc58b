"""Samples, figures with targets, and their rendering as a text or Markdown table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import median

_FORMATS = {"req/s": "{:,.0f}", "ms": "{:.3f}", "MB": "{:.1f}", "s": "{:.2f}", "%": "{:.1f}"}
HEADER = ("figure", "gateway", "direct", "ratio gw/direct", "target", "met")


class Samples:
    """Per-run values of one target, by figure key."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = defaultdict(list)

    def add(self, key: str, value: float) -> None:
        self.values[key].append(value)

    def median(self, key: str) -> float | None:
        found = self.values.get(key)
        return median(found) if found else None


@dataclass(frozen=True)
class Target:
    op: str  # "<=" or ">="
    value: float
    unit: str

    def met(self, measured: float) -> bool:
        return measured <= self.value if self.op == "<=" else measured >= self.value

    def __str__(self) -> str:
        sign = "≤" if self.op == "<=" else "≥"
        return f"{sign} {_FORMATS[self.unit].format(self.value)} {self.unit}"


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    gateway: float | None
    direct: float | None = None
    target: Target | None = None

    def cells(self) -> tuple[str, ...]:
        ratio = "—"
        if self.gateway is not None and self.direct:
            ratio = f"{self.gateway / self.direct:.2f}x"
        target, met = "—", "—"
        if self.target is not None and self.gateway is not None:
            target = str(self.target)
            met = "yes" if self.target.met(self.gateway) else "NO"
        name = f"{self.name} ({self.unit})"
        return (name, self._fmt(self.gateway), self._fmt(self.direct), ratio, target, met)

    def _fmt(self, value: float | None) -> str:
        return "—" if value is None else _FORMATS[self.unit].format(value)


def text_table(figures: list[Figure]) -> str:
    rows = [HEADER, *(f.cells() for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for n, row in enumerate(rows):
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        lines.append("  ".join((first, *rest)))
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" + "--:|" * (len(HEADER) - 1)]
    lines += ["| " + " | ".join(f.cells()) + " |" for f in figures]
    return "\n".join(lines)


def raw_values(name: str, samples: Samples) -> list[str]:
    """One Markdown bullet per figure key with every run's value, for the record."""
    return [
        f"- {name} `{key}`: " + ", ".join(_plain(v) for v in values)
        for key, values in sorted(samples.values.items())
    ]


def _plain(value: float) -> str:
    """Four significant digits, never in exponent notation."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{round(value, 4):.4g}"
