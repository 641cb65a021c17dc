"""Core node types task: which node types the environment's ComfyUI provides, once per ComfyUI commit."""

from __future__ import annotations

import json

from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json
from comfydock.workflows import node_types


def core_types_file(env):
    return env.state_dir / "core-node-types.json"


def _comfyui_commit(env) -> str | None:
    from comfydock.gitutil import git

    try:
        return git().Repo(env.comfyui_dir).head.commit.hexsha
    except Exception:  # no checkout, not a git repo, a broken HEAD: nothing to key the cache on
        return None


def _venv_stamp(env) -> float | None:
    try:
        return env.venv_marker.stat().st_mtime
    except OSError:
        return None


def compute_core_types(env) -> dict:
    """Ask the environment's ComfyUI (imported as main.py does, --cpu where there is no GPU); when
    it cannot answer (no torch yet), read its source and record why (shown by status and workflow show)."""
    from comfydock.comfyui_check import with_cpu

    record = {"comfyui_commit": _comfyui_commit(env), "venv_synced": _venv_stamp(env)}
    args, _ = with_cpu(env, [])
    try:
        types = node_types.probe_core_types(env.python, env.comfyui_dir, comfyui_args=args)
        record.update(method="probe", error=None)
    except ComfydockError as exc:
        types = node_types.static_core_types(env.comfyui_dir)
        record.update(method="static", error=exc.message)
    record["types"] = sorted(types)
    return record


def load_core_types(env) -> dict | None:
    """The cached record ({comfyui_commit, method, types, ...}), or None when missing or damaged."""
    try:
        data = json.loads(core_types_file(env).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("types"), list):
        return None
    return data


def _write(env) -> None:
    env.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(core_types_file(env), compute_core_types(env))


def _uptodate(env) -> bool:
    data = load_core_types(env)
    if data is None or data.get("comfyui_commit") != _comfyui_commit(env):
        return False
    # a static fallback is retried once the venv has been synced since (torch may be there now)
    return data.get("method") == "probe" or data.get("venv_synced") == _venv_stamp(env)


def task_core_node_types(env):
    """List the node types ComfyUI core provides (probe its venv; static scan when that cannot run)."""
    yield {
        "basename": "core_node_types",
        "targets": [core_types_file(env)],
        "uptodate": [(_uptodate, [env])],
        "actions": [(_write, [env])],
    }
