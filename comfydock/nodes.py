"""Custom nodes: identifiers, resolution, conflict safety, and add / remove / update / list.

Three kinds (spec): registry nodes (Comfy Registry zips), git nodes (any git URL), and
development nodes (a directory the user owns: never deleted, only renamed NAME.disabled).
Filesystem first: nothing is overwritten or deleted without --force, and every change is
undone if a later step (resolution by uv, a download) fails.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomlkit
from packaging.utils import canonicalize_name

from comfydock import manifest
from comfydock.errors import ComfydockError, UsageError
from comfydock.fsutil import atomic_write_json, remove_tree

SOURCES = ("registry", "git", "development")
_SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
_manifest_lock = threading.Lock()  # scan tasks may run in parallel threads


class NodeConflict(ComfydockError):
    pass


# --- identifiers and URLs ------------------------------------------------------------------


def is_git_url(text: str) -> bool:
    return text.startswith(("http://", "https://", "ssh://", "git://", "git@", "file://")) or text.endswith(".git")


def split_ref(text: str) -> tuple[str, str | None]:
    """'url@ref' or 'id@version' -> (url or id, ref); the '@' of 'git@host:' is not a ref."""
    at = text.rfind("@")
    if at <= 0:
        return text, None
    boundary = max(text.rfind("/"), text.rfind(":"))
    if at > boundary:
        return text[:at], text[at + 1 :] or None
    return text, None


def normalize_git_url(url: str) -> str:
    """Compare git URLs by host and path: https/ssh/git@ forms, '.git', case and slashes ignored."""
    u = url.strip()
    if u.startswith("file://"):
        return "file:" + os.path.normcase(os.path.realpath(u[len("file://") :])).rstrip("/").removesuffix(".git").lower()
    if os.path.isabs(u):
        return "file:" + os.path.normcase(os.path.realpath(u)).rstrip("/").removesuffix(".git").lower()
    for scheme in ("https://", "http://", "ssh://", "git://", "git+ssh://"):
        if u.lower().startswith(scheme):
            u = u[len(scheme) :]
            break
    else:
        if "@" in u.split("/")[0] and ":" in u:  # scp-like: git@host:owner/repo
            user_host, path = u.split(":", 1)
            u = user_host + "/" + path
    if "@" in u.split("/")[0]:
        u = u.split("@", 1)[1]
    host, _, path = u.partition("/")
    host = host.split(":")[0] if not host.split(":")[-1].isdigit() else host.split(":")[0]
    return f"{host}/{path}".rstrip("/").removesuffix(".git").lower()


def repo_name(url: str) -> str:
    name = url.rstrip("/").removesuffix(".git").replace(":", "/").split("/")[-1]
    return name or "node"


def group_name(node_id: str) -> str:
    """A valid PEP 735 dependency-group name for a node."""
    return "node-" + canonicalize_name(node_id)


# --- what a node is -------------------------------------------------------------------------


@dataclass
class NodeSpec:
    id: str
    source: str
    directory: str
    version: str | None = None  # registry version
    registry_id: str | None = None
    url: str | None = None  # git URL, or the registry node's repository
    ref: str | None = None  # git ref as asked
    commit: str | None = None  # git commit it resolved to

    @property
    def group(self) -> str:
        return group_name(self.id)

    def identity(self) -> str | None:
        """What identifies the cached content exactly (None: not cached, a dev node)."""
        if self.source == "registry":
            return f"registry:{self.registry_id}@{self.version}"
        if self.source == "git":
            return f"git:{normalize_git_url(self.url)}@{self.commit}"
        return None

    def label(self) -> str:
        if self.source == "registry":
            return f"{self.id} {self.version} (registry)"
        if self.source == "git":
            return f"{self.id} {(self.ref or '')}@{(self.commit or '')[:10]} (git)".replace(" @", " ")
        return f"{self.id} (development)"

    def to_table(self):
        t = tomlkit.table()
        t["source"] = self.source
        t["directory"] = self.directory
        for key in ("registry_id", "version", "url", "ref", "commit"):
            value = getattr(self, key)
            if value:
                t[key] = value
        t["group"] = self.group
        return t

    @classmethod
    def from_table(cls, node_id: str, t) -> "NodeSpec":
        return cls(
            id=node_id,
            source=str(t.get("source", "registry")),
            directory=str(t.get("directory", node_id)),
            version=_opt(t.get("version")),
            registry_id=_opt(t.get("registry_id")),
            url=_opt(t.get("url")),
            ref=_opt(t.get("ref")),
            commit=_opt(t.get("commit")),
        )

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None} | {"group": self.group}


def _opt(value):
    return None if value is None else str(value)


def manifest_nodes(doc) -> dict[str, NodeSpec]:
    table = doc.get("tool", {}).get("comfydock", {}).get("nodes", {})
    return {str(k): NodeSpec.from_table(str(k), v) for k, v in table.items() if hasattr(v, "get")}


_tracked_cache: dict[tuple, dict[str, NodeSpec]] = {}


def tracked_nodes(env) -> dict[str, NodeSpec]:
    """The manifest's nodes, parsed once per version of pyproject.toml (task loading asks often)."""
    st = env.pyproject_path.stat()
    key = (str(env.pyproject_path), st.st_mtime_ns, st.st_size)
    if key not in _tracked_cache:
        _tracked_cache.clear()
        _tracked_cache[key] = manifest_nodes(env.manifest())
    return dict(_tracked_cache[key])


