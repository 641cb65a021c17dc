"""Custom node tasks: fetch into the workspace cache, install into custom_nodes/, scan requirements."""

from __future__ import annotations

import time

from comfydock import nodes
from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json, read_json_state
from comfydock.nodes.cache import NodeCache, copy_content


def _cache(env) -> NodeCache:
    return NodeCache(env.workspace.node_cache_dir)


def _fetch(env, spec) -> None:
    cache = _cache(env)
    if cache.entry(spec.identity()).exists():
        return
    if spec.source == "registry":
        client = nodes.registry_client(env.workspace)

        def download(path):
            info = client.install_info(spec.registry_id, spec.version)
            client.download(info["downloadUrl"], path)

        meta = {"source": "registry", "id": spec.registry_id, "version": spec.version, "url": spec.url}
        cache.add_registry_zip(spec.identity(), download, meta)
    else:
        cache.add_git(spec.identity(), spec.url, spec.commit, {"source": "git", "id": spec.id, "ref": spec.ref})


def _recorded_identity(env, spec):
    identity = (read_json_state(nodes.install_marker(env, spec.id)) or {}).get("identity")
    return identity if isinstance(identity, str) else None


def _install(env, spec) -> None:
    path = env.custom_nodes_dir / spec.directory
    recorded = _recorded_identity(env, spec)
    if path.exists() or path.is_symlink():
        if recorded is None:
            raise nodes.NodeConflict(
                f"custom_nodes/{spec.directory} exists but was not installed by comfydock",
                hint=f"move it away, or track it as a development node: 'comfydock node add {spec.directory} --dev'",
            )
        if recorded != spec.identity():
            nodes.trash(env, path)  # the previous version comfydock installed; kept, not deleted
    if not path.exists():
        entry = _cache(env).entry(spec.identity())
        if not entry.exists():
            raise ComfydockError(f"{spec.id} is not in the node cache", hint="run the build again to fetch it")
        env.custom_nodes_dir.mkdir(parents=True, exist_ok=True)
        copy_content(entry, path)
    atomic_write_json(
        nodes.install_marker(env, spec.id),
        {"identity": spec.identity(), "directory": spec.directory, "installed_at": time.time()},
    )


def _installed(env, spec) -> bool:
    return (env.custom_nodes_dir / spec.directory).is_dir() and _recorded_identity(env, spec) == spec.identity()


def _scan(env, spec) -> dict:
    return nodes.apply_scan(env, spec)


def _scan_uptodate(task, values, env, spec) -> bool:
    # doit passes its magic arguments (task, values) first
    scanned = read_json_state(nodes.reqs_file(env, spec.id))  # derived: a damaged file is scanned again
    if scanned is None or not isinstance(scanned.get("requirements"), list):
        return False
    node_dir = env.custom_nodes_dir / spec.directory
    return node_dir.is_dir() and values.get("digest") == nodes.requirements_digest(node_dir)


def _tracked(env):
    return nodes.tracked_nodes(env).values()


def task_fetch_node(env):
    """Download a registry or git node into the workspace cache (skipped when already cached)."""
    for spec in _tracked(env):
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
    for spec in _tracked(env):
        if spec.source == "development":
            continue
        entry = _cache(env).entry(spec.identity())
        yield {
            "basename": "install_node",
            "name": spec.id,
            "task_dep": ["checkout_comfyui"],  # custom_nodes/ lives inside the checkout
            "file_dep": [entry.metadata_file],
            "targets": [nodes.install_marker(env, spec.id)],
            "uptodate": [(_installed, [env, spec])],
            "actions": [(_install, [env, spec])],
        }


def task_scan_requirements(env):
    """Read a node's requirements.txt / pyproject.toml into its [dependency-groups] entry."""
    for spec in _tracked(env):
        yield {
            "basename": "scan_requirements",
            "name": spec.id,
            "task_dep": [] if spec.source == "development" else [f"install_node:{spec.id}"],
            "targets": [nodes.reqs_file(env, spec.id)],
            "uptodate": [(_scan_uptodate, [env, spec])],
            "actions": [(_scan, [env, spec])],
        }


def scan_task_names(env) -> list[str]:
    return [f"scan_requirements:{spec.id}" for spec in _tracked(env)]
