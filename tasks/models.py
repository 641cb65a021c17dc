"""Model index task: the workspace index, brought up to date when the models directory changed."""

from __future__ import annotations

from comfydock import model_index


def _index(env):
    ws = env.workspace
    model_index.index_directory(ws.models_db, ws.models_dir)
    return {"snapshot": model_index.snapshot_digest(ws.models_dir)}


def _snapshot_unchanged(task, values, env):
    # doit passes its magic arguments (task, values) first, then ours
    ws = env.workspace
    if not ws.models_db.exists():
        return False
    return values.get("snapshot") == model_index.snapshot_digest(ws.models_dir)


def task_index_models(env):
    """Index the workspace's models directory (skipped when no file's path, size or mtime changed)."""
    ws = env.workspace
    if ws.models_dir is None or not ws.models_dir.is_dir():
        return
    yield {
        "basename": "index_models",
        "targets": [ws.models_db],
        "uptodate": [(_snapshot_unchanged, [env])],
        "actions": [(_index, [env])],
    }
