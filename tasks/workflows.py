"""Workflow tasks: copy each workflow into .cec/, analyse the copy, resolve its models, and merge
the results into the manifest's workflow and required-model sections."""

from __future__ import annotations

import hashlib
import json

from comfydock import manifest
from comfydock.fsutil import atomic_write_bytes, atomic_write_json
from comfydock.workflows import tracking


def analysis_file(env, name: str):
    return env.state_dir / "analysis" / f"{tracking.task_key(name).replace('/', '__')}.json"


def resolved_file(env, name: str):
    return env.state_dir / "resolved" / f"{tracking.task_key(name).replace('/', '__')}.json"


def manifest_marker(env):
    return env.state_dir / "workflows-manifest.json"


# --- actions (module level, so doit can run them on threads) ---------------------------


def _copy(src, dst) -> None:
    atomic_write_bytes(dst, tracking.read_workflow(src))  # never through a link


def _copy_uptodate(src, dst) -> bool:
    # doit checks a target exists, not what it holds: a rollback or a restore rewrites copies
    try:
        return dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes()
    except OSError:
        return False


def _analyze(name, copy, target) -> None:
    from comfydock.workflows.analysis import WorkflowError, analyze_file

    try:
        data = {"name": name, "ok": True, "analysis": analyze_file(copy).to_json()}
    except WorkflowError as exc:  # named in the output; the copy is still versioned
        data = {"name": name, "ok": False, "error": exc.message}
    atomic_write_json(target, data)


def index_fingerprint(db_path) -> str:
    """Changes whenever the model index gains, loses or re-sees files or sources."""
    import sqlite3

    if not db_path.exists():
        return "no-index"
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute("SELECT count(*), coalesce(max(last_seen), 0) FROM model_locations").fetchone()
            sources = conn.execute("SELECT count(*) FROM model_sources").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return "unreadable-index"
    return f"{row[0]}:{row[1]}:{sources}"


def _choices_fingerprint(env, name) -> str:
    entry = manifest.workflow_entries(env.manifest_data()).get(name) or {}
    chosen = sorted(
        (str(n.get("node_id")), str(n.get("widget_idx")), str(n.get("filename")), h)
        for h, info in (entry.get("models") or {}).items()
        for n in info.get("nodes") or []
        if n.get("chosen")
    )
    skipped = sorted(
        str(r.get("node_id")) + "/" + str(r.get("filename")) for r in entry.get("unresolved") or [] if r.get("skipped")
    )
    return hashlib.sha1(json.dumps([chosen, skipped]).encode()).hexdigest()


def _fingerprint(env, name) -> str:
    return index_fingerprint(env.workspace.models_db) + "/" + _choices_fingerprint(env, name)


def _resolve(env, name, source, target) -> dict:
    from comfydock.workflows.analysis import ModelRef
    from comfydock.workflows.resolution import resolve_refs

    fingerprint = _fingerprint(env, name)
    data = json.loads(source.read_text())
    out = {"name": name, "ok": data.get("ok", False), "error": data.get("error"), "models": [], "comfyui_version": None}
    if out["ok"]:
        analysis = data["analysis"]
        entry = manifest.workflow_entries(env.manifest_data()).get(name)
        refs = [ModelRef(**m) for m in analysis.get("models", [])]
        out["models"] = [r.to_json() for r in resolve_refs(refs, env.workspace.models_db, entry)]
        out["comfyui_version"] = analysis.get("comfyui_version")
        _carry_user_marks(out["models"], entry)
    atomic_write_json(target, out)
    return {"fingerprint": fingerprint}


def _carry_user_marks(models: list[dict], entry: dict | None) -> None:
    """Keep 'chosen' (the user picked it) and 'skipped' (the user said skip) across re-resolution."""
    from comfydock.workflows.resolution import skipped_refs

    chosen = set()
    for h, info in ((entry or {}).get("models") or {}).items():
        for n in info.get("nodes") or []:
            if n.get("chosen"):
                chosen.add((str(n.get("node_id")), str(n.get("widget_idx")), n.get("filename"), h))
    skipped = skipped_refs(entry)
    for m in models:
        key = (m["node_id"], str(m["widget_index"]), m["filename"])
        if (*key, m.get("hash")) in chosen:
            m["how"] = "chosen"
        if m["status"] != "resolved" and key in skipped:
            m["skipped"] = True


def _resolve_uptodate(task, values, env, name) -> bool:
    return values.get("fingerprint") == _fingerprint(env, name)


