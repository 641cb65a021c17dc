"""Time the scan for modules two installed distributions share (run once per venv sync).

Figures: distributions, RECORD lines read, clashes found, and the scan time (cold and warm
page cache alike: run it twice). Point it at a real ComfyUI venv (torch, nvidia-* wheels) to
see the cost a sync pays. Prints figures, asserts nothing.
Run: python bench/module_clashes.py [VENV_DIR ...]   (default: this interpreter's prefix)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from comfydock.uv_runner import module_clashes, site_packages


def main(argv: list[str]) -> None:
    for venv in [Path(a) for a in argv] or [Path(sys.prefix)]:
        root = site_packages(venv)
        if root is None:
            print(f"{venv}: no site-packages")
            continue
        dists = list(root.glob("*.dist-info"))
        lines = sum(len((d / "RECORD").read_text(errors="replace").splitlines()) for d in dists if (d / "RECORD").exists())
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            clashes = module_clashes(venv)
            runs.append(time.perf_counter() - start)
        print(
            f"{venv}: {len(dists)} distributions, {lines} RECORD lines, {len(clashes)} clashes; "
            f"scan {min(runs) * 1000:.0f} ms (best of 3), first {runs[0] * 1000:.0f} ms"
        )
        for clash in clashes:
            print(f"  {clash['module']}: {', '.join(clash['distributions'])}")


if __name__ == "__main__":
    main(sys.argv[1:])
