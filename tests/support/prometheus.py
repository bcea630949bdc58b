"""promtool, and the names of every series the gateway can export, for the tests of
deploy/prometheus (alert rules) and deploy/grafana (the dashboard).

`make services` installs promtool (Debian package `prometheus`); without it these tests
fail, never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bulkhead.audit import WriterState
from bulkhead.observe import Metrics
from bulkhead.observe.collectors import WorkerFacts

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "bulkhead.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests"
DASHBOARD = ROOT / "deploy" / "grafana" / "bulkhead.json"
# A metric name of the gateway's in PromQL (recording rules are `bulkhead:...`).
METRIC = re.compile(r"\bbulkhead_[a-z0-9_]+\b")
RECORDED = re.compile(r"\bbulkhead:[a-z0-9_:]+\b")
# Series Prometheus makes itself, which a rule or panel may read.
PROMETHEUS_OWN = frozenset({"ALERTS", "ALERTS_FOR_STATE", "up"})
# What each type of metric family adds to its name in the exposition.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created", ""),
    "gauge": ("",),
    "unknown": ("",),
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed (run `make services`: Debian package prometheus)")
    return found


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def exported_names() -> set[str]:
    """Every series name a gateway's registry can export, with every scrape-time reader
    registered (as `app.build` registers them), read from the families' own descriptions."""
    metrics = Metrics()
    metrics.watch_audit(lambda: WriterState(healthy=True, backlog=0))
    metrics.watch_catalog(lambda: 0.0, lambda: True)
    metrics.watch_key_ages(lambda: {})
    metrics.watch_key_rotations(lambda: {})
    metrics.watch_api_key_ages(lambda: {})
    metrics.watch_limiter("redis", lambda: True)
    metrics.watch_workers(lambda: [WorkerFacts("d", "m", 0, True, False)])
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


PROMETHEUS_RULE = (
    ROOT / "deploy" / "kustomize" / "components" / "servicemonitor" / "prometheusrule.yaml"
)
_HEADER = """\
# Generated from deploy/prometheus/bulkhead.rules.yml by `make prometheusrule`: do not
# edit here (tests/unit/deploy/test_prometheus_rule.py keeps the two the same). The
# Prometheus Operator loads it when its ruleSelector matches; add the label your
# Prometheus selects on (e.g. `release: prometheus`) in your own kustomization.
"""


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def prometheus_rule() -> str:
    """The PrometheusRule object (monitoring.coreos.com/v1) holding the rules file's groups."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "bulkhead", "labels": {"bulkhead.dev/rules": "true"}},
        "spec": {"groups": groups},
    }
    return _HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=100)


if __name__ == "__main__":  # `make prometheusrule`
    PROMETHEUS_RULE.write_text(prometheus_rule())
