"""Hypothesis strategies for `/v1/fine_tuning/jobs` requests (tests/security/test_no_5xx.py).

`known` is what the fuzzed tenant has: `known[0]` its valid chat-JSONL
`fine-tune` file, then other file ids (a malformed JSONL, a `batch` file,
another tenant's file) and job ids (`ftjob-…`).  Create bodies are valid
(within the shared tier's bounds), near-valid or hostile; the other routes
get real and hostile job ids, every method, and hostile queries.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.support.fuzz_requests import ODD_HEADERS, Sent, queries
from tests.support.openai_bodies import CONTENT_TYPES, JSON_VALUES, encode, mostly, near_valid
from tests.support.openai_bodies import raw_hostile as hostile_bytes

FT_MODEL = "fz-tunable"
JOBS = "/v1/fine_tuning/jobs"

HYPER = st.fixed_dictionaries(
    {},
    optional={
        "n_epochs": st.integers(1, 5),
        "batch_size": st.integers(1, 8),
        "learning_rate_multiplier": st.floats(0.01, 10.0),
    },
)
EXTENSION = st.fixed_dictionaries(
    {}, optional={"lora_rank": st.integers(1, 16), "max_seq_len": st.integers(16, 512)}
)
JOB_IDS = (
    st.sampled_from(["ftjob-0", "ftjob-", "..", "%2e%2e", "ftjob-" + "a" * 300, " ", "\x00"])
    | st.text(max_size=40).filter(lambda t: "/" not in t and t)
    | st.from_regex(r"\Aftjob-[0-9a-f]{24}\Z")
)


def _valid(known: list[str]) -> st.SearchStrategy[dict[str, object]]:
    files = [k for k in known if not k.startswith("ftjob-")]
    return st.fixed_dictionaries(
        {
            "model": mostly(st.just(FT_MODEL), st.sampled_from(["nope", "fz-model"])),
            "training_file": mostly(st.just(files[0]), st.sampled_from(files)),
        },
        optional={
            "validation_file": st.sampled_from(files),
            "hyperparameters": HYPER,
            "suffix": st.from_regex(r"\A[a-z0-9-]{1,20}\Z"),
            "seed": st.integers(0, 2**31 - 1),
            "bulkhead": EXTENSION,
        },
    )


@st.composite
def create_requests(draw: st.DrawFn, known: list[str]) -> Sent:
    kind = draw(st.sampled_from(["valid", "valid", "near", "near", "json", "bytes"]))
    valid = draw(_valid(known))
    if kind == "bytes":
        body = draw(hostile_bytes(encode(valid)))
    elif kind == "json":
        body = encode(draw(JSON_VALUES), draw(st.booleans()))
    else:
        body = encode(valid if kind == "valid" else draw(near_valid(st.just(valid))))
    method = draw(mostly(st.just("POST"), st.sampled_from(["PUT", "PATCH", "DELETE"]), 9))
    kind_header = draw(CONTENT_TYPES)
    headers = [] if kind_header is None else [(b"content-type", kind_header)]
    return Sent(method, JOBS, body, headers)


def job_requests(known: list[str]) -> st.SearchStrategy[Sent]:
    """The list, and one job's retrieve, cancel, events and checkpoints, any method."""
    jobs = [k for k in known if k.startswith("ftjob-")]
    ids = st.sampled_from(jobs) | JOB_IDS if jobs else JOB_IDS
    tails = st.sampled_from(
        [
            *[("GET", ""), ("GET", "/events"), ("GET", "/checkpoints"), ("POST", "/cancel")],
            *[("DELETE", ""), ("POST", ""), ("GET", "/cancel"), ("PUT", "/events")],
        ]
    )
    one = st.builds(
        lambda i, mt, q, h: Sent(mt[0], f"{JOBS}/{i}{mt[1]}", b"", h, q),
        ids,
        tails,
        queries(),
        ODD_HEADERS,
    )
    listed = st.builds(lambda q, h: Sent("GET", JOBS, b"", h, q), queries(), ODD_HEADERS)
    return one | listed


def fine_tuning_requests(endpoint: str, known: list[str]) -> st.SearchStrategy[Sent]:
    if endpoint == "fine_tuning.create":
        return create_requests(known)
    return job_requests(known)
