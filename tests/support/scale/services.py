"""The shared services of the scale-out stack: PostgreSQL 15, Redis, a SoftHSM2 token, nginx.

Each is a supervised foreground process (`procs.Proc`) with its files under
the stack's temporary directory and a free port on 127.0.0.1, so two stacks
(or a stack and `make run`) can share the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from tests.support.postgres import APP_ROLE, PG_BIN, app_url, sqlalchemy_url
from tests.support.scale.procs import Proc, clean_env
from tests.support.softhsm import module_path

NGINX = Path(os.environ.get("BULKHEAD_NGINX", "/usr/sbin/nginx"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Postgres:
    """A throwaway cluster run in the foreground (`postgres`, not `pg_ctl`), so it is supervised.

    The application connects as `APP_ROLE` (no superuser, no BYPASSRLS):
    row-level security binds it; migrations run through `admin_url`.
    """

    def __init__(self, root: Path):
        if not (PG_BIN / "postgres").exists():
            raise RuntimeError(f"PostgreSQL 15 is not installed at {PG_BIN}")
        self.root, self.port = root / "pg", free_port()
        self.root.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        argv = [str(PG_BIN / "postgres"), "-D", str(self.data), "-k", str(self.root)]
        argv += ["-h", "127.0.0.1", "-p", str(self.port), "-c", "max_connections=300"]
        argv += ["-F", "-c", "fsync=off"]
        # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, not waited for.
        self.proc = Proc("postgres", _as_postgres(argv), root / "postgres.log")
        self.proc.stop_signal = signal.SIGINT
        self.superuser_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> Postgres:
        self.proc.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.superuser_url, connect_timeout=1, autocommit=True):
                    return self
            except psycopg.OperationalError:
                self.proc.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start:\n{self.proc.log_tail()}") from None
                time.sleep(0.05)

    def create(self, name: str) -> tuple[str, str]:
        """A database, and its (application, owner) SQLAlchemy URLs."""
        with psycopg.connect(self.superuser_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
            conn.execute(
                f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
                f"PASSWORD '{APP_ROLE}'"
            )
        owner = self.superuser_url.rsplit("/", 1)[0] + f"/{name}"
        return sqlalchemy_url(app_url(owner)), sqlalchemy_url(owner)

    def stop(self) -> None:
        self.proc.stop()


class Redis:
    """A Redis without persistence; `restart` brings it back on the same port, empty."""

    def __init__(self, root: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (run `make services`)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(root)]
        self.proc = Proc("redis", argv, root / "redis.log")

    def start(self, timeout_s: float = 10.0) -> Redis:
        self.proc.start()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    self.proc.check_alive()
                    if time.monotonic() > deadline:
                        log = self.proc.log_tail()
                        raise RuntimeError(f"redis did not start:\n{log}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        self.proc.stop()


@dataclass
class SoftHsmToken:
    """A SoftHSM2 token in the stack's directory; every replica opens it through `env`."""

    root: Path
    module: str
    label: str
    pin: str

    @classmethod
    def create(cls, root: Path) -> SoftHsmToken:
        util, module = shutil.which("softhsm2-util"), module_path()
        if util is None or module is None:
            raise RuntimeError("SoftHSM2 is not installed (run `make services`)")
        home = root / "softhsm"
        (home / "tokens").mkdir(parents=True, mode=0o700)
        conf = home / "softhsm2.conf"
        conf.write_text(
            f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\n"
            "log.level = ERROR\n"
        )
        token = cls(home, module, "bulkhead-scale", "pin-" + secrets.token_hex(8))
        args = [util, "--init-token", "--free", "--label", token.label, "--pin", token.pin]
        args += ["--so-pin", "so-" + secrets.token_hex(8)]
        subprocess.run(args, check=True, capture_output=True, env=clean_env(token.env()))
        return token

    def env(self) -> dict[str, str]:
        """What a gateway needs to use the token as its KMS."""
        return {
            "SOFTHSM2_CONF": str(self.root / "softhsm2.conf"),
            "BULKHEAD_KMS": "pkcs11",
            "BULKHEAD_PKCS11_MODULE": self.module,
            "BULKHEAD_PKCS11_TOKEN": self.label,
            "BULKHEAD_PKCS11_PIN": self.pin,
        }

    def take_away(self) -> None:
        """The HSM is gone: its token directory moves aside (sessions on it are lost)."""
        tokens = self.root / "tokens"
        for entry in tokens.iterdir():
            entry.rename(self.root / f"away-{entry.name}")

    def bring_back(self) -> None:
        """The same token, keys and all, is present again."""
        for entry in self.root.iterdir():
            if entry.name.startswith("away-"):
                entry.rename(self.root / "tokens" / entry.name.removeprefix("away-"))


