"""Local history as operations: `commit` (capture the environment as version vN) and `rollback`
(apply an earlier version to the machine: manifest, lock, nodes, venv and workflows, all or nothing)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import partial

from comfydock import comfyui, engine, history, manifest
from comfydock.errors import ComfydockError
from comfydock.transaction import Transaction
from comfydock.workflows import tracking

WORKFLOW_TARGET = "update_manifest"


@dataclass
class CommitResult:
    version: str | None  # None: nothing changed
    message: str
    changes: dict = field(default_factory=dict)  # workflows/nodes/dependencies that changed
    unresolved: list[dict] = field(default_factory=list)  # model references left unresolved
    unreadable: list[str] = field(default_factory=list)  # workflows whose analysis failed
    build: dict | None = None
    missing_nodes: list[dict] = field(default_factory=list)  # node types no installed package provides
    skipped_links: list[str] = field(default_factory=list)  # workflows that are symbolic links: never followed
    node_map_error: str | None = None  # why the node map (which package provides a type) could not be had

    def to_json(self) -> dict:
        return asdict(self)


def _build(env, targets, listener):
    from comfydock import engine
    from comfydock.engine import build_failure

    report = engine.build(env, targets, listener=listener)
    if not report.ok:
        raise build_failure(report)
    return report


def _resolution_files(env) -> dict[str, dict]:
    from comfydock.tasks.workflows import resolved_file

    out = {}
    for name in tracking.comfyui_workflows(env):
        try:
            out[name] = json.loads(resolved_file(env, name).read_text())
        except (OSError, ValueError):
            pass
    return out


def pending_choices(env) -> list[tuple[str, dict]]:
    """(workflow, reference) pairs a user could decide: several candidates, required, not skipped.
    (A file that is nowhere in the index leaves nothing to choose: it is reported instead.)"""
    found = []
    for name, data in sorted(_resolution_files(env).items()):
        for m in data.get("models", []):
            if m["status"] == "ambiguous" and not m.get("optional") and not m.get("skipped"):
                found.append((name, m))
    return found


def record_choice(env, workflow: str, ref: dict, candidate: dict | None) -> None:
    """Store the user's answer for one reference in pyproject.toml (reused by later commits)."""
    doc = env.manifest()
    entries = manifest.workflow_entries(doc)
    required = manifest.required_models(doc)
    entry = entries.setdefault(workflow, {"path": f"workflows/{workflow}{tracking.SUFFIX}"})
    node = {"node_id": ref["node_id"], "widget_idx": str(ref["widget_index"]), "filename": ref["filename"]}
    unresolved = [
        r
        for r in entry.get("unresolved", [])
        if (r.get("node_id"), r.get("widget_idx"), r.get("filename")) != tuple(node.values())
    ]
    if candidate is None:
        unresolved.append({**node, "status": ref["status"], "skipped": True})
    else:
        models = entry.setdefault("models", {})
        models.setdefault(candidate["hash"], {"nodes": []})["nodes"].append({**node, "chosen": True})
    entry["unresolved"] = unresolved
    if not entry["unresolved"]:
        del entry["unresolved"]
    manifest.set_workflows(doc, entries, required)
    manifest.save(env.pyproject_path, doc)


def _prune_deleted_copies(env, tx: Transaction) -> list[str]:
    """Copies in .cec/workflows/ whose workflow is gone from ComfyUI: removed (history keeps them)."""
    current = tracking.comfyui_workflows(env)
    gone = []
    for name, copy in tracking.versioned_copies(env).items():
        if name not in current:
            copy.unlink()
            gone.append(name)
    return gone


def _default_message(changes: dict) -> str:
    parts = []
    wf = changes.get("workflows", {})
    for state in ("new", "modified", "deleted"):
        if wf.get(state):
            parts.append(f"{state} workflow{'s' if len(wf[state]) > 1 else ''} {', '.join(wf[state])}")
    nodes = changes.get("nodes", {})
    for what in ("added", "removed", "changed"):
        if nodes.get(what):
            parts.append(f"{what} node{'s' if len(nodes[what]) > 1 else ''} {', '.join(nodes[what])}")
    deps = changes.get("dependencies", {})
    if deps.get("added") or deps.get("removed"):
        parts.append("Python requirements changed")
    return ("; ".join(parts) or "Update environment")[:200]


def _changes(env, repo) -> dict:
    from comfydock.versioning import manifest_changes

    states = tracking.workflow_states(env, repo)
    by_state: dict[str, list[str]] = {}
    for s in states:
        if s.state != "committed":
            by_state.setdefault(s.state, []).append(s.name)
    return {"workflows": by_state, **manifest_changes(env, repo)}


