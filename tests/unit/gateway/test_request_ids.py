"""Request ids: random, unique, and never repeated by a forked child."""

from __future__ import annotations

import os

from bulkhead.gateway.request_id import _Ids


def test_ids_are_unique_across_blocks() -> None:
    ids = _Ids()
    made = [ids.next() for _ in range(2000)]  # several 341-id blocks
    assert len(set(made)) == len(made)
    assert all(i.startswith("req_") and len(i) == 4 + 2 * _Ids.SIZE for i in made)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    ids = _Ids()
    ids.next()  # the parent holds a block with ids still to hand out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id, then leave without running pytest's exit
        os.write(write, ids.next().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child != ids.next()
