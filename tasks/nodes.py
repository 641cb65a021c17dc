"""Custom node tasks: fetch into the workspace cache, install into custom_nodes/, scan requirements,
run a node's install script (when the manifest says so)."""

from __future__ import annotations

import json
import subprocess
import time

from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json, read_json_state
from comfydock.limits import ArchiveLimits
from comfydock.nodes.cache import NodeCache, copy_content
from comfydock.nodes.resolve import registry_client
from comfydock.nodes.safety import NodeConflict, matches_recorded, trash
from comfydock.nodes.scan import apply_scan, requirements_digest
from comfydock.nodes.spec import install_marker, install_script_of, node_path, reqs_file, script_record

INSTALL_SCRIPT_TIMEOUT = 1800  # seconds


def _cache(env) -> NodeCache:
    return NodeCache(env.workspace.node_cache_dir, ArchiveLimits.from_workspace(env.workspace))


def _fetch(env, spec) -> None:
    cache = _cache(env)
    if cache.entry(spec.identity()).exists():
        return
    if spec.source == "registry":
        client = registry_client(env.workspace)

        def download(path):
            info = client.install_info(spec.registry_id, spec.version)
            client.download(info["downloadUrl"], path)

        meta = {"source": "registry", "id": spec.registry_id, "version": spec.version, "url": spec.url}
        cache.add_registry_zip(spec.identity(), download, meta)
    else:
        cache.add_git(spec.identity(), spec.url, spec.commit, {"source": "git", "id": spec.id, "ref": spec.ref})


def _marker(env, spec) -> dict:
    try:
        data = json.loads(install_marker(env, spec.id).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # derived state: a damaged marker is a missing one


def _recorded_identity(env, spec):
    return _marker(env, spec).get("identity")


def _install(env, spec) -> None:
    path = node_path(env, spec)
    recorded = _recorded_identity(env, spec)
    if path.exists() or path.is_symlink():
        if recorded is None and matches_recorded(env, spec):
            recorded = spec.identity()  # exactly the recorded node, marker lost (.comfydock/ deleted): adopt it
        if recorded is None:
            raise NodeConflict(
                f"custom_nodes/{spec.directory} exists but was not installed by comfydock",
                hint=f"move it away, or track it as a development node: 'comfydock node add {spec.directory} --dev'",
            )
        if recorded != spec.identity():
            trash(env, path)  # the previous version comfydock installed; kept, not deleted
    if not path.exists():
        entry = _cache(env).entry(spec.identity())
        if not entry.exists():
            raise ComfydockError(f"{spec.id} is not in the node cache", hint="run the build again to fetch it")
        env.custom_nodes_dir.mkdir(parents=True, exist_ok=True)
        copy_content(entry, path)
    atomic_write_json(
        install_marker(env, spec.id),
        {"identity": spec.identity(), "directory": spec.directory, "installed_at": time.time()},
    )


def _installed(env, spec) -> bool:
    return node_path(env, spec).is_dir() and _recorded_identity(env, spec) == spec.identity()


def _run_install_script(env, spec) -> None:
    script = install_script_of(env, spec)
    if script is not None:
        if not env.python.exists():
            raise ComfydockError(f"environment {env.name!r} has no venv to run {spec.id}'s install script in")
        try:
            proc = subprocess.run(
                [str(env.python), script.name],
                cwd=script.parent,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=INSTALL_SCRIPT_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise ComfydockError(
                f"{spec.id}'s install script ran longer than {INSTALL_SCRIPT_TIMEOUT} s and was stopped"
            ) from None
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
            raise ComfydockError(
                f"{spec.id}'s install script ({script.name}) failed with exit code {proc.returncode}: "
                f"{lines[-1].strip() if lines else 'no output'}",
                hint=f"run it yourself to see everything: cd {script.parent} && {env.python} {script.name}",
            )
    atomic_write_json(
        script_record(env, spec.id),
        {"identity": spec.identity(), "installed_at": _marker(env, spec).get("installed_at"), "ran": script is not None},
    )


def _script_uptodate(env, spec) -> bool:
    try:
        record = json.loads(script_record(env, spec.id).read_text())
    except (OSError, ValueError):
        return False
    marker = _marker(env, spec)
    return (
        isinstance(record, dict)
        and record.get("identity") == spec.identity()
        and record.get("installed_at") == marker.get("installed_at")
        and node_path(env, spec).is_dir()
    )


def _scan(env, spec) -> dict:
    return apply_scan(env, spec)


def _scan_uptodate(task, values, env, spec) -> bool:
    # doit passes its magic arguments (task, values) first
    scanned = read_json_state(reqs_file(env, spec.id))  # derived: a damaged file is scanned again
    if scanned is None or not isinstance(scanned.get("requirements"), list):
        return False
    node_dir = node_path(env, spec)
    return node_dir.is_dir() and values.get("digest") == requirements_digest(node_dir)


def task_fetch_node(env):
    """Download a registry or git node into the workspace cache (skipped when already cached)."""
    for spec in env.tracked_nodes().values():
        if spec.source == "development":
            continue
        entry = _cache(env).entry(spec.identity())
        yield {
            "basename": "fetch_node",
            "name": spec.id,
            "targets": [entry.metadata_file],
            "uptodate": [entry.exists],
            "actions": [(_fetch, [env, spec])],
        }


def task_install_node(env):
    """Copy a cached node into custom_nodes/ (skipped when that version is already there)."""
    for spec in env.tracked_nodes().values():
        if spec.source == "development":
            continue
        entry = _cache(env).entry(spec.identity())
        yield {
            "basename": "install_node",
            "name": spec.id,
            "task_dep": ["checkout_comfyui"],  # custom_nodes/ lives inside the checkout
            "file_dep": [entry.metadata_file],
            "targets": [install_marker(env, spec.id)],
            "uptodate": [(_installed, [env, spec])],
            "actions": [(_install, [env, spec])],
        }


def task_scan_requirements(env):
    """Read a node's requirements.txt / pyproject.toml into its [dependency-groups] entry."""
    for spec in env.tracked_nodes().values():
        yield {
            "basename": "scan_requirements",
            "name": spec.id,
            "task_dep": [] if spec.source == "development" else [f"install_node:{spec.id}"],
            "targets": [reqs_file(env, spec.id)],
            "uptodate": [(_scan_uptodate, [env, spec])],
            "actions": [(_scan, [env, spec])],
        }


def task_install_script(env):
    """Run a node's install.py with the venv's Python in its directory (only for nodes added with
    --run-install-script), after the venv is synced; again whenever the node is reinstalled."""
    for spec in env.tracked_nodes().values():
        if spec.source == "development" or not spec.run_install_script:
            continue
        yield {
            "basename": "install_script",
            "name": spec.id,
            "task_dep": [f"install_node:{spec.id}", "sync_venv"],
            "targets": [script_record(env, spec.id)],
            "uptodate": [(_script_uptodate, [env, spec])],
            "actions": [(_run_install_script, [env, spec])],
        }


def install_script_task_names(env) -> list[str]:
    return [f"install_script:{s.id}" for s in env.tracked_nodes().values() if s.source != "development" and s.run_install_script]


def scan_task_names(env) -> list[str]:
    return [f"scan_requirements:{spec.id}" for spec in env.tracked_nodes().values()]
