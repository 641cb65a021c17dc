"""What `workflow show` and `status` say about one workflow: its state, node types and models."""

from __future__ import annotations

import json

from comfydock import manifest
from comfydock.errors import UsageError
from comfydock.workflows import tracking


def core_types(env) -> tuple[set[str] | None, str | None]:
    """ComfyUI's own node types for this checkout, from the core_node_types task's file if it ran
    (else a static scan of the checkout); with how they were found."""
    from comfydock.workflows import node_types

    cached = env.state_dir / "core-node-types.json"
    try:
        data = json.loads(cached.read_text())
        return set(data["types"]), data.get("method")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return node_types.static_core_types(env.comfyui_dir), "static"
    except Exception:
        return None, None


def installed_types(env) -> dict[str, str]:
    """Node type -> id of the installed custom node that provides it (static scan of each node)."""
    from comfydock.nodes import manifest_nodes
    from comfydock.workflows import node_types

    found: dict[str, str] = {}
    for node_id, spec in manifest_nodes(env.manifest()).items():
        path = env.custom_nodes_dir / spec.directory
        if path.is_dir():
            try:
                for t in node_types.static_node_types(path):
                    found.setdefault(t, node_id)
            except Exception:
                continue
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
        context["core"], context["core_method"] = core_types(env)
        context["installed"] = installed_types(env)
        context["map"] = node_map(env)
        context["choices"] = manifest.node_type_choices(env.manifest())
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
    from comfydock.workflows.resolution import resolve_refs

    states = {s.name: s for s in tracking.workflow_states(env)}
    state = states.get(name) or states.get(name.removesuffix(tracking.SUFFIX))
    if state is None:
        known = ", ".join(sorted(states)) or "none"
        raise UsageError(f"no workflow named {name!r}", hint=f"workflows: {known} (see 'comfydock workflow list')")
    source = state.path or state.copy
    info: dict = {"name": state.name, "path": state.path, "state": state.state, "node_types": [], "models": []}
    try:
        analysis = analyze_file(source)
    except WorkflowError as exc:
        info["error"] = exc.message
        return info
    info["format"] = analysis.format
    info["comfyui_version"] = analysis.comfyui_version
    try:
        info["node_types"] = classify(env, analysis, context)
    except ImportError:
        info["node_types"] = [
            {"type": u.type, "provider": u.kind, "package": None, "candidates": []} for u in analysis.node_types
        ]
    entry = manifest.workflow_entries(env.manifest()).get(state.name)
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
                "hash": r.hash,
                "path": r.path,
                "candidates": [c.to_json() for c in r.candidates],
            }
        )
    return info
