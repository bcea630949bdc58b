"""What is kept of an uploaded file's name: a safe basename, never a path or control text."""

from __future__ import annotations

import pytest

from bulkhead.errors import InvalidRequest
from bulkhead.gateway.files_api import MAX_FILENAME_BYTES, _query, parse_upload, safe_filename


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("train.jsonl", "train.jsonl"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\a\\data.jsonl", "data.jsonl"),
        ("a\nb\r.jsonl", "ab.jsonl"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # a bidi override that disguises a name
        ("zero\u200bwidth", "zerowidth"),
        ("..", "upload"),
        (".", "upload"),
        ("dir/", "upload"),
        ("", "upload"),
        ("  spaced.jsonl  ", "spaced.jsonl"),
    ],
)
def test_names_are_safe_basenames(given: str, kept: str) -> None:
    assert safe_filename(given) == kept


def test_names_are_at_most_255_bytes_of_whole_characters() -> None:
    kept = safe_filename("é" * 300)
    assert len(kept.encode()) <= MAX_FILENAME_BYTES and kept == "é" * 127


def test_an_upload_keeps_only_the_basename() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="../../x.jsonl"\r\n'
        b"\r\n{}\r\n--b--\r\n"
    )
    name, purpose, data = parse_upload(b"multipart/form-data; boundary=b", body)
    assert (name, purpose, data) == ("x.jsonl", "fine-tune", b"{}")


@pytest.mark.parametrize(
    "raw",
    [b"after=\xff", b"after=%ff", b"purpose=%c3%28", b"&".join([b"a=1"] * 17)],
)
def test_a_query_string_that_is_not_utf8_or_too_long_is_a_400(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _query(raw)
    assert refused.value.param == "query"


def test_a_query_string_keeps_utf8_and_escapes() -> None:
    assert _query(b"purpose=fine-tune&after=f%C3%A9") == {
        "purpose": "fine-tune",
        "after": "f\u00e9",
    }
