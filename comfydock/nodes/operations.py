"""The node commands' work: add, remove, update, list; each undone whole if a step fails."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from comfydock import manifest
from comfydock.errors import ComfydockError, UsageError
from comfydock.fsutil import atomic_write_json, remove_tree
from comfydock.nodes.resolve import resolve, resolve_git, resolve_registry
from comfydock.nodes.safety import NodeConflict, _remote_urls, check_conflict, is_ignored, local_changes, trash
from comfydock.nodes.spec import NodeSpec, drop_node, install_marker, manifest_nodes, reqs_file, set_node


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


def add_nodes(env, identifiers: list[str], *, dev=False, force=False, no_test=False, listener=None, on_wait=None) -> NodeChange:
    change = NodeChange()
    with env.lock(on_wait):
        doc = env.manifest()
        tracked = manifest_nodes(doc)
        plans: list[NodeSpec] = []
        for ident in identifiers:
            spec = resolve(env, ident, dev)
            if is_ignored(env, spec.directory):
                raise ComfydockError(
                    f"custom_nodes/{spec.directory} is ignored by .cec/.comfydock_ignore", hint="remove the pattern to manage it"
                )
            if any(p.id == spec.id or p.directory == spec.directory for p in plans):
                raise UsageError(f"{ident!r} names the same node twice in one command")
            known = tracked.get(spec.id)
            if known and not force:
                if (known.source, known.version, known.commit) == (spec.source, spec.version, spec.commit):
                    msg = f"{spec.id} is already installed ({known.label()})"
                    change.notes.append(msg)
                    continue
                raise ComfydockError(
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
                    raise ComfydockError(
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
            info["requirements"] = scanned.get("requirements", []) if isinstance(scanned, dict) else []
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
        raise ComfydockError(
            f"node {name!r} is not installed in this environment", hint=f"installed nodes: {known} (see 'comfydock node list')"
        )
    return spec


def remove_nodes(env, names: list[str], *, force=False, listener=None, on_wait=None) -> NodeChange:
    change = NodeChange()
    with env.lock(on_wait):
        doc = env.manifest()
        specs = []
        for name in names:
            spec = find_tracked(doc, name)
            if is_ignored(env, spec.directory):
                raise ComfydockError(
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


def update_node(env, name: str, version: str | None, *, force=False, listener=None, on_wait=None) -> NodeChange:
    change = NodeChange()
    with env.lock(on_wait):
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
        except (OSError, ValueError, KeyError, TypeError):  # derived state: the next build rescans it
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
