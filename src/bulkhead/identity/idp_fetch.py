"""The gateway's one way to a tenant's identity provider: every fetch through the egress guard.

The IdP's server, and every URL that leads to it (the JWKS URL, the issuer,
the discovery document's endpoints), are the tenant's to choose, so no IdP
fetch may make the gateway reach a platform-internal address: its own
loopback ports, the cloud metadata service, a private network, the
platform's services.  `IdpFetcher` is used by every IdP fetch the gateway
makes (the bearer-token JWKS of the API path, the console sign-in's
discovery, token and JWKS): each request goes through
`runtime/connect.EgressTcpConnector` with the IdP policy (`idp_egress`):
any name that resolves to public addresses, and a special address
(loopback, private, link-local, metadata, CGNAT…) only within the
operator's CIDRs (`BULKHEAD_IDP_ALLOW_CIDRS`, none by default).  An IP
literal is checked before anything is opened, every address DNS returns
before connecting, and the connected peer before a byte of the request is
written, so a name that resolves elsewhere at connect time (DNS
rebinding) gets no request.  No redirect is followed, no proxy from the
environment is used, the whole fetch has a deadline however slowly the
bytes come, and the body read is bounded.

Token validation runs on a thread (`asyncio.to_thread`); its JWKS fetch
(`fetch`) runs on the event loop the application binds at start-up
(`bind`), and the thread waits for it.  Unbound (a CLI, a test), a fetch runs
on a short-lived loop of the calling thread, under the same policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bulkhead.identity.jwks import MAX_JWKS_BYTES
from bulkhead.runtime.egress import EgressPolicy, EgressRefused, literal

if TYPE_CHECKING:
    from bulkhead.runtime.guarded import Resolver

log = logging.getLogger("bulkhead.identity")


def idp_egress(cidrs: Iterable[str] = ()) -> EgressPolicy:
    """Any name resolving to public addresses; special ones only within the operator's CIDRs."""
    return EgressPolicy(networks=EgressPolicy.platform(cidrs).networks, any_name=True)


def check_idp_literal(url: str, policy: EgressPolicy) -> None:
    """At registration: an IP literal the policy refuses is a `ValueError` naming the setting.

    A clear early error only; the guard is at connect time (`IdpFetcher`), which
    also sees where a host name resolves.
    """
    address = literal(urlsplit(url).hostname or "")
    if address is None:
        return
    try:
        policy.check_address(address, named=False)
    except EgressRefused:
        raise ValueError(
            "jwks_url is at an address the gateway may not reach for an IdP: public "
            "addresses only, others only within BULKHEAD_IDP_ALLOW_CIDRS"
        ) from None


class IdpUnreachable(OSError):
    """An IdP fetch that failed or was refused; `reason` names what failed, never a secret."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _where(url: str) -> str:
    """The URL's scheme, host and port, for the log: never a path, query or user info."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{(parts.hostname or '?')[:253]}{port}"
    except ValueError:
        return "a malformed URL"


def _refusal(exc: BaseException) -> EgressRefused | None:
    """The egress refusal behind `exc`, however aiohttp wrapped it."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, EgressRefused):
            return seen
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) else seen.__cause__
    return None


class IdpFetcher:
    """Fetches from tenants' IdPs under one egress policy, with a deadline and a size bound."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        timeout_s: float = 5.0,
        resolver: Resolver | None = None,
    ):
        self.policy, self.timeout_s, self._resolver = policy, timeout_s, resolver
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop that `fetch` runs its requests on (the application's, at start-up)."""
        self._loop = loop

    async def request(
        self,
        method: str,
        url: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """The status and body (at most `MAX_JWKS_BYTES` + 1 bytes); `IdpUnreachable` otherwise."""
        # aiohttp only when an IdP is asked: its import costs every start 0.1-0.3 s.
        import aiohttp

        from bulkhead.runtime.connect import EgressTcpConnector

        try:
            self.policy.check_host(urlsplit(url).hostname or "")
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            connector = EgressTcpConnector(policy=self.policy, limit=4, resolver=self._resolver)
            async with (
                aiohttp.ClientSession(
                    connector=connector, timeout=timeout, trust_env=False
                ) as http,
                http.request(
                    method, url, data=form, headers=headers, allow_redirects=False
                ) as answer,
            ):
                status, body = answer.status, bytearray()
                async for chunk in answer.content.iter_any():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        break
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            refused = _refusal(exc)
            said = f"refused: {refused.reason}" if refused else type(exc).__name__
            # The operator's log says where and why; the tenant's caller gets one opaque answer.
            log.warning("an IdP fetch (%s %s) failed: %s", method, _where(url), said)
            raise IdpUnreachable("egress refused" if refused else type(exc).__name__) from None
        return status, bytes(body[: MAX_JWKS_BYTES + 1])

    def fetch(self, url: str) -> bytes:
        """The document at `url`, for the JWKS cache on a validator's thread; OSError unless 200."""
        status, body = self._wait(self.request("GET", url))
        if status != 200:
            log.warning("an IdP fetch (GET %s) answered %d", _where(url), status)
            raise IdpUnreachable(f"answered {status}")
        return body

    def _wait(self, call: Coroutine[Any, Any, tuple[int, bytes]]) -> tuple[int, bytes]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # waiting here would block the loop the request needs: a bug, refused
            call.close()
            raise IdpUnreachable("a blocking IdP fetch on an event loop's thread")
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return asyncio.run(call)
        future = asyncio.run_coroutine_threadsafe(call, loop)
        try:
            return future.result(self.timeout_s + 1)
        except TimeoutError:
            future.cancel()
            raise IdpUnreachable("TimeoutError") from None
