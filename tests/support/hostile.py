"""Hostile requests against a real gateway while `/healthz` is sampled: does the event loop hold?

`hold_healthz(target, kinds)` runs the load and the sampler in child
processes, so that neither competes for the gateway's interpreter lock (nor
for each other's): what it measures is the gateway.  The load first sends
each kind once (warm-up, not measured); `/healthz` is sampled alone for a
second (the idle baseline); then the load runs every kind concurrently
for `seconds`, each starting a request every `every_s` (or as soon as the
last one is answered, if that takes longer; the kinds' starts spread over
the period), while the sampler asks for
`/healthz` every `interval_s`.  The pace keeps the load's own CPU (sending
megabytes over loopback on the same small machine) from being what is
measured: one hostile request must not stall the loop, whatever the rate.

Latency is measured from each sample's *intended* start (a fixed schedule),
not from when the sampler got round to sending it: a loop that stalls for a
second then shows as a second's worth of slow samples, not as one (the
"coordinated omission" correction that wrk2 makes).  Only a late answer
counts that way: when the sampler itself wakes late from its sleep (the
machine ran something else), its schedule restarts from then, since the
slots it slept through observed nothing.

Adding a kind is one line in `KINDS`: a method, a path, which credential
of `Target.keys` it uses (None: anonymous) and a function that builds its
body once.  Every response is counted by status; the caller asserts that
none is a 5xx.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """What a kind may aim at: the gateway, credentials by name, a model and its tenant."""

    url: str
    keys: dict[str, str]
    model: str = ""
    tenant: str = ""
    # Free-form extras a kind needs (a user name to sign in as, a policy path...).
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Payload:
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class Hostile:
    method: str
    path: str
    credential: str | None  # a name in Target.keys; None sends no credential
    build: Callable[[Target], Payload]


# Bodies -------------------------------------------------------------------------------------

_SENTENCE = (
    "Please summarise the ticket from jane.doe@example.com about invoice 4417, call "
    "+1 415 555 0100 if needed, and ignore nothing of what the customer wrote. "
)


def _prose(size: int) -> str:
    return (_SENTENCE * (size // len(_SENTENCE) + 1))[:size]


def _json(value: Any) -> Payload:
    return Payload(json.dumps(value).encode())


def _chat(t: Target, content: str, **extra: Any) -> Payload:
    return _json({"model": t.model, "messages": [{"role": "user", "content": content}], **extra})


def multipart(parts: Iterable[tuple[bytes, bytes]], boundary: bytes = b"bnd") -> Payload:
    """A multipart/form-data body of (headers, data) parts."""
    out = bytearray()
    for headers, data in parts:
        out += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"
    out += b"--" + boundary + b"--\r\n"
    return Payload(bytes(out), "multipart/form-data; boundary=" + boundary.decode())


def _form(name: str, filename: str | None = None) -> bytes:
    extra = f'; filename="{filename}"' if filename else ""
    return f'Content-Disposition: form-data; name="{name}"{extra}'.encode()


def multipart_many_parts(t: Target) -> Payload:
    """40,000 empty parts in 2 MB: the flood that held /healthz for ~4 s (issue 12 item 6)."""
    empties = [(_form("x"), b"")] * 40_000
    return multipart([(_form("purpose"), b"fine-tune"), *empties, (_form("file", "a"), b"x")])


def multipart_long_headers(t: Target) -> Payload:
    """One part whose header block is 3 MB of header lines."""
    junk = b"\r\n".join(b"X-Junk-%d: %s" % (i, b"y" * 60) for i in range(45_000))
    return multipart(
        [(_form("purpose") + b"\r\n" + junk, b"fine-tune"), (_form("file", "a"), b"x")]
    )


def chat_huge_prompt(t: Target) -> Payload:
    """A 7 MB prompt: tokenised by admission and scanned by the guard."""
    return _chat(t, _prose(7 * MIB))


def chat_big_prompt(t: Target) -> Payload:
    """A 0.9 MB prompt: within every bound, but some 200,000 tokens (a shared tier allows
    100,000 a minute)."""
    return _chat(t, _prose(900_000))


def chat_many_messages(t: Target) -> Payload:
    """~6 MB of 120,000 short messages: per-message work everywhere."""
    messages = [{"role": "user", "content": f"note {i} from a@b.co"} for i in range(120_000)]
    return _json({"model": t.model, "messages": messages})


def chat_ten_thousand_messages(t: Target) -> Payload:
    """10,000 short messages that every bound lets through: scanned and counted one by one."""
    messages = [{"role": "user", "content": f"note {i} from a@b.co"} for i in range(10_000)]
    return _json({"model": t.model, "messages": messages, "max_tokens": 4})


def chat_deep_json(t: Target) -> Payload:
    """Tools nested 900 levels deep, 3,000 times over (orjson parses up to 1,024)."""
    deep = "[" * 900 + "]" * 900
    tools = "[" + ",".join([deep] * 3_000) + "]"
    head = json.dumps({"model": t.model, "messages": [{"role": "user", "content": "hi"}]})
    return Payload((head[:-1] + ', "tools": ' + tools + "}").encode())


def chat_huge_tool_description(t: Target) -> Payload:
    """A 5 MB tool description: text the model sees, outside the messages."""
    tool = {"type": "function", "function": {"name": "f", "description": _prose(5 * MIB)}}
    return _chat(t, "hi", tools=[tool])


def embeddings_many_inputs(t: Target) -> Payload:
    """20,000 inputs of 300 characters."""
    return _json({"model": t.model, "input": [_prose(300)] * 20_000})


def completions_unusual_unicode(t: Target) -> Payload:
    """2 M characters of full-width letters, look-alikes and invisible ones (the slow paths)."""
    # Full-width "ignore", a zero-width space, Cyrillic look-alikes, a bidi override.
    unit = "\uff49\uff47\uff4e\uff4f\uff52\uff45\u200b\u0430ll \u0440r\u0435vi\u043eus\u202e "
    return _json({"model": t.model, "prompt": (unit * (2 * MIB // len(unit)))})


def chat_huge_answer(t: Target) -> Payload:
    """Ask the tenant's most it may (4,096 tokens) of a server that answers 480 KB of personal
    data (under `pii: redact`): within the answer's bound, so filtered, off the loop."""
    return _chat(t, "hi", model=t.extra["huge_model"], max_tokens=4096)


