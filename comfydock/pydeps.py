"""Direct Python requirements and constraints in the manifest, edited in place with tomlkit."""

from __future__ import annotations

import re
from dataclasses import dataclass

import tomlkit
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from comfydock import manifest
from comfydock.errors import ComfydockError, UsageError
from comfydock.requirements_txt import parse_requirement

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


# --- layout: ComfyUI's requirements in their own group ----------------------------------------
# [project].dependencies holds only what the user added ('py add'); ComfyUI's requirements.txt
# lives in [dependency-groups].comfyui-core and each node in its own group. uv resolves all
# groups together, so a user's pin can never replace ComfyUI's requirement: both must hold.
# Manifests written before this layout kept ComfyUI's lines in [project].dependencies (with
# the user's names listed in [tool.comfydock.python].user_added); they are read as they are
# and migrated by the next 'py'/'constraint' change (see migrate_layout).
CORE_GROUP = "comfyui-core"


def _groups(doc):
    return manifest.dependency_groups(doc)


def _find_group_key(doc, group: str) -> str | None:
    return next((key for key in _groups(doc) if canonicalize_name(key) == group), None)


def is_legacy_layout(doc) -> bool:
    """True for a manifest from before the comfyui-core group (ComfyUI's lines in [project])."""
    return _find_group_key(doc, CORE_GROUP) is None


def _legacy_user_names(doc) -> set[str]:
    python = manifest.section(doc, "legacy-python") or {}
    return {canonicalize_name(str(x)) for x in python.get("user_added", [])}


def pinned_requires_python(python_version: str) -> str:
    """The environment's Python minor, e.g. '==3.11.*': the lock is for the one Python its venv has."""
    major_minor = ".".join(str(python_version).split(".")[:2])
    return f"=={major_minor}.*"


def migrate_layout(doc, comfyui_requirements: list[str] | None = None) -> bool:
    """Move a legacy manifest to the comfyui-core layout; True if anything changed.

    ComfyUI's lines leave [project].dependencies for the comfyui-core group; the user's stay.
    A ComfyUI requirement that the previous version let a user's pin overwrite comes back from
    `comfyui_requirements` (ComfyUI's requirements.txt), so uv again has to satisfy both.
    """
    if not is_legacy_layout(doc):
        return False
    user = _legacy_user_names(doc)
    project = manifest.section(doc, "project")
    entries = manifest.user_requirements(doc)
    core = [e for e in entries if _name(e) not in user]
    mine = [e for e in entries if _name(e) in user]
    core_names = {_name(e) for e in core}
    for line in comfyui_requirements or []:
        if _name(line) in user and _name(line) not in core_names:
            core.append(line)
            core_names.add(_name(line))
    core_arr = tomlkit.array()
    core_arr.extend(core)
    core_arr.multiline(len(core) > 0)
    groups = tomlkit.table()
    groups[CORE_GROUP] = core_arr
    for key, value in _groups(doc).items():
        groups[key] = value
    manifest.set_section(doc, "dependency-groups", groups)  # comfyui-core first, the node groups after it
    deps = tomlkit.array()
    deps.extend(mine)
    deps.multiline(len(mine) > 1)
    project["dependencies"] = deps
    python = manifest.section(doc, "legacy-python")
    if python is not None and "user_added" in python:
        del python["user_added"]
        if not python:
            manifest.drop_section(doc, "legacy-python")
    version = manifest.environment_info(doc).get("python_version")
    if version and str(project.get("requires-python", "")).startswith(">="):
        project["requires-python"] = pinned_requires_python(str(version))
    return True


def _tracked_node_groups(doc) -> set[str]:
    from comfydock.nodes.spec import group_name

    return {group_name(str(node_id)) for node_id in (manifest.section(doc, "nodes") or {})}


def core_requirement_array(doc):
    """The comfyui-core group's list (made when absent)."""
    return _requirement_array(doc, CORE_GROUP, create=True)


