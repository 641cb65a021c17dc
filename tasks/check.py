"""The check_comfyui task: ComfyUI's quick test (`comfydock check`), recorded until its inputs change."""

from __future__ import annotations

from comfydock import comfyui_check


def task_check_comfyui(env):
    """Start ComfyUI with --quick-test-for-ci (--cpu where there is no GPU); record what failed to import."""
    from comfydock.tasks.nodes import install_script_task_names

    yield {
        "basename": "check_comfyui",
        # synced first, as `run` is (launch.SYNC_TASKS; launch itself runs builds, so it is not imported here)
        "task_dep": ["checkout_comfyui", "sync_venv", *install_script_task_names(env)],
        "targets": [comfyui_check.record_file(env)],
        "uptodate": [(comfyui_check.check_uptodate, [env])],
        "actions": [(comfyui_check.check_task_action, [env])],
    }
