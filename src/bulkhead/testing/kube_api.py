"""`RecordingKubeApi`: a recording test double of the Kubernetes API server, NOT a cluster.

It proves what Bulkhead sends, not how a real API server behaves.  It is a
real HTTP(S) server on 127.0.0.1 (a free port, a thread per request) that

- records every request: method, path, query, content type and JSON body
  (never the Authorization header);
- checks a bearer token (401 and a Status object without it);
- keeps a plain object store, so that GET, LIST (across all namespaces or in
  one, with equality-based `labelSelector`: `k=v`, `k==v`, `k!=v`, `k`, `!k`),
  server-side apply `PATCH` (create, or replace the applied fields; `dryRun=All`
  answers without storing; another field manager's object with different
  content is a 409 Conflict unless `force=true`), `POST` to a collection
  (create; 409 AlreadyExists when the name is taken) and `DELETE` (a namespace
  takes its objects with it) answer the way the API concepts document them,
  with Status objects for 400/401/404/409/415;
- knows the REST places of the kinds Bulkhead renders from its own table (not
  Bulkhead's), and answers 404 for any other path, so a wrong path fails a test.

What it does not do: defaulting, validation against the OpenAPI schema,
admission (Pod Security, quotas), field-level ownership, finalizers and
garbage collection, watches.  None of those can be concluded from a test that
passes against it.

    with RecordingKubeApi(token="t", tls=True) as api:
        api.url, api.ca_file   # a kubeconfig's server and certificate-authority
        api.requests           # [Recorded(method, path, query, content_type, body), ...]
        api.objects()          # what the store holds now
"""

from __future__ import annotations

import copy
import datetime
import hmac
import itertools
import json
import ssl
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Json = dict[str, Any]
Key = tuple[str, str, str, str]  # (group/version, plural, namespace, name)

# plural -> (group/version, kind, namespaced): from the Kubernetes API reference.
KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "namespaces"): ("Namespace", False),
    ("v1", "resourcequotas"): ("ResourceQuota", True),
    ("v1", "limitranges"): ("LimitRange", True),
    ("v1", "serviceaccounts"): ("ServiceAccount", True),
    ("v1", "services"): ("Service", True),
    ("v1", "configmaps"): ("ConfigMap", True),
    ("networking.k8s.io/v1", "networkpolicies"): ("NetworkPolicy", True),
    ("rbac.authorization.k8s.io/v1", "roles"): ("Role", True),
    ("rbac.authorization.k8s.io/v1", "rolebindings"): ("RoleBinding", True),
    ("apps/v1", "deployments"): ("Deployment", True),
    ("batch/v1", "jobs"): ("Job", True),
    ("v1", "pods"): ("Pod", True),
}
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as it arrived (the Authorization header is not kept)."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any


class KubeStatus(Exception):
    """An answer with a Status object (`kind: Status`), as the API server sends errors."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> Json:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed REST path: a collection (`name` empty) or an item."""

    group_version: str
    plural: str
    namespace: str
    name: str
    kind: str
    namespaced: bool