def _requirement_array(doc, group: str | None, create: bool):
    if group is None:
        return manifest.array(doc, "project", "dependencies", create=True)
    groups = manifest.section(doc, "dependency-groups", create=create)
    if groups is None:
        return None
    key = _find_group_key(doc, group)
    if key is not None:
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


def _same_requirement(entry: str, asked: Requirement) -> bool:
    """`asked` names `entry`: same package, and if `asked` says more than a name, the same spec."""
    have = Requirement(str(entry))
    if canonicalize_name(have.name) != canonicalize_name(asked.name):
        return False
    if not (asked.specifier or asked.extras or asked.marker):
        return True  # a bare name removes whatever requirement on that package is there
    return (
        have.specifier == asked.specifier
        and {canonicalize_name(e) for e in have.extras} == {canonicalize_name(e) for e in asked.extras}
        and str(have.marker or "") == str(asked.marker or "")
    )


def _remove(arr, asked: list[Requirement], where: str, command: str = "py remove") -> list[str]:
    """Remove the entries `asked` names; a spec that differs from the recorded one is refused."""
    removed = []
    for req in asked:
        matches = [i for i in range(len(arr)) if _same_requirement(arr[i], req)]
        if not matches:
            recorded = [str(e) for e in arr if _name(e) == canonicalize_name(req.name)]
            if recorded:
                raise ComfydockError(
                    f"{req.name} is {recorded[0]!r} in {where}, not {str(req)!r}",
                    hint=f"remove it by name: 'comfydock {command} {req.name}'",
                )
            continue
        for i in reversed(matches):
            removed.append(str(arr[i]))
            del arr[i]
    return removed


def add_requirements(doc, specs: list[str], group: str | None = None) -> bool:
    reqs = [user_requirement(s) for s in specs]
    group = normalize_group(group) if group else None
    if group is not None and group.startswith("node-") and group in _tracked_node_groups(doc):
        # a node's undeclared import ('status' names it): kept through the node's rescans
        changed = migrate_layout(doc)
        changed = _upsert(_requirement_array(doc, group, create=True), reqs) or changed
        for req in reqs:
            manifest.set_requirement_reason(doc, group, canonicalize_name(req.name), "added with 'comfydock py add'")
        return changed
    if group is not None and (group == CORE_GROUP or group.startswith("node-")):
        owner = (
            "ComfyUI's requirements (changed by 'comfydock comfyui update')"
            if group == CORE_GROUP
            else "a custom node's requirements (scanned from the node)"
        )
        raise ComfydockError(
            f"dependency group {group!r} is reserved: it holds {owner}",
            hint="add to your own requirements (no --group), or pick another group name",
        )
    changed = migrate_layout(doc)
    return _upsert(_requirement_array(doc, group, create=True), reqs) or changed


def _required_by(doc, name: str) -> list[str]:
    return sorted({r.group for r in requirement_rows(doc) if r.name == name})


def remove_requirements(doc, specs: list[str], group: str | None = None) -> list[str]:
    """Remove requirements by name ('tabulate') or by name and spec ('tabulate>=0.9', which must
    match the recorded spec); returns the removed entries."""
    asked = [user_requirement(s) for s in specs]
    group = normalize_group(group) if group else None
    migrate_layout(doc)
    where = f"dependency group {group!r}" if group else "the environment's direct requirements"
    arr = _requirement_array(doc, group, create=False)
    removed = _remove(arr, asked, where) if arr is not None else []
    for entry in removed:
        manifest.set_requirement_reason(doc, group or "user", _name(entry), None)
    missing = sorted({canonicalize_name(r.name) for r in asked} - {_name(r) for r in removed})
    if missing:
        others = {name: [g for g in _required_by(doc, name) if g != (group or "user")] for name in missing}
        elsewhere = "; ".join(f"{n} is required by {', '.join(gs)}" for n, gs in others.items() if gs)
        raise ComfydockError(
            f"{', '.join(missing)} not in {where}" + (f" ({elsewhere})" if elsewhere else ""),
            hint="see 'comfydock py list' (a group's requirement is removed with --group NAME)",
        )
    if group is not None and arr is not None and len(arr) == 0 and group != CORE_GROUP:
        del _groups(doc)[_find_group_key(doc, group)]
    return removed


