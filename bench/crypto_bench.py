"""Tenant data encryption: envelope ops/s on 1 KB objects, streaming decrypt vs OpenSSL.

    .venv/bin/python bench/crypto_bench.py [--mib 256] [--seconds 3]

Prints objects/s for envelope encrypt and decrypt (1 KiB, LocalKms with the
KEK unwrapped per call, as in production), the streaming-AEAD decrypt rate
of a `--mib` object (1 MiB segments), and `openssl speed -evp aes-256-gcm`
at 16 KiB blocks on the same machine in the same run: the practical limit.
Target: streaming decrypt >= 50% of the OpenSSL figure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import time

from bulkhead.crypto import (
    Kek,
    LocalKms,
    MemoryKekStore,
    decrypt,
    decrypt_stream,
    encrypt,
    encrypt_stream_bytes,
)


def rate(work: object, seconds: float) -> float:
    assert callable(work)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            work()
        n += 100
    return n / elapsed


def openssl_gcm_mb_s(seconds: int) -> float | None:
    """`openssl speed -evp aes-256-gcm`, 16384-byte column, in MB/s (10^6 bytes)."""
    if shutil.which("openssl") is None:
        return None
    out = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "-bytes", "16384", "-evp", "aes-256-gcm"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.lower().startswith("aes-256-gcm"))
    value = re.findall(r"([\d.]+)k", line)[-1]  # in 1000s of bytes per second
    return float(value) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    kms = LocalKms(MemoryKekStore(), Kek.generate())
    kms.create_tenant("t")
    one_kb = os.urandom(1024)
    sealed = encrypt(one_kb, tenant_id="t", kind="file", object_id="o", kms=kms)
    enc = rate(
        lambda: encrypt(one_kb, tenant_id="t", kind="file", object_id="o", kms=kms), args.seconds
    )
    dec = rate(
        lambda: decrypt(sealed, tenant_id="t", kind="file", object_id="o", kms=kms), args.seconds
    )
    print(f"envelope encrypt, 1 KiB objects: {enc:,.0f}/s")
    print(f"envelope decrypt, 1 KiB objects: {dec:,.0f}/s")

    plain = os.urandom(args.mib << 20)
    stream = encrypt_stream_bytes(plain, tenant_id="t", kind="model", object_id="m", kms=kms)
    chunks = [memoryview(stream)[i : i + (4 << 20)] for i in range(0, len(stream), 4 << 20)]
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _segment in decrypt_stream(chunks, tenant_id="t", kind="model", object_id="m", kms=kms):
            pass
        runs.append(len(plain) / (time.perf_counter() - start) / 1e6)
    ours = statistics.median(runs)
    print(f"streaming decrypt ({args.mib} MiB, median of 5): {ours:,.0f} MB/s")
    limit = openssl_gcm_mb_s(max(1, int(args.seconds)))
    if limit is None:
        print("openssl not found: no reference figure")
        return
    print(f"openssl speed -evp aes-256-gcm (16 KiB blocks): {limit:,.0f} MB/s")
    verdict = "MET" if ours >= 0.5 * limit else "NOT MET"
    print(f"streaming / openssl: {ours / limit:.0%} (target >= 50%: {verdict})")


if __name__ == "__main__":
    main()
