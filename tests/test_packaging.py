"""The package works the way a newcomer starts it: from the repository root, not installed there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_source_tree_imports_the_task_graph_from_the_repository_root():
    # -S: site-packages is on the path for the dependencies, but its .pth files (an editable
    # install's import hook) are not run, so nothing can hide a broken source layout; this is what
    # `python -m comfydock` sees when run from the root of a fresh clone.
    site_dirs = [p for p in sys.path if p.endswith("site-packages")]
    code = "import comfydock.tasks, comfydock.engine; print(comfydock.tasks.__file__)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *site_dirs])}
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve() == ROOT / "tasks" / "__init__.py"
