"""Help texts too long for their row of the settings table (`settings/__init__.py`)."""

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
HTTP_SERVER = (
    "the HTTP server of `bulkhead serve`: `bulkhead` (`web.server`: head, body and "
    "send timeouts, header and pipeline limits), or `uvicorn` (no head or body timeout)"
)
