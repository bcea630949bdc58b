"""Hypothesis strategies for whole requests to the model API and sign-in, one per endpoint.

`requests(endpoint, known_files)` draws a `Sent` request (method, path,
query, headers, raw body bytes): JSON bodies from `openai_bodies`, uploads
as multipart bodies built the same way (valid, one part wrong or missing,
or hostile bytes), hostile queries, file ids and headers, and sign-in
bodies for each `/auth/v1` path with any credential or none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.support.openai_bodies import (
    ANY_CHAR,
    CONTENT_TYPES,
    JSON_VALUES,
    ODD_TYPES,
    SHORT,
    TEXT,
    VALID,
    encode,
    json_body,
    mostly,
    near_valid,
    raw_hostile,
)


@dataclass
class Sent:
    """One request as the client sent it (the credential is added by the caller)."""

    method: str
    path: str
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    query: bytes = b""
    credential: bool = True  # send the tenant's API key (sign-in sends its own, or none)


def _typed(content_type: bytes | None) -> list[tuple[bytes, bytes]]:
    return [] if content_type is None else [(b"content-type", content_type)]


def json_requests(endpoint: str, path: str) -> st.SearchStrategy[Sent]:
    return st.builds(
        lambda body, kind: Sent("POST", path, body, _typed(kind)),
        json_body(endpoint),
        CONTENT_TYPES,
    )


# Queries, paths and uploads ------------------------------------------------------------------

QUERY_VALUES = (
    st.sampled_from(["", "asc", "desc", "ASC", "1", "0", "-1", "10000", "10001", "1e3", "0x10"])
    | st.sampled_from(["99999999999999999999999", " 5", "5 ", "\u0035", "%ff", "%00", "%"])
    | st.text(max_size=12)
)
QUERY_NAMES = st.sampled_from(["order", "limit", "after", "purpose", "x", "", "limit[]"])


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    """A query string: known and unknown names, hostile values, repeats, odd encodings."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=32))
    pairs = draw(st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=4))
    text = "&".join(f"{name}={value}" for name, value in pairs)
    return text.encode("utf-8", "surrogatepass")


ODD_HEADERS = st.lists(
    st.sampled_from(
        [
            (b"content-type", b"application/json"),
            (b"content-length", b"-1"),
            (b"content-encoding", b"gzip"),
            (b"transfer-encoding", b"chunked"),
            (b"accept", b"\xff"),
            (b"x-bulkhead-tenant", b"demo"),
            (b"x-request-id", b"\x00" * 3),
        ]
    ),
    max_size=2,
)


# A model name as it reaches `DELETE /v1/models/{model}`: percent-decoded, any text.
MODEL_NAMES = st.sampled_from(
    ["ft:", "ft:x:y:z:ftjob-0", "..", "a/b", "a" * 300, " ", "\x00", "%2e%2e"]
) | st.text(max_size=40).filter(bool)


