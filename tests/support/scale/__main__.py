"""`make scale-demo`: the scale-out stack in the foreground until Ctrl-C (or SIGTERM).

    python -m tests.support.scale [--replicas N]

Prints where nginx listens, each replica, the platform admin's key and the
`scale` tenant's key, then waits; Ctrl-C stops every process it started
(nginx first, PostgreSQL last) and removes the temporary directory.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from tests.support.scale.stack import CHAT, MODEL, TENANT, Stack


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    stack = Stack(replicas=args.replicas)
    try:
        started = time.monotonic()
        stack.start()
        print(f"scale-out stack up in {time.monotonic() - started:.1f}s ({stack.root})")
        print(f"  nginx        {stack.url}   (logs: {stack.root}/nginx)")
        for replica in stack.replicas:
            print(f"  replica {replica.index}    {replica.url}   (log: {replica.proc.log})")
        print(f"  PostgreSQL   127.0.0.1:{stack.postgres.port}   Redis {stack.redis.url}")
        print(f"  fake model   {stack.upstream_url}")
        print(f"  admin key    {stack.admin_key}")
        print(f"  tenant {TENANT!r} key {stack.key}")
        print(
            f"try: curl -s {stack.url}{CHAT} -H 'authorization: Bearer {stack.key}' "
            f"-H 'content-type: application/json' "
            f'-d \'{{"model":"{MODEL}","messages":[{{"role":"user","content":"hi"}}]}}\''
        )
        print("Ctrl-C stops everything.", flush=True)
        while True:
            for replica in stack.replicas:
                replica.proc.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"scale-demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stack.stop()
        left = stack.leftovers()
        stack.remove()
        print("stopped" if not left else f"still running: {left}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