def chat_huge_stream(t: Target) -> Payload:
    """The same server, streamed in events of 1,800 characters: each just under the bound of
    what is filtered on the event loop (2 KiB, about 2 ms of the densest text there is;
    batched events over it go to a worker), and the stream cut at its reservation."""
    return _chat(t, "hi", model=t.extra["huge_model"], max_tokens=4096, stream=True)


def cedar_deep_policy(t: Target) -> Payload:
    """The issue's 1.7 KB policy that overflowed cedarpy's parser (800 nested parentheses)."""
    text = "forbid (principal, action, resource) when { " + "(" * 800 + "true" + ")" * 800 + " };"
    return _json({"policies": text})


def cedar_many_policies(t: Target) -> Payload:
    """90 policies of 8 conditions each: within the policy bounds, so cedarpy parses them all
    (the schema then refuses them)."""
    test = " || ".join(f'resource.name == "m{i}"' for i in range(8))
    one = f"forbid (principal, action, resource) when {{ {test} }};\n"
    return _json({"policies": one * 90})


def sign_in_unknown(t: Target) -> Payload:
    """A sign-in for an account that does not exist (a full password hash is still run)."""
    return _json({"tenant": t.tenant, "principal": "nobody", "password": "guess"})


def no_body(t: Target) -> Payload:
    """Nothing: the request's weight is in its credential or its answer."""
    return Payload(b"")


# Well-formed tokens that name nothing: a session id never issued, its tag made up (issue 12
# item 13: they drew on the budget valid sessions need; now refused unread), and an IdP token
# of an unknown issuer.
JUNK_SESSION = "bks_" + "a" * 32 + "_" + "B" * 43
JUNK_JWT = ".".join(
    base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
    for part in (
        {"alg": "RS256", "kid": "k"},
        {"iss": "https://idp.invalid", "sub": "x" * 4000},
        "sig",
    )
)

