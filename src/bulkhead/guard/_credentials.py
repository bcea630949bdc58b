"""Detectors of credentials that have no fixed prefix: found by where they are written.

- a password in a URL (`scheme://user:pass@host`) and the credentials of an
  `Authorization: Basic` header (base64 of `user:pass`);
- a value assigned to a key that names a secret, in config and code:
  `password = "…"`, `"client_secret": "…"`, `DB_PASSWORD=…` in an env file,
  `token: …` in YAML;
- cloud credentials with a label of their own: an Azure storage connection
  string's `AccountKey=`/`SharedAccessKey=`, a GCP service-account file's
  `private_key_id` (its `private_key` is a PEM block, see `_secrets`), and a
  Slack incoming-webhook URL.

What keeps look-alikes out: a value must be more than a placeholder (`***`,
`<password>`, `${DB_PASSWORD}`, `changeme` is a real password and stays one),
an unquoted value must not read as a variable or a call (`password =
get_password()`, `token: required`), and the keys are whole words
(`max_tokens: 1000` and `token_count = 5` name no secret).  Each pattern is
led by a literal that the regex engine finds with a substring search.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

from bulkhead.guard._entities import Entity, Finding

_URL_CREDENTIALS = re.compile(
    r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{1,15}://[^\s:/@?#\"'<>]{0,128}:"
    r"([^\s/@?#\"'<>]{1,256})@[A-Za-z0-9\[]"
)
_BASIC = re.compile(r"(?i:(?<![A-Za-z])basic)\s+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])")
_KEY_WORDS = (
    "password", "passwd", "passwort", "passphrase", "pwd", "secret", "token", "密码", "口令",
    *(f"{a}{sep}{b}" for a, b in (("api", "key"), ("access", "key"), ("secret", "key"))
      for sep in ("", "_", "-")),
    "private_key_id", "private-key-id", "privatekeyid", "密钥", "秘钥", "パスワード",
    "_pass", "-pass", ".pass", "_pw",
)  # fmt: skip
"""The end of a name that holds a secret (`DB_PASSWORD`, `client_secret`, `AUTH_TOKEN`)."""
# An assignment is found from its operator (`=`, `:` or the full-width colon: few in prose,
# and found by `str.find`): the key must end just before it (the end of a name:
# `DB_PASSWORD`, `"client_secret"`, then its quote), and a quoted or bare value follow
# (`=>`, `:=` too).
_OPERATORS = ("=", ":", "\uff1a")
# Every key word ends in one of these: the character before an operator (and its quote) rules
# most operators out at once, before the key regex runs (a case-insensitive regex of the
# words, tried at every position of the text, costs ten times more).
_KEY_LAST = frozenset("dteynsDTEYNSwW码令钥ド")
_VALUE = re.compile(
    r"[=>]?[ \t]*"
    r"(\"(?:[^\"\\\n]|\\.){1,256}\"|'[^'\n]{1,256}'|[^\s\"',;{}()\[\]<>\x7f-\U0010ffff]{1,256})"
)
_PLACEHOLDER = re.compile(
    r"(?i)[*x•.\-_#?]*|<[^>]*>|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|%\(?[A-Za-z_]*\)?s|\{\{.*\}\}"
    r"|none|null|nil|true|false|undefined|required|optional|string|str|your[_\-a-z]*|redacted"
    r"|\[redacted[^\]]*\]|env\..*|process\.env\..*|os\.environ.*"
)
# A key in capitals (`DB_PASSWORD`, `POSTGRES_PASSWORD`): an env or compose file, not code.
_ENV_KEY = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9_]{2,39}$")
# A bare value that reads as a name in code or a word in prose: no digit and no symbol.
_WORD = re.compile(r"[A-Za-z_][A-Za-z_.]*")
_AZURE_KEY = re.compile(
    r"(?i:(?<![A-Za-z])(?:AccountKey|SharedAccessKey))=([A-Za-z0-9+/]{20,}={0,2})(?=;|\s|$|\"|')"
)
_GCP_KEY_ID = re.compile(r"\"private_key_id\"\s*:\s*\"([0-9a-f]{40})\"")
# A secret named in prose: "the client secret is …", "auth token 0123…", "密码是Abc12345".
PROSE_WORDS = ("password", "passwd", "passphrase", "secret", "token", "api key", "access key",
                "密码", "密钥", "口令")  # fmt: skip
_NOT_PASS_WORDS = tuple(w for w in PROSE_WORDS if not w.startswith("pass"))
_PROSE_TAIL = re.compile(
    r"([ \t]+(?:is|was)[ \t]+|[ \t]*[是为][ \t]*|[ \t]+)"
    r"([^\s\"'<>()\[\]{},;\x7f-\U0010ffff]{6,256})"
)
# XML configuration: `<password>…</password>`, `<add key="DbPassword" value="…"/>`.
# The element's value runs to the next tag: a stream sees it before its closing tag arrives.
_XML_ELEMENT = re.compile(r"<([A-Za-z_][A-Za-z0-9_.:\-]{0,40})>([^<>\s][^<>\n]{0,255})(?=<|\n|$)")
_XML_ATTRIBUTE = re.compile(
    r"(?i:key|name)\s*=\s*\"([^\"\n]{1,60})\"\s+(?i:value)\s*=\s*\"([^\"\n]{1,256})\""
)
_SAS_SIGNATURE = re.compile(r"(?<![A-Za-z0-9_])sig=([A-Za-z0-9%+/=]{20,256})(?![A-Za-z0-9%+/=])")
_TWILIO_SID = re.compile(r"(?<![A-Za-z0-9])AC[0-9a-f]{32}(?![A-Za-z0-9])")
_SLACK_WEBHOOK = re.compile(
    r"https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Za-z0-9]{6,}/[A-Za-z0-9/]{6,}"
)


def _operators(text: str, start: int, end: int) -> list[int]:
    """Where `=`, `:` and the full-width colon are, in order (`str.find` scans ten times faster
    than a regex character class)."""
    found: list[int] = []
    for operator in _OPERATORS:
        at = text.find(operator, start, end)
        while at >= 0:
            found.append(at)
            at = text.find(operator, at + 1, end)
    return sorted(found)


def _value_span(m: re.Match[str]) -> tuple[int, int, str]:
    """The value's span and text, inside its quotes if it has them."""
    start, end, value = m.start(1), m.end(1), m.group(1)
    if value[:1] in "\"'" and len(value) >= 2:
        return start + 1, end - 1, value[1:-1]
    return start, end, value


