"""Signing in to the web console from tests: people with a password and TOTP, and the cookie.

`Console` speaks to a gateway as the console's page would: the session cookie,
the CSRF token from `/console/api/session`, and the gateway's own `Origin`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from bulkhead.identity import totp
from bulkhead.web.cookies import COOKIE
from tests.integration.test_sign_in import PASSWORD, enroll, person, secret_of
from tests.support.gateway import GatewayThread, Response

_COOKIE = re.compile(rf"^{re.escape(COOKIE)}=([^;]*);")


@dataclass
class Person:
    """Someone who signs in with a password and an enrolled authenticator."""

    tenant: str | None
    name: str
    secret: bytes
    recovery_codes: list[str]

    def fields(self, *, code: str | None = None) -> dict[str, Any]:
        """A sign-in body; each call spends a recovery code unless `code` is given."""
        body: dict[str, Any] = {"principal": self.name, "password": PASSWORD}
        if self.tenant is not None:
            body["tenant"] = self.tenant
        if code is not None:
            body["totp"] = code
        else:
            body["recovery_code"] = self.recovery_codes.pop()
        return body

    def next_code(self) -> str:
        """A TOTP code for the next step: enrolment spent the current one."""
        return totp.totp(self.secret, time.time() + 30)


def tenant_admin(gw: GatewayThread, tenant: str, name: str) -> Person:
    person(gw, tenant, name, ["tenant_admin"])
    secret, codes = enroll(gw, tenant, name)
    return Person(tenant, name, secret, codes)


def platform_admin(gw: GatewayThread) -> Person:
    gw.must("PUT", "/admin/v1/principals/admin/password", {"password": PASSWORD})
    secret, codes = enroll(gw, None, "admin")
    return Person(None, "admin", secret, codes)


def second_admin(gw: GatewayThread, name: str) -> Person:
    """Another platform admin who signs in: the second person of the two-person rule."""
    from bulkhead.domain import PrincipalKind, Role
    from bulkhead.store import repo

    role = Role.PLATFORM_ADMIN
    with gw.app.db.platform_transaction() as session:
        made = repo.create_principal(session, None, name, PrincipalKind.USER, [role])
        key = repo.create_key(session, None, role=role, principal=made, name=name).secret
    gw.app.catalog.reload()
    # A platform principal sets only its own password: with a key of its own.
    body = {"password": PASSWORD}
    assert gw.admin("PUT", f"/admin/v1/principals/{name}/password", body, key=key).status == 200
    secret, codes = enroll(gw, None, name)
    return Person(None, name, secret, codes)


def enrol_operator(gw: GatewayThread, name: str, enrolment_secret: str) -> Person:
    """A platform principal made through the API enrols as the person would: its
    enrolment secret, a password and an authenticator (`/auth/v1/enrol`)."""
    who = {"principal": name, "enrolment_secret": enrolment_secret}
    started = gw.call("POST", "/auth/v1/enrol", None, who)
    assert started.status == 200, started.body
    secret = secret_of(started.body["otpauth_uri"])
    body = {**who, "password": PASSWORD, "totp": totp.totp(secret, time.time())}
    finished = gw.call("POST", "/auth/v1/enrol/confirm", None, body)
    assert finished.status == 200, finished.body
    return Person(None, name, secret, finished.body["recovery_codes"])


def platform_auditor(gw: GatewayThread, name: str) -> Person:
    """A platform auditor created through the API (with the grant a second admin approves,
    once the platform has one) and enrolled."""
    gw.grant("admin:platform_principals.create", name)
    made = gw.admin("POST", "/admin/v1/principals", {"name": name, "roles": ["platform_auditor"]})
    assert made.status == 201, made.body
    return enrol_operator(gw, name, made.body["enrolment_secret"])


def cookie_of(response: Response) -> str:
    found = _COOKIE.match(response.headers.get("set-cookie", ""))
    assert found is not None, response.headers
    return found.group(1)


class Console:
    """One signed-in console session against `gw`."""

    def __init__(self, gw: GatewayThread, origin: str, token: str):
        self.gw, self.origin, self.token = gw, origin, token
        self.csrf = str(self.get("/console/api/session").body["csrf_token"])

    @classmethod
    def sign_in(cls, gw: GatewayThread, origin: str, fields: dict[str, Any]) -> Console:
        signed = gw.call("POST", "/console/api/login", None, fields, headers={"Origin": origin})
        assert signed.status == 200, signed.body
        return cls(gw, origin, cookie_of(signed))

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Cookie": f"{COOKIE}={self.token}", **extra}

    def get(self, path: str) -> Response:
        return self.gw.call("GET", path, None, headers=self.headers())

    def change(self, method: str, path: str, body: Any = None, **extra: str) -> Response:
        """A change as the page makes it: cookie, CSRF token, own origin (each overridable)."""
        sent = self.headers(**{"Origin": self.origin, "X-CSRF-Token": self.csrf, **extra})
        sent = {k: v for k, v in sent.items() if v}  # "" leaves a header out
        return self.gw.call(method, path, None, body, headers=sent)
