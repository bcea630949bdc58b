"""Transport security: TLS 1.2+ only with HSTS, and tenants that require client certificates."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket
import ssl
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.gateway import GatewayThread


def _server_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as an operator's would be."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = _server_cert(directory)
    env = {"BULKHEAD_TLS_CERT": str(cert), "BULKHEAD_TLS_KEY": str(key)}
    gateway = GatewayThread(directory / "data", None, env=env).start()
    gateway.server_cert = cert  # type: ignore[attr-defined]
    yield gateway
    gateway.stop()


def _client(
    gateway: GatewayThread,
    *,
    version: ssl.TLSVersion | None = None,
    cert_dir: Path | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(gateway.server_cert))  # type: ignore[attr-defined]
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if cert_dir is not None:
        ctx.load_cert_chain(str(cert_dir / "client.pem"), str(cert_dir / "client.key"))
    return ctx


def _call(
    gateway: GatewayThread,
    method: str,
    path: str,
    key: str | None = None,
    body: Any = None,
    ctx: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", gateway.port, context=ctx or _client(gateway), timeout=10
    )
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    parsed = json.loads(payload) if payload else None
    return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed


def test_plaintext_http_is_refused(tls_gateway: GatewayThread) -> None:
    with socket.create_connection(("127.0.0.1", tls_gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/")


# What a browser offers: AEAD suites first, then the CBC ones TLS 1.0 and 1.1 can use (with an
# ECDSA certificate, as the gateway's, or an RSA one), so an old hello has a suite in common.
MODERN_SUITES = (0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA8, 0xCCA9, 0xC009, 0xC00A, 0xC013, 0xC014,
                 0x009C, 0x002F)  # fmt: skip
# CBC with SHA-1 (ECDHE-ECDSA- and ECDHE-RSA-AES128/256-SHA), and RSA key exchange, no
# forward secrecy (AES128-SHA, AES256-SHA, AES128-GCM-SHA256).
LEGACY_SUITES = (0xC009, 0xC00A, 0xC013, 0xC014, 0x002F, 0x0035, 0x009C)


def _client_hello(version: int, suites: tuple[int, ...] = MODERN_SUITES) -> bytes:
    """A TLS ClientHello record offering exactly `version` (0x0301 TLS 1.0 ... 0x0303 TLS 1.2),
    written by hand: the local OpenSSL refuses to send TLS 1.0 or 1.1 at all (nor, at its
    security level, some old suites), and a test that let it refuse would pass whatever the
    server allowed."""
    extensions = b"".join(
        struct.pack("!HH", kind, len(data)) + data
        for kind, data in [
            (0x000A, struct.pack("!HHH", 4, 0x001D, 0x0017)),  # groups: x25519, P-256
            (0x000B, b"\x01\x00"),  # point formats: uncompressed
            (0x000D, struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0401)),  # signature algorithms
        ]
    )
    hello = (
        struct.pack("!H", version)
        + os.urandom(32)
        + b"\x00"  # no session id
        + struct.pack("!H", 2 * len(suites))
        + b"".join(struct.pack("!H", suite) for suite in suites)
        + b"\x01\x00"  # compression: none
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(hello).to_bytes(3, "big") + hello
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def _server_answer(
    gateway: GatewayThread, version: int, suites: tuple[int, ...] = MODERN_SUITES
) -> bytes:
    """The first bytes the server answers a ClientHello for `version` with (b"": it closed)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(_client_hello(version, suites))
        try:
            return sock.recv(16)
        except ConnectionResetError:
            return b""


def _server_hello_version(answer: bytes) -> int | None:
    """The version a ServerHello in `answer` chose; None if `answer` is no ServerHello."""
    if len(answer) < 11 or answer[0] != 0x16 or answer[5] != 0x02:
        return None
    return int.from_bytes(answer[9:11], "big")


@pytest.mark.parametrize("version", [0x0301, 0x0302], ids=["tls-1.0", "tls-1.1"])
def test_tls_10_and_11_are_refused(tls_gateway: GatewayThread, version: int) -> None:
    answer = _server_answer(tls_gateway, version)
    assert _server_hello_version(answer) is None, answer
    assert answer == b"" or answer[0] == 0x15, answer  # closed, or an alert


def test_a_hand_written_tls_12_hello_is_answered(tls_gateway: GatewayThread) -> None:
    """The refusal above is the server's: the same hand-written hello for TLS 1.2 is answered
    with a ServerHello."""
    assert _server_hello_version(_server_answer(tls_gateway, 0x0303)) == 0x0303


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_12_and_13_work_with_hsts(tls_gateway: GatewayThread, version: ssl.TLSVersion) -> None:
    status, headers, body = _call(
        tls_gateway, "GET", "/healthz", ctx=_client(tls_gateway, version=version)
    )
    assert status == 200 and body == {"status": "ok"}
    assert headers["strict-transport-security"] == "max-age=31536000"
    status, headers, _ = _call(tls_gateway, "GET", "/v1/models", key="wrong")
    assert status == 401 and "strict-transport-security" in headers


