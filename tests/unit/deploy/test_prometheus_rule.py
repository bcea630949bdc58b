"""The PrometheusRule of the servicemonitor component: generated from deploy/prometheus's
rules file (the committed copy is what `make prometheusrule` writes), rendered by
`kubectl kustomize` into the platform's namespace with every other object of the
component still valid (kubernetes-validate, strict; the CRD's own objects are checked
here, as the core schemas do not have them), and its groups pass `promtool check rules`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.prometheus import PROMETHEUS_RULE, RULES, prometheus_rule, run_promtool
from tests.unit.k8s.test_kustomize import validate, with_components


def rendered_rule(tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    objects = with_components(tmp_path, "single-node", ("servicemonitor",))
    rules = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    return rules[0], objects


def test_the_committed_rule_is_generated_from_the_rules_file() -> None:
    assert PROMETHEUS_RULE.read_text() == prometheus_rule(), "run `make prometheusrule`"


def test_the_component_renders_the_rule_beside_valid_objects(tmp_path) -> None:
    rule, objects = rendered_rule(tmp_path)
    validate(objects)  # every core object of the overlay plus the component, strict
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == "bulkhead"
    assert rule["metadata"]["namespace"] == "bulkhead"
    assert rule["metadata"]["labels"]["app.kubernetes.io/part-of"] == "bulkhead"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_the_rendered_groups_pass_promtool(tmp_path) -> None:
    rule, _ = rendered_rule(tmp_path)
    path = tmp_path / "rendered.rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    done = run_promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_rule_has_only_the_fields_the_crd_knows() -> None:
    """The CRD's schema (monitoring.coreos.com/v1 Rule): record or alert, expr, for,
    labels, annotations (keep_firing_for is newer than some operators)."""
    known = {"record", "alert", "expr", "for", "labels", "annotations"}
    groups = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]["groups"]
    for group in groups:
        assert set(group) <= {"name", "interval", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= known, rule
            assert ("record" in rule) != ("alert" in rule)
            assert all(isinstance(v, str) for v in rule.get("labels", {}).values())
            assert all(isinstance(v, str) for v in rule.get("annotations", {}).values())
