"""Undeclared imports of an environment: what ComfyUI's and each custom node's code imports that
neither its tree, the venv's standard library nor any installed distribution provides
(`status`, `node check`), and filling ComfyUI's own gaps into `comfyui-core` (create,
`comfyui update`). The scan (comfydock.import_scan) is cached per tree in
`.comfydock/undeclared-imports.json`, keyed by each tree's .py files (path, size, mtime), the
venv's Python and its site-packages directory.
"""

from __future__ import annotations

import json
import os
import subprocess

from comfydock import import_scan, manifest, uv_runner
from comfydock.fsutil import atomic_write_json, read_json_state
from comfydock.import_scan import Provided, TreeScan, UndeclaredImport

CACHE_FILE = "undeclared-imports.json"
CORE_OWNER = "comfyui"


def _cache_path(env):
    return env.state_dir / CACHE_FILE


def _stdlib_names(env, cache: dict) -> set[str] | None:
    """sys.stdlib_module_names of the venv's Python (asked once per interpreter version)."""
    key = f"{env.python}|{uv_runner.venv_python_version(env.venv_dir)}"
    hit = cache.get("stdlib")
    if isinstance(hit, dict) and hit.get("key") == key and isinstance(hit.get("names"), list):
        return set(hit["names"])
    try:
        proc = subprocess.run(
            [str(env.python), "-I", "-c", "import sys, json; print(json.dumps(sorted(sys.stdlib_module_names)))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        names = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        names = None
    if not isinstance(names, list):  # a Python before 3.10, or none: nothing can be said
        return None
    cache["stdlib"] = {"key": key, "names": names}
    return set(names)


def _provided(env, cache: dict) -> Provided:
    """What site-packages provides; listed again whenever the directory changed (an install or
    removal adds or removes entries there, which changes its mtime)."""
    site = uv_runner.site_packages(env.venv_dir)
    try:
        key = f"{site}|{site.stat().st_mtime_ns}" if site else None
    except OSError:
        key = None
    hit = cache.get("provided")
    if key and isinstance(hit, dict) and hit.get("key") == key:
        found = Provided.from_json(hit.get("modules"))
        if found is not None:
            return found
    found = import_scan.installed_modules(site)
    cache["provided"] = {"key": key, "modules": found.to_json()}
    return found


def _tree_scan(root, name: str, cache: dict, extra_skip=frozenset()) -> TreeScan:
    trees = cache.setdefault("trees", {})
    stamp = import_scan.tree_stamp(root, extra_skip=extra_skip)
    hit = trees.get(name)
    if isinstance(hit, dict) and hit.get("stamp") == stamp:
        scan = TreeScan.from_json(hit.get("scan"))
        if scan is not None:
            return scan
    scan = import_scan.scan_imports(root, extra_skip=extra_skip)
    trees[name] = {"stamp": stamp, "scan": scan.to_json()}
    return scan


def _top_level_names(directory) -> set[str]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return set()
    names = set()
    for entry in entries:
        if entry.name.endswith(".py"):
            names.add(entry.name[:-3])
        elif entry.name.isidentifier():
            names.add(entry.name)
    return names


def find_undeclared(env, node_ids: list[str] | None = None, *, comfyui: bool = True) -> dict | None:
    """{"comfyui": [UndeclaredImport], "nodes": {node id: [UndeclaredImport]}} for ComfyUI (when
    `comfyui`) and the tracked nodes (or those named), or None when the venv cannot tell (none,
    or not synced to uv.lock: the difference would be a pending build)."""
    if not env.venv_in_sync() or not (env.comfyui_dir / "main.py").is_file():
        return None
    path = _cache_path(env)
    cache = read_json_state(path) or {}
    before = json.dumps(cache, sort_keys=True)
    stdlib = _stdlib_names(env, cache)
    if stdlib is None:
        return None
    provided = _provided(env, cache)
    comfyui_names = _top_level_names(env.comfyui_dir)
    result: dict = {"comfyui": [], "nodes": {}}
    if comfyui:
        scan = _tree_scan(env.comfyui_dir, CORE_OWNER, cache, import_scan.COMFYUI_SKIPPED_DIRS)
        result["comfyui"] = import_scan.missing_imports(scan, stdlib=stdlib, provided=provided)
    tracked = env.tracked_nodes()
    specs = [tracked[n] for n in node_ids if n in tracked] if node_ids is not None else list(tracked.values())
    node_dirs = _top_level_names(env.custom_nodes_dir)  # a node may import another by its directory
    for spec in sorted(specs, key=lambda s: s.id.lower()):
        root = env.custom_nodes_dir / spec.directory
        if not root.is_dir() or root.is_symlink():
            continue
        scan = _tree_scan(root, f"node:{spec.directory}", cache)
        result["nodes"][spec.id] = import_scan.missing_imports(
            scan, stdlib=stdlib, provided=provided, also_own=comfyui_names | node_dirs
        )
    live = {CORE_OWNER, *(f"node:{s.directory}" for s in tracked.values())}
    cache["trees"] = {k: v for k, v in cache.get("trees", {}).items() if k in live}
    if json.dumps(cache, sort_keys=True) != before:
        try:
            atomic_write_json(path, cache)
        except OSError:  # a read-only environment: the scan is simply not kept
            pass
    return result


def node_fix(spec, found: list[UndeclaredImport]) -> str:
    return f"comfydock py add {' '.join(sorted({u.package for u in found}))} --group {spec.group}"


def comfyui_fix(env) -> str:
    """'comfyui update' to the version it is at fills ComfyUI's gaps (comfyui_update._fill_only)."""
    info = env.info()
    return f"comfydock comfyui update {info.get('comfyui_version') or info.get('comfyui_commit') or ''}".strip()


def undeclared_imports_status(env) -> dict:
    """status' `undeclared_imports`: checked (False: no synced venv to tell), and one entry per
    owner (ComfyUI or a node) with its findings and the command that adds the packages."""
    found = find_undeclared(env)
    if found is None:
        return {"checked": False, "owners": []}
    owners = []
    if found["comfyui"]:
        owners.append(
            {"owner": CORE_OWNER, "id": None, "imports": [u.to_json() for u in found["comfyui"]], "fix": comfyui_fix(env)}
        )
    tracked = env.tracked_nodes()
    for node_id, imports in found["nodes"].items():
        if imports:
            spec = tracked[node_id]
            owners.append(
                {"owner": "node", "id": node_id, "imports": [u.to_json() for u in imports], "fix": node_fix(spec, imports)}
            )
    return {"checked": True, "owners": owners}


def add_undeclared_imports(env, rows: list[dict]) -> list[dict]:
    """node check: each row gains `undeclared_imports` (list) and `undeclared_fix` (a command or None)."""
    found = find_undeclared(env, [r["id"] for r in rows], comfyui=False)
    tracked = env.tracked_nodes()
    for row in rows:
        imports = (found or {}).get("nodes", {}).get(row["id"], [])
        row["undeclared_imports"] = [u.to_json() for u in imports]
        row["undeclared_fix"] = node_fix(tracked[row["id"]], imports) if imports else None
    return rows


# --- ComfyUI's own gaps, filled into comfyui-core --------------------------------------------------


def comfyui_gap_reason(env, gap: UndeclaredImport) -> str:
    version = env.info().get("comfyui_version") or "this version"
    return f"{gap.module}: imported by {gap.where}, not declared by ComfyUI {version}"


def fill_comfyui_gaps(env, *, listener=None) -> dict:
    """After a sync: add what ComfyUI's code imports and nothing provides to `comfyui-core`, each
    with its reason in [tool.comfydock.requirement-reasons], then lock and sync. Runs inside the
    caller's Transaction (create's, comfyui update's), which puts everything back on failure.
    A package uv cannot lock (a guessed name that is not on the index) is left out and named:
    {"added": [{module, package, where, reason}], "failed": message or None}."""
    from comfydock import engine, pydeps
    from comfydock.engine import build_failure
    from comfydock.errors import ComfydockError

    found = find_undeclared(env, [], comfyui=True)
    gaps = (found or {}).get("comfyui", [])
    if not gaps:
        return {"added": [], "failed": None}
    saved = {p: p.read_bytes() for p in (env.pyproject_path, env.uv_lock_path) if p.exists()}
    doc = env.manifest()
    core = pydeps.core_requirement_array(doc)
    added = []
    for gap in gaps:
        if gap.package not in [str(x) for x in core]:
            core.append(gap.package)
        reason = comfyui_gap_reason(env, gap)
        manifest.set_requirement_reason(doc, pydeps.CORE_GROUP, gap.package, reason)
        added.append(gap.to_json() | {"reason": reason})
    core.multiline(True)
    manifest.save(env.pyproject_path, doc)
    try:
        report = engine.build(env, ["lock_deps", "sync_venv"], listener=listener)
        if not report.ok:
            raise build_failure(report)
    except ComfydockError as exc:
        for p, data in saved.items():  # back to what ComfyUI declares: the environment still builds
            p.write_bytes(data)
        report = engine.build(env, ["lock_deps", "sync_venv"], listener=listener)
        if not report.ok:
            raise build_failure(report) from None
        return {"added": [], "failed": f"could not add {', '.join(g.package for g in gaps)} for ComfyUI's imports: {exc}"}
    return {"added": added, "failed": None}


def drop_comfyui_fills(doc) -> None:
    """comfyui update: the previous version's fills go with its requirements (filled again after
    the sync if the new version still needs them)."""
    for package in manifest.requirement_reasons(doc, "comfyui-core"):
        manifest.set_requirement_reason(doc, "comfyui-core", package, None)
