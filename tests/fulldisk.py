"""A full disk for tests, without root and without touching the machine's disks: the command runs
in a private mount namespace (`unshare -rm`, a user namespace, so it works as root and as an
ordinary user) where the workspace is a small tmpfs holding a copy of it, filled up to `free`
bytes. The real workspace is never written; what the command left behind is read inside the
namespace and reported back.

Why this and not something else: /dev/full fails a single file, not a tree that git, uv and SQLite
write into; RLIMIT_FSIZE gives EFBIG, not ENOSPC; a loop-mounted image needs root; an LD_PRELOAD
shim would not reach uv (a static Rust binary). Where user namespaces are off (some hardened
kernels), `available()` is False and the tests skip, saying why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

_DRIVER = r"""
import hashlib, json, os, subprocess, sys
spec = json.loads(sys.argv[1])
ws, mnt = spec["workspace"], spec["mount"]
def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)
run("mount", "-t", "tmpfs", "-o", f"size={spec['size']}", "comfydock-full", mnt)
os.makedirs(os.path.join(mnt, "data"))
run("cp", "-a", ws + "/.", os.path.join(mnt, "data"))
run("mount", "--bind", os.path.join(mnt, "data"), ws)

def snapshot():
    out = {}
    for root in spec["watch"]:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in spec["skip"])
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                p = os.path.join(dirpath, name)
                if p in spec["skip"]:
                    continue
                if os.path.islink(p):
                    out[p] = "link:" + os.readlink(p)
                elif os.path.isfile(p):
                    with open(p, "rb") as f:
                        out[p] = hashlib.sha256(f.read()).hexdigest()
                else:
                    out[p] = "other"
            out[dirpath + "/"] = "dir"
    for repo in spec["git"]:
        out[repo + " refs"] = subprocess.run(["git", "-C", repo, "for-each-ref", "--format=%(refname) %(objectname)"],
                                             capture_output=True, text=True).stdout
        out[repo + " status"] = subprocess.run(["git", "-C", repo, "status", "--porcelain"],
                                               capture_output=True, text=True).stdout
    return out

def fill(free):
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    st = os.statvfs(mnt)
    avail = st.f_bavail * st.f_frsize
    size = os.path.getsize(filler)
    os.truncate(filler, max(0, size + avail - free))

results = []
before = snapshot()
fill(spec["free"])
for argv in spec["commands"]:
    if argv == ["--free-space"]:
        os.unlink(os.path.join(mnt, "filler"))
        results.append({"code": 0, "out": "", "err": ""})
        continue
    proc = subprocess.run([sys.executable, "-m", "comfydock", *argv], capture_output=True, text=True,
                          cwd=spec["cwd"], env=spec["env"])
    results.append({"code": proc.returncode, "out": proc.stdout, "err": proc.stderr})
print(json.dumps({"results": results, "before": before, "after": snapshot()}))
"""


def _unshare() -> list[str] | None:
    path = shutil.which("unshare")
    return [path, "-rm"] if path else None


def available() -> tuple[bool, str]:
    """Whether a private tmpfs can be mounted here (and why not)."""
    cmd = _unshare()
    if cmd is None:
        return False, "no 'unshare' command"
    probe = subprocess.run(
        [*cmd, "sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k none \"$d\" && umount \"$d\"; rmdir \"$d\""],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return False, f"user namespaces with a tmpfs are not available here: {probe.stderr.strip()[:200]}"
    return True, ""


def run_on_full_disk(
    workspace: Path,
    commands: list[list[str]],
    *,
    free: int,
    size: str = "64m",
    watch: list[Path] = (),
    skip: list[Path] = (),
    git_repos: list[Path] = (),
    scratch: Path,
) -> dict:
    """Run `comfydock ARGV` for each of `commands` (["--free-space"] removes the filler) on a copy
    of `workspace` in a tmpfs of `size` with `free` bytes left. Returns {"results": [{code, out,
    err}], "before": snapshot, "after": snapshot}: a snapshot of the files under `watch` (minus
    `skip`) plus refs and `git status` of each of `git_repos`."""
    mount = scratch / "fulldisk-mount"
    mount.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]).strip(os.pathsep)
    spec = {
        "workspace": str(workspace),
        "mount": str(mount),
        "size": size,
        "free": free,
        "commands": commands,
        "watch": [str(p) for p in watch],
        "skip": [str(p) for p in skip],
        "git": [str(p) for p in git_repos],
        "cwd": str(workspace),
        "env": env,
    }
    proc = subprocess.run(
        [*_unshare(), sys.executable, "-c", _DRIVER, json.dumps(spec)], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"full-disk driver failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout)
