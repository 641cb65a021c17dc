"""Requirements of a node: requirements.txt and pyproject.toml into its dependency group."""

from __future__ import annotations

import threading
from pathlib import Path

import tomlkit

from comfydock import manifest
from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json
from comfydock.hashing import files_digest
from comfydock.nodes.spec import NodeSpec, node_path, reqs_file, set_group_requirements, tracked_nodes

_manifest_lock = threading.Lock()  # scan tasks may run in parallel threads


def requirement_files(node_dir: Path) -> list[Path]:
    return [p for p in (node_dir / "requirements.txt", node_dir / "pyproject.toml") if p.is_file()]


def scan_node(node_dir: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(requirements, skipped lines) of a node: requirements.txt, then [project] dependencies."""
    from packaging.requirements import InvalidRequirement, Requirement

    from comfydock.requirements_txt import scan_requirements_file

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
    node_dir = node_path(env, spec)
    if not node_dir.is_dir():
        if spec.source == "development":
            raise ComfydockError(
                f"development node directory custom_nodes/{spec.directory} is missing",
                hint=f"put it back, or stop tracking it: 'comfydock node remove {spec.id}'",
            )
        raise ComfydockError(f"custom_nodes/{spec.directory} is missing", hint=f"reinstall it: 'comfydock build -e {env.name}'")
    requirements, skipped = scan_node(node_dir)
    atomic_write_json(reqs_file(env, spec.id), {"node": spec.id, "requirements": requirements, "skipped": skipped})
    requirements = requirements + _added_requirements(env.manifest_data(), spec.group, requirements)
    with _manifest_lock:
        current = manifest.dependency_groups(env.manifest_data()).get(spec.group)
        if current == requirements:  # unchanged: skip tomlkit's slow parse of a big manifest
            return {"digest": requirements_digest(node_dir)}
        doc = env.manifest()
        if spec.id in tracked_nodes(doc) and set_group_requirements(doc, spec.group, requirements):
            manifest.save(env.pyproject_path, doc)
    return {"digest": requirements_digest(node_dir)}


def _added_requirements(doc, group: str, scanned: list[str]) -> list[str]:
    """The group's entries added beside the node's files ('py add --group', recorded in
    [tool.comfydock.requirement_reasons]): kept when the node is scanned again."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    def name(entry) -> str | None:
        try:
            return canonicalize_name(Requirement(str(entry)).name)
        except InvalidRequirement:
            return None

    added = {canonicalize_name(n) for n in manifest.requirement_reasons(doc, group)}
    have = {name(r) for r in scanned}
    current = manifest.dependency_groups(doc).get(group) or []
    return [str(e) for e in current if isinstance(e, str) and name(e) in added and name(e) not in have]


def requirements_digest(node_dir: Path) -> str:
    # requirements*.txt covers the usual '-r' includes that live beside requirements.txt
    files = sorted(set(requirement_files(node_dir)) | set(node_dir.glob("requirements*.txt")))
    return files_digest((p.name, p) for p in files)
