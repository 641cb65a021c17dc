"""Direct Python requirements and constraints in the manifest, edited in place with tomlkit."""

from __future__ import annotations

import re
from dataclasses import dataclass

import tomlkit
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from comfydock.errors import ComfydockError, UsageError
from comfydock.requirements import parse_requirement

_GROUP_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def normalize_group(name: str) -> str:
    """PEP 735 group names compare normalised like package names."""
    if not _GROUP_RE.fullmatch(name):
        raise UsageError(f"invalid dependency group name {name!r}", hint="use letters, digits, '.', '_' and '-'")
    return canonicalize_name(name)


def user_requirement(text: str) -> Requirement:
    """A requirement typed by a user: valid PEP 508, and no direct URL (lock files need an index)."""
    req = parse_requirement(text)
    if req.url:
        raise UsageError(
            f"requirement {text!r} points at a URL",
            hint="add the package by name and version; use 'comfydock config find-links' for private wheels",
        )
    return req


def _name(entry: str) -> str:
    return canonicalize_name(Requirement(str(entry)).name)


def _requirement_array(doc, group: str | None, create: bool):
    if group is None:
        project = doc["project"]
        if "dependencies" not in project:
            project["dependencies"] = tomlkit.array()
        return project["dependencies"]
    groups = doc.get("dependency-groups")
    if groups is None:
        if not create:
            return None
        doc["dependency-groups"] = groups = tomlkit.table()
    for key in groups:
        if canonicalize_name(key) == group:
            return groups[key]
    if not create:
        return None
    arr = tomlkit.array()
    arr.multiline(True)
    groups[group] = arr
    return groups[group]


def _upsert(arr, reqs: list[Requirement]) -> bool:
    """Add each requirement, replacing an entry for the same package; True if anything changed."""
    changed = False
    for req in reqs:
        text = str(req)
        existing = [i for i, entry in enumerate(arr) if _name(entry) == canonicalize_name(req.name)]
        if existing and len(existing) == 1 and str(arr[existing[0]]) == text:
            continue
        for i in reversed(existing):
            del arr[i]
        arr.append(text)
        changed = True
    if changed and len(arr) > 1:
        arr.multiline(True)
    return changed


def _remove(arr, names: list[str]) -> list[str]:
    wanted = {canonicalize_name(n) for n in names}
    removed = []
    for i in reversed(range(len(arr))):
        if _name(arr[i]) in wanted:
            removed.append(str(arr[i]))
            del arr[i]
    return removed


def _user_added(doc) -> tomlkit.items.Array:
    tool = doc.setdefault("tool", tomlkit.table(is_super_table=True))
    comfydock = tool.setdefault("comfydock", tomlkit.table(is_super_table=True))
    python = comfydock.setdefault("python", tomlkit.table())
    if "user_added" not in python:
        python["user_added"] = tomlkit.array()
    return python["user_added"]


def add_requirements(doc, specs: list[str], group: str | None = None) -> bool:
    reqs = [user_requirement(s) for s in specs]
    group = normalize_group(group) if group else None
    changed = _upsert(_requirement_array(doc, group, create=True), reqs)
    if group is None:
        added = _user_added(doc)
        for req in reqs:
            name = canonicalize_name(req.name)
            if name not in added:
                added.append(name)
                changed = True
    return changed


def remove_requirements(doc, names: list[str], group: str | None = None) -> list[str]:
    group = normalize_group(group) if group else None
    arr = _requirement_array(doc, group, create=False)
    removed = _remove(arr, names) if arr is not None else []
    missing = {canonicalize_name(n) for n in names} - {_name(r) for r in removed}
    if missing:
        where = f"dependency group {group!r}" if group else "the environment's direct requirements"
        raise ComfydockError(f"{', '.join(sorted(missing))} not in {where}", hint="see 'comfydock py list'")
    if group is None:
        added = _user_added(doc)
        for i in reversed(range(len(added))):
            if added[i] in {_name(r) for r in removed}:
                del added[i]
    elif arr is not None and len(arr) == 0:
        groups = doc["dependency-groups"]
        for key in list(groups):
            if canonicalize_name(key) == group:
                del groups[key]
    return removed


def _constraints(doc, create: bool):
    if not create:
        return doc.get("tool", {}).get("uv", {}).get("constraint-dependencies")
    tool = doc.setdefault("tool", tomlkit.table(is_super_table=True))
    uv = tool.setdefault("uv", tomlkit.table())
    if "constraint-dependencies" not in uv:
        uv["constraint-dependencies"] = tomlkit.array()
    return uv["constraint-dependencies"]


def add_constraints(doc, specs: list[str]) -> bool:
    reqs = [user_requirement(s) for s in specs]
    for req in reqs:
        if not req.specifier and not req.marker:
            raise UsageError(f"constraint {str(req)!r} has no version bound", hint="e.g. 'numpy<2' or 'torch==2.5.1'")
    return _upsert(_constraints(doc, create=True), reqs)


def remove_constraints(doc, names: list[str]) -> list[str]:
    arr = _constraints(doc, create=False)
    removed = _remove(arr, names) if arr is not None else []
    missing = {canonicalize_name(n) for n in names} - {_name(r) for r in removed}
    if missing:
        raise ComfydockError(f"no constraint on {', '.join(sorted(missing))}", hint="see 'comfydock constraint list'")
    return removed


def constraints(doc) -> list[str]:
    arr = _constraints(doc, create=False)
    return [str(x) for x in arr] if arr is not None else []


def locked_versions(lock_text: str | None) -> dict[str, str]:
    if not lock_text:
        return {}
    lock = tomlkit.parse(lock_text)
    return {canonicalize_name(p["name"]): str(p.get("version", "")) for p in lock.get("package", [])}


@dataclass
class RequirementRow:
    requirement: str
    name: str
    group: str  # "core", "user", "node:<id>", or a dependency group's name
    locked: str | None

    def to_json(self) -> dict:
        return {"requirement": self.requirement, "name": self.name, "group": self.group, "locked": self.locked}


def requirement_rows(doc, lock_text: str | None) -> list[RequirementRow]:
    versions = locked_versions(lock_text)
    user = {str(x) for x in doc.get("tool", {}).get("comfydock", {}).get("python", {}).get("user_added", [])}
    node_groups = {
        canonicalize_name(str(meta.get("group", ""))): node_id
        for node_id, meta in doc.get("tool", {}).get("comfydock", {}).get("nodes", {}).items()
        if hasattr(meta, "get") and meta.get("group")
    }
    rows = []
    for entry in doc["project"].get("dependencies", []):
        name = _name(entry)
        rows.append(RequirementRow(str(entry), name, "user" if name in user else "core", versions.get(name)))
    for group, entries in doc.get("dependency-groups", {}).items():
        label = f"node:{node_groups[canonicalize_name(group)]}" if canonicalize_name(group) in node_groups else group
        for entry in entries:
            if isinstance(entry, str):
                name = _name(entry)
                rows.append(RequirementRow(str(entry), name, label, versions.get(name)))
    return rows


def dependency_snapshot(doc) -> set[str]:
    """Everything that decides the lock, as comparable strings (for status' change list)."""
    items = {f"requirement:{e}" for e in doc.get("project", {}).get("dependencies", [])}
    for group, entries in doc.get("dependency-groups", {}).items():
        items |= {f"group {group}:{e}" for e in entries if isinstance(e, str)}
    items |= {f"constraint:{c}" for c in constraints(doc)}
    return items
