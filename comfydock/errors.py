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
