"""What `workflow show` and `status` say about one workflow: its state, node types and models."""

from __future__ import annotations

import json
from pathlib import Path

from comfydock import manifest
from comfydock.errors import ComfydockError
from comfydock.workflows import tracking


def core_types(env) -> tuple[set[str] | None, str | None]:
    """ComfyUI's own node types for this checkout, from the core_node_types task's file if it ran
    (else a static scan of the checkout); with how they were found."""
    types, origin = core_types_with_origin(env)
    return types, origin["method"]


def core_types_with_origin(env) -> tuple[set[str] | None, dict]:
    """core_types, with where they came from: {"method": "probe" | "static" | None, "reason": why
    a static scan stood in for asking ComfyUI (None for a probe)}."""
    from comfydock.workflows import node_types

    cached = env.state_dir / "core-node-types.json"
    try:
        data = json.loads(cached.read_text())
        method = data.get("method")
        reason = data.get("error") if method == "static" else None
        return set(data["types"]), {"method": method, "reason": reason if isinstance(reason, str) else None}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    try:
        types = node_types.static_core_types(env.comfyui_dir)
    except Exception:
        return None, {"method": None, "reason": None}
    return types, {"method": "static", "reason": "ComfyUI was not asked yet ('comfydock build core_node_types' asks it)"}


