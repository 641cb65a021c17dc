"""Never losing user data: .comfydock_ignore, conflict detection, local-change checks, the trash."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from comfydock.errors import ComfydockError
from comfydock.fsutil import inside
from comfydock.hashing import tree_digest
from comfydock.nodes.spec import NodeSpec, node_path, normalize_git_url


class NodeConflict(ComfydockError):
    pass


_ignore_cache: dict[tuple, object] = {}


def _ignore_spec(env):
    """.cec/.comfydock_ignore as a gitignore (pathspec's implementation of git's rules)."""
    import pathspec

    path = env.cec_dir / ".comfydock_ignore"
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _ignore_cache:
        _ignore_cache.clear()
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        _ignore_cache[key] = pathspec.GitIgnoreSpec.from_lines(lines)
    return _ignore_cache[key]


def is_ignored(env, directory: str) -> bool:
    """Whether custom_nodes/<directory> is ignored: gitignore rules, relative to the environment
    (so 'custom_nodes/foo', '/custom_nodes/foo', 'foo' and '**/foo' all match it), '!' re-includes."""
    spec = _ignore_spec(env)
    if spec is None:
        return False
    return spec.match_file(f"custom_nodes/{directory}/") or spec.match_file(f"{directory}/")


def _remote_urls(path: Path) -> list[str] | None:
    """Remote URLs of a git repository at `path`; None if it is not one."""
    from comfydock.gitutil import git as _git

    git = _git()

    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    if Path(repo.working_tree_dir).resolve() != path.resolve():
        return None  # inside some other repository, not a clone of its own
    return [u for r in repo.remotes for u in r.urls]


def check_conflict(env, spec: NodeSpec, force: bool) -> None:
    """Refuse (with the commands that resolve it) when custom_nodes/<dir> is already there."""
    path = node_path(env, spec)
    if not path.exists() and not path.is_symlink() or force:
        return
    rel = f"custom_nodes/{spec.directory}"
    ident = spec.typed()
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

    path = node_path(env, spec)
    if not path.exists():
        return None
    if spec.source == "git":
        from comfydock.gitutil import git as _git

        git = _git()

        try:
            repo = git.Repo(path)
            if repo.is_dirty(untracked_files=True):
                return "it has uncommitted changes"
            if spec.commit and not repo.head.commit.hexsha.startswith(spec.commit):
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


def matches_recorded(env, spec: NodeSpec) -> bool:
    """Whether custom_nodes/<dir> holds the node the manifest records: the git checkout at the
    recorded commit with no tracked file changed, or every file of the cached download unchanged.
    Files added beside them (an install script's output, caches) do not count: such a directory
    can be adopted without its install record (comfydock deletes nothing when adopting, and
    `node remove` still refuses to delete extra files without --force)."""
    from comfydock.nodes.cache import NodeCache

    path = node_path(env, spec)
    if not path.is_dir() or path.is_symlink() or spec.source == "development":
        return False
    if spec.source == "git":
        from comfydock.gitutil import git as _git

        git = _git()

        try:
            repo = git.Repo(path)
            if Path(repo.working_tree_dir).resolve() != path.resolve():
                return False
            return (
                bool(spec.commit) and repo.head.commit.hexsha.startswith(spec.commit) and not repo.is_dirty(untracked_files=False)
            )
        except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
            return False
    entry = NodeCache(env.workspace.node_cache_dir).entry(spec.identity())
    return entry.exists() and _holds_all_of(path, entry.content)


def _holds_all_of(path: Path, content: Path) -> bool:
    """Every file and link under `content` is in `path` with the same bytes (or target)."""
    for dirpath, _dirnames, filenames in os.walk(content):
        for name in filenames:
            src = Path(dirpath) / name
            dst = path / src.relative_to(content)
            if src.is_symlink() or dst.is_symlink():
                if not (src.is_symlink() and dst.is_symlink() and os.readlink(src) == os.readlink(dst)):
                    return False
                continue
            try:
                if not dst.is_file() or dst.stat().st_size != src.stat().st_size or dst.read_bytes() != src.read_bytes():
                    return False
            except OSError:
                return False
    return True


def _tree_digest(root: Path) -> str:
    """A node directory's content, bytecode caches aside (Python writes them on import)."""
    return tree_digest(root, skip_dirs=frozenset({"__pycache__"}), skip_suffixes=(".pyc",))


def trash(env, path: Path, tx=None) -> Path:
    """Move a directory out of custom_nodes/ without losing it (with a Transaction `tx`, it
    comes back if the change fails)."""
    source = inside(env.custom_nodes_dir, path)
    dest = inside(env.state_dir, Path("trash") / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    if tx is not None:
        tx.move(source, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(dest))
    return dest