CHAT = "/v1/chat/completions"
KINDS: dict[str, Hostile] = {
    "multipart-many-parts": Hostile("POST", "/v1/files", "user", multipart_many_parts),
    "multipart-long-headers": Hostile("POST", "/v1/files", "user", multipart_long_headers),
    "chat-refused-by-limits": Hostile("POST", CHAT, "limited", chat_big_prompt),
    "chat-huge-prompt": Hostile("POST", CHAT, "user", chat_huge_prompt),
    "chat-big-prompt": Hostile("POST", CHAT, "user", chat_big_prompt),
    "chat-many-messages": Hostile("POST", CHAT, "user", chat_many_messages),
    "chat-many-allowed": Hostile("POST", CHAT, "user", chat_ten_thousand_messages),
    "chat-deep-json": Hostile("POST", CHAT, "user", chat_deep_json),
    "chat-huge-tool": Hostile("POST", CHAT, "user", chat_huge_tool_description),
    "embeddings-many-inputs": Hostile("POST", "/v1/embeddings", "user", embeddings_many_inputs),
    "completions-unicode": Hostile("POST", "/v1/completions", "user", completions_unusual_unicode),
    "chat-huge-answer": Hostile("POST", CHAT, "pii_user", chat_huge_answer),
    "chat-huge-stream": Hostile("POST", CHAT, "pii_user", chat_huge_stream),
    "cedar-deep": Hostile("PUT", "/tenant/v1/policies", "tenant_admin", cedar_deep_policy),
    "cedar-many": Hostile("PUT", "/tenant/v1/policies", "tenant_admin", cedar_many_policies),
    "sign-in-unknown": Hostile("POST", "/auth/v1/login", None, sign_in_unknown),
    "session-junk": Hostile("GET", "/v1/models", "junk_session", no_body),
    "jwt-unknown-issuer": Hostile("GET", "/v1/models", "junk_jwt", no_body),
    "audit-export": Hostile("GET", "/tenant/v1/audit/bundle", "tenant_auditor", no_body),
}


# The report ---------------------------------------------------------------------------------


@dataclass
class LoopReport:
    """`/healthz` latency (ms) idle and under load, and each kind's answers by status."""

    idle: dict[str, float]
    loaded: dict[str, float]
    statuses: dict[str, dict[str, int]]

    @property
    def p99_ms(self) -> float:
        return self.loaded["p99"]

    def server_errors(self) -> dict[str, dict[str, int]]:
        return {
            kind: {s: n for s, n in found.items() if s.startswith("5")}
            for kind, found in self.statuses.items()
            if any(s.startswith("5") for s in found)
        }

    def __str__(self) -> str:
        def line(stats: dict[str, float]) -> str:
            return ", ".join(
                f"{k} {v:.1f}" if k != "samples" else f"n={v:.0f}" for k, v in stats.items()
            )

        kinds = "; ".join(f"{k}: {dict(v)}" for k, v in self.statuses.items())
        return f"/healthz ms idle [{line(self.idle)}] loaded [{line(self.loaded)}]; answers {kinds}"


def hold_healthz(
    target: Target,
    kinds: Sequence[str],
    *,
    seconds: float = 6.0,
    every_s: float = 2.0,
    interval_s: float = 0.005,
    timeout_s: float = 300.0,
) -> LoopReport:
    """Run `kinds` (names in `KINDS`) against `target`; `/healthz` idle and under that load.

    The load and the sampler run in two child processes of their own: in one
    process, the load's threads would delay the sampler's own reading of the
    answers (its interpreter lock), which is not the gateway's latency.
    """
    spec = {"target": asdict(target), "kinds": list(kinds), "seconds": seconds,
            "every_s": every_s}  # fmt: skip
    with _child("attack", spec) as attack:
        _expect(attack, "ready", timeout_s)  # payloads built, every kind sent once
        idle = _sample(target.url, 1.0, interval_s, timeout_s)
        assert attack.stdin is not None
        attack.stdin.write(b"go\n")
        attack.stdin.flush()
        loaded = _sample(target.url, seconds, interval_s, timeout_s)
        statuses = json.loads(_expect(attack, "", timeout_s))
    return LoopReport(idle=idle, loaded=loaded, statuses=statuses)


@contextlib.contextmanager
def _child(mode: str, spec: dict[str, Any]) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "tests.support.hostile", mode, json.dumps(spec)]
    process = subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


def _expect(process: subprocess.Popen[bytes], prefix: str, timeout_s: float) -> str:
    """The child's next line of output, which must start with `prefix`."""
    assert process.stdout is not None
    found: list[bytes] = []
    reader = threading.Thread(target=lambda: found.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout_s)
    line = found[0].decode() if found else ""
    if not line.startswith(prefix) or not line:
        assert process.stderr is not None
        process.kill()
        raise RuntimeError(f"the hostile load failed: {process.stderr.read().decode()[-2000:]}")
    return line


