"""The upstream client against hostile servers: DNS rebinding, redirects, error oracles, size.

Real aiohttp servers on 127.0.0.1; a fake resolver stands in for DNS, so a
name can answer one address now and another on the next lookup.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from bulkhead.errors import InvalidRequest, UpstreamError
from bulkhead.runtime import upstream as upstream_module
from bulkhead.runtime.egress import EgressPolicy, EgressRefused, parse_entries
from bulkhead.runtime.guarded import GuardedResolver, check_peer
from bulkhead.runtime.upstream import OPAQUE_FAILURE, Target, UpstreamClient, sanitized

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
ANSWER = {"object": "chat.completion", "choices": [{"index": 0, "message": {"content": "ok"}}]}


class FakeDns(AbstractResolver):
    """Answers each lookup with the next address of its list (the last one repeats)."""

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [
            {"hostname": host, "host": address, "port": port, "family": socket.AF_INET,
             "proto": 0, "flags": 0}
        ]  # fmt: skip

    async def close(self) -> None:
        return None


class Servers:
    """Apps on 127.0.0.1 whose one handler answers every path; `start` gives (address, hits)."""

    def __init__(self) -> None:
        self.runners: list[web.AppRunner] = []

    async def start(self, handler: Callable[[web.Request], Any]) -> tuple[str, list[str]]:
        hits: list[str] = []

        async def handle(request: web.Request) -> web.StreamResponse:
            hits.append(request.path)
            return await handler(request)  # type: ignore[no-any-return]

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", free_port())
        await site.start()
        self.runners.append(runner)
        return site.name.removeprefix("http://"), hits

    async def __aenter__(self) -> Servers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for runner in self.runners:
            await runner.cleanup()


def run(scenario: Callable[[Servers], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Servers() as servers:
            await scenario(servers)

    asyncio.run(main())


def answer(status: int = 200, body: Any = ANSWER, **headers: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    return handler


def tenant(*entries: str) -> EgressPolicy:
    return EgressPolicy.tenant(parse_entries(entries))


def test_dns_rebinding_is_refused_at_connect_time() -> None:
    run(_test_dns_rebinding_is_refused_at_connect_time)


async def _test_dns_rebinding_is_refused_at_connect_time(servers: Servers) -> None:
    address, hits = await servers.start(answer())
    port = address.split(":")[1]
    dns = FakeDns("93.184.216.34", "127.0.0.1")
    guarded = GuardedResolver(tenant("models.example.com"), dns)
    # At publish time (or the first lookup) the name is public; on connect it is loopback.
    assert (await guarded.resolve("models.example.com"))[0]["host"] == "93.184.216.34"
    with pytest.raises(EgressRefused):
        await guarded.resolve("models.example.com")
    client = UpstreamClient(resolver=lambda: FakeDns("127.0.0.1"))
    target = Target(
        base_url=f"http://models.example.com:{port}/v1",
        upstream_model="m",
        egress=tenant("models.example.com"),
        opaque=True,
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            await client.call(target, "/chat/completions", CHAT)
    finally:
        await client.close()
    assert caught.value.message == OPAQUE_FAILURE
    assert hits == []


def test_a_cidr_entry_admits_the_address_the_name_resolves_to() -> None:
    run(_test_a_cidr_entry_admits_the_address_the_name_resolves_to)


async def _test_a_cidr_entry_admits_the_address_the_name_resolves_to(servers: Servers) -> None:
    address, hits = await servers.start(answer())
    port = address.split(":")[1]
    client = UpstreamClient(resolver=lambda: FakeDns("127.0.0.1"))
    target = Target(
        base_url=f"http://models.example.com:{port}/v1",
        upstream_model="m",
        egress=tenant("models.example.com", "127.0.0.1/32"),
        opaque=True,
    )
    try:
        assert (await client.call(target, "/chat/completions", CHAT))["choices"]
    finally:
        await client.close()
    assert hits == ["/v1/chat/completions"]


def test_an_ip_literal_is_checked_without_the_resolver() -> None:
    run(_test_an_ip_literal_is_checked_without_the_resolver)


async def _test_an_ip_literal_is_checked_without_the_resolver(servers: Servers) -> None:
    address, hits = await servers.start(answer())
    dns = FakeDns("127.0.0.1")
    client = UpstreamClient(resolver=lambda: dns)
    target = Target(base_url=f"http://{address}/v1", upstream_model="m", egress=tenant("x.example"))
    try:
        with pytest.raises(UpstreamError):
            await client.call(target, "/chat/completions", CHAT)
        # The platform's own policy admits loopback: the same server answers it.
        assert await client.call(Target(f"http://{address}/v1", "m"), "/chat/completions", CHAT)
    finally:
        await client.close()
    assert dns.lookups == 0 and hits == ["/v1/chat/completions"]


def test_the_platform_policy_refuses_metadata_names() -> None:
    run(_test_the_platform_policy_refuses_metadata_names)


async def _test_the_platform_policy_refuses_metadata_names(servers: Servers) -> None:
    client = UpstreamClient(resolver=lambda: FakeDns("169.254.169.254"))
    try:
        with pytest.raises(UpstreamError) as caught:
            await client.call(Target("http://metadata.example/v1", "m"), "/chat/completions", CHAT)
    finally:
        await client.close()
    assert "egress" in caught.value.message


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(status: int) -> None:
    run(lambda servers: _test_redirects_are_not_followed(servers, status))


async def _test_redirects_are_not_followed(servers: Servers, status: int) -> None:
    internal, internal_hits = await servers.start(answer(body={"secret": "internal"}))
    address, hits = await servers.start(
        answer(status, {}, location=f"http://{internal}/v1/chat/completions")
    )
    client = UpstreamClient()
    try:
        with pytest.raises(UpstreamError):
            await client.call(Target(f"http://{address}/v1", "m"), "/chat/completions", CHAT)
        with pytest.raises(UpstreamError):
            async for _ in client.stream(Target(f"http://{address}/v1", "m"), "/completions", CHAT):
                pass
    finally:
        await client.close()
    assert len(hits) == 2 and internal_hits == []


def test_an_opaque_target_fails_the_same_way_whatever_happened() -> None:
    run(_test_an_opaque_target_fails_the_same_way_whatever_happened)


async def _test_an_opaque_target_fails_the_same_way_whatever_happened(servers: Servers) -> None:
    unauthorized, _ = await servers.start(answer(401, {"error": {"message": "key for billing-db"}}))
    rejecting, _ = await servers.start(answer(400, {"error": {"message": "bad temperature"}}))
    limited, _ = await servers.start(answer(429, {}, **{"retry-after": "7"}))
    failing, _ = await servers.start(answer(500, {"trace": "Traceback"}))
    odd, _ = await servers.start(answer(200, {"internal": "config"}))
    closed = f"127.0.0.1:{free_port()}"
    loopback = tenant("127.0.0.1/32")
    client = UpstreamClient()
    seen = set()
    try:
        for address in (unauthorized, rejecting, limited, failing, odd, closed):
            target = Target(f"http://{address}/v1", "m", egress=loopback, opaque=True)
            with pytest.raises(UpstreamError) as caught:
                await client.call(target, "/chat/completions", CHAT)
            seen.add((type(caught.value), caught.value.message, caught.value.code))
            with pytest.raises(UpstreamError) as streamed:
                async for _ in client.stream(target, "/chat/completions", CHAT):
                    pass
            seen.add((type(streamed.value), streamed.value.message, streamed.value.code))
    finally:
        await client.close()
    assert seen == {(UpstreamError, OPAQUE_FAILURE, "upstream_error")}


def test_a_platform_upstreams_400_message_passes_only_sanitized() -> None:
    run(_test_a_platform_upstreams_400_message_passes_only_sanitized)


async def _test_a_platform_upstreams_400_message_passes_only_sanitized(servers: Servers) -> None:
    raw = "bad\x1b[31m temperature\r\nX-Injected: yes\u200b" + "!" * 1000
    address, _ = await servers.start(answer(400, {"error": {"message": raw}}))
    client = UpstreamClient()
    try:
        with pytest.raises(InvalidRequest) as caught:
            await client.call(Target(f"http://{address}/v1", "m"), "/chat/completions", CHAT)
    finally:
        await client.close()
    message = caught.value.message
    assert message.startswith("bad [31m temperature X-Injected: yes")
    assert message.isprintable() and len(message) <= 200 and "\n" not in message


def test_sanitized() -> None:
    assert sanitized("  two\tlines\nhere  ") == "two lines here"
    assert sanitized("\x00\x07") == ""
    assert len(sanitized("x" * 10_000)) == 200


def test_answers_are_read_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "MAX_RESPONSE_BYTES", 1000)
    monkeypatch.setattr(upstream_module, "MAX_EVENT_BYTES", 1000)
    run(_test_answers_are_read_up_to_a_bound)


async def _test_answers_are_read_up_to_a_bound(servers: Servers) -> None:

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"x" * 500)
        return response

    big, _ = await servers.start(answer(200, {"choices": [], "pad": "x" * 5000}))
    endless, _ = await servers.start(chunked)
    client = UpstreamClient()
    try:
        for address in (big, endless):
            with pytest.raises(UpstreamError) as caught:
                await client.call(Target(f"http://{address}/v1", "m"), "/chat/completions", CHAT)
            assert "too large" in caught.value.message
        with pytest.raises(UpstreamError):
            async for _ in client.stream(Target(f"http://{endless}/v1", "m"), "/x", CHAT):
                pass
    finally:
        await client.close()


def test_an_answer_is_bounded_by_what_the_call_asked_for() -> None:
    run(_test_an_answer_is_bounded_by_what_the_call_asked_for)


async def _test_an_answer_is_bounded_by_what_the_call_asked_for(servers: Servers) -> None:
    big = {"choices": [{"index": 0, "message": {"content": "x" * 200_000}}]}

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b" " * 20_000)
        await response.write(orjson.dumps(big))
        return response

    declared, _ = await servers.start(answer(200, big))
    undeclared, _ = await servers.start(chunked)
    client = UpstreamClient()
    try:
        for address in (declared, undeclared):
            url = f"http://{address}/v1"
            few = {**CHAT, "max_tokens": 16}
            with pytest.raises(UpstreamError) as caught:
                await client.call(Target(url, "m"), "/chat/completions", few)
            assert "too large" in caught.value.message
            with pytest.raises(UpstreamError) as caught:
                await client.call(Target(url, "m", opaque=True), "/chat/completions", few)
            assert caught.value.message == OPAQUE_FAILURE
            enough = {**CHAT, "max_tokens": 4096}
            data = await client.call(Target(url, "m"), "/chat/completions", enough)
            assert len(data["choices"][0]["message"]["content"]) == 200_000
    finally:
        await client.close()


class _Transport:
    def __init__(self, peer: Any):
        self.peer = peer

    def get_extra_info(self, name: str) -> Any:
        return self.peer if name == "peername" else None


def test_the_peer_of_every_connection_is_checked() -> None:
    policy = tenant("api.example.com")
    check_peer(policy, "api.example.com", _Transport(("93.184.216.34", 443)))
    for peer in (("127.0.0.1", 80), ("::ffff:127.0.0.1", 80, 0, 0), None, ()):
        with pytest.raises(EgressRefused):
            check_peer(policy, "api.example.com", _Transport(peer))
    # Reached by a literal, a public address still needs a CIDR of the tenant's.
    with pytest.raises(EgressRefused):
        check_peer(policy, "93.184.216.34", _Transport(("93.184.216.34", 443)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_module_has_no_redirect_following_left() -> None:
    # A guard on the guard: the only request the client makes sets allow_redirects=False.
    source = Path(upstream_module.__file__).read_text()
    assert source.count("allow_redirects=False") == 1 and "allow_redirects=True" not in source


@pytest.mark.parametrize("native", [True, False])
def test_either_transport_resolves_under_the_policy_and_maps_a_refusal(native: bool) -> None:
    """The client's own transport (`runtime/guarded.py`, no aiohttp) and aiohttp's
    (`runtime/connect.connector_for`, ``native=False``) hold to one policy the same way."""

    async def scenario(servers: Servers) -> None:
        address, hits = await servers.start(answer())
        port = address.split(":")[1]
        client = UpstreamClient(resolver=lambda: FakeDns("127.0.0.1"), native=native)
        url = f"http://models.example.com:{port}/v1"
        refused = Target(url, "m", egress=tenant("models.example.com"))
        try:
            with pytest.raises(UpstreamError) as caught:
                await client.call(refused, "/chat/completions", CHAT)
            assert hits == []
            # The platform's policy admits loopback: the same name, resolved the same, answers.
            got = await client.call(Target(url, "m"), "/chat/completions", CHAT)
        finally:
            await client.close()
        assert caught.value.message == (
            "The upstream's address is not allowed by the egress policy."
        )
        assert got["choices"][0]["message"]["content"] == "ok"
        assert hits == ["/v1/chat/completions"]

    run(scenario)