def nginx_conf(root: Path, port: int, replicas: list[int]) -> str:
    """The load balancer: the replicas as one upstream, with passive health checks.

    Retries (`proxy_next_upstream error timeout`): nginx passes a request to
    the next replica only when the one it chose failed to connect, or - for
    idempotent methods - failed before answering.  A POST already sent to a
    replica is never passed on (nginx needs `non_idempotent` for that, which
    is deliberately not set): a model call that may have reached the model
    must not run twice behind the client's back.  A replica that failed is
    left out for `fail_timeout` (`max_fails=1`).  Idle upstream connections
    are closed by nginx (4 s) before the gateway would close them (5 s), so nginx
    does not send a request down a connection the replica is closing.
    Responses are not buffered, so server-sent events stream as they come.
    """
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in replicas)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  log_format upstreams '$remote_addr [$time_local] "$request" $status '
                       'upstream=$upstream_addr upstream_status=$upstream_status '
                       'rt=$request_time';
  access_log {root}/nginx-access.log upstreams;
  client_body_temp_path {root}/nginx-tmp/body;
  proxy_temp_path {root}/nginx-tmp/proxy;
  fastcgi_temp_path {root}/nginx-tmp/fastcgi;
  uwsgi_temp_path {root}/nginx-tmp/uwsgi;
  scgi_temp_path {root}/nginx-tmp/scgi;
  upstream bulkhead {{
{servers}
    keepalive 64;
    keepalive_timeout 4s;
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 64m;
    location / {{
      proxy_pass http://bulkhead;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_connect_timeout 1s;
      proxy_send_timeout 300s;
      proxy_read_timeout 300s;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 3;
      proxy_next_upstream_timeout 5s;
      add_header X-Bulkhead-Upstream $upstream_addr always;
    }}
  }}
}}
"""


class Nginx:
    """nginx in the foreground (`daemon off`) under the stack's supervision."""

    def __init__(self, root: Path, replicas: list[int]):
        if not NGINX.exists():
            raise RuntimeError(f"nginx is not installed at {NGINX} (run `make services`)")
        self.root, self.port = root / "nginx", free_port()
        (self.root / "nginx-tmp").mkdir(parents=True)
        self.conf = self.root / "nginx.conf"
        self.conf.write_text(nginx_conf(self.root, self.port, replicas))
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [str(NGINX), "-p", str(self.root), "-c", str(self.conf), "-e", "stderr"]
        # SIGQUIT is nginx's graceful shutdown: in-flight requests finish.
        self.proc = Proc("nginx", argv, root / "nginx.log")
        self.proc.stop_signal = signal.SIGQUIT

    def start(self) -> Nginx:
        self.proc.start()
        return self

    def balance(self, replicas: list[int]) -> None:
        """Put exactly `replicas` behind the load balancer (a configuration reload)."""
        self.conf.write_text(nginx_conf(self.root, self.port, replicas))
        self.proc.signal(signal.SIGHUP)
        time.sleep(0.5)  # new workers take over; old ones finish what they hold

    def stop(self) -> None:
        self.proc.stop()