def manifest_sections(env, names: list[str]) -> tuple[dict, dict]:
    """The [tool.comfydock.workflows.*] entries and [tool.comfydock.models.required] from the
    per-workflow resolution files."""
    from comfydock.workflows.resolution import expected_path

    entries: dict[str, dict] = {}
    required: dict[str, dict] = {}
    for name in sorted(names):
        entry: dict = {"path": f"workflows/{name}{tracking.SUFFIX}"}
        try:
            data = json.loads(resolved_file(env, name).read_text())
        except (OSError, ValueError):
            data = {"ok": False}
        if not data.get("ok"):
            entry["state"] = "unreadable"
            entries[name] = entry
            continue
        if data.get("comfyui_version"):
            entry["comfyui_version"] = data["comfyui_version"]
        models: dict[str, dict] = {}
        optional, unresolved = [], []
        for m in data.get("models", []):
            node = {"node_id": m["node_id"], "widget_idx": str(m["widget_index"]), "filename": m["filename"]}
            if m["status"] != "resolved":
                item = {**node, "directory": m.get("directory"), "status": m["status"]}
                if m.get("url"):
                    item["url"] = m["url"]
                if m.get("skipped"):
                    item["skipped"] = True
                (optional if m.get("optional") else unresolved).append({k: v for k, v in item.items() if v is not None})
                continue
            if m.get("how") == "chosen":
                node["chosen"] = True
            if m.get("optional"):
                node["optional"] = True
            models.setdefault(m["hash"], {"nodes": []})["nodes"].append(node)
            if not m.get("optional"):
                # a file outside its loader's folders is required where ComfyUI looks for it: an
                # import puts it there (this machine's status and export warn that it is misplaced)
                where = expected_path(m.get("directory"), m["filename"], m["relative_path"]) or m["relative_path"]
                req = required.setdefault(
                    m["hash"],
                    {
                        "filename": m["relative_path"].rsplit("/", 1)[-1],
                        "relative_path": where,
                        "hash": m["hash"],
                        "size": m["size"],
                    },
                )
                if m.get("url"):
                    req["urls"] = sorted({*req.get("urls", []), m["url"]})
        if models:
            entry["models"] = models
        if optional:
            entry["optional"] = optional
        if unresolved:
            entry["unresolved"] = unresolved
        entries[name] = entry
    return entries, required


def _update_manifest(env, names, marker) -> None:
    entries, required = manifest_sections(env, names)
    doc = env.manifest()
    if manifest.set_workflows(doc, entries, required):
        manifest.save(env.pyproject_path, doc)
    atomic_write_json(marker, {"workflows": entries, "required": required})


def _manifest_uptodate(env, marker) -> bool:
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    doc = env.manifest_data()
    return manifest.workflow_entries(doc) == recorded.get("workflows") and manifest.required_models(doc) == recorded.get(
        "required"
    )


# --- task creators -----------------------------------------------------------------------


def task_copy_workflow(env):
    """Copy a workflow from ComfyUI into .cec/workflows/ (skipped when unchanged)."""
    for name, path in sorted(tracking.comfyui_workflows(env).items()):
        yield {
            "basename": "copy_workflow",
            "name": tracking.task_key(name),
            "file_dep": [path],
            "targets": [tracking.copy_path(env, name)],
            "uptodate": [(_copy_uptodate, [path, tracking.copy_path(env, name)])],
            "actions": [(_copy, [path, tracking.copy_path(env, name)])],
        }


def task_analyze_workflow(env):
    """Read a workflow copy: its node types and model references (UI and API formats)."""
    for name in sorted(tracking.comfyui_workflows(env)):
        key = tracking.task_key(name)
        copy = tracking.copy_path(env, name)
        yield {
            "basename": "analyze_workflow",
            "name": key,
            "task_dep": [f"copy_workflow:{key}"],
            "file_dep": [copy],
            "targets": [analysis_file(env, name)],
            "actions": [(_analyze, [name, copy, analysis_file(env, name)])],
        }


def task_resolve_models(env):
    """Map a workflow's model references to files in the model index (never prompts); the
    index is brought up to date first (index_models), so a commit sees the models as they are."""
    models_dir = env.workspace.models_dir
    index_first = ["index_models"] if models_dir is not None and models_dir.is_dir() else []
    for name in sorted(tracking.comfyui_workflows(env)):
        key = tracking.task_key(name)
        yield {
            "basename": "resolve_models",
            "name": key,
            "task_dep": [f"analyze_workflow:{key}", *index_first],
            "file_dep": [analysis_file(env, name)],
            "targets": [resolved_file(env, name)],
            "uptodate": [(_resolve_uptodate, [env, name])],
            "actions": [(_resolve, [env, name, analysis_file(env, name), resolved_file(env, name)])],
        }


def task_update_manifest(env):
    """Write every workflow's resolution into pyproject.toml ([tool.comfydock.workflows.*], models.required)."""
    from doit.tools import config_changed

    names = sorted(tracking.comfyui_workflows(env))
    keys = [tracking.task_key(n) for n in names]
    yield {
        "basename": "update_manifest",
        "task_dep": [f"resolve_models:{k}" for k in keys],
        "file_dep": [resolved_file(env, n) for n in names],
        "targets": [manifest_marker(env)],
        "uptodate": [config_changed({"workflows": names}), (_manifest_uptodate, [env, manifest_marker(env)])],
        "actions": [(_update_manifest, [env, names, manifest_marker(env)])],
    }
