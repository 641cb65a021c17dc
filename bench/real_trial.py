"""A trial on the real thing: real ComfyUI, real PyPI, a real custom node (never part of the suite).

It builds a local git repository from a copy of the public Comfy-Org/ComfyUI repository (tagged
with the version its `comfyui_version.py` names, committed with the original commit's dates so the
environment's resolution date is the real one), creates an environment with the given torch
backend, adds real custom nodes from local copies and a node from ~10 months later that needs
huggingface-hub 1.x (what many 2026 nodes need; it takes away the `requests` ComfyUI v0.3.64
imports), runs `node check`, `comfydock check` (ComfyUI started with `--quick-test-for-ci`, `--cpu`
without a GPU), `run` and `status`, and prints what each step took and what ComfyUI said. Downloads GBs on a cold uv cache (PyPI's Linux torch pulls nvidia-* wheels).

Run, e.g. with copies fetched into /work/.mirror:
    python bench/real_trial.py --comfyui /work/.mirror/Comfy-Org+ComfyUI/repo \\
        --node /work/.mirror/rgthree+rgthree-comfy/repo --node /work/.mirror/kijai+ComfyUI-KJNodes/repo \\
        --workdir /tmp/real-trial --uv-cache /tmp/uv-cache --backend pypi
`--comfyui` is a git directory (bare or not); its HEAD is used. Blobs missing from the copy are
left out of the checkout and named.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path


def git(*args, cwd=None, env=None, input=None) -> subprocess.CompletedProcess:
    base = ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
    return subprocess.run(base + list(args), cwd=cwd, env=env, input=input, capture_output=True, check=True)


def local_comfyui(source: Path, dest: Path) -> tuple[str, str]:
    """A working repository at dest with source's HEAD tree, its dates, and its release tag."""
    date = local_repo(source, dest)
    version = re.search(r'__version__\s*=\s*"([^"]+)"', (dest / "comfyui_version.py").read_text())
    tag = f"v{version.group(1)}" if version else "v0.0.0-trial"
    git("tag", tag, cwd=dest)
    return tag, date


def local_repo(source: Path, dest: Path) -> str:
    """A working repository at dest with source's HEAD tree and dates (a copy may lack blobs:
    those files are left out and named). Returns the commit date."""
    head = git("--git-dir", str(source), "rev-parse", "HEAD").stdout.decode().strip()
    meta = git("--git-dir", str(source), "log", "-1", "--format=%aI%n%cI%n%s", head).stdout.decode().splitlines()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    listing = git("--git-dir", str(source), "ls-tree", "-r", "-z", head).stdout.decode().split("\0")
    missing = []
    for entry in filter(None, listing):
        info, path = entry.split("\t", 1)
        mode, kind, oid = info.split()
        if kind != "blob":
            continue
        try:
            data = git("--git-dir", str(source), "cat-file", "blob", oid).stdout
        except subprocess.CalledProcessError:
            missing.append(path)
            continue
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            os.symlink(data.decode(), target)
            continue
        target.write_bytes(data)
        if mode == "100755":
            target.chmod(0o755)
    dated = dict(os.environ, GIT_AUTHOR_DATE=meta[0], GIT_COMMITTER_DATE=meta[1])
    dated.update(GIT_AUTHOR_NAME="trial", GIT_AUTHOR_EMAIL="trial@example.invalid")
    dated.update(GIT_COMMITTER_NAME="trial", GIT_COMMITTER_EMAIL="trial@example.invalid")
    git("init", "-q", "-b", "master", cwd=dest)
    git("add", "-A", "-f", cwd=dest)
    git("commit", "-q", "-m", f"{meta[2]} (copy of {head[:12]})", cwd=dest, env=dated)
    if missing:
        print(f"{dest.name}: left out (missing from the copy): {', '.join(missing)}")
    return meta[1]