def _constraints(doc, create: bool):
    return manifest.array(doc, "uv", "constraint-dependencies", create=create)


def add_constraints(doc, specs: list[str]) -> bool:
    reqs = [user_requirement(s) for s in specs]
    for req in reqs:
        if not req.specifier and not req.marker:
            raise UsageError(f"constraint {str(req)!r} has no version bound", hint="e.g. 'numpy<2' or 'torch==2.5.1'")
    return _upsert(_constraints(doc, create=True), reqs)


def remove_constraints(doc, specs: list[str]) -> list[str]:
    asked = [user_requirement(s) for s in specs]
    arr = _constraints(doc, create=False)
    removed = _remove(arr, asked, "the constraints", "constraint remove") if arr is not None else []
    missing = {canonicalize_name(r.name) for r in asked} - {_name(r) for r in removed}
    if missing:
        raise ComfydockError(f"no constraint on {', '.join(sorted(missing))}", hint="see 'comfydock constraint list'")
    return removed


def constraints(doc) -> list[str]:
    arr = _constraints(doc, create=False)
    return [str(x) for x in arr] if arr is not None else []


def _marker_matches(marker: str, environment: dict) -> bool:
    from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName

    try:
        return Marker(marker).evaluate(environment)
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return False


def locked_versions(uv_lock_text: str | None, environment: dict | None = None) -> dict[str, str]:
    """Package -> version in uv.lock. uv.lock is universal: a package can be locked at several
    versions, each for a fork named by its `resolution-markers` (another Python, another
    platform). Given `environment` (marker values, see uv_runner.marker_environment), the
    version is the one this environment installs."""
    versions: dict[str, str] = {}
    for package in manifest.uv_lock_packages(uv_lock_text):
        if "name" not in package:
            continue
        markers = package.get("resolution-markers")
        if environment is not None and markers and not any(_marker_matches(m, environment) for m in markers):
            continue  # locked for another fork
        versions[canonicalize_name(package["name"])] = str(package.get("version", ""))
    return versions


def synced_versions(uv_lock_text: str | None, environment: dict, extra: str | None = None) -> dict[str, str] | None:
    """Package -> version of what `uv sync --extra EXTRA` (every default group) installs on this
    machine: uv.lock's graph walked from the project's own entry, each dependency edge's marker
    evaluated against `environment` (a `sys_platform == 'win32'` edge is not taken on Linux; uv
    writes a conflicting extra as `extra == 'extra-<len>-<project>-<extra>'`). None when the lock
    has no project entry to start from."""
    packages = [p for p in manifest.uv_lock_packages(uv_lock_text) if isinstance(p.get("name"), str)]
    by_name: dict[str, list[dict]] = {}
    for package in packages:
        by_name.setdefault(canonicalize_name(package["name"]), []).append(package)
    roots = [
        p for p in packages if isinstance(p.get("source"), dict) and "." in (p["source"].get("virtual"), p["source"].get("editable"))
    ]
    if not roots:
        return None
    root = roots[0]
    project = canonicalize_name(root["name"])
    env = dict(environment)
    env["extra"] = f"extra-{len(project)}-{project}-{extra}" if extra else ""

    def taken(edge) -> bool:
        marker = edge.get("marker")
        if not marker:
            return True
        from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName

        try:
            return Marker(str(marker)).evaluate(env)
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            return True  # a marker we cannot read (uv's group markers): counted as installed

    def target(edge) -> dict | None:
        candidates = by_name.get(canonicalize_name(str(edge.get("name", ""))), [])
        if "version" in edge:
            candidates = [c for c in candidates if str(c.get("version")) == str(edge["version"])] or candidates
        return candidates[0] if len(candidates) >= 1 else None

    def edges(package, extras=()) -> list:
        found = list(package.get("dependencies", []) or [])
        optional = package.get("optional-dependencies") or {}
        for name in extras:
            found += optional.get(name, []) or []
        return [e for e in found if isinstance(e, dict)]

    start = list(root.get("dependencies", []) or [])
    for group in (root.get("dev-dependencies") or {}).values():
        start += group or []
    if extra:
        start += (root.get("optional-dependencies") or {}).get(extra, []) or []
    versions: dict[str, str] = {}
    seen: set[tuple] = set()
    todo = [e for e in start if isinstance(e, dict)]
    while todo:
        edge = todo.pop()
        if not taken(edge):
            continue
        package = target(edge)
        if package is None:
            continue
        extras = tuple(sorted(str(x) for x in (edge.get("extra") or [])))
        key = (package["name"], str(package.get("version")), extras)
        if key in seen:
            continue
        seen.add(key)
        versions[canonicalize_name(package["name"])] = str(package.get("version", ""))
        todo.extend(edges(package, extras))
    return versions


