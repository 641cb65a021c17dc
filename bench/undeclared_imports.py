"""What the undeclared-imports check adds to `status`, and what a scan of a real tree costs.

On an offline fixture workspace (fixture ComfyUI, one development node): `status` in-process,
best of 5, with the check and with it left out; the check alone cold (no cache) and warm.
Given source trees (a copy of real ComfyUI, a real node), the uncached scan and the cache's
stamp of each, and what it reports against this interpreter's site-packages.
Prints figures, asserts nothing. Run: python bench/undeclared_imports.py [TREE ...]
"""

from __future__ import annotations

import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def best(fn, n: int = 5) -> float:
    runs = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs) * 1000


def fixture_figures() -> None:
    import os

    from offline_workspace import offline_workspace

    from comfydock import status as status_module
    from comfydock import undeclared
    from comfydock.cli import main as cli_main
    from comfydock.environment import Environment
    from comfydock.workspace import Workspace

    base = Path(tempfile.mkdtemp(prefix="bench-undeclared-"))

    def run(argv, env):
        os.environ.update(env)
        assert cli_main(argv) == 0, argv

    ws_path, env_vars = offline_workspace(base, run)
    run(["create", "main", "--torch-backend", "cpu"], env_vars)
    env = Environment.open(Workspace.open(ws_path), "main")
    node = env.custom_nodes_dir / "my-node"
    node.mkdir()
    (node / "__init__.py").write_text("import cdfix_beta\nNODE_CLASS_MAPPINGS = {}\n")
    run(["node", "add", "my-node", "--dev"], env_vars)
    with_check = best(lambda: status_module.status(env))
    undeclared.undeclared_imports_status, saved = (lambda e: {"checked": False, "owners": []}), undeclared.undeclared_imports_status
    without = best(lambda: status_module.status(env))
    undeclared.undeclared_imports_status = saved
    cache = env.state_dir / undeclared.CACHE_FILE

    def cold():
        cache.unlink(missing_ok=True)
        undeclared.undeclared_imports_status(env)

    print(f"fixture status: {with_check:.0f} ms with the check, {without:.0f} ms without (best of 5)")
    print(f"the check alone: cold {best(cold, 3):.0f} ms, warm {best(lambda: undeclared.undeclared_imports_status(env)):.1f} ms")


def tree_figures(root: Path) -> None:
    from comfydock import import_scan

    skip = import_scan.COMFYUI_SKIPPED_DIRS if (root / "comfy").is_dir() else frozenset()
    start = time.perf_counter()
    scan = import_scan.scan_imports(root, extra_skip=skip)
    scanned = (time.perf_counter() - start) * 1000
    stamp = best(lambda: import_scan.tree_stamp(root, extra_skip=skip))
    provided = import_scan.installed_modules(Path(sysconfig.get_paths()["purelib"]))
    found = import_scan.missing_imports(scan, stdlib=set(sys.stdlib_module_names), provided=provided)
    print(f"{root}: {scan.files} files ({scan.unreadable} unreadable), scan {scanned:.0f} ms, stamp {stamp:.1f} ms")
    print("  not installed here: " + ", ".join(f"{u.module} ({u.where})" for u in found))


if __name__ == "__main__":
    fixture_figures()
    for arg in sys.argv[1:]:
        tree_figures(Path(arg))
