"""The Grafana dashboard (deploy/grafana/bulkhead.json): valid JSON, every panel's PromQL
parses (`promtool check rules` on a rules file wrapping each query, Grafana's variables
filled in), every metric it names is one the gateway exports (or a recording rule of
deploy/prometheus), and it shows what operators need."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.support.prometheus import (
    DASHBOARD,
    METRIC,
    PROMETHEUS_OWN,
    RECORDED,
    RULES,
    exported_names,
    run_promtool,
)

# What Grafana puts in place of its variables before the query reaches Prometheus.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$tenant": ".*",
    "$surface": ".*",
}
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{")
LABEL_VALUES = re.compile(r"label_values\((\w+), *(\w+)\)")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels() for t in p["targets"]]


def filled(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def recorded() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def test_it_is_a_dashboard_with_unique_panel_ids_and_a_prometheus_datasource() -> None:
    board = dashboard()
    assert board["uid"] == "bulkhead-gateway" and board["title"] == "Bulkhead"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


def test_every_query_parses(tmp_path) -> None:
    """promtool parses each query as a recording rule's expression."""
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": filled(expr)}
        for i, (_, expr) in enumerate(queries())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run_promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_a_query_that_does_not_parse_is_refused(tmp_path) -> None:
    """The check above can fail: a broken query is reported."""
    rule = {
        "record": "dashboard:broken",
        "expr": "sum by (tenant (rate(bulkhead_requests_total[1m]))",
    }
    path = tmp_path / "broken.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [rule]}]}))
    assert run_promtool("check", "rules", str(path)).returncode != 0


def test_every_metric_it_names_exists() -> None:
    exported, records = exported_names(), recorded()
    texts = [expr for _, expr in queries()]
    texts += [v["definition"] for v in dashboard()["templating"]["list"] if "definition" in v]
    for text in texts:
        assert set(METRIC.findall(text)) <= exported, text
        assert set(RECORDED.findall(text)) <= records, text
        for name in SELECTOR.findall(text):
            assert name.startswith(("bulkhead_", "bulkhead:")) or name in PROMETHEUS_OWN, text
    for metric, _label in LABEL_VALUES.findall(" ".join(texts)):
        assert metric in exported


def test_it_shows_what_operators_need() -> None:
    text = " ".join(expr for _, expr in queries())
    for needed in (
        "bulkhead_requests_total",  # requests
        'status=~"5.."',  # errors
        "histogram_quantile(0.99, sum by (le) (rate(bulkhead_request_seconds_bucket",  # latency
        "bulkhead_tokens_total",
        "sum by (reason) (rate(bulkhead_denials_total",  # refusals by reason
        "bulkhead_errors_total",
        "bulkhead_limiter_up",
        "bulkhead_audit_writer_up",
        "bulkhead_worker_ready",
        "bulkhead_worker_restarts_total",
        "bulkhead_alerts_total",
        "ALERTS{",
        "bulkhead_break_glass_total",
        "bulkhead_api_key_oldest_age_seconds",
        "bulkhead_key_rotation_due_timestamp_seconds",
    ):
        assert needed in text, needed