def _nodes_table(doc):
    tool = doc.setdefault("tool", tomlkit.table(is_super_table=True))
    comfydock = tool.setdefault("comfydock", tomlkit.table(is_super_table=True))
    if "nodes" not in comfydock:
        comfydock["nodes"] = tomlkit.table()
    return comfydock["nodes"]


def set_node(doc, spec: NodeSpec) -> None:
    _nodes_table(doc)[spec.id] = spec.to_table()
    groups = doc.setdefault("dependency-groups", tomlkit.table())
    if spec.group not in groups:
        arr = tomlkit.array()
        arr.multiline(True)
        groups[spec.group] = arr


def drop_node(doc, spec: NodeSpec) -> None:
    table = _nodes_table(doc)
    if spec.id in table:
        del table[spec.id]
    groups = doc.get("dependency-groups")
    if groups is not None and spec.group in groups:
        del groups[spec.group]


def set_group_requirements(doc, group: str, requirements: list[str]) -> bool:
    groups = doc.setdefault("dependency-groups", tomlkit.table())
    current = [str(x) for x in groups.get(group, [])]
    if current == requirements and group in groups:
        return False
    arr = tomlkit.array()
    arr.extend(requirements)
    arr.multiline(len(requirements) > 0)
    groups[group] = arr
    return True


# --- .comfydock_ignore ------------------------------------------------------------------------


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


# --- resolving what the user asked for ----------------------------------------------------------


def registry_client(ws):
    from comfydock.registry import RegistryClient

    return RegistryClient(ws.setting("registry-url"), ws.api_cache_dir / "registry_cache.json")


def resolve_registry(ws, node_id: str, version: str | None) -> NodeSpec:
    client = registry_client(ws)
    info = client.node(node_id)
    canonical = str(info["id"])
    if version is None:
        latest = info.get("latest_version") or {}
        version = latest.get("version")
        if not version:
            raise ComfydockError(
                f"registry node {canonical!r} has no published version", hint="add it from its git repository URL instead"
            )
    else:
        known = [str(v.get("version")) for v in client.versions(canonical)]
        if version not in known:
            raise UsageError(
                f"registry node {canonical!r} has no version {version!r}",
                hint="available: " + (", ".join(known[:8]) or "none"),
            )
    repository = info.get("repository") or None
    directory = repo_name(repository) if repository else canonical
    return NodeSpec(canonical, "registry", directory, version=str(version), registry_id=canonical, url=repository)


