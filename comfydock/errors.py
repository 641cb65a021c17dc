"""The one user-facing error type: a message, a hint, and the exit code it maps to."""

from __future__ import annotations

# Exit codes (documented in the README).
EXIT_USER_ERROR = 1  # a user-facing error or a failed task
EXIT_USAGE = 2  # the command line itself is wrong
EXIT_INTERNAL = 3  # a bug in comfydock: traceback goes to the log file
EXIT_INTERRUPTED = 130  # Ctrl-C


class ComfydockError(Exception):
    """An error the user can act on: one line of message, one line of hint."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(ComfydockError):
    """The arguments do not make sense (bad name, unknown option value)."""

    exit_code = EXIT_USAGE


class WorkspaceNotFound(ComfydockError):
    pass


class EnvironmentNotFound(ComfydockError):
    pass


class CorruptFile(ComfydockError):
    """A file comfydock owns cannot be parsed."""


class ExternalToolError(ComfydockError):
    """uv or git failed; `details` keeps the tool's own explanation."""

    def __init__(self, message: str, hint: str | None = None, details: str = ""):
        super().__init__(message, hint)
        self.details = details


class BuildFailed(ExternalToolError):
    """A task of the build failed: `task` names it ('lock_deps', 'install_node:<id>'...), so
    callers choose what to tell the user from the task, never from the message text."""

    def __init__(self, message: str, hint: str | None = None, details: str = "", task: str | None = None):
        super().__init__(message, hint, details)
        self.task = task


class ProcessLockHeld(ComfydockError):
    pass


class DiskFull(ComfydockError):
    """No space left (or the quota used up) on the disk holding `path`."""

    def __init__(self, path: str):
        super().__init__(f"disk is full at {path}", hint="free some space on that disk, then run the command again")
        self.path = path


# how a full disk reads in the tools' own words: Python, git, uv (Rust), SQLite, our own DiskFull
_NO_SPACE_TEXT = (
    "No space left on device",
    "Out of diskspace",
    "Disk quota exceeded",
    "database or disk is full",
    "os error 28)",
    "os error 122)",
    "[Errno 28]",
    "[Errno 122]",
)


def disk_full(exc: BaseException, fallback: str) -> DiskFull | None:
    """`exc` (or what caused it) as DiskFull when it is a full disk, else None. The path is the
    file being written when the error names it, else `fallback` (the workspace)."""
    import errno
    import re
    import shutil

    seen = 0
    while exc is not None and seen < 8:
        seen += 1
        if isinstance(exc, DiskFull):
            return exc
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(str(exc.filename or fallback))
        if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
            for entry in exc.args[0]:  # (source, destination, why) per file copytree could not copy
                if isinstance(entry, tuple) and len(entry) == 3 and any(t in str(entry[2]) for t in _NO_SPACE_TEXT):
                    return DiskFull(str(entry[1]))
        text = "\n".join(
            str(part or "")
            for part in (getattr(exc, "message", None) or str(exc), getattr(exc, "details", ""), getattr(exc, "stderr", ""))
        )
        for line in text.splitlines():
            ours = re.search(r"disk is full at (.+)$", line)
            if ours:
                return DiskFull(ours.group(1).strip())
            if any(t in line for t in _NO_SPACE_TEXT):
                quoted = re.findall(r"'(/[^']+)'|\"(/[^\"]+)\"", line)
                path = next((a or b for a, b in reversed(quoted)), None)
                return DiskFull(path or fallback)
        exc = exc.__cause__ or exc.__context__
    return None
