"""Time what `comfydock run` adds before ComfyUI starts, with a torch family installed; prints
figures, asserts nothing.

The fake torch sleeps --import-seconds on import (real torch: 25-90 s on a small machine), so a
torch import in run's pre-check shows. Figures: the pre-check alone (launch.check_runnable, reading
the import record that sync_venv wrote), `run --no-sync` and `run` (sync checked by doit) minus the
fixture ComfyUI's own time, and the pre-check with no record (one probe). Target: <= 0.3 s added.
Run: python bench/run_precheck.py [--import-seconds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offline_workspace import offline_workspace

from comfydock.demo.fixtures import make_wheel


def cli(env: dict, *argv: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "comfydock", *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"comfydock {' '.join(argv)} failed:\n{proc.stderr}")
    return wall


def best(fn, n: int = 5) -> float:
    return min(fn() for _ in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import-seconds", type=float, default=2.0, help="how long the fake torch takes to import")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="comfydock-bench-") as tmp:
        base = Path(tmp)
        ws, env = offline_workspace(base, lambda argv, env: cli(env, *argv), models_dir=False)
        slow = f"import time\ntime.sleep({opts.import_seconds})\n__version__ = '2.8.0+cu130'\n"
        make_wheel(base / "wheels", "torch", "2.8.0", init=slow)
        make_wheel(base / "wheels", "torchaudio", "2.8.0", init="import torch\n__version__ = '2.8.0'\n")
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        cli(env, "create", "a", "--python", py, "--torch-backend", "pypi")
        cli(env, "py", "add", "torch", "torchaudio", "-e", "a")

        os.environ.update(env)  # this process opens the same workspace
        from comfydock import launch, torch_probe
        from comfydock.environment import Environment
        from comfydock.workspace import Workspace

        e = Environment.open(Workspace.open(ws), "a")
        venv_python = str(e.python)
        # ComfyUI alone (the fixture: imports its requirements, loads custom_nodes/)
        comfyui = best(lambda: _timed([venv_python, str(e.comfyui_dir / "main.py")], e.comfyui_dir))

        precheck = best(lambda: _timed_call(lambda: launch.check_runnable(e)))
        no_sync = best(lambda: cli(env, "run", "--no-sync", "-e", "a"))
        with_sync = best(lambda: cli(env, "run", "-e", "a"))
        print(f"fixture ComfyUI alone:              {comfyui:6.3f} s")
        print(f"pre-check (record read, no import): {precheck * 1000:6.1f} ms")
        print(f"run --no-sync, whole process:       {no_sync:6.3f} s  (+{no_sync - comfyui:.3f} s before/around ComfyUI)")
        print(f"run (sync checked), whole process:  {with_sync:6.3f} s  (+{with_sync - comfyui:.3f} s before/around ComfyUI)")
        torch_probe.record_path(e).unlink()
        probe = _timed_call(lambda: launch.check_runnable(e))
        print(f"pre-check with no record (probe):   {probe:6.3f} s  (the fake torch sleeps {opts.import_seconds} s)")


def _timed(cmd, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - start


def _timed_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
