"""Python dependency tasks: pyproject.toml -> uv.lock -> the venv."""

from __future__ import annotations

from comfydock import python_env

# lock_deps' one parameter: packages to move to the newest versions the requirements allow
# ('uv lock --upgrade-package'), asked by 'py remove', 'constraint remove' and 'node update'.
# A doit task parameter, so the request is part of the run that needs it and never outlives it:
# `build(env, [...], task_options=upgrade_options(names))`, or from a dodo.py:
# `doit -f dodo.py lock_deps --upgrade-package numba`.
UPGRADE_PARAM = {
    "name": "upgrade_package",
    "long": "upgrade-package",
    "type": list,
    "default": [],
    "help": "move this package to the newest version the requirements allow (repeatable)",
}


def upgrade_options(names) -> dict[str, list[str]]:
    """doit command-line options for lock_deps asking uv to upgrade `names` (validated names only)."""
    from packaging.utils import canonicalize_name

    from comfydock.requirements import parse_requirement

    args: list[str] = []
    for name in names:
        canonical = canonicalize_name(parse_requirement(name).name)  # letters, digits, '-': safe in argv
        if canonical not in args:
            args += ["--upgrade-package", canonical]
    return {"lock_deps": args} if args else {}


def _lock(env, upgrade_package) -> None:
    python_env.lock(env.workspace, env.cec_dir, upgrade_package)


def _no_upgrade_asked(task) -> bool:
    # doit passes the task first; its options are None until a run parses them (dry-run, status)
    return not (task.options or {}).get("upgrade_package")


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
        "params": [UPGRADE_PARAM],
        "uptodate": [_no_upgrade_asked],  # an upgrade request always runs uv lock
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