def _ask_packages(env, repo, missing: list[dict], choose_package) -> bool:
    """Ask which package provides each node type several packages claim; store the answers."""
    asked = False
    choices = manifest.node_type_choices(env.manifest_data())
    for m in missing:
        if len(m.get("candidates") or []) > 1 and m["type"] not in choices:
            package = choose_package(m["type"], m["candidates"], m.get("reason"))
            if package:
                doc = env.manifest()
                manifest.set_node_type_choice(doc, m["type"], package)
                manifest.save(env.pyproject_path, doc)
                asked = True
    return asked


def commit_environment(
    env, message: str | None = None, *, choose=None, choose_package=None, listener=None, on_wait=None
) -> CommitResult:
    """Copy workflows into .cec/, analyse and resolve them, update the manifest, lock, commit vN.

    `choose(workflow, reference) -> candidate dict | None` is asked for each ambiguous or
    unresolved model reference when given (None: skip); without it nothing is asked. Any failure
    (Ctrl-C included) leaves .cec/ as it was."""
    with env.process_lock(on_wait):
        repo = history.open_repo(env.cec_dir)
        changes = _changes(env, repo)
        with env.transaction() as tx:
            for path in (env.pyproject_path, env.uv_lock_path):
                tx.save_file(path)
            tx.save_tree(env.cec_dir / "workflows")
            _prune_deleted_copies(env, tx)
            # one run: doit checks lock_deps only when it gets to it, after update_manifest wrote
            report = _build(env, ["core_node_types", WORKFLOW_TARGET, "lock_deps"], listener)
            if choose is not None:
                asked = False
                for workflow, ref in pending_choices(env):
                    record_choice(env, workflow, ref, choose(workflow, ref))
                    asked = True
                if asked:
                    report = _build(env, [WORKFLOW_TARGET, "lock_deps"], listener)
            files = _resolution_files(env)
            unresolved = [
                {
                    "workflow": name,
                    **{k: m.get(k) for k in ("node_id", "node_type", "filename", "directory", "status")},
                    "skipped": bool(m.get("skipped")),
                }
                for name, data in sorted(files.items())
                for m in data.get("models", [])
                if m["status"] != "resolved" and not m.get("optional")
            ]
            unreadable = sorted(name for name, data in files.items() if not data.get("ok"))
            linked = [f"user/default/workflows/{rel}" for rel in tracking.linked_workflows(env.workflows_dir)]
            has_head = repo.head.is_valid()
            before = repo.head.commit.hexsha if has_head else None
            tx.on_undo(partial(_unstage, repo), "the .cec index")  # before 'git add': no staged leftovers
            repo.git.add(A=True)
            missing, map_error = _missing_nodes(env, repo)
            if choose_package is not None and _ask_packages(env, repo, missing, choose_package):
                missing, map_error = _missing_nodes(env, repo)
                repo.git.add(A=True)
            if has_head and not repo.index.diff("HEAD"):
                last = history.versions(repo)
                return CommitResult(
                    None,
                    f"nothing changed since {last[0].version if last else 'the last commit'}",
                    {},
                    unresolved,
                    unreadable,
                    report.to_json(),
                    missing,
                    linked,
                    map_error,
                )
            text = message or _default_message(changes)
            tx.on_undo(partial(_undo_commit, repo, before, history.next_version(repo)), "the new version")
            version = history.commit_version(repo, text)
        return CommitResult(version.version, text, changes, unresolved, unreadable, report.to_json(), missing, linked, map_error)


def _missing_nodes(env, repo) -> tuple[list[dict], str | None]:
    """Node types no installed package provides, and why the node map could not be fetched (None:
    it could, or was not needed). The node map (cached, refreshed when expired) is fetched only
    when there are such types, and not again for an hour after a failed fetch (an offline machine
    must not wait on the network at every commit). Without it the types are still listed."""
    import time

    from comfydock.fsutil import atomic_write_json, read_json_state
    from comfydock.workflows.node_types import fetch_node_map
    from comfydock.workflows.report import workflows_status

    missing = workflows_status(env, repo)["missing_nodes"]
    if not missing:
        return missing, None
    failed = env.workspace.api_cache_dir / "node-map-failed.json"
    url = env.workspace.setting("node-map-url")
    last = read_json_state(failed) or {}
    try:
        if last.get("url") == url and time.time() - float(last.get("at", 0)) < 3600:
            return missing, None
    except (TypeError, ValueError):
        pass  # a damaged record: ask again
    try:
        fetch_node_map(env.workspace)
    except ComfydockError as exc:
        try:
            atomic_write_json(failed, {"url": url, "at": time.time()})
        except OSError:
            pass
        return missing, exc.message
    failed.unlink(missing_ok=True)
    return workflows_status(env, repo)["missing_nodes"], None


