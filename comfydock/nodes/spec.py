"""What a node is: identifiers and git URLs, NodeSpec, its manifest entry and state files."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import tomlkit
from packaging.utils import canonicalize_name


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
        _tracked_cache[key] = manifest_nodes(env.manifest_data())
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


def install_marker(env, node_id: str) -> Path:
    return env.state_dir / "nodes" / f"{node_id}.json"


def reqs_file(env, node_id: str) -> Path:
    return env.state_dir / "reqs" / f"{node_id}.json"
