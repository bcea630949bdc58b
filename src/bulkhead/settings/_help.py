"""Help texts too long for their row of the settings table (`settings/_core.py` and the rest)."""

WORKER_MEMORY = "memory limit of every worker (MiB); 0 = its tier's"
VECTOR_CACHE = "memory (MiB) for loaded vector store indexes, per replica"
IDP_CIDRS = "CIDRs beyond public addresses where tenants' IdPs may be reached (e.g. a test IdP)"
CONSOLE_ORIGIN = (
    "the console's public origin (`https://host[:port]`): the OIDC sign-in's redirect URI and "
    "the only origin it starts or finishes on; unset: the request's Host header's"
)
WITNESS = "an http(s) witness the signed checkpoints are also sent to"
OTLP_URL = "OTLP/HTTP URL traces are sent to (`http://collector:4318/v1/traces`); unset: off"
OTLP_HEADERS = "`name=value,…` sent to the collector (e.g. its token); never logged"
SAMPLE = "fraction of requests traced"
SHUTDOWN_GRACE = "on SIGTERM, how long in-flight calls and streams may take to finish"
COUNTER_ENGINE = (
    "the prompt token counter: `tiktoken` (its Rust encoder: fast, 43 MB resident) or `compact` "
    "(Bulkhead's own, in Python: 6 MB, the same counts, 5-30 times the CPU a count)"
)
HTTP_SERVER = (
    "the HTTP server of `bulkhead serve`: `bulkhead` (`web.server`: head, body and "
    "send timeouts, header and pipeline limits), or `uvicorn` (no head, body or send timeout, "
    "no cap on idle connections: needs `BULKHEAD_HTTP_UVICORN_UNBOUNDED=1`)"
)
UVICORN = (
    "`1`: the operator accepts that uvicorn (`BULKHEAD_HTTP_SERVER=uvicorn`) leaves slow "
    "clients and idle sockets unbounded (a proxy in front must bound them); without it "
    "uvicorn is refused"
)
KEEP_ALIVE = "seconds an idle keep-alive connection stays open (both servers)"
HEAD_TIMEOUT = "seconds from a request's first byte to the end of its headers (408 after)"
BODY_TIMEOUT = "seconds between two reads of a request body (408 after)"
SEND_TIMEOUT = "seconds an answer's write waits for a client that stopped reading (then cut)"
MAX_CONNECTIONS = (
    "open connections at once (one more: 503, closed; needs as many file descriptors); "
    "uvicorn answers 503 to calls past it but keeps the sockets"
)
