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


def commit_date(repo_dir, rev: str = "HEAD") -> str | None:
    """The committer date of `rev` in the repository at `repo_dir`, as UTC RFC 3339 (None: no such
    repository or commit). The committer date is when the commit became what it is (a rebase or
    cherry-pick renews it), which is the world it was tested in."""
    import os
    import subprocess
    from datetime import datetime, timezone

    from comfydock.dates import utc_text

    try:
        proc = subprocess.run(
            ["git", "-C", str(repo_dir), "show", "-s", "--format=%ct", f"{rev}^{{commit}}", "--"],
            capture_output=True,
            text=True,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stdout.strip()
    if proc.returncode != 0 or not text.isdigit():
        return None
    return utc_text(datetime.fromtimestamp(int(text), timezone.utc))
