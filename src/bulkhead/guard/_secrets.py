"""Detectors of credentials: provider key formats, tokens, JWTs and PEM private keys.

Key formats carry a fixed prefix, so the regexes are precise on their own;
the checks after them weed out prose that happens to share a prefix (a key
body has digits and letters) and base64 blobs that are not JWTs.  Tokens
have no upper length bound here: the streaming filter handles one longer
than its window by swallowing the rest (see `_stream`).

Each key format is its own pattern led by its literal prefix, which the
stdlib engine finds with a fast substring search; one alternation of all
of them would be tried at every position of the text instead.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

import orjson

from bulkhead.guard._credentials import CloudCredentialDetector, CredentialDetector
from bulkhead.guard._detector import Detector
from bulkhead.guard._entities import Entity, Finding

_TOKEN_CHARS = r"A-Za-z0-9_\-"  # noqa: S105 - a character class, not a secret.
_AFTER_TOKEN = rf"(?![{_TOKEN_CHARS}])"


def _key(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern + _AFTER_TOKEN)


# Each key format with characters that every key of it holds: a pattern runs only on a text
# that has them all (`in` finds one character at memory speed; a regex pass over the text,
# even one alternation of all the prefixes, costs about ten microseconds per KiB).
_API_KEYS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("-k", _key(r"sk-(?:proj-|ant-(?:api|admin)[0-9]{2}-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("_", _key(r"_(?:live|test)_[A-Za-z0-9]{16,}")),  # Stripe's sk_/rk_/pk_, checked below.
    ("_bk", _key(r"bks?_[a-z2-7]{12,16}_[A-Za-z0-9_\-]{43}")),
    ("_gh", _key(r"gh[pousr]_[A-Za-z0-9]{36,}")),
    ("_gp", _key(r"github_pat_[A-Za-z0-9_]{22,}")),
    ("-x", _key(r"xox[abposre]-[A-Za-z0-9\-]{10,}")),
    ("-x", _key(r"xapp-[0-9]-[A-Za-z0-9\-]{10,}")),
    ("AIz", _key(r"AIza[A-Za-z0-9_\-]{35}")),
    ("A", _key(r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA)[A-Z0-9]{16}")),
    ("-GX", _key(r"GOCSPX-[A-Za-z0-9_\-]{20,}")),  # Google OAuth client secret
    ("_hf", _key(r"hf_[A-Za-z0-9]{30,}")),  # Hugging Face
    ("-gp", _key(r"glpat-[A-Za-z0-9_\-]{20,}")),  # GitLab personal access token
    ("_nm", _key(r"npm_[A-Za-z0-9]{36,}")),
    (".SG", _key(r"SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}")),  # SendGrid
    # Stripe webhook signing secret
    ("_w", re.compile(r"whsec_[A-Za-z0-9+/=]{24,}(?![A-Za-z0-9+/=])")),
    ("SK", _key(r"SK[0-9a-fA-F]{32}")),  # Twilio API key
    # An Azure AD client secret: three or four characters, "Q~", then thirty-odd more.
    (
        "~Q",
        re.compile(
            r"(?<![A-Za-z0-9_~.\-])[A-Za-z0-9_.\-]{3,4}Q~[A-Za-z0-9_~.\-]{29,39}[A-Za-z0-9_~\-]"
            r"(?![A-Za-z0-9_~\-])"
        ),
    ),
)
_STRIPE_PREFIX = ("sk", "rk", "pk")
# Every key above holds one of these (`quiet` rules a text out with it).
ANY_KEY_START = re.compile(
    r"sk-|_live_|_test_|bks?_|gh[pousr]_|github_pat_|xox[abposre]-|xapp-|AIza"
    r"|A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA)|GOCSPX-|hf_|glpat-|npm_|SG\.|whsec_|SK|Q~"
)
_AWS_ID_HINT = re.compile(r"A(?:KIA|SIA)[A-Z0-9]{16}")
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_SECRET_LABEL = re.compile(
    r"(?i:aws[ _\-]?secret(?:[ _\-]?access)?(?:[ _\-]?key)?|secret[ _\-]?access[ _\-]?key)"
    r"[\"'\s]{0,3}[:=\uff1a]"
)
_BEARER = re.compile(r"(?i:(?<![A-Za-z])bearer)\s+([A-Za-z0-9\-._~+/]{16,}=*)")
_JWT = re.compile(
    r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
    r"(?![A-Za-z0-9_\-])"
)
PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
# A block without its END line (cut off, or still streaming) runs to the last
# line that looks like base64 or a PEM header; lines may be split by a literal `\n`, as in
# the `private_key` of a GCP service-account JSON file.
_PEM_BODY = re.compile(
    r"[\s\S]{0,20000}?"
    + PEM_END.pattern
    + r"|(?:(?:\s|\\n){0,8}(?:[A-Za-z0-9+/=]{8,}|[A-Za-z-]+: [^\n]*))*"
)


def _holds_all(text: str, chars: str) -> bool:
    """Whether `text` holds every one of `chars`."""
    for c in chars:  # noqa: SIM110 - a loop, not all(): no generator per pattern
        if c not in text:
            return False
    return True


def _mixed(body: str) -> bool:
    """Random key material has both letters and digits; prose and identifiers rarely do."""
    return any(c.isdigit() for c in body) and any(c.isalpha() for c in body)


def _key_like(body: str) -> bool:
    """Key material: letters and digits, or (a letters-only Hugging Face token) a long run of
    both cases; never a placeholder of one repeated character (`XXXX…`, `xxxx…`)."""
    if len(set(body.lower())) < 3:
        return False
    if _mixed(body):
        return True
    return len(body) >= 24 and len(set(body)) >= 10 and body.lower() != body != body.upper()


class ApiKeyDetector:
    """Provider API keys by their documented prefixes: OpenAI/Anthropic `sk-`, Stripe,
    Bulkhead `bk_`/`bks_`, GitHub `ghp_`/`github_pat_`, Slack `xox?-`, Google `AIza` and
    `GOCSPX-`, AWS key ids, Hugging Face `hf_`, GitLab `glpat-`, npm `npm_`, SendGrid `SG.`,
    Stripe `whsec_`, Twilio `SK`, Azure AD client secrets (`…Q~…`).
    """

    entities = frozenset({Entity.API_KEY})
    numeric = False
    min_digits = 0

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        end = len(text) if end is None else end
        for needs, pattern in _API_KEYS:
            if not _holds_all(text, needs):
                continue
            for m in pattern.finditer(text, start, end):
                span = self._span(text, m)
                if span is not None and _key_like(text[span[0] + 4 : span[1]]):
                    yield Finding(Entity.API_KEY, span[0], span[1], 0.95, False)

    @staticmethod
    def _span(text: str, m: re.Match[str]) -> tuple[int, int] | None:
        """The key's span; None when it continues a longer token (or lacks Stripe's prefix)."""
        begin = m.start()
        if m.group().startswith("_"):
            if text[max(0, begin - 2) : begin] not in _STRIPE_PREFIX:
                return None
            begin -= 2
        before = text[begin - 1] if begin > 0 else " "
        if before.isascii() and (before.isalnum() or before in "_-"):
            return None
        return begin, m.end()


class AwsSecretDetector:
    """AWS secret access keys: 40 base64 characters, mixed case, only in context.

    Forty such characters are also a hash or a path, so one counts only after
    a label ("aws_secret_access_key =") or near an access key id (`AKIA…`).
    """

    entities = frozenset({Entity.CLOUD_SECRET})
    numeric = False
    min_digits = 0

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        ids = [m.start() for m in _AWS_ID_HINT.finditer(text)] if "A" in text else []
        if not ids and "ecret" not in text and not (_holds_all(text, "ECRT") and "ECRET" in text):
            return
        for m in _AWS_SECRET.finditer(text):
            body = m.group()
            if body.lower() == body or body.upper() == body:
                continue
            labelled = _AWS_SECRET_LABEL.search(text, max(0, m.start() - 48), m.start())
            if labelled or any(abs(m.start() - i) <= 200 for i in ids):
                yield Finding(Entity.CLOUD_SECRET, m.start(), m.end(), 0.9, False)


class BearerTokenDetector:
    """The credential after `Bearer` (an `Authorization` header pasted into a prompt)."""

    entities = frozenset({Entity.BEARER_TOKEN})
    numeric = False
    min_digits = 0

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        if "earer" not in text and not (_holds_all(text, "EAR") and "EARER" in text):
            return
        for m in _BEARER.finditer(text):
            if _key_like(m.group(1)):
                yield Finding(Entity.BEARER_TOKEN, m.start(1), m.end(1), 0.9, False)


class JwtDetector:
    """JSON Web Tokens (RFC 7519): three base64url parts whose header decodes to a JOSE header."""

    entities = frozenset({Entity.JWT})
    numeric = False
    min_digits = 0

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        if "eyJ" not in text:
            return
        for m in _JWT.finditer(text):
            if _jose_header(m.group().split(".", 1)[0]):
                yield Finding(Entity.JWT, m.start(), m.end(), 1.0, True)


def _jose_header(part: str) -> bool:
    try:
        header = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


class PrivateKeyDetector:
    """PEM private keys (RFC 7468): PKCS#1, PKCS#8, EC, OpenSSH, encrypted, PGP blocks."""

    entities = frozenset({Entity.PRIVATE_KEY})
    numeric = False
    min_digits = 0

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        if "PRIVATE KEY" not in text:
            return
        for m in PEM_BEGIN.finditer(text):
            body = _PEM_BODY.match(text, m.end())
            yield Finding(Entity.PRIVATE_KEY, m.start(), body.end() if body else m.end(), 1.0)


def secret_detectors() -> tuple[Detector, ...]:
    """Every credential detector; a PEM block outranks the key-like lines inside it."""
    return (
        PrivateKeyDetector(),
        JwtDetector(),
        BearerTokenDetector(),
        ApiKeyDetector(),
        AwsSecretDetector(),
        CloudCredentialDetector(),
        CredentialDetector(),
    )
