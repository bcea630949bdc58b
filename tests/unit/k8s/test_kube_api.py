"""The recording test double of the API server answers the way the API concepts describe
(it is a double, not a cluster: these tests check the double itself)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bulkhead.testing.kube_api import KubeStatus, RecordingKubeApi, parse_path, selector_matches
from tests.support.kube import TOKEN, namespace, quota

AUTH = {"authorization": f"Bearer {TOKEN}", "content-type": "application/apply-patch+yaml"}
NS = "/api/v1/namespaces/bh-a-serve"
QUOTA = f"{NS}/resourcequotas/tenant-quota"


@pytest.fixture
def api() -> Iterator[RecordingKubeApi]:
    with RecordingKubeApi(token=TOKEN) as double:
        yield double


def send(api: RecordingKubeApi, method: str, url: str, body: object = None, **headers: str):
    raw = json.dumps(body).encode() if body is not None else b""
    return api.handle(method, url, {**AUTH, **headers}, raw)


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("a=1", True),
        ("a==1", True),
        ("a=2", False),
        ("a!=2", True),
        ("a!=1", False),
        ("a,b=x", True),
        ("c", False),
        ("!c", True),
        ("!a", False),
        ("a=1,b=y", False),
    ],
)
def test_equality_label_selectors(selector: str, matches: bool) -> None:
    assert selector_matches(selector, {"a": "1", "b": "x"}) is matches


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/secrets",
        "/api/v1/namespaces/x/namespaces/y",
        "/apis/apps/v1/namespaces/x/replicasets/y",
        "/healthz",
        "/api/v1/namespaces/x/configmaps/y/extra",
    ],
)
def test_unknown_places_are_404(path: str) -> None:
    with pytest.raises(KubeStatus) as answer:
        parse_path(path)
    assert answer.value.code == 404


def test_apply_rules(api: RecordingKubeApi) -> None:
    with pytest.raises(KubeStatus) as no_manager:
        send(api, "PATCH", NS, namespace("bh-a-serve"))
    assert no_manager.value.code == 400
    with pytest.raises(KubeStatus) as merge_patch:
        send(api, "PATCH", f"{NS}?fieldManager=x", namespace("bh-a-serve"), **{
            "content-type": "application/merge-patch+json"
        })  # fmt: skip
    assert merge_patch.value.code == 415
    with pytest.raises(KubeStatus) as wrong_name:
        send(api, "PATCH", f"{NS}?fieldManager=x", namespace("other"))
    assert wrong_name.value.code == 400
    with pytest.raises(KubeStatus) as no_namespace:
        send(api, "PATCH", f"{QUOTA}?fieldManager=x", quota("bh-a-serve", "a"))
    assert no_namespace.value.code == 404
    assert send(api, "PATCH", f"{NS}?fieldManager=x", namespace("bh-a-serve"))[0] == 201
    assert send(api, "PATCH", f"{NS}?fieldManager=x", namespace("bh-a-serve"))[0] == 200
    with pytest.raises(KubeStatus) as conflict:
        send(api, "PATCH", f"{NS}?fieldManager=y", namespace("bh-a-serve", "a"))
    assert conflict.value.code == 409 and conflict.value.body()["reason"] == "Conflict"


def test_lists_leave_out_kind_and_delete_takes_a_namespace_s_objects(api: RecordingKubeApi) -> None:
    send(api, "PATCH", f"{NS}?fieldManager=x", namespace("bh-a-serve"))
    send(api, "PATCH", f"{QUOTA}?fieldManager=x", quota("bh-a-serve", "a"))
    listed = send(api, "GET", "/api/v1/resourcequotas?labelSelector=bulkhead.dev/tenant%3Da")[1]
    assert listed["kind"] == "ResourceQuotaList" and len(listed["items"]) == 1
    assert "kind" not in listed["items"][0] and "apiVersion" not in listed["items"][0]
    assert send(api, "GET", "/api/v1/resourcequotas?labelSelector=x%3Dy")[1]["items"] == []
    send(api, "DELETE", f"{NS}?dryRun=All")
    assert len(api.objects()) == 2
    send(api, "DELETE", NS)
    assert api.objects() == []


def test_the_token_is_checked_and_never_recorded(api: RecordingKubeApi) -> None:
    for auth in ("", "Bearer wrong", f"Basic {TOKEN}"):
        with pytest.raises(KubeStatus) as refused:
            api.handle("GET", "/api/v1/namespaces", {"authorization": auth}, b"")
        assert refused.value.code == 401 and refused.value.body()["kind"] == "Status"
    assert send(api, "GET", "/api/v1/namespaces")[0] == 200
    assert all(TOKEN not in repr(r) for r in api.requests)
