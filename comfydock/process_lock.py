"""One comfydock process at a time per environment: an advisory file lock naming its holder.

The lock itself is `filelock`'s (flock on POSIX, LockFileEx on Windows; the OS drops it when the
holder dies, so a crashed command never leaves a stale lock). Who holds it, and since when, is
written to a side file `<lock>.holder` while held: a waiter reads it to say whom it waits for.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from comfydock.errors import ComfydockError, ProcessLockHeld
from comfydock.fsutil import atomic_write_text

POLL = 0.1  # seconds between attempts while waiting

_local = threading.local()  # locks this thread holds: nested operations must not deadlock


def _held() -> set[str]:
    if not hasattr(_local, "held"):
        _local.held = set()
    return _local.held


def holder_file(lock_file: Path) -> Path:
    return lock_file.with_name(lock_file.name + ".holder")


def _holder_text() -> str:
    cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    return f"pid {os.getpid()}: {cmd} (since {time.strftime('%H:%M:%S')})"


def read_holder(lock_file: Path) -> str:
    """Who holds `lock_file`, as its holder described itself; a generic phrase if unknown."""
    try:
        text = holder_file(lock_file).read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or "another comfydock process"


def _refuse_non_files(*paths: Path) -> None:
    """A folder (or pipe, socket) where the lock file goes: filelock would fail with a bare OS error."""
    for path in paths:
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise ComfydockError(
                f"{path} is not a file (comfydock keeps its lock there)",
                hint=f"move it away ('mv {path} {path}.moved'), then run the command again",
            )


@contextmanager
def process_lock(lock_file: Path, timeout: float | None = None, on_wait=None):
    """Hold `lock_file` exclusively; wait up to `timeout` seconds (env COMFYDOCK_LOCK_TIMEOUT).

    `on_wait(holder)` is called once if the lock is busy; past the timeout ProcessLockHeld names the holder.
    Re-entrant within a thread: a nested call for the same file just proceeds.
    """
    key = str(lock_file.resolve())
    if key in _held():
        yield
        return
    if timeout is None:
        from comfydock.limits import seconds_from_env

        timeout = seconds_from_env("COMFYDOCK_LOCK_TIMEOUT", 600)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    _refuse_non_files(lock_file, holder_file(lock_file))
    lock = FileLock(lock_file)
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            holder = read_holder(lock_file)
            if time.monotonic() >= deadline:
                raise ProcessLockHeld(
                    f"environment is busy: {holder}",
                    hint="wait for it to finish, or raise COMFYDOCK_LOCK_TIMEOUT (seconds)",
                ) from None
            if on_wait and not told:
                on_wait(holder)
                told = True
            time.sleep(POLL)
    try:
        atomic_write_text(holder_file(lock_file), _holder_text())
        _held().add(key)
        yield
    finally:
        _held().discard(key)
        holder_file(lock_file).unlink(missing_ok=True)  # before the release: the next holder writes its own
        lock.release()
