"""Python dependency tasks: pyproject.toml -> uv.lock -> the venv."""

from __future__ import annotations

from comfydock import python_env
from comfydock.fsutil import read_json_state


def _lock(env) -> None:
    # a one-off request (node update) to move some packages to their newest allowed versions
    upgrade_file = env.state_dir / "lock-upgrade.json"
    upgrade = read_json_state(upgrade_file, list) or []  # derived, one-off: a damaged file is ignored
    upgrade = [str(name) for name in upgrade if isinstance(name, str)]
    python_env.lock(env.workspace, env.cec_dir, upgrade)
    upgrade_file.unlink(missing_ok=True)


def _sync(env) -> None:
    python_env.sync(env.workspace, env.cec_dir, env.venv_dir)
    env.record_venv_synced()


def _venv_synced(env) -> bool:
    # the venv exists and its marker names this lock (a missing or damaged marker: sync again)
    return env.venv_in_sync()


def task_lock_deps(env):
    """Resolve .cec/pyproject.toml into .cec/uv.lock with uv."""
    from comfydock.tasks.nodes import scan_task_names

    yield {
        "basename": "lock_deps",
        "task_dep": scan_task_names(env),  # node dependency groups are written before locking
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
        "uptodate": [(_venv_synced, [env])],
        "actions": [(_sync, [env])],
    }
