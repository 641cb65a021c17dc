"""Model index task: the workspace index, brought up to date when the models directory changed.

Its state is the workspace's: the index itself (models.db), and in it the record of what the
tree looked like when it was last indexed (model_index.index_is_current). So one environment's
build that indexed the models leaves the task up to date in every environment of the workspace."""

from __future__ import annotations

from comfydock import model_index


def _index(env) -> None:
    ws = env.workspace
    model_index.index_directory(ws.models_db, ws.models_dir)


def _index_current(env) -> bool:
    ws = env.workspace
    return model_index.index_is_current(ws.models_db, ws.models_dir)


def task_index_models(env):
    """Index the workspace's models directory (skipped when no directory of it changed since the last index)."""
    ws = env.workspace
    if ws.models_dir is None or not ws.models_dir.is_dir():
        return
    yield {
        "basename": "index_models",
        "targets": [ws.models_db],
        "uptodate": [(_index_current, [env])],
        "actions": [(_index, [env])],
    }
