"""The scale-out stack: nginx in front of 3 `bulkhead serve` replicas on shared services.

    client ──> nginx ──┬──> replica 1 ─┐
                       ├──> replica 2 ─┼──> PostgreSQL 15 (app role under RLS), Redis,
                       └──> replica 3 ─┘    SoftHSM2 token (KMS), fake upstream model

Every process is real and supervised (`procs.Proc`), on 127.0.0.1 with free
ports, its files in one temporary directory.  Each replica has a data dir of
its own (its worker ledger, its witness file); the blob directory, where
sealed files live, is one directory they all share (a symlink in each data
dir), as a shared volume or object store would be in production.
`make scale-demo`, the scale-out tests and `bench/scaleout.py` all start it
through `Stack`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.scale.client import Response, call, chat
from tests.support.scale.procs import Proc, clean_env, leftovers, wait_ready
from tests.support.scale.services import (
    Nginx,
    Postgres,
    Redis,
    SoftHsmToken,
    free_port,
)

BULKHEAD = Path(sys.executable).parent / "bulkhead"
TENANT = "scale"
MODEL, SLOW_MODEL = "fake", "fake-slow"
CHAT = "/v1/chat/completions"


@dataclass
class Replica:
    index: int
    port: int
    data_dir: Path
    proc: Proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """How nginx names it (`$upstream_addr`)."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> float:
        """Start it and wait until /healthz answers 200; return the seconds that took."""
        self.proc.start()
        return wait_ready(self.url + "/healthz", self.proc, timeout_s)


