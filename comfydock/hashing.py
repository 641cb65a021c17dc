"""Model file hashes: the ComfyDock 1.0 quick hash, and full SHA256 + Blake3.

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


def blake3_file(path: Path | str) -> str:
    """Blake3 of a whole (small) file, e.g. a task's input for doit's change check."""
    from blake3 import blake3

    h = blake3()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