def parse_path(path: str) -> Target:
    """`/api/v1/...` or `/apis/<group>/<version>/...` (Kubernetes API concepts)."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[:1] == ["api"] and len(parts) >= 2:
        gv, rest = parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise KubeStatus(404, "NotFound", "the server could not find the requested resource")
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 2 or (gv, rest[0]) not in KINDS:
        raise KubeStatus(404, "NotFound", "the server could not find the requested resource")
    kind, namespaced = KINDS[(gv, rest[0])]
    if namespace and not namespaced:
        raise KubeStatus(404, "NotFound", "the server could not find the requested resource")
    return Target(gv, rest[0], namespace, rest[1] if len(rest) == 2 else "", kind, namespaced)


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selector requirements, ANDed (Kubernetes "Labels and Selectors")."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class RecordingKubeApi:
    """See the module's docstring: a recording test double, not a cluster."""

    def __init__(self, token: str, *, tls: bool = False):
        self.token = token
        self.requests: list[Recorded] = []
        self._store: dict[Key, Json] = {}
        self._owners: dict[Key, str] = {}  # which field manager made each object
        self._failures: dict[tuple[str, str], tuple[int, str]] = {}
        self._versions = itertools.count(1)
        self._lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="kube-api-")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.ca_file: Path | None = None
        if tls:
            self.ca_file = _self_signed(Path(self._dir.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, Path(self._dir.name) / "key.pem")
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.host, self.port = "127.0.0.1", self.server.server_address[1]
        self.url = f"{scheme}://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> RecordingKubeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._dir.cleanup()

    # What tests look at and set up ----------------------------------------------------

    def objects(self, kind: str | None = None) -> list[Json]:
        with self._lock:
            found = [copy.deepcopy(o) for o in self._store.values()]
        return [o for o in found if kind is None or o["kind"] == kind]

    def find(self, kind: str, name: str, namespace: str = "") -> Json | None:
        for obj in self.objects(kind):
            meta = obj["metadata"]
            if meta["name"] == name and meta.get("namespace", "") == namespace:
                return obj
        return None

    def put(self, obj: Json, *, manager: str = "kubectl") -> None:
        """Store an object as if another client (`manager`) had made it."""
        path = _path_of(obj)
        self._apply(parse_path(path), copy.deepcopy(obj), manager, force=True, dry_run=False)

    def fail(self, method: str, path: str, code: int = 500, reason: str = "InternalError") -> None:
        """Answer `method path` with a Status of `code` from now on."""
        self._failures[(method, path)] = (code, reason)

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in {"PATCH", "DELETE", "POST", "PUT"}]

    # Serving --------------------------------------------------------------------------

    def handle(
        self, method: str, url: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Json]:
        split = urlsplit(url)
        query = parse_qs(split.query)
        content_type = headers.get("content-type", "")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.requests.append(Recorded(method, split.path, query, content_type, body))
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.encode(), self.token.encode()
        ):
            raise KubeStatus(401, "Unauthorized", "Unauthorized")
        if (method, split.path) in self._failures:
            code, reason = self._failures[(method, split.path)]
            raise KubeStatus(code, reason, f"injected failure for {method} {split.path}")
        target = parse_path(split.path)
        with self._lock:
            return self._route(method, target, query, content_type, body)

    def _route(
        self, method: str, target: Target, query: dict[str, list[str]], ctype: str, body: Any
    ) -> tuple[int, Json]:
        if method == "GET" and not target.name:
            return 200, self._list(target, query.get("labelSelector", [""])[0])
        if method == "GET":
            return 200, copy.deepcopy(self._get(target))
        if method == "PATCH" and target.name:
            return self._patch(target, query, ctype, body)
        if method == "POST" and not target.name:
            return self._create(target, query, body)
        if method == "DELETE" and target.name:
            return self._delete(target, dry_run=query.get("dryRun") == ["All"])
        raise KubeStatus(405, "MethodNotAllowed", f"{method} is not supported by this double")

    def _key(self, target: Target) -> Key:
        return (target.group_version, target.plural, target.namespace, target.name)

    def _get(self, target: Target) -> Json:
        found = self._store.get(self._key(target))
        if found is None:
            raise KubeStatus(404, "NotFound", f'{target.plural} "{target.name}" not found')
        return found

    def _list(self, target: Target, selector: str) -> Json:
        items = []
        for (gv, plural, ns, _), obj in sorted(self._store.items()):
            if (gv, plural) != (target.group_version, target.plural):
                continue
            if target.namespace and ns != target.namespace:
                continue
            if selector_matches(selector, obj["metadata"].get("labels") or {}):
                # Items of a typed list carry no apiVersion or kind, as the real server's.
                items.append({k: v for k, v in obj.items() if k not in {"apiVersion", "kind"}})
        return {
            "kind": f"{target.kind}List",
            "apiVersion": target.group_version,
            "metadata": {"resourceVersion": str(next(self._versions))},
            "items": copy.deepcopy(items),
        }

    def _patch(
        self, target: Target, query: dict[str, list[str]], ctype: str, body: Any
    ) -> tuple[int, Json]:
        if ctype.split(";")[0].strip() != APPLY_PATCH:
            raise KubeStatus(415, "UnsupportedMediaType", f"this double takes only {APPLY_PATCH}")
        manager = query.get("fieldManager", [""])[0]
        if not manager:
            raise KubeStatus(
                400, "BadRequest", "fieldManager: Required value: is required for apply patch"
            )
        if not isinstance(body, dict):
            raise KubeStatus(400, "BadRequest", "the body of an apply patch must be an object")
        _check_identity(target, body)
        force = query.get("force") == ["true"]
        return self._apply(
            target, body, manager, force=force, dry_run=query.get("dryRun") == ["All"]
        )

    def _create(self, target: Target, query: dict[str, list[str]], body: Any) -> tuple[int, Json]:
        """POST to a collection: a new object, 409 AlreadyExists when the name is taken."""
        if not isinstance(body, dict):
            raise KubeStatus(400, "BadRequest", "the body of a create must be an object")
        item = replace(target, name=str((body.get("metadata") or {}).get("name")))
        _check_identity(item, body)
        if self._key(item) in self._store:
            raise KubeStatus(409, "AlreadyExists", f'{item.plural} "{item.name}" already exists')
        manager = query.get("fieldManager", ["unknown"])[0]
        dry_run = query.get("dryRun") == ["All"]
        return self._apply(item, body, manager, force=False, dry_run=dry_run)

    def _apply(
        self, target: Target, body: Json, manager: str, *, force: bool, dry_run: bool
    ) -> tuple[int, Json]:
        key = self._key(target)
        if target.namespaced and (("v1", "namespaces", "", target.namespace) not in self._store):
            raise KubeStatus(404, "NotFound", f'namespaces "{target.namespace}" not found')
        old = self._store.get(key)
        new = _merged(old, body)
        if old is not None and _content(old) != _content(new):
            if self._owners.get(key) != manager and not force:
                raise KubeStatus(
                    409,
                    "Conflict",
                    f"Apply failed with 1 conflict: conflict with {self._owners.get(key)!r}",
                )
            new["metadata"]["resourceVersion"] = str(next(self._versions))
        elif old is None:
            new["metadata"].update(_server_metadata(next(self._versions)))
        if not dry_run:
            self._store[key] = new
            self._owners[key] = manager
        return (201 if old is None else 200), copy.deepcopy(new)

    def _delete(self, target: Target, *, dry_run: bool) -> tuple[int, Json]:
        found = copy.deepcopy(self._get(target))
        if not dry_run:
            key = self._key(target)
            del self._store[key]
            if target.plural == "namespaces":  # The namespace's objects go with it.
                for other in [k for k in self._store if k[2] == target.name]:
                    del self._store[other]
        return 200, found


