"""The sealed stdout of a training process (`crypto.channel`, `finetune.stream.open_sealed`).

Records open in order under their key and nowhere else; a changed, dropped, replayed or
reordered record fails; a sealed stream's reader ends early at the first bad record, so
the follower sees a cut stream, never wrong plaintext.
"""

from __future__ import annotations

import asyncio

import pytest

from bulkhead.crypto._errors import DecryptionFailed
from bulkhead.crypto.channel import MAX_RECORD, ChannelOpener, ChannelSealer, new_key
from bulkhead.finetune.stream import open_sealed, seal_line


def test_records_open_in_order_and_large_chunks_are_split() -> None:
    key = new_key()
    sealer, opener = ChannelSealer(key), ChannelOpener(key)
    big = bytes(range(256)) * ((MAX_RECORD * 2) // 256 + 3)
    sealed = sealer.seal(b"first line\n") + sealer.seal(big)
    assert b"first line" not in sealed
    # Fed a byte range at a time, it gives back exactly what went in.
    out = b"".join(opener.feed(sealed[i : i + 7777]) for i in range(0, len(sealed), 7777))
    assert out == b"first line\n" + big
    assert opener.pending == 0


@pytest.mark.parametrize("attack", ["flip", "drop", "replay", "swap", "other-key"])
def test_a_changed_dropped_replayed_or_swapped_record_fails(attack: str) -> None:
    key = new_key()
    sealer = ChannelSealer(key)
    records = [sealer.seal(f"record {i}".encode()) for i in range(3)]
    if attack == "flip":
        records[1] = records[1][:-1] + bytes([records[1][-1] ^ 1])
    elif attack == "drop":
        del records[1]
    elif attack == "replay":
        records[2] = records[1]
    elif attack == "swap":
        records[1], records[2] = records[2], records[1]
    opener = ChannelOpener(new_key() if attack == "other-key" else key)
    with pytest.raises(DecryptionFailed):
        for record in records:
            opener.feed(record)


def test_the_key_is_in_no_repr() -> None:
    key = new_key()
    assert key.hex() not in repr(ChannelSealer(key)) + repr(ChannelOpener(key))


def test_the_seal_line_is_one_json_line() -> None:
    line = seal_line(b"\0" * 32)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.startswith(b'{"seal": ')


def test_a_sealed_reader_ends_at_the_first_bad_record() -> None:
    async def main() -> bytes:
        key = new_key()
        sealer = ChannelSealer(key)
        raw = asyncio.StreamReader()
        good, bad = sealer.seal(b"good\n"), bytearray(sealer.seal(b"evil\n"))
        bad[-1] ^= 1
        raw.feed_data(good + bytes(bad) + sealer.seal(b"after\n"))
        raw.feed_eof()
        plain = await open_sealed(raw, key)
        return await plain.read()

    assert asyncio.run(main()) == b"good\n"