@dataclass
class RequirementRow:
    requirement: str
    name: str
    group: str  # "comfyui-core", "user", "node:<id>", or a dependency group's name
    locked: str | None

    def to_json(self) -> dict:
        return {"requirement": self.requirement, "name": self.name, "group": self.group, "locked": self.locked}


def group_label(doc, group: str) -> str:
    """How a dependency group is shown: node groups as 'node:<id>', others by their name."""
    key = canonicalize_name(group)
    for node_id, meta in (manifest.section(doc, "nodes") or {}).items():
        if hasattr(meta, "get") and meta.get("group") and canonicalize_name(str(meta["group"])) == key:
            return f"node:{node_id}"
    return group


def requirement_rows(doc, versions: dict[str, str] | None = None) -> list[RequirementRow]:
    """Every direct requirement with its group ('user' = [project].dependencies, 'comfyui-core',
    'node:<id>' or a group's name; a legacy manifest's ComfyUI lines count as comfyui-core) and
    its version in `versions` (Environment.locked_versions)."""
    versions = versions or {}
    legacy = is_legacy_layout(doc)
    user = _legacy_user_names(doc)
    rows = []
    for entry in manifest.user_requirements(doc):
        name = _name(entry)
        group = CORE_GROUP if legacy and name not in user else "user"
        rows.append(RequirementRow(str(entry), name, group, versions.get(name)))
    for group, entries in _groups(doc).items():
        label = group_label(doc, group)
        for entry in entries:
            if isinstance(entry, str):
                name = _name(entry)
                rows.append(RequirementRow(str(entry), name, label, versions.get(name)))
    return rows


def group_counts(doc) -> dict[str, int]:
    """Requirements per group, ComfyUI's and the user's first (for status)."""
    counts: dict[str, int] = {CORE_GROUP: 0, "user": 0}
    for row in requirement_rows(doc):
        counts[row.group] = counts.get(row.group, 0) + 1
    return counts


def dependency_snapshot(doc) -> set[str]:
    """Everything that decides the lock, as comparable strings (for status' change list)."""
    legacy, user = is_legacy_layout(doc), _legacy_user_names(doc)
    items = set()
    for e in manifest.user_requirements(doc):
        # a legacy manifest's ComfyUI lines read as the group they migrate to: no change to report
        items.add(f"group {CORE_GROUP}:{e}" if legacy and _name(e) not in user else f"requirement:{e}")
    for group, entries in _groups(doc).items():
        items |= {f"group {group}:{e}" for e in entries if isinstance(e, str)}
    items |= {f"constraint:{c}" for c in constraints(doc)}
    return items