def _unstage(repo) -> None:
    if repo.head.is_valid():
        status, _out, _err = repo.git.execute(
            ["git", "diff", "--cached", "--quiet"], with_exceptions=False, with_extended_output=True, env={"GIT_OPTIONAL_LOCKS": "0"}
        )
        if status == 0:
            return  # nothing staged, nothing to undo (on a full disk 'git reset' could not even write the index)
        repo.git.reset("-q")
    else:  # no commit yet: nothing to compare the index with, empty it
        repo.git.rm("-r", "-q", "--cached", "--ignore-unmatch", ".")


def _undo_commit(repo, before: str | None, tag: str) -> None:
    """The undo step for `commit_version`, registered BEFORE it runs: deletes the new version's tag
    if it was made and moves the branch back to `before` if it moved (nothing when the commit
    never happened). The tag is the next version number: it did not exist before."""
    if repo.git.tag("--list", tag):
        repo.git.tag("-d", tag)
    head = repo.head.commit.hexsha if repo.head.is_valid() else None
    if head != before:
        if before is None:
            repo.git.update_ref("-d", "HEAD")
        else:
            repo.git.reset("--soft", before)


# --- rollback ----------------------------------------------------------------------------------


@dataclass
class RollbackResult:
    target: str
    commit: str
    nodes_removed: list[str] = field(default_factory=list)
    nodes_disabled: list[str] = field(default_factory=list)
    nodes_installed: list[str] = field(default_factory=list)
    nodes_enabled: list[str] = field(default_factory=list)
    dev_nodes: list[str] = field(default_factory=list)  # not versioned: their source stays as it is
    dev_nodes_missing: list[str] = field(default_factory=list)  # tracked, but no directory here (not in git)
    workflows_restored: list[str] = field(default_factory=list)
    workflows_removed: list[str] = field(default_factory=list)
    workflows_kept: list[str] = field(default_factory=list)  # never committed: kept in ComfyUI
    notes: list[str] = field(default_factory=list)
    build: dict | None = None
    comfyui: dict | None = None  # {"from", "to"} when ComfyUI's checkout moved

    def to_json(self) -> dict:
        return asdict(self)


def resolve_target(repo, target: str | None) -> str:
    """vN, a commit, HEAD~1 ... -> a commit id; an unknown target lists the versions."""
    ref = target or "HEAD"
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}")
    except Exception:
        versions = ", ".join(v.version for v in history.versions(repo)) or "none"
        raise ComfydockError(
            f"no version or commit {ref!r} in this environment", hint=f"versions: {versions} (see 'comfydock log')"
        ) from None


def _tree_files(repo, commit: str) -> set[str]:
    return set(repo.git.ls_tree("-r", "--name-only", "-z", commit).split("\0")) - {""}


def rollback_environment(env, target: str | None = None, *, listener=None, on_wait=None) -> RollbackResult:
    """Apply version `target` (default: the last commit, i.e. discard uncommitted changes) to
    .cec/, custom_nodes/, the venv and ComfyUI's workflows, as one step on the current branch."""
    with env.process_lock(on_wait):
        repo = history.open_repo(env.cec_dir)
        commit = resolve_target(repo, target)
        result = RollbackResult(target or "HEAD", commit)
        with env.transaction() as tx:
            apply_commit(env, repo, commit, tx, result, listener=listener)
        return result


