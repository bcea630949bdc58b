"""The ports a Bulkhead started with `make run` holds, taken for the length of a test.

The suite must pass beside another Bulkhead on the same machine: nothing in it
may bind, or call, the default ports (8080 for the API, 9464 for metrics).
`default_ports_taken` holds them (or finds them held already) with listening
sockets that never accept, so a test that reached for one would hang and fail
rather than pass against someone else's gateway.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

DEFAULT_PORTS = (8080, 9464)


@contextlib.contextmanager
def default_ports_taken(host: str = "127.0.0.1") -> Iterator[tuple[int, ...]]:
    held: list[socket.socket] = []
    try:
        for port in DEFAULT_PORTS:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((host, port))
                sock.listen(1)
                held.append(sock)
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                # Taken already: by another Bulkhead, say, which is what this stands in for.
        yield DEFAULT_PORTS
    finally:
        for sock in held:
            sock.close()
