"""The check_comfyui task: ComfyUI's quick test (`comfydock check`), recorded until its inputs change."""

from __future__ import annotations

from comfydock import comfyui_check
from comfydock.launch import SYNC_TASKS


def task_check_comfyui(env):
    """Start ComfyUI with --quick-test-for-ci (--cpu where there is no GPU); record what failed to import."""
    from comfydock.tasks.nodes import install_script_task_names

    yield {
        "basename": "check_comfyui",
        "task_dep": [*SYNC_TASKS, *install_script_task_names(env)],  # synced first, as `run` is
        "targets": [comfyui_check.record_file(env)],
        "uptodate": [(comfyui_check.check_uptodate, [env])],
        "actions": [(comfyui_check.check_task_action, [env])],
    }
