"""Time `comfydock status` and a no-op `comfydock commit` on an environment holding the whole
workflow corpus (targets: under 0.3 s each, whole process), and a first commit of that corpus.

Run: python bench/history.py [--repeat N]
Each figure is the wall time of a fresh `comfydock` process, as a user would see it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offline_workspace import offline_workspace

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path("/work/shared/corpus/workflows")
if not CORPUS.is_dir():
    CORPUS = REPO / "tests" / "data" / "corpus" / "workflows"


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "comfydock", *argv], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="comfydock-bench-") as tmp:
        base = Path(tmp)
        ws, env = offline_workspace(base, timed)
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        timed(["create", "e", "--python", py, "--torch-backend", "cpu"], env)
        workflows = ws / "environments" / "e" / "ComfyUI" / "user" / "default" / "workflows"
        files = sorted(CORPUS.rglob("*.json"))
        for f in files:
            dest = workflows / f.parent.name / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest)
        status_new = timed(["status"], env)
        first = timed(["commit", "-m", "corpus", "--no-interactive"], env)
        status = [timed(["status"], env) for _ in range(opts.repeat)]
        noop = [timed(["commit", "--no-interactive"], env) for _ in range(opts.repeat)]
        part = workflows_part(ws, env)
        print(f"workflows:                  {len(files)} from {CORPUS}")
        print(f"status, all new (cold):     {status_new:6.3f} s")
        print(f"first commit of the corpus: {first:6.3f} s")
        print(f"status, nothing changed:    {statistics.median(status):6.3f} s median of {len(status)} (target < 0.3 s)")
        print(f"no-op commit:               {statistics.median(noop):6.3f} s median of {len(noop)} (target < 0.3 s)")
        print(f"status' workflow part:      {part * 1000:6.1f} ms in-process, best of 10 (every workflow's models resolved)")


def workflows_part(ws: Path, env: dict) -> float:
    """workflows_status in this process (less noise than a whole process on a busy machine)."""
    import os

    from comfydock.environment import Environment
    from comfydock.workflows.report import workflows_status
    from comfydock.workspace import Workspace

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        e = Environment.open(Workspace.open(ws), "e")
        workflows_status(e)  # warm: the analysis cache and imports
        best = float("inf")
        for _ in range(10):
            start = time.perf_counter()
            workflows_status(e)
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        os.environ.clear()
        os.environ.update(saved)


if __name__ == "__main__":
    main()
