"""Every digest comfydock computes: of a file, of named files, of a directory tree (SHA256 or
Blake3, by name); the model quick hash; and a model's full SHA256 + Blake3 in one pass.

Quick hash (stable: bundles carry it between machines, and pyproject.toml files written by
ComfyDock 1.0 use it): Blake3 over
  1. the file size, written as ASCII decimal digits,
  2. the first 5 MiB,
  3. for files over 30 MiB only: the 5 MiB starting at size // 2 - 2.5 MiB, then the last 5 MiB;
the first 16 hex digits of the digest. A file is read for at most 15 MiB.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path

MIB = 1 << 20
SAMPLE = 5 * MIB
SAMPLED_ABOVE = 30 * MIB
QUICK_HASH_LENGTH = 16
_FULL_CHUNK = 16 * MIB


def quick_hash_sample_ranges(size: int) -> list[tuple[int, int]]:
    """(offset, length) of the bytes the quick hash reads, in order."""
    ranges = [(0, min(size, SAMPLE))]
    if size > SAMPLED_ABOVE:
        ranges.append((size // 2 - SAMPLE // 2, SAMPLE))
        ranges.append((size - SAMPLE, SAMPLE))
    return ranges


def quick_hash(path: Path | str) -> tuple[str, int]:
    """(quick hash, bytes read). Raises OSError if the file cannot be read."""
    from blake3 import blake3

    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        h = blake3(str(size).encode("ascii"))
        view = _sample_buffer()
        read_total = 0
        ranges = quick_hash_sample_ranges(size)
        if hasattr(os, "posix_fadvise"):  # let the disk fetch all three samples at once
            for offset, length in ranges:
                os.posix_fadvise(f.fileno(), offset, length, os.POSIX_FADV_WILLNEED)
        for offset, length in ranges:
            got = _read_at(f, view, offset, length)
            h.update(view[:got])
            read_total += got
    return h.hexdigest()[:QUICK_HASH_LENGTH], read_total


_local = threading.local()


def _sample_buffer() -> memoryview:
    """One 5 MiB buffer per thread, reused: no allocation per file on the hot path."""
    if not hasattr(_local, "view"):
        _local.view = memoryview(bytearray(SAMPLE))
    return _local.view


def _read_at(f, view, offset: int, length: int) -> int:
    """Fill view[:length] from `offset`; fewer bytes only at end of file."""
    f.seek(offset)
    got = 0
    while got < length:
        n = f.readinto(view[got:length])
        if not n:
            break
        got += n
    return got


def new_hash(algorithm: str = "sha256"):
    """A fresh hash object: "blake3", or any name hashlib knows ("sha256", ...)."""
    if algorithm == "blake3":
        from blake3 import blake3

        return blake3()
    return hashlib.new(algorithm)


def _feed(h, path: Path | str) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a whole file (a bundle, a uv.lock, a task's input for doit's change check)."""
    h = new_hash(algorithm)
    _feed(h, path)
    return h.hexdigest()


def files_digest(files: Iterable[tuple[str, Path]], algorithm: str = "blake3", *, unreadable: bytes | None = None) -> str:
    """Hex digest over (name, file) pairs in the order given: each name, a NUL, the file's bytes.

    A file that cannot be read raises OSError, or, if `unreadable` is given, contributes those bytes."""
    h = new_hash(algorithm)
    for name, path in files:
        h.update(name.encode() + b"\0")
        try:
            _feed(h, path)
        except OSError:
            if unreadable is None:
                raise
            h.update(unreadable)
    return h.hexdigest()


def tree_digest(
    root: Path, algorithm: str = "blake3", *, skip_dirs: frozenset[str] = frozenset(), skip_suffixes: tuple[str, ...] = ()
) -> str:
    """Hex digest of every file under `root` (paths relative to it, sorted; links followed as
    os.walk does); unreadable files count as "?"."""

    def files():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
            for name in sorted(filenames):
                if skip_suffixes and name.endswith(skip_suffixes):
                    continue
                p = Path(dirpath) / name
                yield str(p.relative_to(root)), p

    return files_digest(files(), algorithm, unreadable=b"?")


def full_hashes(path: Path | str) -> tuple[str, str, int]:
    """(sha256, blake3, size): one pass over the whole file, Blake3 on all cores."""
    from blake3 import blake3

    sha = hashlib.sha256()
    b3 = blake3(max_threads=blake3.AUTO)
    size = 0
    buf = bytearray(_FULL_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                break
            chunk = view[:n]
            sha.update(chunk)
            b3.update(chunk)
            size += n
    return sha.hexdigest(), b3.hexdigest(), size
