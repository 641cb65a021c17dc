"""What a node is: identifiers and git URLs, NodeSpec, its manifest entry and state files."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomlkit
from packaging.utils import canonicalize_name

from comfydock import manifest
from comfydock.errors import ComfydockError, UsageError
from comfydock.fsutil import inside

# Registry ids, node directories and manifest keys become file and directory names: a letter or
# digit first (never '.', '..' or an option), then letters, digits, '.', '_', '+' or '-'.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
# Registry version strings ('1.2.3', '2024.1.1-beta+build'): never ';', spaces, '/' or '..'.
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def is_valid_name(text) -> bool:
    return isinstance(text, str) and bool(_NAME_RE.fullmatch(text)) and not text.endswith(".disabled")


def is_valid_version(text) -> bool:
    return isinstance(text, str) and bool(_VERSION_RE.fullmatch(text)) and ".." not in text


def check_directory_name(name: str, what: str = "node directory") -> str:
    if not is_valid_name(name):
        raise UsageError(
            f"invalid {what} {name!r}",
            hint="use up to 100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit (not ending in .disabled)",
        )
    return name


def is_git_url(text: str) -> bool:
    return text.startswith(("http://", "https://", "ssh://", "git://", "git@", "file://")) or text.endswith(".git")


def check_git_url(url) -> str:
    """Refuse what git would run or misread rather than fetch: options, transport helpers
    ('ext::', 'fd::'), control characters. https/http/ssh/git/file URLs, 'user@host:path' and
    local paths pass."""
    if (
        not isinstance(url, str)
        or not url.strip()
        or url.startswith("-")
        or "::" in url.split("/")[0]
        or any(ord(c) < 32 for c in url)
    ):
        raise UsageError(
            f"{url!r} is not a git URL comfydock fetches from", hint="use an https://, ssh://, git@host: or file:// URL"
        )
    return url


def split_ref(text: str) -> tuple[str, str | None]:
    """'url@ref' or 'id@version' -> (url or id, ref); the '@' of 'git@host:' is not a ref."""
    at = text.rfind("@")
    if at <= 0:
        return text, None
    boundary = max(text.rfind("/"), text.rfind(":"))
    if at > boundary:
        return text[:at], text[at + 1 :] or None
    return text, None


def _strip_repo_suffix(path: str) -> str:
    """'owner/repo.git/', 'owner/repo/.git', 'owner/repo/' -> 'owner/repo'."""
    path = path.rstrip("/")
    if path.endswith("/.git"):
        path = path[: -len("/.git")]
    return path.removesuffix(".git").rstrip("/")


def normalize_git_url(url: str) -> str:
    """Compare git URLs by host and path: https/ssh/git@ forms, '.git', case and slashes ignored."""
    u = url.strip()
    if u.startswith("file://"):
        return "file:" + _strip_repo_suffix(os.path.normcase(os.path.realpath(u[len("file://") :]))).lower()
    if os.path.isabs(u):
        return "file:" + _strip_repo_suffix(os.path.normcase(os.path.realpath(u))).lower()
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
    return _strip_repo_suffix(f"{host}/{path}").lower()


def repo_name(url: str) -> str:
    name = _strip_repo_suffix(url.replace(":", "/").replace("\\", "/")).split("/")[-1]
    return name or "node"


def group_name(node_id: str) -> str:
    """A valid PEP 735 dependency-group name for a node."""
    return "node-" + canonicalize_name(re.sub(r"[^A-Za-z0-9._-]+", "-", node_id)).strip("-")


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
    run_install_script: bool = False  # run its install.py (in the venv) after installing it
    asked: str | None = field(default=None, compare=False)  # what the user typed (for hints); not stored
    named_by: str | None = field(default=None, compare=False)  # why its directory is not the URL's last part

    def same_node(self, other: "NodeSpec") -> bool:
        """Whether two specs name one node: git nodes by normalised URL, others by id."""
        if self.source == "git" and other.source == "git" and self.url and other.url:
            return normalize_git_url(self.url) == normalize_git_url(other.url)
        if self.source == "registry" and other.source == "registry":
            return (self.registry_id or self.id).lower() == (other.registry_id or other.id).lower()
        return self.source == other.source and self.id == other.id

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
        if self.run_install_script:
            t["run_install_script"] = True
        t["group"] = self.group
        return t

    @classmethod
    def from_table(cls, node_id: str, t) -> "NodeSpec":
        directory = t.get("directory", node_id)
        for what, value in (("name", node_id), ("directory", directory)):
            if not is_valid_name(value):
                raise ComfydockError(
                    f"the manifest's node entry {node_id!r} has an invalid {what} {value!r}",
                    hint="fix [tool.comfydock.nodes] in .cec/pyproject.toml, or restore it with git in .cec/",
                )
        version = _opt(t.get("version"))
        if version is not None and not is_valid_version(version):
            raise ComfydockError(
                f"the manifest's node entry {node_id!r} has an invalid version {version!r}",
                hint="fix [tool.comfydock.nodes] in .cec/pyproject.toml, or restore it with git in .cec/",
            )
        run_script = t.get("run_install_script", False)
        if not isinstance(run_script, bool):
            raise ComfydockError(
                f"the manifest's node entry {node_id!r} has run_install_script = {run_script!r}, not true or false",
                hint="fix [tool.comfydock.nodes] in .cec/pyproject.toml, or restore it with git in .cec/",
            )
        return cls(
            run_install_script=run_script,
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
        return {k: v for k, v in asdict(self).items() if v is not None and k not in ("asked", "named_by")} | {"group": self.group}

    def typed(self) -> str:
        """How to name this node again on the command line, with the '@ref' the user typed."""
        if self.asked:
            return self.asked
        if self.source == "registry":
            return f"{self.registry_id or self.id}@{self.version}" if self.version else (self.registry_id or self.id)
        if self.source == "git":
            return f"{self.url}@{self.ref}" if self.ref else str(self.url)
        return self.directory


def _opt(value):
    return None if value is None else str(value)


def tracked_nodes(doc) -> dict[str, NodeSpec]:
    """The nodes a manifest tracks, by id (Environment.tracked_nodes() caches this per file).
    Every manifest is read through here (the environment's, and one arriving by pull,
    create --from, rollback or import): each directory is one name inside custom_nodes/
    (`NodeSpec.from_table`) and no two nodes share one (`directory_clash`)."""
    table = manifest.section(doc, "nodes") or {}
    specs = {str(k): NodeSpec.from_table(str(k), v) for k, v in table.items() if hasattr(v, "get")}
    clash = directory_clash((node_id, spec.directory) for node_id, spec in specs.items())
    if clash:
        first, second, directory = clash
        raise ComfydockError(
            f"the manifest gives nodes {first!r} and {second!r} one directory, custom_nodes/{directory}",
            hint="give each node its own directory in [tool.comfydock.nodes] of .cec/pyproject.toml, or restore it with git in .cec/",
        )
    return specs


def directory_clash(nodes) -> tuple[str, str, str] | None:
    """(first id, second id, directory) for the first two of `nodes` ((id, directory) pairs) that
    share a folder in custom_nodes/ (case-insensitively: one folder on macOS and Windows), else None.
    Two nodes in one folder would let removing one disable the other's files."""
    seen: dict[str, str] = {}
    for node_id, directory in nodes:
        key = directory.casefold()
        if key in seen:
            return seen[key], node_id, directory
        seen[key] = node_id
    return None


