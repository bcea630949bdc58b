"""Random ids fetched in blocks: never repeated, not across threads, not by a forked child."""

from __future__ import annotations

import os
import threading

import pytest

from bulkhead.randomness import BLOCK_BYTES, random_bytes, random_hex


def test_ids_are_unique_across_blocks() -> None:
    made = [random_hex(12) for _ in range(3 * BLOCK_BYTES // 12)]  # several blocks
    assert len(set(made)) == len(made) and all(len(i) == 24 for i in made)


def test_threads_never_share_bytes() -> None:
    got: list[list[str]] = [[] for _ in range(4)]

    def take(into: list[str]) -> None:
        into.extend(random_hex(16) for _ in range(1000))

    threads = [threading.Thread(target=take, args=(g,)) for g in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for g in got for i in g]
    assert len(set(every)) == len(every) == 4000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    random_hex(12)  # the parent holds a block with bytes still to hand out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id, then leave without running pytest's exit
        os.write(write, random_hex(12).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child != random_hex(12)


@pytest.mark.parametrize("n", [0, -1, BLOCK_BYTES + 1])
def test_sizes_outside_a_block_are_refused(n: int) -> None:
    with pytest.raises(ValueError):
        random_bytes(n)
