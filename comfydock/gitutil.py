"""Small helpers around GitPython."""

from __future__ import annotations


def git_reason(exc) -> str:
    """The line of a failed git command that says why: its first 'fatal:' line (git's root cause;
    later ones, like "Could not read from remote repository", follow from it), else its last line."""
    text = (getattr(exc, "stderr", "") or str(exc)).strip()
    lines = [ln.strip().removeprefix("stderr: ").strip("'") for ln in text.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if "fatal:" in ln]
    if fatal:
        return fatal[0]
    return (lines or ["git failed"])[-1]