def apply_commit(env, repo, commit: str, tx: Transaction, result: RollbackResult, *, listener=None) -> None:
    """Make the machine match `commit`'s tree: its .cec/ files (left unstaged on the current
    branch), ComfyUI's checkout, custom nodes, the venv and ComfyUI's workflows. Every step is
    recorded in `tx`, so the caller's failure (or this one's) puts it all back. Used by rollback
    and by pull (which then moves the branch in the same transaction)."""
    from comfydock.nodes import spec as node_ops
    from comfydock.nodes.spec import tracked_nodes

    try:
        new_doc = manifest.parse(repo.git.show(f"{commit}:pyproject.toml"))
    except Exception as exc:
        raise ComfydockError(f"version {result.target} has no readable pyproject.toml ({exc})") from None
    try:
        new_nodes = tracked_nodes(new_doc)  # the arriving manifest's node names and directories, checked
    except ComfydockError as exc:
        raise ComfydockError(
            f"version {result.target} refused: {exc.message}", hint="nothing was changed; roll back to another version (see 'comfydock log')"
        ) from None
    old_nodes = _current_nodes(env, repo, result)
    head_files = _tree_files(repo, "HEAD") if repo.head.is_valid() else set()
    target_files = _tree_files(repo, commit)

    tx.save_tree(env.workflows_dir)  # first: a workflows folder it cannot keep is refused before any change
    tx.on_undo(partial(engine.resync_venv, env, engine.venv_stamp(env)), "the venv")  # undone last: after the files it syncs to
    # 1. the target's .cec/ files, as uncommitted changes on the current branch
    present = set(repo.git.ls_files("-z", "--cached", "--others", "--exclude-standard").split("\0")) - {""}
    for rel in sorted(present | target_files):
        tx.save_file(env.cec_dir / rel)
    for rel in sorted(present - target_files):
        (env.cec_dir / rel).unlink(missing_ok=True)
    tx.on_undo(partial(_unstage, repo), "the .cec index")  # 'git checkout' stages what it writes
    repo.git.checkout(commit, "--", ".")
    repo.git.reset("-q")  # leave them unstaged, like any edit

    # ComfyUI itself, when the target recorded another commit of it
    wanted = manifest.environment_info(new_doc).get("comfyui_commit")
    current = comfyui.head_commit(env.comfyui_dir)
    if wanted and current and wanted != current:
        mirror = comfyui.mirror_with(env.workspace, wanted)
        tx.on_undo(comfyui.undo_checkout(mirror, env.comfyui_dir, current), "ComfyUI's checkout")
        comfyui.checkout_commit(mirror, env.comfyui_dir, wanted)
        result.comfyui = {"from": current, "to": wanted}

    # 2. nodes, knowing both states
    for node_id, spec in sorted(old_nodes.items()):
        path = env.custom_nodes_dir / spec.directory
        new = new_nodes.get(node_id)
        for state_file in (node_ops.install_marker(env, node_id), node_ops.reqs_file(env, node_id)):
            tx.save_file(state_file)
        if new is not None and new.identity() == spec.identity() and new.source == spec.source:
            continue
        if spec.source == "development":
            if new is None and path.is_dir():
                disabled = env.custom_nodes_dir / f"{spec.directory}.disabled"
                if disabled.exists():
                    raise ComfydockError(
                        f"custom_nodes/{disabled.name} already exists",
                        hint="move or delete the old .disabled copy first, then roll back again",
                    )
                tx.move(path, disabled)
                result.nodes_disabled.append(node_id)
            continue
        if path.exists() or path.is_symlink():
            tx.move_aside(path)  # deleted when the rollback succeeds
        node_ops.install_marker(env, node_id).unlink(missing_ok=True)
        node_ops.reqs_file(env, node_id).unlink(missing_ok=True)
        if new is None:
            result.nodes_removed.append(node_id)
    targets = []
    for node_id, spec in sorted(new_nodes.items()):
        if spec.source == "development":
            result.dev_nodes.append(node_id)
            path = env.custom_nodes_dir / spec.directory
            disabled = env.custom_nodes_dir / f"{spec.directory}.disabled"
            if not path.exists() and disabled.is_dir():
                tx.move(disabled, path)
                result.nodes_enabled.append(node_id)
            continue
        tx.save_file(node_ops.install_marker(env, node_id))
        targets.append(f"install_node:{node_id}")
        old = old_nodes.get(node_id)
        if old is None or old.identity() != spec.identity():
            result.nodes_installed.append(node_id)
            tx.created(env.custom_nodes_dir / spec.directory)

    # 3. the venv, to the restored lock (and restored nodes' requirements)
    result.dev_nodes_missing = [n for n in result.dev_nodes if not (env.custom_nodes_dir / new_nodes[n].directory).is_dir()]
    if not result.dev_nodes_missing:
        result.build = _build(env, targets + ["sync_venv"], listener).to_json()
    else:  # like create --from: the lock cannot be checked without their source; the venv gets what uv.lock says
        _sync_without_lock_check(env, targets, result, listener)

    # 4. workflows back into ComfyUI (saved at the start)
    copies = tracking.versioned_copies(env)
    current = tracking.comfyui_workflows(env)
    head_workflows = {tracking.workflow_name(f[len("workflows/") :]) for f in head_files if f.startswith("workflows/")}
    for name, copy in sorted(copies.items()):
        dest = env.workflows_dir / f"{name}{tracking.SUFFIX}"
        if not dest.exists() or dest.read_bytes() != copy.read_bytes():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(copy.read_bytes())
            result.workflows_restored.append(name)
    for name, path in sorted(current.items()):
        if name in copies:
            continue
        if name in head_workflows:
            path.unlink()  # committed before, not in the target: history keeps it
            result.workflows_removed.append(name)
        else:
            result.workflows_kept.append(name)


