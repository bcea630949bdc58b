"""SPIFFE IDs: parsing by the SPIFFE-ID standard and matching against patterns.

Bulkhead's workload IDs name the tenant first, so that a peer's tenant is
read from its certificate and never from anything the peer sends:

    spiffe://<trust-domain>/gateway
    spiffe://<trust-domain>/tenant/<tenant>/worker/<deployment>
    spiffe://<trust-domain>/tenant/<tenant>/client/<name>
    spiffe://<trust-domain>/tenant/<tenant>/upstream/<deployment>

Shared-pool workers use the pseudo-tenant ``_shared``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bulkhead.errors import PermissionDenied

SHARED_TENANT = "_shared"
# SPIFFE-ID §2.1: trust domain names use lowercase letters, digits, dots, dashes and
# underscores; §2.2: path segments use letters, digits, dots, dashes and underscores.
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_MAX_LENGTH = 2048  # SPIFFE-ID §2.3


class PeerRejected(PermissionDenied):
    """A peer's certificate is not an acceptable identity; the reason stays inside."""

    def __init__(self, reason: str):
        super().__init__("The peer's certificate is not accepted.")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SpiffeId:
    trust_domain: str
    path: tuple[str, ...]

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """Parse a SPIFFE ID; anything that is not one raises `PeerRejected`."""
        if len(uri) > _MAX_LENGTH or not uri.startswith("spiffe://"):
            raise PeerRejected("not a spiffe:// URI")
        domain, _, path = uri[len("spiffe://") :].partition("/")
        if not _TRUST_DOMAIN.fullmatch(domain):
            raise PeerRejected("bad trust domain")
        segments = tuple(path.split("/")) if path else ()
        for segment in segments:
            if segment in (".", "..") or not _SEGMENT.fullmatch(segment):
                raise PeerRejected("bad path segment")
        return cls(domain, segments)

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}/" + "/".join(self.path)

    @property
    def tenant(self) -> str | None:
        """The tenant a workload ID names, if it names one."""
        if len(self.path) >= 2 and self.path[0] == "tenant":
            return self.path[1]
        return None

    def matches(self, pattern: str) -> bool:
        """Whether the path matches `pattern`, segment by segment; ``*`` is one whole segment."""
        wanted = tuple(pattern.strip("/").split("/")) if pattern.strip("/") else ()
        if len(wanted) != len(self.path):
            return False
        return all(w == "*" or w == p for w, p in zip(wanted, self.path, strict=True))


def workload_id(trust_domain: str, *path: str) -> SpiffeId:
    """Build (and validate) an ID such as ``workload_id(td, "tenant", t, "worker", d)``."""
    return SpiffeId.parse(f"spiffe://{trust_domain}/" + "/".join(path))