def _read_cache(path) -> dict:
    """A derived-state JSON object; missing or damaged is simply empty (it is rebuilt)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def installed_types(env) -> dict[str, str]:
    """Node type -> id of the installed custom node that provides it (static scan of each node,
    remembered per node version in .comfydock/ so status stays fast)."""
    from comfydock.fsutil import atomic_write_json
    from comfydock.workflows import node_types

    cache_file = env.state_dir / "installed-node-types.json"
    cache = _read_cache(cache_file)
    found: dict[str, str] = {}
    fresh = {}
    for node_id, spec in env.tracked_nodes().items():
        path = env.custom_nodes_dir / spec.directory
        if not path.is_dir():
            continue
        stamp = spec.identity() or f"dev:{path.stat().st_mtime_ns}"
        cached = cache.get(node_id)
        if isinstance(cached, dict) and cached.get("stamp") == stamp and isinstance(cached.get("types"), list):
            types = cached["types"]
        else:
            try:
                types = sorted(node_types.static_node_types(path))
            except Exception:
                types = []
        fresh[node_id] = {"stamp": stamp, "types": types}
        for t in types:
            found.setdefault(t, node_id)
    if fresh != cache:
        try:
            atomic_write_json(cache_file, fresh)
        except OSError:
            pass  # a read-only workspace: scan again next time
    return found


def node_map(env):
    from comfydock.workflows import node_types

    path = env.workspace.node_cache_dir / "node_mappings.json"
    try:
        return node_types.load_node_map(path) if path.exists() else None
    except Exception:
        return None


def classify(env, analysis, context: dict | None = None) -> list[dict]:
    """Each node type of an analysis with where it comes from (core, installed, missing, ...)."""
    from dataclasses import asdict

    from comfydock.workflows import node_types

    context = context if context is not None else {}
    if "core" not in context:
        context["core"], context["core_origin"] = core_types_with_origin(env)
        context["core_method"] = context["core_origin"]["method"]
        context["installed"] = installed_types(env)
        context["map"] = node_map(env)
        context["choices"] = manifest.node_type_choices(env.manifest_data())
    statuses = node_types.classify(
        analysis,
        context["core"] or set(),
        context["installed"],
        context["map"],
        env.info().get("comfyui_version"),
        context["choices"],
    )
    return [asdict(s) for s in statuses]


def describe_workflow(env, name: str, context: dict | None = None) -> dict:
    """The stable JSON of `workflow show` (documented in the README)."""
    from comfydock.workflows.analysis import WorkflowError, analyze_file
    from comfydock.workflows.resolution import resolve_refs, skipped_refs

    states = {s.name: s for s in tracking.workflow_states(env)}
    state = states.get(name) or states.get(name.removesuffix(tracking.SUFFIX))
    if state is None:
        known = ", ".join(sorted(states)) or "none"
        raise ComfydockError(f"no workflow named {name!r}", hint=f"workflows: {known} (see 'comfydock workflow list')")
    source = state.path or state.copy
    info: dict = {"name": state.name, "path": state.path, "state": state.state, "node_types": [], "models": []}
    try:
        analysis = analyze_file(source)
    except WorkflowError as exc:
        info["error"] = exc.message
        return info
    info["format"] = analysis.format
    info["comfyui_version"] = analysis.comfyui_version
    context = context if context is not None else {}
    try:
        info["node_types"] = classify(env, analysis, context)
        info["core_types"] = context.get("core_origin")  # {"method", "reason"}: a static scan says why
    except ImportError:
        info["node_types"] = [
            {"type": u.type, "provider": u.kind, "package": None, "candidates": []} for u in analysis.node_types
        ]
    entry = manifest.workflow_entries(env.manifest_data()).get(state.name)
    skipped = skipped_refs(entry)
    for r in resolve_refs(analysis.models, env.workspace.models_db, entry):
        info["models"].append(
            {
                "node_id": r.node_id,
                "node_type": r.node_type,
                "widget_index": r.widget_index,
                "filename": r.filename,
                "directory": r.directory,
                "url": r.url,
                "optional": r.optional,
                "status": r.status,
                "skipped": r.status != "resolved" and r.key() in skipped,  # the user answered 'skip'
                "hash": r.hash,
                "path": r.path,
                "relative_path": r.relative_path,
                # found outside the folders its loader searches: ComfyUI will not find it there
                "misplaced": r.expected_path is not None,
                "expected_path": r.expected_path,
                "candidates": [c.to_json() for c in r.candidates],
            }
        )
    return info


def _cached_analysis(env, path, blob: str, cache: dict):
    """The analysis of a workflow file, remembered by its content (git blob id)."""
    from comfydock.workflows.analysis import WorkflowAnalysis, WorkflowError, analyze_bytes

    hit = cache.get(blob)
    if isinstance(hit, dict):
        if "error" in hit:
            raise WorkflowError(hit["error"])
        try:
            return WorkflowAnalysis.from_json(hit)
        except Exception:
            pass
    try:
        analysis = analyze_bytes(path.read_bytes(), path.name)
    except WorkflowError as exc:
        cache[blob] = {"error": exc.message}
        raise
    cache[blob] = analysis.to_json()
    return analysis


def workflows_status(env, repo=None) -> dict:
    """For `status`: each workflow's state, model counts for changed ones, missing node packages
    (with the `comfydock node add` line) and the ComfyUI version workflows need."""
    from comfydock.fsutil import atomic_write_json
    from comfydock.workflows.analysis import WorkflowError
    from comfydock.workflows.resolution import open_index, resolve_refs, stored_choices

    cache_file = env.state_dir / "analysis-cache.json"
    cache = _read_cache(cache_file)
    on_disk = set(cache)
    used: dict = {}
    entries = manifest.workflow_entries(env.manifest_data())
    context: dict = {}
    rows, missing, newer, misplaced = [], {}, {}, {}
    index = None  # the model index: opened once, at the first workflow with model references
    try:
        for state in tracking.workflow_states(env, repo):
            row = {"name": state.name, "state": state.state}
            rows.append(row)
            if state.path is None:
                continue
            path = Path(state.path)
            data = path.read_bytes()
            blob = tracking.git_blob_id(data)
            try:
                analysis = _cached_analysis(env, path, blob, cache)
            except WorkflowError as exc:
                row["error"] = exc.message
                used[blob] = cache.get(blob)
                continue
            used[blob] = cache[blob]
            try:
                statuses = classify(env, analysis, context)
            except ImportError:
                statuses = []
            for st in statuses:
                if st["provider"] == "missing":
                    cand = (st.get("candidates") or [None])[0]
                    item = missing.setdefault(
                        st["type"],
                        {
                            "type": st["type"],
                            "package": cand["package"] if cand else None,
                            "command": f"comfydock node add {cand['package']}" if cand else None,
                            "reason": st.get("reason"),
                            "candidates": [c["package"] for c in st.get("candidates") or []],
                            "workflows": [],
                        },
                    )
                    item["workflows"].append(state.name)
                elif st["provider"] == "newer-comfyui":
                    newer[state.name] = st.get("needs_comfyui") or analysis.comfyui_version
            if not analysis.models:
                continue
            entry = entries.get(state.name)
            if index is None:
                try:
                    index = open_index(env.workspace.models_db)
                except ComfydockError as exc:  # a damaged index: said where the counts need it
                    index = exc
            if isinstance(index, ComfydockError):
                if state.state in ("new", "modified"):
                    raise index
                continue  # committed: its misplaced check waits for a readable index
            resolutions = resolve_refs(analysis.models, env.workspace.models_db, entry, index)
            # every workflow, committed too: a model moved where its loader does not look breaks it
            for r in resolutions:
                if r.expected_path is not None and not r.optional:
                    misplaced.setdefault(
                        (r.relative_path, r.expected_path),
                        {
                            "filename": r.filename,
                            "node_type": r.node_type,
                            "relative_path": r.relative_path,
                            "path": r.path,
                            "expected_path": r.expected_path,
                            "workflows": [],
                        },
                    )["workflows"].append(state.name)
            if state.state in ("new", "modified"):
                stored = stored_choices(entry)
                counts = {"resolved": 0, "unresolved": 0, "ambiguous": 0, "changed": 0, "optional": 0, "misplaced": 0}
                for r in resolutions:
                    if r.optional:
                        counts["optional"] += 1
                        continue
                    counts[r.status] += 1
                    counts["misplaced"] += r.expected_path is not None
                    if state.state == "modified" and stored.get(r.key()) != r.hash:
                        counts["changed"] += 1
                row["models"] = counts
    finally:
        if index is not None and not isinstance(index, ComfydockError):
            index.close()
    if set(used) != on_disk:  # entries are keyed by content: same keys, same entries
        try:
            atomic_write_json(cache_file, used)
        except OSError:
            pass
    return {
        "workflows": rows,
        "missing_nodes": sorted(missing.values(), key=lambda m: m["type"]),
        "needs_comfyui": newer,
        "misplaced_models": sorted(misplaced.values(), key=lambda m: (m["relative_path"], m["expected_path"])),
        "core_types_method": context.get("core_method"),
        "core_types_static_reason": (context.get("core_origin") or {}).get("reason"),  # why not asked of ComfyUI
    }