def tracked_node(doc, name: str) -> NodeSpec:
    """The tracked node a user named: by id (any case), directory (with or without .disabled) or
    git URL."""
    tracked = tracked_nodes(doc)
    if name in tracked:
        return tracked[name]
    lowered = {k.lower(): v for k, v in tracked.items()}
    by_dir = {v.directory: v for v in tracked.values()}
    spec = lowered.get(name.lower()) or by_dir.get(name) or by_dir.get(name.removesuffix(".disabled"))
    if spec is None and is_git_url(split_ref(name)[0]):  # a git node named by its URL
        wanted = normalize_git_url(split_ref(name)[0])
        spec = next((v for v in tracked.values() if v.source == "git" and v.url and normalize_git_url(v.url) == wanted), None)
    if spec is None:
        known = ", ".join(sorted(tracked)) or "none"
        raise ComfydockError(
            f"node {name!r} is not installed in this environment", hint=f"installed nodes: {known} (see 'comfydock node list')"
        )
    return spec


def set_node(doc, spec: NodeSpec) -> None:
    manifest.section(doc, "nodes", create=True)[spec.id] = spec.to_table()
    groups = manifest.section(doc, "dependency-groups", create=True)
    if spec.group not in groups:
        arr = tomlkit.array()
        arr.multiline(True)
        groups[spec.group] = arr


def drop_node(doc, spec: NodeSpec) -> None:
    table = manifest.section(doc, "nodes")
    if table is not None and spec.id in table:
        del table[spec.id]
    groups = manifest.section(doc, "dependency-groups")
    if groups is not None and spec.group in groups:
        del groups[spec.group]


def set_group_requirements(doc, group: str, requirements: list[str]) -> bool:
    groups = manifest.section(doc, "dependency-groups", create=True)
    current = [str(x) for x in groups.get(group, [])]
    if current == requirements and group in groups:
        return False
    arr = tomlkit.array()
    arr.extend(requirements)
    arr.multiline(len(requirements) > 0)
    groups[group] = arr
    return True


def install_marker(env, node_id: str) -> Path:
    return inside(env.state_dir, Path("nodes") / f"{check_directory_name(node_id, 'node name')}.json")


def reqs_file(env, node_id: str) -> Path:
    return inside(env.state_dir, Path("reqs") / f"{check_directory_name(node_id, 'node name')}.json")


INSTALL_SCRIPT = "install.py"


def install_script_of(env, spec) -> Path | None:
    """The node's install script (install.py, as ComfyUI-Manager runs it), if it has one."""
    path = node_path(env, spec) / INSTALL_SCRIPT
    return path if path.is_file() else None


def script_record(env, node_id: str) -> Path:
    """Where the install_script task records that it ran (and for which installation)."""
    return inside(env.state_dir, Path("scripts") / f"{check_directory_name(node_id, 'node name')}.json")


def node_path(env, spec_or_directory, suffix: str = "") -> Path:
    """custom_nodes/<directory><suffix>, its name checked and proven to stay in custom_nodes/."""
    directory = getattr(spec_or_directory, "directory", spec_or_directory)
    return inside(env.custom_nodes_dir, check_directory_name(directory) + suffix)
