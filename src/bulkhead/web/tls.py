"""The ASGI TLS extension: the client certificate in the request scope.

`tls_extension` is what both HTTP servers put there (`web.h1server` calls it
once per connection; `web.drain.TlsHttpToolsProtocol` is its uvicorn protocol,
kept there so that a gateway on the default server never imports uvicorn).

uvicorn (0.54) terminates TLS but puts nothing of the handshake into the
scope.  This protocol is uvicorn's own httptools protocol with one addition:
when the connection is TLS, each request's scope gets
``scope["extensions"]["tls"]`` as the ASGI TLS extension defines it
(https://asgi.readthedocs.io/en/latest/specs/tls.html), with the client's
certificate as PEM in ``client_cert_chain`` (the leaf only: Python 3.11's
`ssl` does not expose the rest, and Bulkhead's client certificates are
issued directly by its CA).  It is computed once per connection, after the
handshake, which asyncio completes before `connection_made`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import MutableMapping
from typing import Any

from cryptography import x509

TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection, or None for plaintext."""
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


@functools.lru_cache(maxsize=1024)
def _certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def client_certificate(scope: MutableMapping[str, Any]) -> x509.Certificate | None:
    """The client certificate of a request's connection, from the ASGI TLS extension.

    The TLS listener has checked its chain against the internal CA already;
    what it names is for the caller to check (`TrustAnchor.verify_tenant_client`).
    """
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or ()
    return _certificate(chain[0]) if chain else None
