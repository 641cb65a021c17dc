"""Time `comfydock check` and `node check` on the fixture ComfyUI (offline); prints figures, asserts nothing.

Figures: the first check (sync + ComfyUI's quick test), a re-run on the unchanged environment
(answered from the record; target <= 0.5 s), `status`, and `node check` of three development
nodes (each imported in its own process, as ComfyUI's main.py would).
Run: python bench/check.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offline_workspace import offline_workspace


def cli(env: dict, *argv: str, ok=(0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "comfydock", *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in ok:
        raise SystemExit(f"comfydock {' '.join(argv)} failed:\n{proc.stderr}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="comfydock-bench-") as tmp:
        ws, env = offline_workspace(Path(tmp), lambda argv, env: cli(env, *argv), models_dir=False)
        cli(env, "create", "main", "--torch-backend", "cpu", "--use")
        nodes = ws / "environments" / "main" / "ComfyUI" / "custom_nodes"
        for i in range(3):
            (nodes / f"bench-node-{i}").mkdir()
            (nodes / f"bench-node-{i}" / "__init__.py").write_text("import json\nNODE_CLASS_MAPPINGS = {}\n")
            cli(env, "node", "add", f"bench-node-{i}", "--dev")
        print(f"first check (runs ComfyUI's quick test): {cli(env, 'check'):.2f} s")
        again = [cli(env, "check") for _ in range(opts.repeat)]
        print(f"check, unchanged (from the record): median {statistics.median(again):.2f} s, max {max(again):.2f} s")
        print(f"  python -m comfydock --version (interpreter + CLI start): {cli(env, '--version'):.2f} s")
        status = [cli(env, "status") for _ in range(3)]
        print(f"status (with the check line): median {statistics.median(status):.2f} s")
        node_check = [cli(env, "node", "check") for _ in range(3)]
        print(f"node check, 3 nodes: median {statistics.median(node_check):.2f} s")


if __name__ == "__main__":
    main()
