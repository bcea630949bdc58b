"""`bulkhead audit sequencer`: the audit sequencer alone, as the Kubernetes package runs it.

`bulkhead init` leaves audit entries that no checkpoint covers yet; the sequencer
process, with no gateway beside it, signs one covering all of them, hands it to
the file witness, and on SIGTERM stops cleanly (exit 0) without opening a port.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bulkhead.app import initialize
from bulkhead.settings import load

BULKHEAD = str(Path(sys.executable).parent / "bulkhead")


def counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        entries = conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0]
        signed = conn.execute("SELECT coalesce(max(size), 0) FROM audit_checkpoints").fetchone()[0]
    return entries, signed


def listening_inodes(pid: int) -> set[str]:
    """Socket inodes of `pid` that are listening TCP sockets (state 0A)."""
    fds = Path(f"/proc/{pid}/fd")
    mine = {os.readlink(fd)[8:-1] for fd in fds.iterdir() if os.readlink(fd).startswith("socket:")}
    listening = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                listening.add(fields[9])
    return mine & listening


def test_the_sequencer_alone_signs_what_init_left_and_stops_on_sigterm(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")}
    env["BULKHEAD_DATA_DIR"] = str(data)
    initialize(load(env=env), "http://127.0.0.1:8080")
    db = data / "bulkhead.db"
    entries, signed = counts(db)
    assert entries > 0 and signed == 0
    proc = subprocess.Popen(
        [BULKHEAD, "audit", "sequencer"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while counts(db)[1] < entries and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.2)
        assert counts(db)[1] >= entries
        assert listening_inodes(proc.pid) == set()
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output
    assert "stopped" in output
    witnessed = (data / "audit" / "checkpoints.txt").read_text()
    origin, size = witnessed.splitlines()[:2]
    assert origin == "bulkhead/audit" and int(size) >= entries
