"""What the console's OIDC sign-in takes from the browser's request before any IdP is reached.

- Only the console's sign-in page may start a sign-in in a person's browser (login CSRF):
  any tenant's IdP, so perhaps an attacker's, could answer at once and leave the person
  signed in to the console as the attacker.  `Sec-Fetch-Site` says where the navigation
  started (`none`: typed, or a link opened from a mail application).
- The redirect URI is built from the Host header: one that is not a host and port
  (`gw.example@evil.test`) must not move it to another host, where an IdP matching
  registered redirect URIs by prefix would send the code.
"""

from __future__ import annotations

import pytest

from bulkhead.console.oidc import _redirect_uri, _started_here
from bulkhead.errors import ConfigError, InvalidRequest, PermissionDenied, status_of
from bulkhead.settings import load
from bulkhead.web.scope import Scope


def request(*headers: tuple[bytes, bytes]) -> Scope:
    return {"type": "http", "scheme": "https", "headers": list(headers)}


@pytest.mark.parametrize("site", [b"cross-site", b"same-site", b"none", b"CROSS-SITE", b""])
def test_a_sign_in_another_site_starts_is_refused(site: bytes) -> None:
    with pytest.raises(PermissionDenied) as caught:
        _started_here(request((b"sec-fetch-site", site)))
    assert caught.value.code == "oidc_sign_in_failed" and status_of(caught.value)[0] == 403
    assert "/console/login" in caught.value.message


@pytest.mark.parametrize("site", [b"same-origin", None])
def test_a_sign_in_the_sign_in_page_or_an_old_browser_starts_goes_on(site: bytes | None) -> None:
    _started_here(request(*([(b"sec-fetch-site", site)] if site is not None else [])))


@pytest.mark.parametrize(
    "host",
    [
        b"gw.example@evil.test",
        b"gw.example/x?",
        b"gw.example#",
        b"evil.test\\@gw.example",
        b"gw.example:443@evil.test",
        b"gw.example evil.test",
        b"gw.example:",
        b"-gw.example",
        b"",
    ],
)
def test_a_host_header_that_is_not_a_host_builds_no_redirect_uri(host: bytes) -> None:
    with pytest.raises(InvalidRequest):
        _redirect_uri(request((b"host", host)))


@pytest.mark.parametrize(
    ("host", "uri"),
    [
        (b"gw.example", "https://gw.example/console/login/oidc/callback"),
        (b"GW.Example:8443", "https://gw.example:8443/console/login/oidc/callback"),
        (b"127.0.0.1:8000", "https://127.0.0.1:8000/console/login/oidc/callback"),
        (b"[::1]:8000", "https://[::1]:8000/console/login/oidc/callback"),
    ],
)
def test_a_host_and_port_build_the_redirect_uri(host: bytes, uri: str) -> None:
    assert _redirect_uri(request((b"host", host))) == uri


def test_with_the_console_origin_set_no_other_host_gets_a_redirect_uri() -> None:
    # BULKHEAD_CONSOLE_ORIGIN: a forged Host (a direct request to the gateway) builds no
    # redirect URI at evil.test, where an IdP lax about its registered URIs would send codes.
    configured = "https://gw.example"
    assert _redirect_uri(request((b"host", b"GW.example")), configured) == (
        configured + "/console/login/oidc/callback"
    )
    for host in (b"evil.test", b"gw.example:8443", b"gw.example.evil.test"):
        with pytest.raises(InvalidRequest) as caught:
            _redirect_uri(request((b"host", host)), configured)
        assert configured in caught.value.message


@pytest.mark.parametrize(
    ("value", "read"),
    [
        ("", None),
        ("https://GW.example", "https://gw.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_the_console_origin_setting_reads_an_origin(value: str, read: str | None) -> None:
    assert load(env={"BULKHEAD_CONSOLE_ORIGIN": value}).console_origin == read


@pytest.mark.parametrize(
    "value",
    ["gw.example", "https://gw.example/", "https://gw.example/console", "ftp://gw.example",
     "https://user@gw.example", "https://gw.example?x"],
)  # fmt: skip
def test_a_console_origin_that_is_not_an_origin_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError):
        load(env={"BULKHEAD_CONSOLE_ORIGIN": value})