def _current_nodes(env, repo, result: RollbackResult) -> dict:
    """The nodes the machine has now: the manifest's; from a damaged manifest (an uncommitted change
    that the rollback discards) the last version's, since nothing else says which nodes it listed."""
    from comfydock.errors import CorruptFile
    from comfydock.nodes.spec import tracked_nodes

    try:
        return env.tracked_nodes()
    except CorruptFile as exc:
        try:
            committed = manifest.parse(repo.git.show("HEAD:pyproject.toml")) if repo.head.is_valid() else {}
            nodes = tracked_nodes(committed)
        except Exception:  # nothing readable to go by: the target's nodes are installed as they are
            nodes = {}
        result.notes.append(f"discarded a damaged pyproject.toml ({exc.message})")
        return nodes


def _sync_without_lock_check(env, targets: list[str], result: RollbackResult, listener) -> None:
    from comfydock import uv_runner
    from comfydock.tasks.python import lock_coherent, machine_backend_in_manifest

    if targets:
        result.build = _build(env, targets, listener).to_json()
    if not machine_backend_in_manifest(env):
        lock_coherent(env)  # this machine's torch extra, as a build would add it
    extra = env.torch_extra()
    uv_runner.uv_sync(env.workspace, env.cec_dir, env.venv_dir, extra)
    env.record_venv_synced(extra)
    from comfydock import torch_probe

    torch_probe.after_sync(env)  # the family's import result, as sync_venv records it


def resolve_workflow_models(env, workflow: str, *, choose=None, listener=None, on_wait=None) -> list[dict]:
    """`comfydock models resolve WORKFLOW`: resolve now, ask where unclear, store the answers.
    References skipped at a commit are asked again here (the reference keeps 'skipped': True, so
    the question can say so): this is where a skip is changed."""
    from comfydock.tasks.workflows import resolved_file
    from comfydock.workflows.report import describe_workflow

    name = describe_workflow(env, workflow)["name"]
    key = tracking.task_key(name)
    with env.process_lock(on_wait):
        _build(env, [f"resolve_models:{key}"], listener)
        data = json.loads(resolved_file(env, name).read_text())
        if choose is not None:
            for ref in data.get("models", []):
                if ref["status"] == "ambiguous":
                    record_choice(env, name, ref, choose(name, ref))
            _build(env, [WORKFLOW_TARGET], listener)
        data = json.loads(resolved_file(env, name).read_text())
    return data.get("models", [])


def uncommitted(env, include_new: bool = True) -> list[str]:
    """What a rollback would discard: changed .cec/ files and workflows changed in ComfyUI."""
    repo = history.open_repo(env.cec_dir)
    found = [line[3:] for line in repo.git.status("--porcelain").splitlines()]
    # include_new=False: what rollback would discard (it keeps never-committed workflows)
    states = ("modified", "deleted", "new") if include_new else ("modified", "deleted")
    found += [f"workflow {s.name} ({s.state})" for s in tracking.workflow_states(env, repo) if s.state in states]
    return found


def manifest_changes(env, repo) -> dict:
    """Python requirements and custom nodes changed since the last version (HEAD)."""
    dep_changes = {"added": [], "removed": []}
    node_changes = {"added": [], "removed": [], "changed": []}
    try:
        import tomllib

        committed = tomllib.loads(repo.git.show("HEAD:pyproject.toml"))
    except Exception:  # no commit yet, or an unreadable committed file: nothing to compare
        committed = None
    if committed is not None:
        from comfydock.nodes.spec import tracked_nodes
        from comfydock.pydeps import dependency_snapshot

        current = env.manifest_data()
        before, after = dependency_snapshot(committed), dependency_snapshot(current)
        dep_changes = {"added": sorted(after - before), "removed": sorted(before - after)}
        old_nodes, new_nodes = tracked_nodes(committed), tracked_nodes(current)
        node_changes = {
            "added": sorted(set(new_nodes) - set(old_nodes)),
            "removed": sorted(set(old_nodes) - set(new_nodes)),
            "changed": sorted(n for n in set(old_nodes) & set(new_nodes) if old_nodes[n] != new_nodes[n]),
        }
    return {"dependencies": dep_changes, "nodes": node_changes}
