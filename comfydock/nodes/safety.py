"""Never losing user data: .comfydock_ignore, conflict detection, local-change checks, the trash."""

from __future__ import annotations

import fnmatch
import os
import shutil
import time
from pathlib import Path

from comfydock.errors import ComfydockError
from comfydock.nodes.spec import NodeSpec, normalize_git_url


class NodeConflict(ComfydockError):
    pass


def ignore_patterns(env) -> list[str]:
    path = env.cec_dir / ".comfydock_ignore"
    if not path.exists():
        return []
    patterns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def is_ignored(env, directory: str) -> bool:
    """gitignore-style: last matching pattern wins, '!' re-includes, 'custom_nodes/' prefix optional."""
    ignored = False
    for pattern in ignore_patterns(env):
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip("/").removeprefix("custom_nodes/")
        if fnmatch.fnmatch(directory, pat):
            ignored = not negate
    return ignored


def _remote_urls(path: Path) -> list[str] | None:
    """Remote URLs of a git repository at `path`; None if it is not one."""
    import git

    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    if Path(repo.working_tree_dir).resolve() != path.resolve():
        return None  # inside some other repository, not a clone of its own
    return [u for r in repo.remotes for u in r.urls]


def check_conflict(env, spec: NodeSpec, force: bool) -> None:
    """Refuse (with the commands that resolve it) when custom_nodes/<dir> is already there."""
    path = env.custom_nodes_dir / spec.directory
    if not path.exists() and not path.is_symlink() or force:
        return
    rel = f"custom_nodes/{spec.directory}"
    ident = spec.registry_id or spec.url or spec.id
    track = f"comfydock node add {spec.directory} --dev"
    replace = f"comfydock node add {ident} --force"
    remotes = _remote_urls(path)
    if remotes is None:
        raise NodeConflict(
            f"{rel} already exists and is not a git repository", hint=f"track it: '{track}'; or replace it: '{replace}'"
        )
    if not remotes:
        raise NodeConflict(
            f"{rel} is a local git repository without a remote", hint=f"track it: '{track}'; or replace it: '{replace}'"
        )
    wanted = normalize_git_url(spec.url) if spec.url else None
    if wanted and any(normalize_git_url(u) == wanted for u in remotes):
        raise NodeConflict(
            f"{rel} is already a clone of {spec.url}", hint=f"track that clone: '{track}'; or replace it: '{replace}'"
        )
    raise NodeConflict(
        f"{rel} is a clone of {remotes[0]}, not of {spec.url or spec.id}",
        hint=f"rename the existing directory, or replace it: '{replace}'",
    )


def local_changes(env, spec: NodeSpec) -> str | None:
    """Why deleting this registry/git node's directory would lose work, or None."""
    from comfydock.nodes.cache import NodeCache

    path = env.custom_nodes_dir / spec.directory
    if not path.exists():
        return None
    if spec.source == "git":
        import git

        try:
            repo = git.Repo(path)
            if repo.is_dirty(untracked_files=True):
                return "it has uncommitted changes"
            if spec.commit and repo.head.commit.hexsha != spec.commit:
                return f"its checkout moved to {repo.head.commit.hexsha[:10]} (recorded {spec.commit[:10]})"
        except (git.InvalidGitRepositoryError, ValueError):
            return "it is no longer the git checkout comfydock installed"
        return None
    entry = NodeCache(env.workspace.node_cache_dir).entry(spec.identity())
    if not entry.exists():
        return None  # nothing to compare with
    if _tree_digest(path) != _tree_digest(entry.content):
        return "its files differ from the downloaded version"
    return None


def _tree_digest(root: Path) -> str:
    from blake3 import blake3

    h = blake3()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".pyc"):
                continue
            p = Path(dirpath) / name
            h.update(str(p.relative_to(root)).encode() + b"\0")
            try:
                h.update(p.read_bytes())
            except OSError:
                h.update(b"?")
    return h.hexdigest()


def trash(env, path: Path) -> Path:
    """Move a directory out of custom_nodes/ without losing it."""
    dest = env.state_dir / "trash" / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(dest))
    return dest
