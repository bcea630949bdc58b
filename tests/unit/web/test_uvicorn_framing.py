"""The default server (uvicorn, with `web.drain`'s protocol) against framing attacks."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from bulkhead.web.drain import DrainingHttpProtocol, DrainingServer
from tests.support.threaded import serving
from tests.unit.web.server_support import Reader, Seen, make_app


@contextmanager
def _uvicorn(seen: Seen) -> Iterator[int]:
    """uvicorn with the gateway's protocol, serving `server_support`'s app; its port."""
    config = uvicorn.Config(
        make_app(seen),
        host="127.0.0.1",
        port=0,
        log_level="critical",
        lifespan="on",
        http=DrainingHttpProtocol,
    )
    server = DrainingServer(config)
    with serving(server):
        yield server.servers[0].sockets[0].getsockname()[1]


def test_trailer_fields_never_join_the_request_headers() -> None:
    """uvicorn appends a trailer to the scope's header list, which the layers read after
    authentication too (a multipart boundary, a vector store's sub-request)."""
    seen = Seen()
    with _uvicorn(seen) as port, socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nauthorization: Bearer other\r\ncontent-type: x/y\r\n\r\n"
        )
        assert Reader(sock).reply().status == 200
    names = [name for name, _ in seen.scopes[0]["headers"]]
    assert names == [b"host", b"transfer-encoding"]


def test_a_transfer_coding_other_than_chunked_alone_never_reaches_the_app() -> None:
    seen = Seen()
    with _uvicorn(seen) as port:
        for coding in (b"xchunked", b"gzip chunked", b"gzip, chunked"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(
                    b"DELETE /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: "
                    + coding
                    + b"\r\n\r\n0\r\n\r\n"
                )
                assert Reader(sock).reply().status == 400
        time.sleep(0.1)
        assert seen.scopes == []