def ls_remote(url: str, ref: str | None) -> str:
    """The commit `ref` (default HEAD) points at in the remote repository."""
    import git

    try:
        out = git.cmd.Git().ls_remote(url, ref or "HEAD")
    except git.GitCommandError as exc:
        from comfydock.gitutil import git_reason

        raise ComfydockError(
            f"cannot read git repository {url}: {git_reason(exc)}", hint="check the URL, and that you can reach it"
        ) from None
    refs = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    if ref is None:
        if "HEAD" in refs:
            return refs["HEAD"]
        raise ComfydockError(f"git repository {url} has no HEAD", hint="give a branch or tag: URL@REF")
    for name in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if name in refs:
            return refs[name]
    if _SHA_RE.match(ref):
        return ref  # a commit: verified when it is fetched
    raise UsageError(f"git repository {url} has no branch or tag {ref!r}", hint="check the ref after '@'")


def resolve_git(url: str, ref: str | None) -> NodeSpec:
    commit = ls_remote(url, ref)
    name = repo_name(url)
    return NodeSpec(name, "git", name, url=url, ref=ref, commit=commit)


def resolve(env, identifier: str, dev: bool) -> NodeSpec:
    if dev:
        name = Path(identifier.rstrip("/")).name.removesuffix(".disabled")
        from comfydock.workspace import validate_name

        validate_name(name, "node directory")
        return NodeSpec(name, "development", name)
    target, ref = split_ref(identifier)
    if is_git_url(target):
        return resolve_git(target, ref)
    if "/" in target or target.startswith("."):
        raise UsageError(
            f"{identifier!r} is neither a registry id nor a git URL",
            hint="for a directory in custom_nodes/, use 'comfydock node add NAME --dev'",
        )
    return resolve_registry(env.workspace, target, ref)


# --- conflicts ----------------------------------------------------------------------------


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
    from comfydock.node_cache import NodeCache

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


# --- state files under .comfydock/ --------------------------------------------------------------


def install_marker(env, node_id: str) -> Path:
    return env.state_dir / "nodes" / f"{node_id}.json"


def reqs_file(env, node_id: str) -> Path:
    return env.state_dir / "reqs" / f"{node_id}.json"


def trash(env, path: Path) -> Path:
    """Move a directory out of custom_nodes/ without losing it."""
    dest = env.state_dir / "trash" / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(dest))
    return dest


# --- scanning (called by the scan_requirements task) ----------------------------------------------


def requirement_files(node_dir: Path) -> list[Path]:
    return [p for p in (node_dir / "requirements.txt", node_dir / "pyproject.toml") if p.is_file()]


