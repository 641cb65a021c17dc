"""One comfydock process at a time per environment: an advisory file lock naming its holder."""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from comfydock.errors import LockHeld

try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


_local = threading.local()  # locks this thread holds: nested operations must not deadlock


def _held() -> set[str]:
    if not hasattr(_local, "held"):
        _local.held = set()
    return _local.held


def _holder_text() -> str:
    cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    return f"pid {os.getpid()}: {cmd}"


@contextmanager
def environment_lock(lock_file: Path, timeout: float | None = None, on_wait=None):
    """Hold `lock_file` exclusively; wait up to `timeout` seconds (env COMFYDOCK_LOCK_TIMEOUT)."""
    key = str(lock_file.resolve())
    if key in _held():
        yield
        return
    if timeout is None:
        timeout = float(os.environ.get("COMFYDOCK_LOCK_TIMEOUT", "600"))
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while not _try_lock(fd):
            holder = lock_file.read_text(errors="replace").strip() or "another comfydock process"
            if time.monotonic() >= deadline:
                raise LockHeld(
                    f"environment is busy: {holder}",
                    hint="wait for it to finish, or raise COMFYDOCK_LOCK_TIMEOUT (seconds)",
                )
            if on_wait and not told:
                on_wait(holder)
                told = True
            time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, _holder_text().encode())
        _held().add(key)
        try:
            yield
        finally:
            _held().discard(key)
            os.ftruncate(fd, 0)
            _unlock(fd)
    finally:
        os.close(fd)
