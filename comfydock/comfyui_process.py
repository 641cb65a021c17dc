"""How ComfyUI is started, the same for `run` and `check`: its command line and its environment."""

from __future__ import annotations

import os

from comfydock.errors import ComfydockError


def require_startable(env) -> None:
    """A ComfyUI checkout and a venv to start it with (what `run` and `check` both need first)."""
    if not (env.comfyui_dir / "main.py").is_file():
        raise ComfydockError(
            f"ComfyUI is missing from environment {env.name!r} ({env.comfyui_dir / 'main.py'} not found)",
            hint=f"run 'comfydock build -e {env.name}' to check it out again",
        )
    if not env.python.exists():
        raise ComfydockError(f"environment {env.name!r} has no venv", hint=f"run 'comfydock build -e {env.name}' to create it")


def comfyui_command(env, comfyui_args: list[str]) -> list[str]:
    return [str(env.python), str(env.comfyui_dir / "main.py"), *comfyui_args]


def comfyui_environ() -> dict[str, str]:
    """The environment ComfyUI runs with: this process's, output unbuffered."""
    # through a pipe Python would buffer ComfyUI's log for minutes: keep it line by line, as on a terminal
    return dict(os.environ, PYTHONUNBUFFERED="1")