def _secret_like(value: str, *, quoted: bool) -> bool:
    """A value worth hiding: four or more characters, not a placeholder, not a bare name."""
    if len(value) < 4 or _PLACEHOLDER.fullmatch(value):
        return False
    if quoted:
        return True
    if value[0] in "/~.":  # a path (`PWD=/home/app`), not a password
        return False
    return not _WORD.fullmatch(value) and not (value.isdigit() and len(value) < 6)


def _env_value(value: str) -> bool:
    """A plain word after an environment-style key (`POSTGRES_PASSWORD: example`): in an env
    file or a compose file that is the password itself, not a name in code."""
    return len(value) >= 4 and value.isalnum() and not _PLACEHOLDER.fullmatch(value)


def _prose_secret(value: str, *, bare: bool) -> bool:
    if not _secret_like(value, quoted=False) or not any(c.isdigit() for c in value):
        return False
    if not bare:
        return True
    return len(value) >= 16 and any(c.isalpha() for c in value) and len(set(value)) >= 8


def _basic_ok(encoded: str) -> bool:
    """Base64 of `user:password` (RFC 7617), printable."""
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    text = decoded.decode("utf-8", "replace")
    return ":" in text and text.isprintable() and not text.endswith(":")


def _names_secret(name: str) -> bool:
    return name.strip().lower().endswith(_KEY_WORDS)


