"""How ComfyUI is started, the same for `run` and `check`: its command line and its environment."""

from __future__ import annotations

import os


def comfyui_command(env, comfyui_args: list[str]) -> list[str]:
    return [str(env.python), str(env.comfyui_dir / "main.py"), *comfyui_args]


def comfyui_environ() -> dict[str, str]:
    """The environment ComfyUI runs with: this process's, output unbuffered."""
    # through a pipe Python would buffer ComfyUI's log for minutes: keep it line by line, as on a terminal
    return dict(os.environ, PYTHONUNBUFFERED="1")
