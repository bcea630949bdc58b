"""A real OpenID provider on 127.0.0.1 for the console's OIDC tests, and a browser stand-in.

`OidcProvider` runs tests/oidc_provider/server.mjs (panva/oidc-provider, installed by
`make services`: `npm ci` there) under node on a free port and stops it.  Without node or
the installed package the tests fail, they do not skip.

`Browser` walks the sign-in as a browser would, without one: it keeps each side's
cookies, follows the provider's own redirects, fills its development login page (any
login name is the subject, any password) and its consent page, and stops at the redirect
back to the gateway's callback.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import pytest

HERE = Path(__file__).resolve().parents[1] / "oidc_provider"


class OidcProvider:
    """`node server.mjs` with its clients and accounts; `issuer` once it listens."""

    def __init__(self, clients: list[dict[str, Any]], accounts: dict[str, Any]) -> None:
        node = shutil.which("node")
        if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
            pytest.fail("The test OpenID provider is not installed: run `make services`.")
        config = json.dumps({"port": 0, "clients": clients, "accounts": accounts})
        self.process = subprocess.Popen(
            [node, str(HERE / "server.mjs"), config],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("listening "):
            self.stop()
            pytest.fail(f"the test OpenID provider did not start: {line!r}")
        self.issuer = line.split()[1]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _LoopbackIsSecure(http.cookiejar.DefaultCookiePolicy):
    """Send `Secure` cookies to http://127.0.0.1 too, as Chromium does (a secure context)."""

    def return_ok_secure(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return True


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


@dataclass
class Browser:
    """One browser: a cookie jar shared by the gateway and the provider, no redirects taken."""

    jar: http.cookiejar.CookieJar = field(
        default_factory=lambda: http.cookiejar.CookieJar(_LoopbackIsSecure())
    )

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar), _Stay()
        )

    def go(
        self, url: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        data = urlencode(form).encode() if form is not None else None
        method = "POST" if data else "GET"
        request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
        try:
            with self.opener.open(request, timeout=30) as r:
                return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Answer(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def set_cookie(self, name: str, value: str, like: str) -> None:
        """Replace cookie `name`'s value, keeping the attributes of the one named `like`."""
        model = next(c for c in self.jar if c.name == like)
        self.jar.set_cookie(
            http.cookiejar.Cookie(
                0, name, value, None, False, model.domain, False, False, "/", True,
                model.secure, None, False, None, None, {},
            )
        )  # fmt: skip

    def authorize(self, url: str, subject: str) -> str:
        """From the IdP's authorization URL to the callback URL it sends the browser back to."""
        answer = self.go(url)
        for _ in range(12):
            if answer.status in (302, 303):
                target = urljoin(url, answer.location)
                if "/console/login/oidc/callback" in target:
                    return target
                url, answer = target, self.go(target)
                continue
            page = answer.body.decode()
            action = re.search(r'<form[^>]*action="([^"]+)"', page)
            assert answer.status == 200 and action is not None, (answer.status, page[:500])
            target = urljoin(url, action.group(1))
            if 'name="login"' in page:
                form = {"prompt": "login", "login": subject, "password": "any"}
            else:
                form = {"prompt": "consent"}
            url, answer = target, self.go(target, form)
        raise AssertionError("the provider did not send the browser back")
