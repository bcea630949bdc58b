"""The bounded multipart parser: RFC 7578 framing, every bound, and systematic bad input."""

from __future__ import annotations

import pytest

from bulkhead.errors import BulkheadError, InvalidRequest, PayloadTooLarge
from bulkhead.web.multipart import Part, boundary, parse

CT = b"multipart/form-data; boundary=XyZ"


def body(*parts: tuple[bytes, bytes], close: bytes = b"--XyZ--\r\n") -> bytes:
    return b"".join(b"--XyZ\r\n" + h + b"\r\n\r\n" + d + b"\r\n" for h, d in parts) + close


def field(name: str, value: bytes, extra: str = "") -> tuple[bytes, bytes]:
    return f'Content-Disposition: form-data; name="{name}"{extra}'.encode(), value


GOOD = body(field("purpose", b"fine-tune"), field("file", b"a\r\nb--XyZ", '; filename="t.txt"'))


def test_a_well_formed_body() -> None:
    assert parse(CT, GOOD) == [
        Part("purpose", None, b"fine-tune"),
        Part("file", "t.txt", b"a\r\nb--XyZ"),  # the boundary without a line break before it
    ]


def test_preamble_epilogue_padding_and_quoted_boundaries() -> None:
    plain = body(field("purpose", b"fine-tune"), field("file", b"data", '; filename="t.txt"'))
    padded = plain.replace(b"--XyZ\r\n", b"--XyZ \t\r\n")
    framed = b"preamble\r\n" + padded + b"epilogue"
    assert parse(b'multipart/form-data; charset=x; boundary="XyZ"', framed) == parse(CT, plain)


def test_file_names_quoted_escaped_and_extended() -> None:
    quoted = body(field("file", b"", '; filename="a \\"b\\".txt"'))
    assert parse(CT, quoted)[0].filename == 'a "b".txt'
    extended = body(field("file", b"", "; filename=x; filename*=UTF-8''%E2%82%AC.txt"))
    assert parse(CT, extended)[0].filename == "\u20ac.txt"


@pytest.mark.parametrize(
    "content_type",
    [None, b"application/json", b"multipart/form-data", b"multipart/form-data; boundary=",
     b"multipart/form-data; boundary=" + b"x" * 71, b"multipart/form-data; boundary=a\x00b"],
)  # fmt: skip
def test_content_types_without_a_usable_boundary(content_type: bytes | None) -> None:
    with pytest.raises(InvalidRequest):
        boundary(content_type)


@pytest.mark.parametrize(
    "bad, message",
    [
        (body(*[field("x", b"")] * 17), "more than 16 parts"),
        (body((b"X: " + b"y" * 4100, b"")), "not closed within 4096"),
        (body((b"Content-Disposition form-data", b"")), "'Name: value'"),
        (body((b" Content-Disposition: form-data; name=a", b"")), "'Name: value'"),
        (body((b"Content-Disposition: form-data; name=\xff", b"")), "not UTF-8"),
        (body((b"Content-Type: text/plain", b"")), "Content-Disposition"),
        (body(field("", b"")), "no usable name"),
        (body(field("f", b"", '; filename="a')), "Content-Disposition"),
        (body(field("f", b"", "; filename*=latin-1''x")), "must be UTF-8"),
        (body(field("f", b"", "; filename*=UTF-8''%C3")), "not valid UTF-8"),
        (body((field("f", b"")[0] + b"\r\nContent-Transfer-Encoding: base64", b"")), "base64"),
        (b"--XyZ\r\n", "not closed"),
        (b"--XyZ", "line break"),
        (b"--XyZjunk\r\n\r\n\r\n--XyZ--", "line break"),
        (b"no boundary here", "never occurs"),
        (b"x--XyZ\r\n\r\nx", "never occurs"),  # not at the start of a line
    ],
)
def test_refusals_name_what_is_wrong(bad: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse(CT, bad)
    assert message in refused.value.message


def test_control_characters_in_a_file_name_are_refused() -> None:
    for name in ("a\x00b", "a\x1bb", "a\x85b", "a\u007fb"):
        with pytest.raises(InvalidRequest) as refused:
            parse(CT, body(field("file", b"", f'; filename="{name}"')))
        assert refused.value.param == "file"


def test_fields_are_bounded_but_files_are_not() -> None:
    with pytest.raises(PayloadTooLarge):
        parse(CT, body(field("purpose", b"p" * 65537)))
    assert len(parse(CT, body(field("file", b"f" * 65537, '; filename="f"')))[0].data) == 65537


def test_every_truncation_is_a_clear_refusal_or_a_prefix() -> None:
    """Cut the body anywhere: the parser answers with parts or a 4xx, never anything else."""
    for end in range(len(GOOD)):
        try:
            parse(CT, GOOD[:end])
        except BulkheadError as exc:
            assert isinstance(exc, InvalidRequest | PayloadTooLarge)