def test_tls_12_offers_only_modern_ciphers(tls_gateway: GatewayThread) -> None:
    """A hello offering only legacy suites gets no ServerHello: the server refuses it (the same
    hello with AEAD suites is answered, above), not the local OpenSSL, which may refuse to
    offer those suites at all."""
    answer = _server_answer(tls_gateway, 0x0303, LEGACY_SUITES)
    assert _server_hello_version(answer) is None, answer
    assert answer == b"" or answer[0] == 0x15, answer  # closed, or an alert


def _issue(gateway: GatewayThread, tenant: str, directory: Path) -> Path:
    status, _, body = _call(
        gateway, "POST", f"/admin/v1/tenants/{tenant}/client-certs", gateway.admin_key, {}
    )
    assert status == 200, body
    assert "PRIVATE KEY" in body["private_key"] and body["spiffe_id"].startswith("spiffe://")
    directory.mkdir()
    (directory / "client.pem").write_text(body["certificate"])
    (directory / "client.key").write_text(body["private_key"])
    return directory


def test_tenant_requiring_client_certs(tls_gateway: GatewayThread, tmp_path: Path) -> None:
    for name in ("private", "other"):
        status, _, body = _call(
            tls_gateway, "POST", "/admin/v1/tenants", tls_gateway.admin_key, {"name": name}
        )
        assert status in (200, 201), body
    keys = {}
    for name in ("private", "other"):
        # Each tenant's first admin key: the one a platform admin creates without a grant.
        status, _, body = _call(
            tls_gateway,
            "POST",
            f"/admin/v1/tenants/{name}/keys",
            tls_gateway.admin_key,
            {"role": "tenant_admin"},
        )
        keys[name] = body["secret"]
    own, foreign = (
        _issue(tls_gateway, "private", tmp_path / "own"),
        _issue(tls_gateway, "other", tmp_path / "foreign"),
    )
    # Before the setting, no certificate is needed.
    assert _call(tls_gateway, "GET", "/v1/models", keys["private"])[0] == 200
    status, _, config = _call(
        tls_gateway,
        "PATCH",
        "/admin/v1/tenants/private/config",
        tls_gateway.admin_key,
        {"require_client_cert": True},
    )
    assert status == 200 and config["require_client_cert"] is True
    status, _, body = _call(tls_gateway, "GET", "/v1/models", keys["private"])
    assert status == 403, body
    ctx = _client(tls_gateway, cert_dir=foreign)
    assert _call(tls_gateway, "GET", "/v1/models", keys["private"], ctx=ctx)[0] == 403
    ctx = _client(tls_gateway, cert_dir=own)
    assert _call(tls_gateway, "GET", "/v1/models", keys["private"], ctx=ctx)[0] == 200
    # The other tenant does not require one; its own certificate does not hurt.
    assert _call(tls_gateway, "GET", "/v1/models", keys["other"])[0] == 200
    # A bad value is refused, not half-applied.
    status, _, _ = _call(
        tls_gateway,
        "PATCH",
        "/admin/v1/tenants/private/config",
        tls_gateway.admin_key,
        {"require_client_cert": "yes please"},
    )
    assert status == 400


def _issuer(directory: Path) -> x509.Name:
    return x509.load_pem_x509_certificate((directory / "client.pem").read_bytes()).issuer


def test_client_certificates_follow_a_ca_rotation(
    tls_gateway: GatewayThread, tmp_path: Path
) -> None:
    """The public listener trusts old and new CA while both are trusted, then the new alone."""
    admin = tls_gateway.admin_key
    assert _call(tls_gateway, "POST", "/admin/v1/tenants", admin, {"name": "rotating"})[0] < 300
    body = {"role": "tenant_admin"}
    key = _call(tls_gateway, "POST", "/admin/v1/tenants/rotating/keys", admin, body)[2]["secret"]
    config = {"require_client_cert": True}
    assert _call(tls_gateway, "PATCH", "/admin/v1/tenants/rotating/config", admin, config)[0] == 200
    old = _issue(tls_gateway, "rotating", tmp_path / "old")
    keys = tls_gateway.app.platform_keys
    assert keys is not None
    # A rotation made one activation period ago (the injectable clock): the new version
    # issues now, and the old one is still trusted for what it issued.
    keys.cas.rotate(now=datetime.now(UTC) - keys.cas.activation - timedelta(minutes=1))
    new = _issue(tls_gateway, "rotating", tmp_path / "new")
    assert _issuer(new) != _issuer(old)
    for held in (old, new):
        ctx = _client(tls_gateway, cert_dir=held)
        assert _call(tls_gateway, "GET", "/v1/models", key, ctx=ctx)[0] == 200, held
    # Once every leaf of the old version has expired, it leaves the trust bundle.
    bound = keys.cas.rows()[0].trusted_until
    assert bound is not None
    keys.cas.prune(bound + timedelta(seconds=1))
    ctx = _client(tls_gateway, cert_dir=new)
    assert _call(tls_gateway, "GET", "/v1/models", key, ctx=ctx)[0] == 200
    try:
        status = _call(
            tls_gateway, "GET", "/v1/models", key, ctx=_client(tls_gateway, cert_dir=old)
        )[0]
    except (ssl.SSLError, ConnectionError):
        status = 0  # refused in the handshake
    assert status in (0, 403)
