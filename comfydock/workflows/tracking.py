"""Which workflows an environment tracks, and how each compares with the last version.

Every `*.json` under `ComfyUI/user/default/workflows/` (subfolders too) is tracked, except what
`.cec/.comfydock_ignore` excludes with patterns that start with `workflows/`. A workflow's name is
its path below that folder without `.json` (`portraits/studio`). Its copy in `.cec/workflows/` is
what gets versioned. A symbolic link (to a file or a folder) is never followed: a workflow linked
to /etc/passwd would otherwise be committed, exported and shared; `linked_workflows` names them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

SUFFIX = ".json"
_SAFE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+ ()/-]*")


@dataclass
class WorkflowState:
    name: str
    state: str  # committed | modified | new | deleted
    path: str | None  # the file in ComfyUI (None when deleted there)
    copy: str  # its versioned copy in .cec/workflows/

    def to_json(self) -> dict:
        return asdict(self)


def workflow_name(relative: str) -> str:
    return relative[: -len(SUFFIX)] if relative.endswith(SUFFIX) else relative


def copy_path(env, name: str) -> Path:
    return env.cec_dir / "workflows" / f"{name}{SUFFIX}"


def task_key(name: str) -> str:
    """A doit task name for a workflow: the name itself when it is plain, else a stable digest
    (doit reads `a=b` on its command line as a variable, and names may hold anything)."""
    if _SAFE_KEY.fullmatch(name) and ":" not in name:
        return name
    return "wf-" + hashlib.sha1(name.encode()).hexdigest()[:12]


def _ignore_spec(env):
    path = env.cec_dir / ".comfydock_ignore"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    patterns = [ln.strip() for ln in lines if ln.strip().lstrip("!").startswith("workflows/")]
    if not patterns:
        return None
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns)


def _walk_json(root: Path, links: list[str] | None = None) -> dict[str, Path]:
    """Workflow files below `root` (relative posix path -> file); links are skipped, and their
    relative paths appended to `links` when given (a folder's with a trailing '/')."""
    found: dict[str, Path] = {}
    if not root.is_dir() or root.is_symlink():
        return found
    for dirpath, dirnames, filenames in os.walk(root):  # os.walk never descends into a linked folder
        here = Path(dirpath)
        kept = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if (here / d).is_symlink():
                if links is not None:
                    links.append((here / d).relative_to(root).as_posix() + "/")
                continue
            kept.append(d)
        dirnames[:] = kept
        for f in sorted(filenames):
            if f.endswith(SUFFIX) and not f.startswith("."):
                full = here / f
                if full.is_symlink():
                    if links is not None:
                        links.append(full.relative_to(root).as_posix())
                elif full.is_file():
                    found[full.relative_to(root).as_posix()] = full
    return found


def linked_workflows(root: Path) -> list[str]:
    """Symbolic links among the workflows below `root` (skipped, never followed): relative paths."""
    links: list[str] = []
    _walk_json(root, links)
    return sorted(links)


def read_workflow(path: Path) -> bytes:
    """A workflow file's bytes, refusing a symbolic link even if one replaced the file since the walk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read()


def comfyui_workflows(env) -> dict[str, Path]:
    """Tracked workflows as they are in ComfyUI now: name -> file."""
    spec = _ignore_spec(env)
    out = {}
    for rel, path in _walk_json(env.workflows_dir).items():
        if spec is not None and spec.match_file(f"workflows/{rel}"):
            continue
        out[workflow_name(rel)] = path
    return out


def versioned_copies(env) -> dict[str, Path]:
    """The copies in .cec/workflows/ now: name -> file."""
    return {workflow_name(rel): p for rel, p in _walk_json(env.cec_dir / "workflows").items()}


def git_blob_id(data: bytes) -> str:
    """git's object id for these bytes, to compare a file with a committed blob without git."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def committed_blobs(repo) -> dict[str, str]:
    """name -> blob id of each workflow copy in the last version (HEAD)."""
    try:
        out = repo.git.ls_tree("-r", "-z", "HEAD", "--", "workflows")
    except Exception:  # no commit yet
        return {}
    blobs = {}
    for entry in out.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob" and path.endswith(SUFFIX):
            blobs[workflow_name(path[len("workflows/") :])] = parts[2]
    return blobs


def workflow_states(env, repo=None) -> list[WorkflowState]:
    """Each workflow in ComfyUI or in the last version, with its state against the last version."""
    from comfydock import history

    repo = repo or history.open_repo(env.cec_dir)
    current = comfyui_workflows(env)
    committed = committed_blobs(repo)
    states = []
    for name in sorted(set(current) | set(committed)):
        path = current.get(name)
        if path is None:
            state = "deleted"
        elif name not in committed:
            state = "new"
        else:
            state = "committed" if git_blob_id(path.read_bytes()) == committed[name] else "modified"
        states.append(WorkflowState(name, state, str(path) if path else None, str(copy_path(env, name))))
    return states
