"""HTTP for the scale-out stack: one call, and a closed-loop client that records every outcome."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

UPSTREAM_HEADER = "x-bulkhead-upstream"  # which replica nginx passed the call to


@dataclass
class Response:
    status: int  # 0: no HTTP answer at all (connection refused, reset, timeout)
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def upstream(self) -> str:
        return self.headers.get(UPSTREAM_HEADER, "")

    @property
    def code(self) -> str:
        """The error's code (OpenAI format), else nginx's page title or the exchange's error."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code") or self.body["error"].get("type"))
        if isinstance(self.body, str) and "<title>" in self.body:
            return self.body.split("<title>", 1)[1].split("</title>", 1)[0]
        return self.error


def call(
    method: str,
    url: str,
    key: str | None = None,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> Response:
    """One request on a fresh connection; never raises for a failed exchange."""
    parts = urlsplit(url)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    sent = dict(headers or {})
    if key:
        sent["authorization"] = f"Bearer {key}"
    if data is not None and raw is None:
        sent["content-type"] = "application/json"
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, path, body=data, headers=sent)
        answer = conn.getresponse()
        payload = answer.read()
    except (OSError, http.client.HTTPException) as exc:
        return Response(0, None, error=type(exc).__name__)
    finally:
        conn.close()
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload.decode(errors="replace")
    return Response(answer.status, parsed, {k.lower(): v for k, v in answer.getheaders()})


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with `fields` and one file; (body, content type)."""
    boundary = "bulkhead" + str(time.monotonic_ns())
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    out += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    out += content + f"\r\n--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def chat(model: str, max_tokens: int = 8, *, stream: bool = False) -> dict[str, Any]:
    """A chat call; a stream is the fake upstream's 20 events (room for them reserved)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": max(max_tokens, 32) if stream else max_tokens,
    }
    return {**body, "stream": True} if stream else body


@dataclass(frozen=True)
class Outcome:
    started: float  # monotonic
    ended: float
    status: int
    upstream: str
    error: str  # for a failure: its code (`Response.code`)
    request_id: str = ""  # the gateway's x-request-id


class Loop:
    """`clients` threads, each sending one call after another until stopped; every
    outcome is kept, so a test can count failures and see when they happened."""

    def __init__(self, url: str, key: str, body: dict[str, Any], clients: int):
        self.url, self.key, self.body = url, key, body
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Loop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self.outcomes

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            r = call("POST", self.url, self.key, self.body, timeout_s=30)
            if self.body.get("stream") and r.status == 200 and "data: [DONE]" not in str(r.body):
                r = Response(0, r.body, r.headers, "stream cut")  # 200, then ended early
            code = r.code if r.status != 200 else ""
            rid = r.headers.get("x-request-id", "")
            outcome = Outcome(started, time.monotonic(), r.status, r.upstream, code, rid)
            with self._lock:
                self.outcomes.append(outcome)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def failures(self, since: float = 0.0) -> list[Outcome]:
        return [o for o in self.snapshot() if o.status != 200 and o.started >= since]

    def statuses(self) -> Counter[int]:
        return Counter(o.status for o in self.snapshot())

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from `moment` until a call started after it succeeded (None: none did)."""
        ok = [o.ended for o in self.snapshot() if o.status == 200 and o.started >= moment]
        return min(ok) - moment if ok else None