class Trial:
    def __init__(self, workspace: Path, uv_cache: Path | None):
        self.env = dict(os.environ, COMFYDOCK_HOME=str(workspace), PYTHONUNBUFFERED="1")
        if uv_cache:
            self.env["UV_CACHE_DIR"] = str(uv_cache)
        self.steps: list[tuple[str, float, int]] = []

    def run(self, title: str, *argv: str, show: int = 25) -> subprocess.CompletedProcess:
        print(f"\n$ comfydock {' '.join(argv)}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "comfydock", *argv], env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        lines = (proc.stdout + proc.stderr).splitlines()
        for line in lines[-show:] if show else []:
            print(f"  {line}")
        print(f"  -> exit {proc.returncode} in {seconds:.1f} s", flush=True)
        self.steps.append((title, seconds, proc.returncode))
        return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=Path, required=True, help="a git directory holding Comfy-Org/ComfyUI")
    parser.add_argument("--as-of", default=None, help="create --as-of DATE|now (default: the ComfyUI commit's date)")
    parser.add_argument(
        "--node", type=Path, action="append", default=[], help="a git directory holding a custom node (repeatable)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/comfydock-real-trial"))
    parser.add_argument("--uv-cache", type=Path, default=None, help="uv cache to use (keeps downloads between trials)")
    parser.add_argument("--backend", default="pypi")
    parser.add_argument("--no-newer-node", action="store_true", help="skip the node that needs huggingface-hub 1.x")
    parser.add_argument("--python", default="3.11")
    opts = parser.parse_args()

    work = opts.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tag, date = local_comfyui(opts.comfyui.resolve(), work / "ComfyUI-src")
    print(f"local ComfyUI {tag} (committed {date}) built in {time.perf_counter() - start:.1f} s")
    workspace = work / "ws"
    if workspace.exists():
        shutil.rmtree(workspace)
    trial = Trial(workspace, opts.uv_cache)
    trial.run("init", "init", str(workspace), "--no-interactive")
    trial.run("config", "config", "comfyui-source", (work / "ComfyUI-src").as_uri())
    as_of = ["--as-of", opts.as_of] if opts.as_of else []
    create = trial.run(
        "create",
        *("create", "real", "--python", opts.python, "--comfyui-version", tag, "--torch-backend", opts.backend, "--use", *as_of),
    )
    if create.returncode:
        return report(trial, None)
    for node in opts.node:
        name = node.resolve().parent.name.split("+")[-1] if node.name == "repo" else node.name
        local = work / "nodes" / name  # named after the node, not 'repo'
        print(f"local {name} (committed {local_repo(node.resolve(), local)})")
        trial.run(f"node add {name}", "node", "add", local.as_uri())
    if not opts.no_newer_node:
        # a node from ~10 months later that needs huggingface-hub 1.x: the 2025 transformers hold
        # hub below 1.0, and hub 1.x no longer brings the requests ComfyUI v0.3.64 imports
        newer = work / "nodes" / "hub-node"
        newer.mkdir(parents=True, exist_ok=True)
        (newer / "__init__.py").write_text("import huggingface_hub  # noqa: F401\n\nNODE_CLASS_MAPPINGS = {}\n")
        (newer / "requirements.txt").write_text("huggingface-hub>=1.0\n")
        when = (datetime.fromisoformat(date) + timedelta(days=300)).isoformat()
        env = dict(os.environ, GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when, GIT_AUTHOR_NAME="trial")
        env.update(GIT_AUTHOR_EMAIL="trial@example.invalid", GIT_COMMITTER_NAME="trial", GIT_COMMITTER_EMAIL="trial@example.invalid")
        git("init", "-q", "-b", "main", cwd=newer)
        git("add", "-A", cwd=newer)
        git("commit", "-q", "-m", "needs huggingface-hub 1.x", cwd=newer, env=env)
        trial.run("node add hub-node (hub>=1.0)", "node", "add", newer.as_uri())
    trial.run("node check", "node", "check", show=15)
    check = trial.run("check", "check", "--json", show=0)
    result = None
    try:
        result = json.loads(check.stdout)
        print(json.dumps(result, indent=2)[:4000])
    except ValueError:
        print(check.stdout[-3000:], check.stderr[-3000:])
    trial.run("check again (up to date)", "check")
    trial.run("run --quick-test-for-ci --cpu", "run", "--", "--quick-test-for-ci", "--cpu", show=6)
    trial.run("status", "status", show=60)
    return report(trial, result)


def report(trial: Trial, check) -> int:
    print("\n== summary")
    for title, seconds, code in trial.steps:
        print(f"{title:36s} {seconds:8.1f} s   exit {code}")
    failed = [title for title, _, code in trial.steps if code]
    print("result:", "PASSED" if not failed else f"FAILED at {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