class Stack:
    """Start with `start()` (or `running()`); `stop()` ends every process it started."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        replicas: int = 3,
        slow_s: float = 0.3,
        env: dict[str, str] | None = None,
    ):
        """`env`: more BULKHEAD_* settings for every replica (over the stack's own)."""
        self.root = root or Path(tempfile.mkdtemp(prefix="bulkhead-scale-"))
        # Others may pass through (PostgreSQL runs as `postgres`), not list or read.
        self.root.chmod(0o711)
        self.size, self.slow_s, self.extra_env = replicas, slow_s, dict(env or {})
        self.admin_key = self.approver_key = self.key = ""
        self._held: set[tuple[str, str]] = set()
        self.postgres = Postgres(self.root)
        self.redis = Redis(self.root)
        self.upstream = Proc("fake upstream", [], self.root / "upstream.log")
        self.replicas: list[Replica] = []
        self.nginx: Nginx | None = None
        self.hsm: SoftHsmToken | None = None
        self.app_url = self.admin_url = ""

    # Start and stop --------------------------------------------------------------------

    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.postgres.start()
        self.app_url, self.admin_url = self.postgres.create("bulkhead")
        self.redis.start()
        self.hsm = SoftHsmToken.create(self.root)
        self._start_upstream()
        (self.root / "blobs").mkdir(mode=0o700)
        self.replicas = [self._replica(n) for n in range(1, self.size + 1)]
        self._init()
        for replica in self.replicas:  # all at once: each takes seconds to import and migrate
            replica.proc.start()
        for replica in self.replicas:
            wait_ready(replica.url + "/healthz", replica.proc, 90)
        self.nginx = Nginx(self.root, [r.port for r in self.replicas]).start()
        wait_ready(self.url + "/healthz", self.nginx.proc, 30)
        self._provision()

    def _start_upstream(self) -> None:
        port = free_port()
        self.upstream_url = f"http://127.0.0.1:{port}/v1"
        self.upstream.argv = [sys.executable, "-m", "bulkhead.testing.fake_upstream"]
        self.upstream.argv += ["--host", "127.0.0.1", "--port", str(port)]
        self.upstream.argv += ["--slow-s", str(self.slow_s)]
        self.upstream.start()
        wait_ready(self.upstream_url + "/models", self.upstream, 30, any_status=True)

    def replica_env(self) -> dict[str, str]:
        assert self.hsm is not None
        return clean_env(
            {
                "BULKHEAD_DATABASE_URL": self.app_url,
                "BULKHEAD_DATABASE_ADMIN_URL": self.admin_url,
                "BULKHEAD_REDIS_URL": self.redis.url,
                "BULKHEAD_START_WORKERS": "0",
                # Every client reaches a replica from nginx's address: the per-address
                # sign-in limit would be the whole platform's (see docs/scale-out.md).
                "BULKHEAD_SIGNIN_CLIENT_RPM": "1000000",
                "BULKHEAD_SIGNIN_RPM": "1000000",
                **self.hsm.env(),
                **self.extra_env,
            }
        )

    def _replica(self, index: int) -> Replica:
        data = self.root / f"replica{index}"
        data.mkdir(mode=0o700)
        (data / "blobs").symlink_to(self.root / "blobs")
        port = free_port()
        argv = [str(BULKHEAD), "--data-dir", str(data), "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--metrics-port", "0"]
        proc = Proc(f"replica {index}", argv, self.root / f"replica{index}.log")
        proc.env = self.replica_env()
        return Replica(index, port, data, proc)

    def _init(self) -> None:
        """`bulkhead init` once (migrations, the admin, the CA), in a process of its own."""
        data = self.replicas[0].data_dir
        done = subprocess.run(
            [str(BULKHEAD), "--data-dir", str(data), "init", "--json", "--url", self.url_hint()],
            capture_output=True,
            text=True,
            env=self.replica_env(),
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bulkhead init failed:\n{done.stderr[-3000:]}")
        self.admin_key = str(json.loads(done.stdout)["admin_key"])

    def url_hint(self) -> str:
        return self.url if self.nginx else "http://127.0.0.1:8080"

    def stop(self) -> None:
        """Stop everything, the load balancer first and the database last (idempotent)."""
        if self.nginx is not None:
            self.nginx.stop()
        for replica in self.replicas:
            replica.proc.stop()
        self.upstream.stop()
        self.redis.stop()
        self.postgres.stop()

    def sessions(self) -> set[int]:
        procs = [self.postgres.proc, self.redis.proc, self.upstream]
        procs += [r.proc for r in self.replicas] + ([self.nginx.proc] if self.nginx else [])
        return {sid for proc in procs for sid in proc.sessions}

    def leftovers(self) -> list[str]:
        """Processes of this stack still running (none, once `stop` has returned)."""
        return leftovers(self.sessions(), marker=str(self.root))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        assert self.nginx is not None
        return self.nginx.url

    # Faults ----------------------------------------------------------------------------

    def restart_redis(self, down_s: float) -> None:
        """Redis gone for `down_s`, then back on the same port with nothing in it."""
        self.redis.stop()
        time.sleep(down_s)
        self.redis.start()

    def restart_postgres(self, down_s: float) -> None:
        """PostgreSQL gone for `down_s` (fast shutdown), then back with its data."""
        self.postgres.stop()
        time.sleep(down_s)
        self.postgres.start()

    # The platform, through its management API ------------------------------------------

    def admin(self, method: str, path: str, body: Any = None, *, via: str = "") -> Response:
        return call(method, (via or self.url) + path, self.admin_key, body)

    def must(self, method: str, path: str, body: Any = None, *, via: str = "") -> Any:
        answer = self.admin(method, path, body, via=via)
        assert answer.status < 300, (method, path, answer.status, answer.body)
        return answer.body

    def _provision(self) -> None:
        """Tenant `scale` with a key, and the fake upstream as two shared models."""
        self.approver_key = self._approver()
        self.tenant(TENANT)
        for name, upstream_model in ((MODEL, "fake-1"), (SLOW_MODEL, "slow-1")):
            body = {"name": name, "upstream": self.upstream_url, "upstream_model": upstream_model}
            self.must("POST", "/admin/v1/models", {**body, "max_in_flight": 100_000})
            self.must("POST", f"/admin/v1/models/{name}/grants", {"tenant": TENANT})
        self.key = self.mint_key(TENANT)
        self.wait_everywhere(self.key, MODEL)

    def _approver(self) -> str:
        """A second platform admin, written into the store: grants need another's approval."""
        from bulkhead.domain import PrincipalKind, Role
        from bulkhead.store import Database, repo

        db = Database(self.app_url)
        try:
            with db.platform_transaction() as session:
                kind, roles = PrincipalKind.USER, [Role.PLATFORM_ADMIN]
                approver = repo.create_principal(session, None, "approver", kind, roles)
                made = repo.create_key(
                    session, None, role=Role.PLATFORM_ADMIN, principal=approver, name="approver"
                )
        finally:
            db.dispose()
        return str(made.secret)

    def tenant(self, name: str, *, unlimited: bool = True) -> None:
        self.must("POST", "/admin/v1/tenants", {"name": name, "tier": "shared"})
        if unlimited:
            self.set_quotas(
                name, {"requests_per_minute": None, "tokens_per_minute": None, "concurrency": None}
            )

    def set_quotas(self, name: str, quotas: dict[str, Any]) -> None:
        """Change a tenant's limits or storage quota in the store (replicas see it next poll)."""
        from bulkhead.store import Database, repo

        db = Database(self.app_url)
        try:
            with db.platform_transaction() as session:
                repo.set_tenant_limits(session, name, quotas)
        finally:
            db.dispose()

    def grant(self, action: str, target: str) -> None:
        """A live grant for the bootstrap admin: requested by it, approved by the approver."""
        if (action, target) in self._held:
            return
        body = {"action": action, "target": target, "duration_s": 4 * 3600}
        made = self.must(
            "POST", "/admin/v1/access-requests", {**body, "reason": "scale-out stack set-up"}
        )
        approved = call(
            "POST",
            f"{self.url}/admin/v1/access-requests/{made['id']}/approve",
            self.approver_key,
        )
        assert approved.status == 200, (approved.status, approved.body)
        self._held.add((action, target))

    def mint_key(self, tenant: str, *, via: str = "") -> str:
        self.grant("admin:keys.create", tenant)
        return str(self.must("POST", f"/admin/v1/tenants/{tenant}/keys", {}, via=via)["secret"])

    def wait_everywhere(self, key: str, model: str, timeout_s: float = 10.0) -> float:
        """Wait until `key` can call `model` on every replica directly; return the seconds."""
        start = time.monotonic()
        pending = list(self.replicas)
        while pending:
            if call("POST", pending[0].url + CHAT, key, chat(model)).status == 200:
                pending.pop(0)
                continue
            if time.monotonic() - start > timeout_s:
                raise RuntimeError(f"{model} not callable on replica {pending[0].index}")
            time.sleep(0.05)
        return time.monotonic() - start


@contextlib.contextmanager
def running(**options: Any) -> Iterator[Stack]:
    """A started stack, stopped and its directory removed afterwards."""
    stack = Stack(**options).start()
    try:
        yield stack
    finally:
        stack.stop()
        stack.remove()
