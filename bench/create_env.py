"""Time `comfydock create` and a no-op `comfydock build` on the offline fixture (target: no-op build < 0.5 s).

Run: python bench/create_env.py [--repeat N]
Each figure is the wall time of a fresh `comfydock` process, as a user would see it.
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


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "comfydock", *argv], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="comfydock-bench-") as tmp:
        ws, env = offline_workspace(Path(tmp), timed, models_dir=False)
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        cold = timed(["create", "e0", "--python", py, "--torch-backend", "cpu"], env)
        warm = [timed(["create", f"e{i}", "--python", py, "--torch-backend", "cpu"], env) for i in range(1, opts.repeat + 1)]
        noop = [timed(["build", "-e", "e0"], env) for _ in range(opts.repeat)]
        print(f"create, cold caches:        {cold:6.2f} s")
        print(f"create, warm caches:        {statistics.median(warm):6.2f} s median of {len(warm)}")
        print(f"no-op build:                {statistics.median(noop):6.3f} s median of {len(noop)} (target < 0.5 s)")


if __name__ == "__main__":
    main()
