"""The alert and recording rules (deploy/prometheus): `promtool check rules` passes, every
unit test in deploy/prometheus/tests passes under `promtool test rules`, every alert is
tested firing, every metric a rule reads is one the gateway exports, and every alert has
its runbook section in docs/operations.md."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from bulkhead.guard import anomaly
from tests.support import prometheus
from tests.support.prometheus import (
    METRIC,
    PROMETHEUS_OWN,
    ROOT,
    RULE_TESTS,
    RULES,
    exported_names,
    run_promtool,
)

OPERATIONS = ROOT / "docs" / "operations.md"


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def test_promtool_checks_the_rules() -> None:
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_runs_the_rule_unit_tests() -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in RULE_TESTS.glob("*.test.yml"))
    assert len(files) >= 2
    done = run_promtool("test", "rules", *files, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files)


def test_promtool_fails_a_wrong_expectation(tmp_path) -> None:
    """The unit tests can fail: an expectation that the limiter page is quiet is refused."""
    (tmp_path / "wrong.test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES)],
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [{"series": "bulkhead_limiter_up", "values": "0x10"}],
                        "alert_rule_test": [
                            {
                                "eval_time": "5m",
                                "alertname": "BulkheadLimiterDown",
                                "exp_alerts": [],
                            }
                        ],
                    }
                ],
            }
        )
    )
    done = run_promtool("test", "rules", "wrong.test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "BulkheadLimiterDown" in done.stdout + done.stderr


def test_every_alert_is_tested_firing() -> None:
    fired: set[str] = set()
    for path in RULE_TESTS.glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert set(alerts()) - fired == set()


def test_every_metric_a_rule_reads_is_exported_by_the_gateway() -> None:
    exported = exported_names()
    read = {name for rule in rules() for name in METRIC.findall(rule["expr"])}
    assert read, "the rules read no bulkhead_ metric?"
    assert read - exported - PROMETHEUS_OWN == set()


def test_the_anomaly_alert_covers_every_kind_the_detector_raises() -> None:
    """BulkheadAnomaly excludes kinds by a regex; each detector kind must get through it,
    and cross-tenant probing must have its own page."""
    expr = alerts()["BulkheadAnomaly"]["expr"]
    excluded = re.search(r'kind!~"([^"]+)"', expr)
    assert excluded is not None
    skip = re.compile(f"^(?:{excluded.group(1)})$")  # PromQL regexes are anchored
    kinds = anomaly.KEY_KINDS
    assert {k for k in kinds if skip.match(k)} == {anomaly.CROSS_TENANT_PROBING}
    assert (
        f'kind="{anomaly.CROSS_TENANT_PROBING}"' in alerts()["BulkheadCrossTenantProbing"]["expr"]
    )
    for platform_kind in ("audit.writer_failing", "keys.rotation_failed.ca", "limits.fail_open"):
        assert skip.match(platform_kind)


def test_every_alert_has_a_severity_and_a_runbook_section() -> None:
    doc = OPERATIONS.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in doc.splitlines()
        if line.startswith("#")
    }
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in {"page", "ticket", "warning"}, name
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md", name
        # The fast and slow burn of one SLO share a section.
        assert anchor in {name.lower(), name.lower().removesuffix("fast").removesuffix("slow")}
        assert anchor in anchors, f"docs/operations.md has no section for {name}"


def test_without_promtool_these_tests_fail_rather_than_skip(monkeypatch) -> None:
    monkeypatch.setattr(prometheus.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="make services"):
        prometheus.promtool()
