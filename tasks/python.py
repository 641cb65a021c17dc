"""Python dependency tasks: pyproject.toml -> uv.lock -> the venv."""

from __future__ import annotations

from comfydock import python_env


def _lock(env) -> None:
    python_env.lock(env.workspace, env.cec_dir)


def _sync(env) -> None:
    python_env.sync(env.workspace, env.cec_dir, env.venv_dir)
    env.record_venv_synced()


def _venv_exists(env) -> bool:
    return env.python.exists()


def task_lock_deps(env):
    """Resolve .cec/pyproject.toml into .cec/uv.lock with uv."""
    yield {
        "basename": "lock_deps",
        "file_dep": [env.pyproject_path],
        "targets": [env.lock_path],
        "actions": [(_lock, [env])],
    }


def task_sync_venv(env):
    """Install exactly what .cec/uv.lock says into the environment's .venv."""
    yield {
        "basename": "sync_venv",
        "file_dep": [env.lock_path],
        "targets": [env.venv_marker],
        "uptodate": [(_venv_exists, [env])],
        "actions": [(_sync, [env])],
    }
