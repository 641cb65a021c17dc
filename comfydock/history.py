"""Local history of an environment: the `.cec/` git repository and its versions v1, v2, ..."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from comfydock.errors import ComfydockError
from comfydock.gitutil import git as _git

_VERSION_TAG = re.compile(r"^v(\d+)$")
DEFAULT_AUTHOR = ("comfydock", "comfydock@localhost")

CEC_GITIGNORE = """\
# Only the manifest, lock and workflow copies are versioned.
.venv/
__pycache__/
*.pyc
# a write interrupted before its rename leaves one of these
.*.tmp
"""


def is_temp_file(path: str) -> bool:
    """The temporary file of an atomic write (fsutil): never a change of the user's."""
    name = path.rstrip("/").rsplit("/", 1)[-1].strip('"')
    return name.startswith(".") and name.endswith(".tmp")


def has_commit(cec_dir: Path) -> bool:
    """Whether `.cec/` holds a commit: the mark that 'create' finished (read from files, no git)."""
    git_dir = cec_dir / ".git"
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return False
    if not head.startswith("ref:"):
        return bool(re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", head))
    ref = head[4:].strip()
    if (git_dir / ref).is_file():
        return True
    try:
        packed = (git_dir / "packed-refs").read_text(encoding="utf-8")
    except OSError:
        return False
    return any(line.split(" ", 1)[-1] == ref for line in packed.splitlines() if not line.startswith(("#", "^")))


@dataclass(frozen=True)
class Version:
    version: str
    message: str
    commit: str
    date: str

    def to_json(self) -> dict:
        return asdict(self)


def _actor(repo):
    """The user's git identity when configured, else a fixed one (fresh machines have none)."""
    git = _git()
    try:
        reader = repo.config_reader()
        name = reader.get_value("user", "name")
        email = reader.get_value("user", "email")
        return git.Actor(str(name), str(email))
    except Exception:
        return git.Actor(*DEFAULT_AUTHOR)


def init_repo(cec_dir: Path):
    git = _git()
    repo = git.Repo.init(cec_dir, initial_branch="main")
    gitignore = cec_dir / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(CEC_GITIGNORE)
    return repo


def open_repo(cec_dir: Path):
    git = _git()
    try:
        return git.Repo(cec_dir)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ComfydockError(
            f"{cec_dir} is not a git repository",
            hint=f"the environment's history is lost; re-create the environment, or 'git -C {cec_dir} init' and commit its files",
        ) from None


def versions(repo) -> list[Version]:
    """All versions, newest first."""
    found = []
    for tag in repo.tags:
        m = _VERSION_TAG.match(tag.name)
        if not m:
            continue
        commit = tag.commit
        found.append(
            (
                int(m.group(1)),
                Version(
                    version=tag.name,
                    message=commit.message.strip(),
                    commit=commit.hexsha,
                    date=datetime.fromtimestamp(commit.committed_date, timezone.utc).isoformat(),
                ),
            )
        )
    return [v for _, v in sorted(found, key=lambda item: item[0], reverse=True)]


def next_version(repo) -> str:
    existing = versions(repo)
    return f"v{int(existing[0].version[1:]) + 1}" if existing else "v1"


def commit_version(repo, message: str) -> Version:
    """Stage everything in .cec, commit, and tag the next version."""
    repo.git.add(A=True)
    actor = _actor(repo)
    commit = repo.index.commit(message, author=actor, committer=actor, skip_hooks=True)
    tag = next_version(repo)
    repo.create_tag(tag, ref=commit)
    return Version(
        version=tag,
        message=message,
        commit=commit.hexsha,
        date=datetime.fromtimestamp(commit.committed_date, timezone.utc).isoformat(),
    )
