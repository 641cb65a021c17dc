"""comfydock: reproducible ComfyUI environments (workspaces, nodes, models, history, bundles)."""

from pathlib import Path as _Path

__version__ = "0.1.0"

# Installed, the repository's top-level tasks/ folder is the subpackage comfydock.tasks. Run from a
# source checkout (`python -m comfydock` in the repository root imports this folder, not the
# installed copy), tasks/ sits beside comfydock/: let the package find it there too.
_source_tasks = _Path(__file__).resolve().parent.parent / "tasks"
if not (_Path(__file__).resolve().parent / "tasks").is_dir() and (_source_tasks / "__init__.py").is_file():
    __path__.append(str(_source_tasks.parent))  # noqa: F821 (__path__ is set for packages)