def _check_identity(target: Target, body: Json) -> None:
    """The body must name the path's kind, name and namespace, as the real server checks."""
    meta = body.get("metadata") or {}
    if body.get("apiVersion") != target.group_version or body.get("kind") != target.kind:
        raise KubeStatus(400, "BadRequest", "apiVersion/kind of the body do not match the path")
    if meta.get("name") != target.name:
        raise KubeStatus(
            400, "BadRequest", "the name of the object does not match the name on the URL"
        )
    if target.namespaced and meta.get("namespace", target.namespace) != target.namespace:
        raise KubeStatus(400, "BadRequest", "the namespace of the object does not match the URL")


def _merged(old: Json | None, body: Json) -> Json:
    """The applied fields replace the old ones; the server's metadata is kept."""
    new = copy.deepcopy(body)
    meta = new.setdefault("metadata", {})
    if old is not None:
        for name in ("uid", "creationTimestamp", "resourceVersion"):
            meta[name] = old["metadata"][name]
        if "status" in old:
            new.setdefault("status", copy.deepcopy(old["status"]))
    return new


def _content(obj: Json) -> Json:
    meta = {
        k: v
        for k, v in obj["metadata"].items()
        if k not in {"uid", "creationTimestamp", "resourceVersion"}
    }
    return {**obj, "metadata": meta}


def _server_metadata(version: int) -> Json:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"uid": str(uuid.uuid4()), "creationTimestamp": now, "resourceVersion": str(version)}


def _path_of(obj: Json) -> str:
    gv, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
    plural = next(p for (g, p), (k, _) in KINDS.items() if g == gv and k == kind)
    prefix = f"/apis/{gv}" if "/" in gv else f"/api/{gv}"
    where = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
    return f"{prefix}{where}/{plural}/{meta['name']}"


def _handler(api: RecordingKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, answer = api.handle(self.command, self.path, headers, raw)
            except KubeStatus as exc:
                status, answer = exc.code, exc.body()
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read `api.requests` instead."""

    return Handler


def _self_signed(directory: Path) -> Path:
    """A certificate for 127.0.0.1 that is its own CA: `cert.pem`, `key.pem` in `directory`.

    Made by the `openssl` command, so that nothing outside `bulkhead.crypto.hazmat`
    imports `cryptography.hazmat` (tests/unit/crypto/test_hazmat_boundary.py)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=recording-kube-api",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert
