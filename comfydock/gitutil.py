"""The one way comfydock runs git: GitPython is imported here only, and every git command it
starts (through a `Repo`, `repo.git.*` or a bare `Git`) runs with hooks and fsmonitor off.

comfydock opens trees it did not make (an install `adopt` only reads, a node's checkout, a
remote's history): their `.git/config` could name an fsmonitor program or a hooks directory,
which git would run. `core.fsmonitor=false` and `core.hooksPath=/dev/null` are passed as
command-line configuration (`GIT_CONFIG_PARAMETERS`, what `git -c` uses), which outranks a
repository's own config; no `safe.directory` is ever loosened. A content filter the repository's
own config defines (`filter.NAME.clean`, which even `git status` runs) is emptied the same way.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

SAFE_CONFIG = (("core.fsmonitor", "false"), ("core.hooksPath", "/dev/null"))

_loaded: SimpleNamespace | None = None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def safe_config_parameters(prior: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> str:
    """`GIT_CONFIG_PARAMETERS` with our settings after the caller's own (later entries win)."""
    ours = " ".join(f"{_quote(key)}={_quote(value)}" for key, value in SAFE_CONFIG + tuple(extra))
    prior = os.environ.get("GIT_CONFIG_PARAMETERS", "") if prior is None else prior
    return f"{prior} {ours}".strip()


def _filter_overrides(repo) -> tuple[tuple[str, str], ...]:
    """Settings that empty every content filter the repository's own config defines."""
    try:
        reader = repo.config_reader("repository")
        names = [sec[len('filter "') : -1] for sec in reader.sections() if sec.startswith('filter "') and sec.endswith('"')]
    except Exception:  # an unreadable config: git itself will refuse it
        return ()
    return tuple(
        (f"filter.{name}.{key}", value)
        for name in names
        for key, value in (("clean", ""), ("smudge", ""), ("process", ""), ("required", "false"))
    )


def git() -> SimpleNamespace:
    """GitPython's names comfydock uses, with `Repo` and `Git` replaced by ones that run git
    safely. Imported lazily: GitPython costs ~50 ms at start-up."""
    global _loaded
    if _loaded is None:
        import git as gitpython

        class Git(gitpython.Git):
            extra: tuple[tuple[str, str], ...] = ()
            # set by the owner of a repository (history.open_repo for .cec/): turns a failed git
            # command into the owner's error (a damaged repository), or returns None to keep it
            on_error = None

            def __init__(self, working_dir=None):
                super().__init__(working_dir)
                self.update_environment(GIT_CONFIG_PARAMETERS=safe_config_parameters())

            def neutralise(self, extra: tuple[tuple[str, str], ...]) -> None:
                self.extra = extra
                self.update_environment(GIT_CONFIG_PARAMETERS=safe_config_parameters(extra=extra))

            def execute(self, command, *args, env=None, **kwargs):
                if env is not None:  # a caller's own environment must not drop our settings
                    prior = env.get("GIT_CONFIG_PARAMETERS", "")
                    env = {**env, "GIT_CONFIG_PARAMETERS": safe_config_parameters(prior, self.extra)}
                try:
                    return super().execute(command, *args, env=env, **kwargs)
                except gitpython.GitCommandError as exc:
                    mapped = self.on_error(exc) if self.on_error is not None else None
                    if mapped is None:
                        raise
                    raise mapped from None

        class Repo(gitpython.Repo):
            GitCommandWrapperType = Git

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.git.neutralise(_filter_overrides(self))

        _loaded = SimpleNamespace(
            Repo=Repo,
            Git=Git,
            Actor=gitpython.Actor,
            GitCommandError=gitpython.GitCommandError,
            InvalidGitRepositoryError=gitpython.InvalidGitRepositoryError,
            NoSuchPathError=gitpython.NoSuchPathError,
            BadName=gitpython.BadName,
        )
    return _loaded


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
