"""Time `comfydock node add` against a loopback registry; prints figures, asserts nothing.

Figures: a cache-hit add (the node is already in the workspace cache) with the time spent
outside uv (target < 1 s); 10 registry nodes added in one call (parallel fetches) versus one
call per node. Each download answers after --delay seconds, like a remote registry would.
Run: python bench/node_add.py [--delay 0.3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offline_workspace import offline_workspace

from comfydock.demo.fixtures import node_zip_bytes
from comfydock.demo.registry_server import FakeRegistry


def cli(env: dict, *argv: str) -> tuple[dict | None, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "comfydock", *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"comfydock {' '.join(argv)} failed:\n{proc.stderr}")
    return (json.loads(proc.stdout) if "--json" in argv else None), wall


def uv_seconds(report: dict) -> float:
    return sum(t["seconds"] for t in report["build"]["tasks"] if t["task"] in {"lock_deps", "sync_venv"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds each download takes to start")
    opts = parser.parse_args()
    registry = FakeRegistry()
    registry.file_delay = opts.delay
    for i in range(10):
        registry.add_node(f"bench-node-{i}", {"1.0.0": node_zip_bytes(f"bench-{i}", "cdfix-gamma\n")})
    with tempfile.TemporaryDirectory(prefix="comfydock-bench-") as tmp:
        _, env = offline_workspace(
            Path(tmp), lambda argv, env: cli(env, *argv), settings=[("registry-url", registry.url)], models_dir=False
        )
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        for name in ("one", "seq", "par", "hit"):
            cli(env, "create", name, "--python", py, "--torch-backend", "cpu")

        report, wall = cli(env, "node", "add", "bench-node-0", "-e", "one", "--json")
        print(f"add, cold (download):     {wall:6.2f} s wall, {wall - uv_seconds(report):5.2f} s outside uv")
        report, wall = cli(env, "node", "add", "bench-node-0", "-e", "hit", "--json")
        print(f"add, cache hit:           {wall:6.2f} s wall, {wall - uv_seconds(report):5.2f} s outside uv (target < 1 s)")

        nodes = [f"bench-node-{i}" for i in range(1, 10)]
        start = time.perf_counter()
        for node in nodes:
            cli(env, "node", "add", node, "-e", "seq", "--json")
        seq = time.perf_counter() - start
        # nine other nodes, so the single call downloads as much as the nine calls did
        par_nodes = [f"bench-par-{i}" for i in range(9)]
        for node_id in par_nodes:
            registry.add_node(node_id, {"1.0.0": node_zip_bytes(node_id, "cdfix-gamma\n")})
        report, par = cli(env, "node", "add", *par_nodes, "-e", "par", "--json")
        print(f"9 nodes, one call each:   {seq:6.2f} s")
        print(f"9 nodes, one call:        {par:6.2f} s ({par - uv_seconds(report):.2f} s outside uv; fetches run 4 at a time)")
    registry.close()


if __name__ == "__main__":
    main()