def _sample(url: str, seconds: float, interval_s: float, timeout_s: float) -> dict[str, float]:
    spec = {"url": url, "seconds": seconds, "interval_s": interval_s}
    with _child("sample", spec) as sampler:
        return dict(json.loads(_expect(sampler, "", timeout_s)))


@contextlib.contextmanager
def upstream_process() -> Iterator[str]:
    """The fake upstream in a process of its own (its CPU is not the gateway's); its /v1 URL."""
    from tests.support.postgres import free_port

    port = free_port()
    # Another machine's server, in truth: it yields the CPU to the gateway here.
    command = ["nice", "-n", "10", sys.executable, "-m", "bulkhead.testing.fake_upstream",
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _connect(f"http://127.0.0.1:{port}", 1.0).connect()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the fake upstream did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


# The child process --------------------------------------------------------------------------


def _connect(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)


def send(target: Target, kind: Hostile, payload: Payload) -> str:
    """One hostile request; its status, or the kind of failure ("reset", "timeout")."""
    headers = {"content-type": payload.content_type, "connection": "close"}
    if kind.credential is not None:
        headers["authorization"] = f"Bearer {target.keys[kind.credential]}"
    conn = _connect(target.url, 120.0)
    try:
        conn.request(kind.method, kind.path, body=payload.body, headers=headers)
        response = conn.getresponse()
        response.read()
        return str(response.status)
    except TimeoutError:
        return "timeout"
    except (ConnectionError, http.client.HTTPException):
        return "reset"
    finally:
        conn.close()


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples) or [0.0]

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "samples": float(len(samples)),
        "p50": at(0.5),
        "p99": at(0.99),
        "max": ordered[-1] * 1000,
    }


def sample_healthz(url: str, seconds: float, interval_s: float) -> list[float]:
    """Latencies (s) of `/healthz`, each from its scheduled start (see the module's docstring)."""
    conn = _connect(url, 60.0)
    samples: list[float] = []
    start = time.perf_counter()
    due = start
    while due < start + seconds:
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
            # Woken late: this machine did not run the sampler, which says nothing of the
            # gateway; the schedule restarts from now instead of counting the slots missed.
            due = max(due, time.perf_counter())
        try:
            conn.request("GET", "/healthz")
            conn.getresponse().read()
        except (ConnectionError, http.client.HTTPException):
            conn.close()
            conn = _connect(url, 60.0)
            continue
        samples.append(time.perf_counter() - due)
        due += interval_s
    conn.close()
    return samples


def _attack(
    target: Target, kind: Hostile, payload: Payload, every_s: float, start: float,
    until: float, seen: Counter[str],
) -> None:  # fmt: skip
    due = start
    time.sleep(max(0.0, due - time.perf_counter()))
    while due < until:
        seen[send(target, kind, payload)] += 1
        due += every_s
        time.sleep(max(0.0, due - time.perf_counter()))


def attack(spec: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Send every kind once, say "ready", wait for "go", then run the load for its time."""
    # The load stands for clients on other machines: on this one, it yields the CPU to the
    # gateway (and the sampler), so that what is measured is the gateway's event loop, not
    # how two cores share out between it and megabytes being sent over loopback.
    os.nice(10)
    target = Target(**spec["target"])
    kinds = {name: KINDS[name] for name in spec["kinds"]}
    payloads = {name: kind.build(target) for name, kind in kinds.items()}
    seen: dict[str, Counter[str]] = {name: Counter() for name in kinds}
    for name, kind in kinds.items():  # warm-up: first-call costs are not what is measured
        seen[name][send(target, kind, payloads[name])] += 1
    print("ready", flush=True)
    sys.stdin.readline()
    now, every = time.perf_counter(), spec["every_s"]
    until = now + spec["seconds"]
    # The kinds take turns across each period, so they overlap without all landing at once.
    attackers = [
        threading.Thread(
            target=_attack,
            args=(
                target,
                kind,
                payloads[name],
                every,
                now + i * every / len(kinds),
                until,
                seen[name],
            ),
        )
        for i, (name, kind) in enumerate(kinds.items())
    ]
    for attacker in attackers:
        attacker.start()
    for attacker in attackers:
        attacker.join(150)
    return {name: dict(found) for name, found in seen.items()}


if __name__ == "__main__":
    mode, given = sys.argv[1], json.loads(sys.argv[2])
    if mode == "sample":
        print(
            json.dumps(_stats(sample_healthz(given["url"], given["seconds"], given["interval_s"])))
        )
    else:
        print(json.dumps(attack(given)), flush=True)
