"""Local history of an environment: the `.cec/` git repository and its versions v1, v2, ..."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from comfydock.errors import ComfydockError
from comfydock.gitutil import git as _git
from comfydock.gitutil import git_reason

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


def _head_text(git_dir: Path) -> str | None:
    """HEAD as git would read it: 'ref: refs/heads/X' or a commit id; None when it is neither."""
    try:
        head = (git_dir / "HEAD").read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if re.fullmatch(r"ref: refs/\S+|[0-9a-f]{40}|[0-9a-f]{64}", head):
        return head
    return None


def has_commit(cec_dir: Path) -> bool:
    """Whether `.cec/` holds a readable commit (read from files, no git). Whether a create
    finished is its marker's business (Workspace.environment_state): a finished environment
    without one has a damaged history, with its own repair (damaged_history), never 'half-made'."""
    git_dir = cec_dir / ".git"
    if not (git_dir / "HEAD").exists():
        return False
    head = _head_text(git_dir)
    if head is None:
        return False  # unreadable HEAD: damage
    if not head.startswith("ref:"):
        return _names_commit(head)  # a detached HEAD names a commit, garbage (or zeros) does not
    ref = head[4:].strip()
    if (git_dir / ref).is_file():
        try:
            return _names_commit((git_dir / ref).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return False
    try:
        packed = (git_dir / "packed-refs").read_text(encoding="utf-8")
    except OSError:
        return False
    return any(line.split(" ", 1)[-1] == ref for line in packed.splitlines() if not line.startswith(("#", "^")))


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _names_commit(text: str) -> bool:
    """A ref's or a detached HEAD's text is an object id (git's null id is no commit)."""
    text = text.strip()
    return _SHA.fullmatch(text) is not None and set(text) != {"0"}


def damaged_history(cec_dir: Path, name: str) -> ComfydockError:
    """The error for a finished environment whose `.cec/.git` holds no readable commit
    (`has_commit` is false, no create marker), with the repair that fits the damage. Never
    'delete': the environment holds the user's nodes and workflows."""
    git_dir = cec_dir / ".git"
    what = f"the history of environment {name!r} is damaged"
    if not git_dir.is_dir():
        return ComfydockError(f"{what}: {git_dir} is missing", hint=_elsewhere_hint(cec_dir, None))
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        head = ""
    branches = _branch_names(git_dir)
    if not head.startswith("ref: refs/heads/") and not _SHA.fullmatch(head):
        branch = "main" if "main" in branches else (branches[0] if len(branches) == 1 else None)
        if branch is not None:
            return ComfydockError(
                f"{what}: {git_dir / 'HEAD'} names no branch",
                hint=f"write 'ref: refs/heads/{branch}' into {git_dir / 'HEAD'} (the branch still holds the versions), then run the command again",
            )
        return ComfydockError(f"{what}: {git_dir / 'HEAD'} names no branch", hint=_elsewhere_hint(cec_dir, git_dir))
    ref = head[4:].strip() if head.startswith("ref:") else None
    last = _last_logged_commit(git_dir, ref) if ref else None
    if ref and last:
        return ComfydockError(
            f"{what}: its branch {ref} is gone",
            hint=f"put the branch back at its last commit: 'git -C {cec_dir} update-ref {ref} {last}', then run the command again",
        )
    return ComfydockError(f"{what}: {git_dir} holds no readable commit", hint=_elsewhere_hint(cec_dir, git_dir))


def _branch_names(git_dir: Path) -> list[str]:
    heads = git_dir / "refs" / "heads"
    names = {p.relative_to(heads).as_posix() for p in heads.rglob("*") if p.is_file()} if heads.is_dir() else set()
    try:
        packed = (git_dir / "packed-refs").read_text(encoding="utf-8", errors="replace")
    except OSError:
        packed = ""
    for line in packed.splitlines():
        sha, _, ref = line.partition(" ")
        if _SHA.fullmatch(sha) and ref.startswith("refs/heads/"):
            names.add(ref[len("refs/heads/") :])
    return sorted(n for n in names if re.fullmatch(r"[A-Za-z0-9._/-]{1,200}", n))


def _last_logged_commit(git_dir: Path, ref: str) -> str | None:
    """The commit the branch (or HEAD) last pointed at, from git's reflog files."""
    if not re.fullmatch(r"refs/heads/[A-Za-z0-9._/-]{1,200}", ref) or ".." in ref:
        return None
    for log in (git_dir / "logs" / ref, git_dir / "logs" / "HEAD"):
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            fields = line.split(" ", 2)
            if len(fields) >= 2 and _SHA.fullmatch(fields[1]) and set(fields[1]) != {"0"}:
                return fields[1]
    return None


def _elsewhere_hint(cec_dir: Path, git_dir: Path | None) -> str:
    """Where else the history may be: a remote named in .git/config, else a backup."""
    url = None
    if git_dir is not None:
        try:
            config = (git_dir / "config").read_text(encoding="utf-8", errors="replace")
        except OSError:
            config = ""
        m = re.search(r'^\s*\[remote "[^"\n]*"\]\s*$(?:\n(?!\s*\[).*)*?\n\s*url\s*=\s*(\S+)\s*$', config, re.M)
        url = m.group(1) if m else None
    if url:
        return (
            f"its versions are on the remote {url}: make a fresh copy with 'comfydock create NEW_NAME --from {url}' "
            f"(this one stays as it is), or repair {cec_dir}/.git with git ('git -C {cec_dir} fsck')"
        )
    return (
        f"put {cec_dir}/.git back from a backup, or repair it with git ('git -C {cec_dir} fsck'); "
        "the environment's files are untouched until then"
    )


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


# what git says when a repository's own files (HEAD, config, index, objects) are damaged
_DAMAGE = re.compile(
    r"not a git repository|bad config|index file|bad signature|unknown index entry|index uses .* extension"
    r"|corrupt|bad object|bad tree|object file .* is empty|unable to read [0-9a-f]{7,}|invalid sha1 pointer"
    r"|inflate|loose object|packfile|your current branch appears to be broken|bad HEAD|invalid HEAD"
    r"|unable to access '[^']*\.git/config'|could not read config|error occurred while reading the configuration",
    re.IGNORECASE,
)


def damaged_repository(cec_dir: Path, reason: str) -> ComfydockError:
    """The error for a `.cec/.git` that git fails to read (git's own words in `reason`), with the
    repair for the part that is damaged. (One with no readable commit at all, found from the files
    before git runs, is `damaged_history`'s.)"""
    git_dir = cec_dir / ".git"
    if _head_text(git_dir) is None:
        branches = sorted(p.name for p in (git_dir / "refs" / "heads").glob("*") if p.is_file())
        branch = branches[0] if len(branches) == 1 else "main"
        hint = f"HEAD names no branch: write 'ref: refs/heads/{branch}' into {git_dir / 'HEAD'}, then run the command again"
        reason = "its HEAD file is unreadable"
    elif "config" in reason:
        hint = f"fix or restore {git_dir / 'config'} (git names the line; it also holds the remotes), then run the command again"
    elif "index" in reason:
        hint = f"the index is only a cache: 'rm {git_dir / 'index'} && git -C {cec_dir} reset -q' makes it again from the last version"
    else:
        hint = (
            f"'git -C {cec_dir} fsck' names what is damaged; restore {git_dir} from a backup, "
            "or make the environment again from a remote ('comfydock create NAME --from URL')"
        )
    return ComfydockError(f"the history in {cec_dir} is damaged ({reason})", hint=hint)


def _map_damage(cec_dir: Path, exc) -> ComfydockError | None:
    reason = git_reason(exc)
    return damaged_repository(cec_dir, reason) if _DAMAGE.search(reason) else None


def open_repo(cec_dir: Path):
    """The `.cec/` repository. Its HEAD, config and index are read once here (one git command),
    so a damaged history is refused before any change; any later git command that fails on
    damage raises the same error (never GitPython's)."""
    git = _git()
    try:
        repo = git.Repo(cec_dir)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        if (cec_dir / ".git").exists():  # git no longer recognises it: its HEAD (or more) is damaged
            raise damaged_repository(cec_dir, "git does not recognise it as a repository") from None
        raise ComfydockError(
            f"{cec_dir} is not a git repository",
            hint=f"the environment's history is lost; re-create the environment, or 'git -C {cec_dir} init' and commit its files",
        ) from None
    repo.git.on_error = lambda exc: _map_damage(cec_dir, exc)
    repo.git.execute(["git", "ls-files", "--", ".gitignore"])  # reads HEAD, config and the index
    return repo


def versions(repo) -> list[Version]:
    """All versions, newest first."""
    try:
        return _versions(repo)
    except (ValueError, OSError, _git().BadName) as exc:  # GitPython reading damaged refs or objects itself
        raise damaged_repository(Path(repo.working_tree_dir), str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _versions(repo) -> list[Version]:
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
