"""Small helpers around GitPython."""

from __future__ import annotations


def git_reason(exc) -> str:
    """The line of a failed git command that says why (its 'fatal:' line if there is one)."""
    text = (getattr(exc, "stderr", "") or str(exc)).strip()
    lines = [ln.strip().removeprefix("stderr: ").strip("'") for ln in text.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if "fatal:" in ln]
    return (fatal or lines or ["git failed"])[-1]