def models_requests(known: tuple[str, ...] = ()) -> st.SearchStrategy[Sent]:
    """GET /v1/models with any query, odd headers, a body it does not take, or a wrong method;
    three times in ten any method on `/v1/models/<name>` (mostly the DELETE of a fine-tuned
    model): a `known` model (the tenant's, a platform one, another tenant's) or any name."""
    method = st.sampled_from(["GET"] * 6 + ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    body = st.just(b"") | st.binary(max_size=32) | json_body("chat")
    listing = st.builds(
        lambda m, q, b, h: Sent(m, "/v1/models", b, h, q), method, queries(), body, ODD_HEADERS
    )
    names = st.sampled_from(known) | MODEL_NAMES if known else MODEL_NAMES
    one = st.builds(
        lambda m, n, q, b, h: Sent(m, f"/v1/models/{n}", b, h, q),
        st.sampled_from(["DELETE"] * 6 + ["GET", "POST"]),
        names,
        queries(),
        st.just(b"") | st.binary(max_size=32),
        ODD_HEADERS,
    )
    return mostly(listing, one, 7)


def list_requests() -> st.SearchStrategy[Sent]:
    return st.builds(lambda q, h: Sent("GET", "/v1/files", b"", h, q), queries(), ODD_HEADERS)


# A file id as it reaches the gateway: the path, percent-decoded by the server.
FILE_IDS = (
    st.sampled_from(["file-0", "file-", "..", ".", "%2e%2e", "file-" + "a" * 300, " ", "\x00"])
    | st.text(max_size=40).filter(lambda t: "/" not in t and t)
    | st.from_regex(r"\Afile-[0-9a-f]{8,40}\Z")
)


def one_file_requests(known: list[str]) -> st.SearchStrategy[Sent]:
    """GET, DELETE or GET .../content of a file: a real one (made by `known`), or any id."""
    ids = st.sampled_from(known) | FILE_IDS if known else FILE_IDS
    method_tail = st.sampled_from(
        [("GET", ""), ("DELETE", ""), ("GET", "/content"), ("DELETE", "/content"), ("PUT", "")]
    )
    return st.builds(
        lambda i, mt, q, h: Sent(mt[0], f"/v1/files/{i}{mt[1]}", b"", h, q),
        ids,
        method_tail,
        queries(),
        ODD_HEADERS,
    )


FILE_NAMES = st.sampled_from(
    ["a.jsonl", "../../etc/passwd", "..", ".", "", "a\\b", "C:\\x", "\u202egnp.exe", "x" * 600]
) | st.text(ANY_CHAR, max_size=20)
PURPOSES = mostly(
    st.sampled_from(["assistants", "batch", "fine-tune", "vision", "user_data"]),
    TEXT | st.sampled_from(["", " batch", "BATCH", "batch\x00"]),
)
BOUNDARY = b"fzbnd"


def _disposition(name: str, filename: str | None) -> bytes:
    extra = "" if filename is None else f'; filename="{filename}"'
    return f'Content-Disposition: form-data; name="{name}"{extra}'.encode("utf-8", "surrogatepass")


@st.composite
def upload_body(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    """(body, content type) of an upload: valid, one part wrong or missing, or hostile."""
    parts = [
        (_disposition("purpose", None), draw(PURPOSES).encode("utf-8", "surrogatepass")),
        (_disposition("file", draw(FILE_NAMES)), draw(st.binary(max_size=64))),
    ]
    kind = draw(st.sampled_from(["valid", "valid", "near", "near", "hostile"]))
    if kind == "near":
        change = draw(st.sampled_from(["drop", "twice", "named", "headers", "bytes"]))
        index = draw(st.integers(0, 1))
        if change == "drop":
            del parts[index]
        elif change == "twice":
            parts.append(parts[index])
        elif change == "named":
            parts[index] = (_disposition(draw(TEXT), draw(st.none() | TEXT)), parts[index][1])
        elif change == "headers":
            junk = draw(st.binary(max_size=40))
            parts[index] = (draw(st.sampled_from([b"", junk, parts[index][0] + junk])), b"x")
        else:
            parts[index] = (parts[index][0], draw(st.binary(max_size=40)))
    out = bytearray()
    for headers, data in parts:
        out += b"--" + BOUNDARY + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"
    out += b"--" + BOUNDARY + b"--\r\n"
    body = draw(raw_hostile(bytes(out))) if kind == "hostile" else bytes(out)
    quoted = st.just(b'multipart/form-data; boundary="fzbnd"')
    return body, draw(
        mostly(st.just(b"multipart/form-data; boundary=" + BOUNDARY), ODD_TYPES | quoted)
    )


def upload_requests() -> st.SearchStrategy[Sent]:
    return upload_body().map(lambda pair: Sent("POST", "/v1/files", pair[0], _typed(pair[1])))


# Sign-in (/auth/v1) --------------------------------------------------------------------------

SIGN_IN_PATHS = (
    "/auth/v1/login",
    "/auth/v1/logout",
    "/auth/v1/mfa/enroll",
    "/auth/v1/mfa/confirm",
    "/auth/v1/enrol",
    "/auth/v1/enrol/confirm",
)
PRINCIPALS = st.sampled_from(["fz-person", "nobody", "admin", ""]) | SHORT
PASSWORDS = st.sampled_from(["correct horse battery", "x" * 12, ""]) | SHORT
TOTPS = st.sampled_from(["000000", "123456", "x" * 17])
ROLE_NAMES = st.sampled_from(["tenant_admin", "end_user", "platform_admin", "root"])
SIGNING_IN = st.fixed_dictionaries(
    {"principal": PRINCIPALS, "password": PASSWORDS},
    optional={
        "tenant": st.sampled_from(["fz", "demo", "nope", "x" * 64]),
        "totp": TOTPS,
        "recovery_code": st.sampled_from(["abcd-efgh", "x" * 65]),
        "role": ROLE_NAMES,
    },
)
ENROLLING = st.fixed_dictionaries(
    {"principal": PRINCIPALS, "enrolment_secret": st.sampled_from(["s" * 32, ""]) | SHORT},
    optional={"password": PASSWORDS, "totp": TOTPS, "role": ROLE_NAMES},
)
SIGN_IN_BODIES = {path: ENROLLING if "/enrol" in path else SIGNING_IN for path in SIGN_IN_PATHS}
BEARERS = st.sampled_from([None, b"Bearer ", b"Bearer bks_x", b"Basic eA==", b"bearer \xff"]).map(
    lambda value: [] if value is None else [(b"authorization", value)]
)


@st.composite
def sign_in_requests(draw: st.DrawFn) -> Sent:
    """POSTs (mostly) to the sign-in paths: bodies valid, near-valid or hostile, any credential."""
    path = draw(st.sampled_from(SIGN_IN_PATHS))
    method = draw(mostly(st.just("POST"), st.sampled_from(["GET", "PUT", "DELETE"]), 9))
    kind = draw(st.sampled_from(["valid", "near", "near", "hostile-json", "hostile-bytes"]))
    if kind == "hostile-bytes":
        body = draw(raw_hostile(encode(draw(SIGN_IN_BODIES[path]))))
    elif kind == "hostile-json":
        body = encode(draw(JSON_VALUES), draw(st.booleans()))
    else:
        valid = draw(SIGN_IN_BODIES[path])
        body = encode(valid if kind == "valid" else draw(near_valid(st.just(valid))))
    headers = _typed(draw(CONTENT_TYPES)) + draw(BEARERS)
    return Sent(method, path, body, headers, credential=False)


# The web console (/console): its sign-in, session, sign-out, pages and files -------------------

CONSOLE_PATHS = (
    "/console/api/login",
    "/console/api/logout",
    "/console/api/session",
    "/console",
    "/console/",
    "/console/keys",
    "/console/audit",
    "/console/usage",
    "/console/login",
    "/console/static/api.js",
    "/console/static/verify.js",
    "/console/static/../api.js",
    "/console/nope",
    "/console//keys",
    "/console/login/oidc",
    "/console/login/oidc/callback",
)
_SESSION_COOKIE = b"__Host-bulkhead_session="
_PRE_AUTH_COOKIE = b"__Host-bulkhead_oidc="
COOKIES = st.sampled_from(
    [
        _SESSION_COOKIE + b"bks_x",
        _SESSION_COOKIE + b"bks_" + b"a" * 32 + b"_" + b"b" * 43,
        _SESSION_COOKIE + b"bk_abc_def",
        _SESSION_COOKIE,
        b"=; ;;" + _SESSION_COOKIE + b"\xff\x00",
        b"theme=dark",
        _SESSION_COOKIE + b"x" * 9000,
        _PRE_AUTH_COOKIE + b"e30.AAAA",
        _PRE_AUTH_COOKIE + b"eyJrIjoxLCJ0IjoiZGVtbyJ9." + b"A" * 43,
        _PRE_AUTH_COOKIE + b"..",
        _PRE_AUTH_COOKIE + b"x" * 3000,
    ]
)
# The OIDC sign-in's start and callback read the query: the tenant, and what the IdP sends.
OIDC_NAMES = st.sampled_from(["tenant", "state", "code", "iss", "error", "tenant"])
OIDC_VALUES = QUERY_VALUES | st.sampled_from(["demo", "ten_demo", "http://127.0.0.1:1"])


@st.composite
def oidc_queries(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    pairs = draw(st.lists(st.tuples(OIDC_NAMES, OIDC_VALUES), max_size=5))
    return "&".join(f"{n}={v}" for n, v in pairs).encode("utf-8", "surrogatepass")


ORIGINS = st.sampled_from([b"http://testserver", b"https://evil.example", b"null", b"\xff"])
FETCH_SITES = st.sampled_from([b"same-origin", b"cross-site", b"none", b""])
BROWSER = st.tuples(
    st.none() | COOKIES.map(lambda v: (b"cookie", v)),
    st.none() | ORIGINS.map(lambda v: (b"origin", v)),
    st.none() | FETCH_SITES.map(lambda v: (b"sec-fetch-site", v)),
    st.none() | SHORT.map(lambda v: (b"x-csrf-token", v.encode("utf-8", "surrogatepass"))),
).map(lambda headers: [h for h in headers if h is not None])


@st.composite
def console_requests(draw: st.DrawFn) -> Sent:
    """The console's paths with sign-in bodies (valid, near-valid or hostile), any cookie,
    origin, fetch site and CSRF token, any bearer or none."""
    path = draw(st.sampled_from(CONSOLE_PATHS))
    method = draw(st.sampled_from(["POST", "POST", "GET", "GET", "PUT", "DELETE", "HEAD"]))
    kind = draw(st.sampled_from(["valid", "near", "hostile-json", "hostile-bytes"]))
    if kind == "hostile-bytes":
        body = draw(raw_hostile(encode(draw(SIGNING_IN))))
    elif kind == "hostile-json":
        body = encode(draw(JSON_VALUES), draw(st.booleans()))
    else:
        valid = draw(SIGNING_IN)
        body = encode(valid if kind == "valid" else draw(near_valid(st.just(valid))))
    headers = _typed(draw(CONTENT_TYPES)) + draw(BEARERS) + draw(BROWSER)
    query = draw(oidc_queries()) if "/oidc" in path else b""
    return Sent(method, path, body, headers, query=query, credential=False)


def requests(
    endpoint: str, known_files: list[str], known_models: tuple[str, ...] = ()
) -> st.SearchStrategy[Sent]:
    """The strategy of one `/v1` endpoint's requests."""
    if endpoint in VALID:
        return json_requests(
            endpoint, "/v1/chat/completions" if endpoint == "chat" else f"/v1/{endpoint}"
        )
    return {
        "models": lambda: models_requests(known_models),
        "files.upload": upload_requests,
        "files.list": list_requests,
        "files.one": lambda: one_file_requests(known_files),
        "auth": sign_in_requests,
        "console": console_requests,
    }[endpoint]()
