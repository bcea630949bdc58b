"""Which `amr` claims (RFC 8176) count as multi-factor sign-in, from the token's side.

The attacker is whoever signs in at the tenant's IdP with less than two factors (or an
IdP misconfigured to say odd things) and wants a tenant_admin session the gateway
requires MFA for.  The rule (`domain.multi_factor`): the IdP says `mfa`, or the methods
span two kinds of factor; `pin` is something known like `pwd`; `sms`/`tel` never count.
The console's ID tokens take the same rule against a real provider in
tests/integration/test_console_oidc.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkhead.domain import ClaimMapping, IdpConfig, Role, multi_factor
from bulkhead.domain._identity import MAX_AMR_VALUES
from bulkhead.errors import Unauthenticated
from bulkhead.identity import OidcValidator, map_claims
from tests.unit.identity.test_oidc import AUDIENCE, ISSUER, LOOPBACK, JwksServer, sign


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def config(rsa_key: rsa.RSAPrivateKey) -> Iterator[IdpConfig]:
    """An IdP that requires MFA for admins, its JWKS served on 127.0.0.1."""
    server = JwksServer()
    server.publish("rsa-1", rsa_key.public_key())
    yield IdpConfig(
        tenant_id="ten_a",
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=server.url,
        mapping=ClaimMapping.from_json({"principal": "email", "roles": "groups"}),
        require_mfa_for_admin=True,
    )
    server.close()


def verified(config: IdpConfig, key: Any, **claims: Any) -> dict[str, Any]:
    """The claims of a token the IdP signed: its signature is good, only its amr may not be."""
    validator = OidcValidator(fetch=LOOPBACK.fetch, min_refresh_s=0.0)
    return validator.validate(config, sign(key, "RS256", "rsa-1", **claims))


MFA = [
    ["mfa"],
    ["pwd", "otp"],
    ["pwd", "hwk"],
    ["hwk", "pin"],  # a security key unlocked with its PIN
    ["hwk", "fpt"],
    ["swk", "face"],
    ["pin", "otp", "junk"],
    ["mfa", 7, None],
    ["x"] * (MAX_AMR_VALUES - 1) + ["mfa"],
]
NOT_MFA = [
    None,
    [],
    ["pin"],
    ["pwd"],
    ["pwd", "pin"],
    ["pwd", "kba", "pin"],
    ["sms"],
    ["pwd", "sms"],
    ["pwd", "tel"],
    ["hwk"],  # possession alone
    ["otp"],  # an e-mailed code alone: one factor
    ["otp", "swk"],  # two things held: still one kind
    ["pwd", "user", "mca", "geo", "rba", "wia"],
    ["MFA"],
    ["mfa "],
    "mfa",  # not an array: RFC 8176 says it is one
    "pwd otp",
    {"mfa": True},
    {"0": "pwd", "1": "otp"},
    True,
    1,
    [["mfa"]],
    [{"mfa": 1}],
    ["pwd"] * 100_000 + ["otp"],  # huge: no real IdP sends it
    ["mfa"] * (MAX_AMR_VALUES + 1),
]


@pytest.mark.parametrize("amr", MFA, ids=lambda a: repr(a)[:40])
def test_these_count_as_multi_factor(amr: Any) -> None:
    assert multi_factor(amr)


@pytest.mark.parametrize("amr", NOT_MFA, ids=lambda a: repr(a)[:40])
def test_these_never_count(amr: Any) -> None:
    assert not multi_factor(amr)


@pytest.mark.parametrize(
    "amr",
    [["pin"], ["pwd"], ["pwd", "pin"], ["sms"], ["hwk"], "mfa", ["pwd", "otp"] * 20],
    ids=repr,
)
def test_a_signed_admin_token_without_mfa_is_refused(
    config: IdpConfig, rsa_key: Any, amr: Any
) -> None:
    claims = verified(config, rsa_key, groups=["tenant_admin"], amr=amr)
    with pytest.raises(Unauthenticated) as caught:
        map_claims(config, claims)
    assert caught.value.code == "mfa_required"


@pytest.mark.parametrize("amr", [["mfa"], ["pwd", "otp"], ["hwk", "pin"]], ids=repr)
def test_a_signed_admin_token_with_mfa_is_accepted(
    config: IdpConfig, rsa_key: Any, amr: list[str]
) -> None:
    mapped = map_claims(config, verified(config, rsa_key, groups=["tenant_admin"], amr=amr))
    assert mapped.role is Role.TENANT_ADMIN and mapped.mfa


def test_a_user_with_one_factor_signs_in_but_is_not_multi_factor(
    config: IdpConfig, rsa_key: Any
) -> None:
    claims = verified(config, rsa_key, groups=["end_user"], amr=["pwd", "pin"])
    mapped = map_claims(config, claims)
    assert mapped.role is Role.END_USER and not mapped.mfa
