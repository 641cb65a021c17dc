"""ComfyUI's output of each `comfydock run`, kept beside comfydock's own logs: one file per run in
`logs/comfyui/<env>/`, the last few kept, named for when and by which process it was written. The
run holds a lock on its log while it writes it, so `logs --follow` knows when the run is over."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

KEEP = 5  # run logs kept per environment (the oldest go when a run starts)
_NAME = re.compile(r"^run-\d{8}-\d{6}-(\d+)(?:-\d+)?\.log$")  # when, by which process (-N: a second run that second)


def run_logs_dir(env) -> Path:
    return env.workspace.logs_dir / "comfyui" / env.name


def run_logs(env) -> list[Path]:
    """The kept run logs, newest first."""
    folder = run_logs_dir(env)
    try:
        found = [p for p in folder.iterdir() if _NAME.match(p.name) and p.is_file() and not p.is_symlink()]
    except OSError:
        return []
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def start_run_log(env):
    """A new run log, opened for unbuffered binary appends (what is written is on disk for
    `logs --follow` at once); older ones beyond KEEP removed. None when it cannot be written (a
    read-only workspace): the run goes on without one."""
    folder = run_logs_dir(env)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        for n in range(100):
            try:
                log = open(folder / f"{stem}{f'-{n}' if n else ''}.log", "xb", buffering=0)
                break
            except FileExistsError:
                continue
        else:
            return None
    except OSError:
        return None
    _hold(log)
    for old in run_logs(env)[KEEP:]:
        try:
            old.unlink()
        except OSError:
            pass
    return log


def _hold(log) -> None:
    """Mark the log as being written: an exclusive flock, which the system drops when the file is
    closed or the process ends however it ends (a killed run is not "still running")."""
    try:
        import fcntl
    except ImportError:  # Windows: is_being_written cannot tell
        return
    try:
        fcntl.flock(log.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass


def is_being_written(path: Path) -> bool:
    """Whether a run still writes this log (on Windows always: following it ends with Ctrl-C)."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        with open(path, "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False
