"""The node commands' work: add, remove, update, list; each undone whole if a step fails."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from comfydock import engine, manifest
from comfydock.environment import Environment
from comfydock.errors import BuildFailed, ComfydockError, UsageError
from comfydock.nodes.resolve import resolve, resolve_git, resolve_registry
from comfydock.nodes.safety import NodeConflict, _remote_urls, check_conflict, is_ignored, local_changes, trash
from comfydock.nodes.spec import (
    NodeSpec,
    drop_node,
    install_marker,
    install_script_of,
    node_path,
    repo_name,
    reqs_file,
    script_record,
    set_node,
    tracked_node,
    tracked_nodes,
)


@dataclass
class NodeChange:
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    build: dict | None = None
    comfyui_fills: dict | None = None  # what ComfyUI imports that the new lock stopped providing
    skipped: list[dict] = field(default_factory=list)  # node update --all: nodes it does not move, and why
    unchanged: list[str] = field(default_factory=list)  # node update --all: nodes already at their newest
    dry_run: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def _run(env, targets, listener, workers=1, task_options=None):
    from comfydock import engine
    from comfydock.engine import build_failure

    report = engine.build(env, targets, listener=listener, workers=workers, task_options=task_options)
    if not report.ok:
        raise build_failure(report)
    return report


def guard_node_records(tx, env, ids) -> None:
    """The install markers, scan records and script records of `ids` come back if `tx` is undone
    (a directory put back is comfydock's again, as it was)."""
    for node_id in ids:
        for record in (install_marker, reqs_file, script_record):
            tx.save_file(record(env, node_id))


def _check_new_node(env, spec: NodeSpec, tracked: dict[str, NodeSpec], force: bool, name_given: bool) -> NodeSpec | None:
    """The tracked node this one replaces (same node, --force), or None for a new node.
    Raises when another node already uses its name or directory."""
    known = next((n for n in tracked.values() if n.same_node(spec)), None)
    if known is not None:
        if not force:
            raise ComfydockError(  # reached only when the versions differ (callers note the same version)
                f"{known.id} is already installed as {known.label()}",
                hint=f"change its version with 'comfydock node update {known.id} --version V', "
                f"or replace it: 'comfydock node add {spec.typed()} --force'",
            )
        if name_given and spec.directory != known.directory:
            raise ComfydockError(
                f"{known.id} is already installed in custom_nodes/{known.directory}; --name cannot move it",
                hint=f"remove it first ('comfydock node remove {known.id}'), then add it with --name",
            )
        spec.id, spec.directory = known.id, known.directory
        return known
    other = tracked.get(spec.id) or next((n for n in tracked.values() if n.directory == spec.directory), None)
    if other is not None:
        where = other.url or other.registry_id or other.source
        raise NodeConflict(
            f"custom_nodes/{spec.directory} is already used by node {other.id} ({where}), "
            f"a different repository than {spec.url or spec.registry_id}",
            hint=f"give this one another directory: 'comfydock node add {spec.typed()} --name DIR'",
        )
    return None


def add_nodes(
    env,
    identifiers: list[str],
    *,
    dev=False,
    force=False,
    no_test=False,
    name: str | None = None,
    run_install_script=False,
    listener=None,
    on_wait=None,
) -> NodeChange:
    change = NodeChange()
    if name is not None and len(identifiers) != 1:
        raise UsageError("--name applies to one node at a time", hint="add the nodes in separate commands")
    with env.process_lock(on_wait):
        doc = env.manifest()
        tracked = tracked_nodes(doc)
        plans: list[NodeSpec] = []
        script_only: list[NodeSpec] = []  # installed already; only the install script is new
        for ident in identifiers:
            spec = resolve(env, ident, dev, name)
            if is_ignored(env, spec.directory):
                raise ComfydockError(
                    f"custom_nodes/{spec.directory} is ignored by .cec/.comfydock_ignore", hint="remove the pattern to manage it"
                )
            if any(p.id == spec.id or p.directory == spec.directory or p.same_node(spec) for p in plans):
                raise UsageError(f"{ident!r} names the same node twice in one command")
            same = next((n for n in tracked.values() if n.same_node(spec)), None)
            if same is not None and not force and (same.version, same.commit) == (spec.version, spec.commit):
                if run_install_script and spec.source != "development" and not same.run_install_script:
                    same.run_install_script = True
                    script_only.append(same)
                    continue
                change.notes.append(f"{same.id} is already installed ({same.label()})")
                continue
            if spec.source == "development":
                other = tracked.get(spec.id)
                if other is not None and other.source != "development":
                    raise NodeConflict(
                        f"custom_nodes/{spec.directory} belongs to node {other.id}",
                        hint=f"remove it first: 'comfydock node remove {other.id}'",
                    )
                path = node_path(env, spec)
                if not path.is_dir() and not node_path(env, spec, ".disabled").is_dir():
                    raise ComfydockError(
                        f"no directory custom_nodes/{spec.directory}",
                        hint="create or clone it there first, then track it with --dev",
                    )
                remotes = _remote_urls(path) if path.is_dir() else None
                if remotes:
                    spec.url = remotes[0]
            else:
                known = _check_new_node(env, spec, tracked, force, name is not None)
                if known is None:
                    check_conflict(env, spec, force)
                spec.run_install_script = run_install_script or bool(known and known.run_install_script)
            if spec.named_by:
                change.notes.append(
                    f"named custom_nodes/{spec.directory} after {spec.named_by} (its URL ends in "
                    f"{repo_name(spec.url)!r}); --name DIR chooses another"
                )
            plans.append(spec)
        if not plans and not script_only:
            return change

        replaced: list[tuple[Path, Path]] = []  # (a directory --force replaced, where it is kept)
        with env.transaction() as tx:  # any failure, Ctrl-C included, puts everything back
            engine.guard_manifest(env, tx, resync=not no_test)
            guard_node_records(tx, env, [s.id for s in plans + script_only])
            for spec in plans:
                path = node_path(env, spec)
                disabled = node_path(env, spec, ".disabled")
                if spec.source == "development":
                    if not path.exists() and disabled.is_dir():
                        tx.move(disabled, path)  # re-enable: the user's files come back as they were
                        change.notes.append(f"re-enabled custom_nodes/{spec.directory} from {disabled.name}")
                    continue
                if disabled.exists():
                    kept = trash(env, disabled, tx)
                    change.notes.append(f"moved custom_nodes/{disabled.name} aside to {kept}")
                if path.exists() or path.is_symlink():  # only with --force
                    replaced.append((path, trash(env, path, tx)))
                    install_marker(env, spec.id).unlink(missing_ok=True)
                tx.created(path)
            for spec in plans + script_only:
                set_node(doc, spec)
            manifest.save(env.pyproject_path, doc)
            targets = [f"scan_requirements:{s.id}" for s in plans]
            if not no_test:
                targets += ["lock_deps", "sync_venv"]
                targets += [f"install_script:{s.id}" for s in plans + script_only if s.run_install_script]
            try:
                # no targets (only a script to record, with --no-test): the next build runs it
                report = _run(env, targets, listener, workers=min(4, max(1, len(plans)))) if targets else None
                if not no_test:
                    from comfydock.manifest_change import fill_after_sync

                    change.comfyui_fills = fill_after_sync(env, listener)
            except BuildFailed as exc:
                if exc.task == "lock_deps":
                    again = " ".join(identifiers)
                    exc.hint = (
                        f"the node's requirements conflict with the environment (downloads stay cached): add it anyway with "
                        f"'comfydock node add {again} --no-test', then edit its [dependency-groups] entry in "
                        f"{env.pyproject_path} and run 'comfydock build'"
                    )
                raise
        for before, kept in replaced:
            change.notes.append(f"the replaced custom_nodes/{before.name} is kept at {kept}")
        for spec in plans + script_only:
            try:
                scanned = json.loads(reqs_file(env, spec.id).read_text())
            except (OSError, ValueError):
                scanned = {}  # --no-test with a scan that did not run: nothing to report
            info = spec.to_json()
            info["requirements"] = scanned.get("requirements", []) if isinstance(scanned, dict) else []
            info["skipped"] = scanned.get("skipped", [])
            script = install_script_of(env, spec)
            if script is not None:
                info["install_script"] = script.name
                info["install_script_ran"] = bool(spec.run_install_script and not no_test)
                if not spec.run_install_script:
                    info["run_install_script_with"] = f"comfydock node add {spec.typed()} --run-install-script"
            change.added.append(info)
        change.build = report.to_json() if report is not None else None
    return change


def remove_nodes(env, names: list[str], *, force=False, listener=None, on_wait=None) -> NodeChange:
    change = NodeChange()
    with env.process_lock(on_wait):
        doc = env.manifest()
        specs = []
        for name in names:
            spec = tracked_node(doc, name)
            if is_ignored(env, spec.directory):
                raise ComfydockError(
                    f"custom_nodes/{spec.directory} is ignored by .cec/.comfydock_ignore", hint="remove the pattern to manage it"
                )
            path = node_path(env, spec)
            if spec.source == "development":
                if node_path(env, spec, ".disabled").exists() and path.exists():
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
        with env.transaction() as tx:  # any failure, Ctrl-C included, puts everything back
            engine.guard_manifest(env, tx)
            guard_node_records(tx, env, [s.id for s in specs])
            for spec in specs:
                drop_node(doc, spec)
            manifest.save(env.pyproject_path, doc)
            report = _run(env, ["lock_deps", "sync_venv"], listener)
            for spec in specs:
                path = node_path(env, spec)
                info = spec.to_json()
                if spec.source == "development":
                    if path.exists():
                        tx.move(path, node_path(env, spec, ".disabled"))
                    info["disabled_as"] = f"custom_nodes/{spec.directory}.disabled"
                elif path.exists() or path.is_symlink():
                    tx.move_aside(path)  # deleted once the whole change has succeeded
                    info["deleted"] = f"custom_nodes/{spec.directory}"
                install_marker(env, spec.id).unlink(missing_ok=True)
                reqs_file(env, spec.id).unlink(missing_ok=True)
                script_record(env, spec.id).unlink(missing_ok=True)
                change.removed.append(info)
        change.build = report.to_json()
    return change


def _update_target(env, old: NodeSpec, version: str | None, newest: bool) -> NodeSpec:
    """What `old` moves to: `version` (default: latest / its ref's newest commit), or with `newest`
    the registry's newest usable version (never an older one) / the remote's default branch head."""
    if old.source == "registry":
        registry_id = old.registry_id or old.id
        if newest:
            from comfydock.nodes.resolve import registry_client
            from comfydock.pep440 import version_sort_key
            from comfydock.registry import newest_usable_version

            version = newest_usable_version(registry_client(env.workspace, refresh=True).versions(registry_id))
            if version is None or version_sort_key(version) <= version_sort_key(old.version or ""):
                return old  # nothing newer that is not deprecated
        new = resolve_registry(env.workspace, registry_id, version, refresh=newest)
    else:
        new = resolve_git(old.url, None if newest else (version or old.ref))
    new.id, new.directory = old.id, old.directory
    new.run_install_script = old.run_install_script
    return new


def update_nodes(
    env, names: list[str] | None, version: str | None = None, *, dry_run=False, force=False, listener=None, on_wait=None
) -> NodeChange:
    """Move the named nodes (None: every registry/git node, to its newest version) in one change:
    if any step fails, every node, the manifest, the lock and the venv are as before."""
    change = NodeChange(dry_run=dry_run)
    every = names is None
    if every and version:
        raise UsageError("--version names one node's version", hint="give the node: 'comfydock node update ID --version V'")
    with env.process_lock(on_wait):
        doc = env.manifest()
        pairs: list[tuple[NodeSpec, NodeSpec]] = []
        for old in tracked_nodes(doc).values() if every else [tracked_node(doc, n) for n in names]:
            if old.source == "development":
                if every:
                    change.skipped.append({"id": old.id, "why": "a development node (yours to update)"})
                    continue
                if version:
                    raise UsageError(
                        "development nodes have no version: comfydock only rescans their requirements",
                        hint=f"comfydock node update {old.id}",
                    )
                pairs.append((old, old))
                continue
            new = _update_target(env, old, version, newest=every)
            if every and new.identity() == old.identity():
                change.unchanged.append(old.id)
                continue
            why = None if force else local_changes(env, old)
            if why:
                raise NodeConflict(
                    f"custom_nodes/{old.directory} has local work: {why}",
                    hint="commit or save it elsewhere, or update anyway with --force",
                )
            pairs.append((old, new))
        for old, new in pairs:
            change.added.append(new.to_json())
            change.removed.append(old.to_json())
        if pairs and not dry_run:
            change.build = _apply_updates(env, doc, pairs, listener).to_json()
    return change


def update_node(env, name: str, version: str | None, *, force=False, listener=None, on_wait=None) -> NodeChange:
    return update_nodes(env, [name], version, force=force, listener=listener, on_wait=on_wait)


def _apply_updates(env, doc, pairs: list[tuple[NodeSpec, NodeSpec]], listener):
    """Install the new versions, rescan, lock and sync, all in one transaction."""
    with env.transaction() as tx:  # any failure, Ctrl-C included, puts everything back
        engine.guard_manifest(env, tx)
        guard_node_records(tx, env, [old.id for old, _ in pairs])
        for old, new in pairs:
            path = node_path(env, old)
            if new is old:  # a development node: its scan record goes, so the scan task runs again
                reqs_file(env, old.id).unlink(missing_ok=True)
            elif new.identity() != old.identity() and path.exists():
                tx.move_aside(path)  # the old version: back on failure, deleted on success
                install_marker(env, old.id).unlink(missing_ok=True)
            set_node(doc, new)
        manifest.save(env.pyproject_path, doc)
        news = [new for _, new in pairs]
        _run(env, [f"scan_requirements:{new.id}" for new in news], listener, workers=min(4, len(news)))
        # the nodes' packages move to the newest versions their new requirements allow
        from packaging.requirements import Requirement

        from comfydock.tasks.python import upgrade_options

        names = [Requirement(r).name for new in news for r in json.loads(reqs_file(env, new.id).read_text())["requirements"]]
        targets = ["lock_deps", "sync_venv"] + [f"install_script:{new.id}" for new in news if new.run_install_script]
        return _run(env, targets, listener, task_options=upgrade_options(names))


def list_nodes(env) -> list[dict]:
    rows = []
    for spec in env.tracked_nodes().values():
        info = spec.to_json()
        path = node_path(env, spec)
        info["present"] = path.is_dir()
        info["disabled"] = node_path(env, spec, ".disabled").is_dir() and not path.is_dir()
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
    owned = {s.directory for s in env.tracked_nodes().values()}
    return sorted(
        p.name
        for p in env.custom_nodes_dir.iterdir()
        if p.is_dir()
        and not p.name.startswith((".", "__"))
        and p.name not in owned
        and not p.name.endswith(".disabled")
        and not is_ignored(env, p.name)
    )


def referenced_cache_identities(ws) -> set[str]:
    """What every environment of the workspace records (a manifest that cannot be read stops a prune)."""
    from comfydock.errors import ComfydockError

    identities: set[str] = set()
    for name in ws.environment_names():
        env = Environment.open(ws, name)
        try:
            doc = env.manifest_data()
            tracked = tracked_nodes(doc)
        except ComfydockError as exc:
            raise ComfydockError(
                f"cannot read environment {name!r}'s manifest, so the cache entries it uses are unknown: {exc.message}",
                hint="fix or restore that manifest first; nothing was removed",
            ) from None
        identities |= {spec.identity() for spec in tracked.values() if spec.identity()}
    return identities


def prune_cache(ws, on_wait=None) -> list[dict]:
    """Remove node-cache entries that no environment's manifest references."""
    from comfydock.limits import ArchiveLimits
    from comfydock.nodes.cache import NodeCache

    return NodeCache(ws.node_cache_dir, ArchiveLimits.from_workspace(ws)).prune(referenced_cache_identities(ws))