def scan_node(node_dir: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(requirements, skipped lines) of a node: requirements.txt, then [project] dependencies."""
    from packaging.requirements import InvalidRequirement, Requirement

    from comfydock.requirements import scan_requirements_file

    reqs: list[str] = []
    skipped: list[tuple[str, str]] = []
    txt = node_dir / "requirements.txt"
    if txt.is_file():
        scanned = scan_requirements_file(txt, root=node_dir)
        reqs += scanned.requirements
        skipped += scanned.skipped
    pyproject = node_dir / "pyproject.toml"
    if pyproject.is_file():
        try:
            deps = tomlkit.parse(pyproject.read_text(encoding="utf-8")).get("project", {}).get("dependencies", [])
        except Exception as exc:  # a node's broken pyproject is reported, not fatal
            skipped.append(("pyproject.toml", f"unreadable: {exc}"))
            deps = []
        for d in deps:
            try:
                reqs.append(str(Requirement(str(d))))
            except InvalidRequirement as exc:
                skipped.append((str(d), f"not a valid requirement: {exc}"))
    unique: dict[str, str] = {}
    for r in reqs:
        unique.setdefault(r, r)
    return list(unique), skipped


def apply_scan(env, spec: NodeSpec) -> dict:
    """Scan a node, record the result, and write its dependency group (if it changed)."""
    node_dir = env.custom_nodes_dir / spec.directory
    if not node_dir.is_dir():
        if spec.source == "development":
            raise ComfydockError(
                f"development node directory custom_nodes/{spec.directory} is missing",
                hint=f"put it back, or stop tracking it: 'comfydock node remove {spec.id}'",
            )
        raise ComfydockError(f"custom_nodes/{spec.directory} is missing", hint=f"reinstall it: 'comfydock build -e {env.name}'")
    requirements, skipped = scan_node(node_dir)
    atomic_write_json(reqs_file(env, spec.id), {"node": spec.id, "requirements": requirements, "skipped": skipped})
    with _manifest_lock:
        doc = env.manifest()
        if spec.id in manifest_nodes(doc) and set_group_requirements(doc, spec.group, requirements):
            manifest.save(env.pyproject_path, doc)
    return {"digest": requirements_digest(node_dir)}


def requirements_digest(node_dir: Path) -> str:
    from blake3 import blake3

    h = blake3()
    # requirements*.txt covers the usual '-r' includes that live beside requirements.txt
    files = sorted(set(requirement_files(node_dir)) | set(node_dir.glob("requirements*.txt")))
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


# --- the operations ---------------------------------------------------------------------------


@dataclass
class NodeChange:
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    build: dict | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _run(env, targets, listener, workers=1):
    from comfydock import engine
    from comfydock.environment import build_failure

    report = engine.build(env, targets, listener=listener, workers=workers)
    if not report.ok:
        raise build_failure(report)
    return report


def add_nodes(
    env, identifiers: list[str], *, dev=False, force=False, no_test=False, listener=None, note=lambda m: None
) -> NodeChange:
    change = NodeChange()
    with env.lock():
        doc = env.manifest()
        tracked = manifest_nodes(doc)
        plans: list[NodeSpec] = []
        for ident in identifiers:
            spec = resolve(env, ident, dev)
            if is_ignored(env, spec.directory):
                raise UsageError(
                    f"custom_nodes/{spec.directory} is ignored by .cec/.comfydock_ignore", hint="remove the pattern to manage it"
                )
            if any(p.id == spec.id or p.directory == spec.directory for p in plans):
                raise UsageError(f"{ident!r} names the same node twice in one command")
            known = tracked.get(spec.id)
            if known and not force:
                if (known.source, known.version, known.commit) == (spec.source, spec.version, spec.commit):
                    msg = f"{spec.id} is already installed ({known.label()})"
                    change.notes.append(msg)
                    note(msg)
                    continue
                raise UsageError(
                    f"{spec.id} is already installed as {known.label()}",
                    hint=f"change its version with 'comfydock node update {spec.id} --version V', or use --force",
                )
            other = next((n for n in tracked.values() if n.directory == spec.directory and n.id != spec.id), None)
            if other is not None:
                raise NodeConflict(
                    f"custom_nodes/{spec.directory} belongs to node {other.id}",
                    hint=f"remove it first: 'comfydock node remove {other.id}'",
                )
            if spec.source == "development":
                path = env.custom_nodes_dir / spec.directory
                if not path.is_dir() and not (env.custom_nodes_dir / f"{spec.directory}.disabled").is_dir():
                    raise UsageError(
                        f"no directory custom_nodes/{spec.directory}",
                        hint="create or clone it there first, then track it with --dev",
                    )
                remotes = _remote_urls(path) if path.is_dir() else None
                if remotes:
                    spec.url = remotes[0]
            elif not (known and force):
                check_conflict(env, spec, force)
            plans.append(spec)
        if not plans:
            return change

        saved = env.snapshot_manifest()
        moved_back: list[tuple[Path, Path]] = []  # (where it went, where it was)
        created: list[Path] = []
        try:
            for spec in plans:
                path = env.custom_nodes_dir / spec.directory
                disabled = env.custom_nodes_dir / f"{spec.directory}.disabled"
                if spec.source == "development":
                    if not path.exists() and disabled.is_dir():
                        os.rename(disabled, path)  # re-enable: the user's files come back as they were
                        moved_back.append((path, disabled))
                        change.notes.append(f"re-enabled custom_nodes/{spec.directory} from {disabled.name}")
                    continue
                if disabled.exists():
                    kept = trash(env, disabled)
                    moved_back.append((kept, disabled))
                    change.notes.append(f"moved custom_nodes/{disabled.name} aside to {kept}")
                if path.exists() or path.is_symlink():  # only with --force
                    kept = trash(env, path)
                    moved_back.append((kept, path))
                    install_marker(env, spec.id).unlink(missing_ok=True)
                created.append(path)
            for spec in plans:
                set_node(doc, spec)
            manifest.save(env.pyproject_path, doc)
            targets = [f"scan_requirements:{s.id}" for s in plans]
            if not no_test:
                targets += ["lock_deps", "sync_venv"]
            try:
                report = _run(env, targets, listener, workers=min(4, len(plans)))
            except ComfydockError as exc:
                if exc.message.startswith("lock_deps"):
                    again = " ".join(identifiers)
                    exc.hint = (
                        f"the node's requirements conflict with the environment (downloads stay cached): add it anyway with "
                        f"'comfydock node add {again} --no-test', then edit its [dependency-groups] entry in "
                        f"{env.pyproject_path} and run 'comfydock build'"
                    )
                raise
        except BaseException:
            env.restore_manifest(saved, resync=not no_test)
            for path in created:
                if path.exists():
                    remove_tree(path)
            for spec in plans:
                install_marker(env, spec.id).unlink(missing_ok=True)
                reqs_file(env, spec.id).unlink(missing_ok=True)
            for now, before in reversed(moved_back):
                if now.exists() and not before.exists():
                    shutil.move(str(now), str(before))
            raise
        for now, before in moved_back:
            if (
                before.parent == env.custom_nodes_dir
                and now.parent != env.custom_nodes_dir
                and not before.name.endswith(".disabled")
            ):
                change.notes.append(f"the replaced custom_nodes/{before.name} is kept at {now}")
        for spec in plans:
            try:
                scanned = json.loads(reqs_file(env, spec.id).read_text())
            except (OSError, ValueError):
                scanned = {}  # --no-test with a scan that did not run: nothing to report
            info = spec.to_json()
            info["requirements"] = scanned.get("requirements", [])
            info["skipped"] = scanned.get("skipped", [])
            change.added.append(info)
        change.build = report.to_json()
    return change


def find_tracked(doc, name: str) -> NodeSpec:
    tracked = manifest_nodes(doc)
    if name in tracked:
        return tracked[name]
    lowered = {k.lower(): v for k, v in tracked.items()}
    by_dir = {v.directory: v for v in tracked.values()}
    spec = lowered.get(name.lower()) or by_dir.get(name) or by_dir.get(name.removesuffix(".disabled"))
    if spec is None:
        known = ", ".join(sorted(tracked)) or "none"
        raise UsageError(
            f"node {name!r} is not installed in this environment", hint=f"installed nodes: {known} (see 'comfydock node list')"
        )
    return spec


def remove_nodes(env, names: list[str], *, force=False, listener=None) -> NodeChange:
    change = NodeChange()
    with env.lock():
        doc = env.manifest()
        specs = []
        for name in names:
            spec = find_tracked(doc, name)
            if is_ignored(env, spec.directory):
                raise UsageError(
                    f"custom_nodes/{spec.directory} is ignored by .cec/.comfydock_ignore", hint="remove the pattern to manage it"
                )
            path = env.custom_nodes_dir / spec.directory
            if spec.source == "development":
                if (env.custom_nodes_dir / f"{spec.directory}.disabled").exists() and path.exists():
                    raise NodeConflict(
                        f"custom_nodes/{spec.directory}.disabled already exists",
                        hint="move or delete the old .disabled copy first, then remove again",
                    )
            elif not force:
                why = local_changes(env, spec)
                if why:
                    raise NodeConflict(
                        f"custom_nodes/{spec.directory} has local work: {why}",
                        hint=f"keep it by tracking it as a development node ('comfydock node add {spec.directory} --dev' after removing), or remove anyway with --force",
                    )
            specs.append(spec)
        saved = env.snapshot_manifest()
        try:
            for spec in specs:
                drop_node(doc, spec)
            manifest.save(env.pyproject_path, doc)
            report = _run(env, ["lock_deps", "sync_venv"], listener)
        except BaseException:
            env.restore_manifest(saved)
            raise
        for spec in specs:
            path = env.custom_nodes_dir / spec.directory
            info = spec.to_json()
            if spec.source == "development":
                if path.exists():
                    os.rename(path, env.custom_nodes_dir / f"{spec.directory}.disabled")
                info["disabled_as"] = f"custom_nodes/{spec.directory}.disabled"
            elif path.exists() or path.is_symlink():
                remove_tree(path)
                info["deleted"] = f"custom_nodes/{spec.directory}"
            install_marker(env, spec.id).unlink(missing_ok=True)
            reqs_file(env, spec.id).unlink(missing_ok=True)
            change.removed.append(info)
        change.build = report.to_json()
    return change


def update_node(env, name: str, version: str | None, *, force=False, listener=None) -> NodeChange:
    change = NodeChange()
    with env.lock():
        doc = env.manifest()
        old = find_tracked(doc, name)
        if old.source == "development":
            if version:
                raise UsageError(
                    "development nodes have no version: comfydock only rescans their requirements",
                    hint=f"comfydock node update {old.id}",
                )
            reqs_file(env, old.id).unlink(missing_ok=True)  # forces the scan task to run
            new = old
        else:
            if old.source == "registry":
                new = resolve_registry(env.workspace, old.registry_id or old.id, version)
            else:
                new = resolve_git(old.url, version or old.ref)
            new.id, new.directory = old.id, old.directory
            if not force:
                why = local_changes(env, old)
                if why:
                    raise NodeConflict(
                        f"custom_nodes/{old.directory} has local work: {why}",
                        hint="commit or save it elsewhere, or update anyway with --force",
                    )
        saved = env.snapshot_manifest()
        path = env.custom_nodes_dir / old.directory
        kept = None
        try:
            if new is not old and new.identity() != old.identity() and path.exists():
                kept = trash(env, path)
                install_marker(env, old.id).unlink(missing_ok=True)
            set_node(doc, new)
            manifest.save(env.pyproject_path, doc)
            _run(env, [f"scan_requirements:{new.id}"], listener)
            # the node's packages move to the newest versions its new requirements allow
            from packaging.requirements import Requirement

            names = [Requirement(r).name for r in json.loads(reqs_file(env, new.id).read_text())["requirements"]]
            atomic_write_json(env.state_dir / "lock-upgrade.json", names)
            report = _run(env, ["lock_deps", "sync_venv"], listener)
        except BaseException:
            (env.state_dir / "lock-upgrade.json").unlink(missing_ok=True)
            env.restore_manifest(saved, resync=False)
            if kept is not None:
                if path.exists():
                    remove_tree(path)
                shutil.move(str(kept), str(path))
                atomic_write_json(install_marker(env, old.id), {"identity": old.identity(), "directory": old.directory})
            env.resync_venv()
            raise
        if kept is not None:
            remove_tree(kept)
        change.added.append(new.to_json())
        change.removed.append(old.to_json())
        change.build = report.to_json()
    return change


def list_nodes(env) -> list[dict]:
    rows = []
    for spec in manifest_nodes(env.manifest()).values():
        info = spec.to_json()
        path = env.custom_nodes_dir / spec.directory
        info["present"] = path.is_dir()
        info["disabled"] = (env.custom_nodes_dir / f"{spec.directory}.disabled").is_dir() and not path.is_dir()
        try:
            info["requirements"] = json.loads(reqs_file(env, spec.id).read_text())["requirements"]
        except (OSError, ValueError):
            info["requirements"] = None
        rows.append(info)
    return sorted(rows, key=lambda r: r["id"].lower())


def untracked_directories(env) -> list[str]:
    """Directories in custom_nodes/ that no node entry owns (and the ignore file does not hide)."""
    if not env.custom_nodes_dir.is_dir():
        return []
    owned = {s.directory for s in manifest_nodes(env.manifest()).values()}
    return sorted(
        p.name
        for p in env.custom_nodes_dir.iterdir()
        if p.is_dir()
        and not p.name.startswith((".", "__"))
        and p.name not in owned
        and not p.name.endswith(".disabled")
        and not is_ignored(env, p.name)
    )
