"""`bulkhead model pull`: an imported model's files, decrypted, into a memory-backed directory.

The init container of a private model's server on Kubernetes runs this with a
key of the model's own tenant (`BULKHEAD_URL`, `BULKHEAD_KEY`) before vLLM
starts, into an `emptyDir` with `medium: Memory` (`bulkhead.k8s.render`).
Plaintext weights never touch disk, so a directory that is not memory-backed
(tmpfs or ramfs, read from /proc/self/mountinfo) is refused.  A file name
from the answer must be a plain name (no path, no dot names) and is created
new, never followed through a link or written over.  The answer is read and
written a MiB at a time, so the init container holds the model once (in its
tmpfs), never the whole answer besides; a pull that fails part-way removes
the files it made.
"""

from __future__ import annotations

import http.client
import os
import re
import struct
from pathlib import Path
from typing import Annotated, BinaryIO
from urllib.parse import quote

import typer

from bulkhead.cli.common import client
from bulkhead.cli.output import JsonFlag, emit, fail, safe
from bulkhead.runtime.worker import frames

MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})
MOUNTINFO = Path("/proc/self/mountinfo")
CHUNK = 1 << 20  # read and written a MiB at a time: the model is never whole in memory


def _unescape(field: str) -> str:
    # The kernel writes a space, tab, newline and backslash in a mount point as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mount_of(path: Path, mountinfo: str) -> tuple[str, str] | None:
    """The type and device (`major:minor`) of the mount `path` (resolved) lies on.

    The longest mount point holding the path wins; of two on the same point the
    later line wins, as it is the one mounted on top (the one the path reaches).
    """
    target, best, found = str(path.resolve()), -1, None
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        point = _unescape(parts[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:
            best, found = len(point), (rest.split()[0], parts[2])
    return found


def filesystem_of(path: Path, mountinfo: str) -> str | None:
    """The type of the filesystem `path` (resolved) lies on, from a mountinfo text."""
    found = mount_of(path, mountinfo)
    return found[0] if found else None


def memory_backed(path: Path, mountinfo: str) -> str | None:
    """Why `path` is not a memory-backed directory, or None when it is.

    The mount read from mountinfo must also be the device the directory is
    really on, so a mount hidden under a later one never passes for it."""
    found = mount_of(path, mountinfo)
    if found is None or found[0] not in MEMORY_FILESYSTEMS:
        return f"is on {found[0] if found else 'an unknown filesystem'}, not tmpfs"
    device = os.stat(path).st_dev
    if found[1] != f"{os.major(device)}:{os.minor(device)}":
        return "is not on the tmpfs its mount point names"
    return None


def _plain_name(name: str) -> bool:
    return bool(name) and name not in {".", ".."} and "/" not in name and "\0" not in name


def _exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise frames.FrameError("the answer ends early")
    return data


def _copy(stream: BinaryIO, out: BinaryIO, size: int) -> None:
    left = size
    while left:
        chunk = stream.read(min(left, CHUNK))
        if not chunk:
            raise frames.FrameError("the answer ends early")
        out.write(chunk)
        left -= len(chunk)


def receive_files(stream: BinaryIO, into: Path) -> tuple[int, int]:
    """Decode the frames of `stream` (`bulkhead.runtime.worker.frames`) straight into new
    files in `into`, a piece at a time: (files, bytes).  Each name must be a plain name;
    each file is created new (0640, no link followed).  On any failure the files made
    so far are removed, so nothing half-pulled is left for a server to load."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    created: list[Path] = []
    total = 0
    try:
        (count,) = struct.unpack(">I", _exactly(stream, 4))
        if not 0 < count <= frames.MAX_FILES:
            raise frames.FrameError(f"a model has 1 to {frames.MAX_FILES} files")
        for _ in range(count):
            (length,) = struct.unpack(">H", _exactly(stream, 2))
            if not 0 < length <= frames.MAX_NAME_BYTES:
                raise frames.FrameError("a file name is empty or too long")
            name = _exactly(stream, length).decode("utf-8", errors="strict")
            if not _plain_name(name):
                raise frames.FrameError(f"the server named a file {name!r}: not a plain name")
            (size,) = struct.unpack(">Q", _exactly(stream, 8))
            path = into / name
            fd = os.open(path, flags, 0o640)
            created.append(path)
            with os.fdopen(fd, "wb") as out:
                _copy(stream, out, size)
            total += size
        if stream.read(1):
            raise frames.FrameError("trailing bytes after the last file")
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return count, total


def pull(
    ctx: typer.Context,
    artifact: Annotated[str, typer.Option(help="The artifact id (`art-…`).")],
    into: Annotated[Path, typer.Option(help="A memory-backed directory (tmpfs).")],
    json_: JsonFlag = False,
) -> None:
    """Write an imported model's decrypted files into a memory-backed directory."""
    if not into.is_dir():
        raise fail(f"--into: {into} is not a directory", code=2)
    why = memory_backed(into, MOUNTINFO.read_text() if MOUNTINFO.exists() else "")
    if why is not None:
        raise fail(
            f"--into: {into} {why}: decrypted weights never go to disk "
            "(use an emptyDir with medium: Memory)",
            code=2,
        )
    api = client(ctx)
    api.timeout_s = 900.0
    path = f"/tenant/v1/model-artifacts/{quote(artifact, safe='')}"
    try:
        with api.stream(path) as stream:
            count, total = receive_files(stream, into)
    except (frames.FrameError, UnicodeDecodeError) as exc:
        raise fail(f"the server's answer is not a model's files: {exc}") from None
    except (http.client.HTTPException, ConnectionError, TimeoutError):
        raise fail(f"the answer from {api.profile.url} was cut short") from None
    except OSError as exc:
        raise fail(f"cannot write into {into}: {exc.strerror}") from None
    if json_:
        emit({"artifact": artifact, "files": count, "bytes": total, "into": str(into)}, True)
        return
    typer.echo(safe(f"Pulled {artifact}: {count} files, {total} bytes into {into}."))