class CredentialDetector:
    """Passwords and secrets by where they are written: URLs, Basic auth, assignments in code
    and config (XML too), and in prose ("the password is …")."""

    entities = frozenset({Entity.CREDENTIAL})
    numeric = False
    min_digits = 0

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        end = len(text) if end is None else end
        yield from self._urls_and_basic(text, start, end)
        yield from self._assignments(text, start, end)
        yield from self._xml(text, start, end)
        yield from self._prose(text, start, end)

    @staticmethod
    def _urls_and_basic(text: str, start: int, end: int) -> Iterator[Finding]:
        if ":" in text and "://" in text:
            for m in _URL_CREDENTIALS.finditer(text, start, end):
                if not _PLACEHOLDER.fullmatch(m.group(1)):
                    yield Finding(Entity.CREDENTIAL, m.start(1), m.end(1), 0.95, False)
        if "asic" in text or ("A" in text and "ASIC" in text):
            for m in _BASIC.finditer(text, start, end):
                if _basic_ok(m.group(1)):
                    yield Finding(Entity.CREDENTIAL, m.start(1), m.end(1), 0.95, True)

    @staticmethod
    def _assignments(text: str, start: int, end: int) -> Iterator[Finding]:
        after = start
        for at in _operators(text, start, end):
            lo, k = max(0, at - 40), at
            while k > lo and text[k - 1] in "\"' \t":
                k -= 1
            if at < after or k == 0 or text[k - 1] not in _KEY_LAST:
                continue
            if not text[lo:k].lower().endswith(_KEY_WORDS):
                continue
            value_match = _VALUE.match(text, at + 1, end)
            if value_match is None:
                continue
            lo, hi, value = _value_span(value_match)
            after = value_match.end()
            quoted = hi - lo != len(value_match.group(1))
            if _secret_like(value, quoted=quoted) or (
                not quoted and _env_value(value) and _ENV_KEY.search(text, max(0, at - 40), k)
            ):
                yield Finding(Entity.CREDENTIAL, lo, hi, 0.85, False)

    @staticmethod
    def _xml(text: str, start: int, end: int) -> Iterator[Finding]:
        if ">" in text:
            for m in _XML_ELEMENT.finditer(text, start, end):
                if _names_secret(m.group(1)) and _secret_like(m.group(2), quoted=True):
                    yield Finding(Entity.CREDENTIAL, m.start(2), m.end(2), 0.85, False)
        if "=" in text and '="' in text:
            for m in _XML_ATTRIBUTE.finditer(text, start, end):
                if _names_secret(m.group(1)) and _secret_like(m.group(2), quoted=True):
                    yield Finding(Entity.CREDENTIAL, m.start(2), m.end(2), 0.85, False)

    @staticmethod
    def _prose(text: str, start: int, end: int) -> Iterator[Finding]:
        """A secret after the word that names it, with "is", "是" or nothing between: the
        value must hold a digit, and one with no verb must look like key material."""
        lowered = text.lower()
        if len(lowered) != len(text):  # a letter whose lower case is longer ("İ"): rare
            lowered = text
        # Three of the words begin with "pass": one search for it spares most texts three.
        for word in PROSE_WORDS if "pass" in lowered else _NOT_PASS_WORDS:
            at = lowered.find(word, start, end)
            while at >= 0:
                if at == 0 or not text[at - 1].isalpha() or not word.isascii():
                    m = _PROSE_TAIL.match(text, at + len(word), end)
                    if m is not None:
                        value = m.group(2).rstrip(".:!?")
                        bare = not m.group(1).strip()
                        if _prose_secret(value, bare=bare):
                            yield Finding(
                                Entity.CREDENTIAL, m.start(2), m.start(2) + len(value), 0.8, False
                            )
                at = lowered.find(word, at + 1, end)


class CloudCredentialDetector:
    """Azure storage keys in connection strings, GCP service-account key ids (`CLOUD_SECRET`),
    and Slack incoming-webhook URLs (`API_KEY`: the URL is the credential).
    """

    entities = frozenset({Entity.CLOUD_SECRET, Entity.API_KEY})
    numeric = False
    min_digits = 0

    def find(self, text: str, start: int = 0, end: int | None = None) -> Iterator[Finding]:
        end = len(text) if end is None else end
        # Each gate tests a character first: `in` finds one at memory speed, a word far slower.
        equals = "=" in text
        if equals and ("Key=" in text or "key=" in text or "KEY=" in text):
            for m in _AZURE_KEY.finditer(text, start, end):
                yield Finding(Entity.CLOUD_SECRET, m.start(1), m.end(1), 0.95, False)
        if "_" in text and "private_key_id" in text:
            for m in _GCP_KEY_ID.finditer(text, start, end):
                yield Finding(Entity.CLOUD_SECRET, m.start(1), m.end(1), 0.95, False)
        if equals and "sig=" in text:
            for m in _SAS_SIGNATURE.finditer(text, start, end):
                yield Finding(Entity.CLOUD_SECRET, m.start(1), m.end(1), 0.9, False)
        if "A" in text and "AC" in text:
            for m in _TWILIO_SID.finditer(text, start, end):
                near = text[max(0, m.start() - 200) : m.end() + 200].lower()
                if "twilio" in near or "auth" in near or "token" in near:
                    yield Finding(Entity.API_KEY, m.start(), m.end(), 0.8, False)
        if "hooks.slack.com" in text:
            for m in _SLACK_WEBHOOK.finditer(text, start, end):
                yield Finding(Entity.API_KEY, m.start(), m.end(), 0.95, False)
