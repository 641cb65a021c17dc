"""The benchmarks' workspace: a fixture ComfyUI repository, tiny wheels, nothing from the network."""

from __future__ import annotations

import os
from pathlib import Path

from comfydock.demo.fixtures import build_comfyui_repo, build_wheels


def offline_workspace(base: Path, run, settings=(), models_dir: bool = True) -> tuple[Path, dict]:
    """Make `base/ws` with `run(argv, env)` (init + config) and return it with the environment
    variables every later command gets. `settings` are extra (key, value) config pairs."""
    wheels = build_wheels(base / "wheels")
    source = build_comfyui_repo(base / "ComfyUI")
    ws = base / "ws"
    env = dict(os.environ, COMFYDOCK_HOME=str(ws), UV_PYTHON_DOWNLOADS="never")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users' installs have .pyc files
    run(["init", "--no-interactive", *(["--models-dir", str(base / "models")] if models_dir else [])], env)
    for key, value in (
        ("comfyui-source", source.as_uri()),
        ("find-links", str(wheels)),
        ("no-index", "true"),
        ("node-map-url", "http://127.0.0.1:9/none.json"),  # never the network
        *settings,
    ):
        run(["config", key, value], env)
    return ws, env
