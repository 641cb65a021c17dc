"""What a resolution date changes, on real PyPI (not part of the test suite: it asks pypi.org).

Locks ComfyUI's requirements.txt at a commit (default: HEAD of a local copy of Comfy-Org/ComfyUI)
twice with uv, as comfydock's manifest does it (one Python, `package = false`): with
`exclude-newer` at the commit's committer date, and without a cutoff. Prints the versions that
decide whether ComfyUI starts: the torch family, huggingface-hub, transformers, and whether
`requests` (which ComfyUI imports without declaring it) is in the lock at all.

    python bench/resolution_date.py [--repo /work/.mirror/Comfy-Org+ComfyUI/repo] [--rev HEAD]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

from comfydock.gitutil import commit_date
from comfydock.uv_runner import uv_bin

WATCH = ("torch", "torchvision", "torchaudio", "huggingface-hub", "transformers", "tokenizers", "numpy", "requests")


def lock(requirements: list[str], cutoff: str | None, work: Path) -> tuple[float, dict[str, list[str]]]:
    work.mkdir(parents=True)
    deps = "".join(f"    {r!r},\n" for r in requirements)
    cut = f'exclude-newer = "{cutoff}"\n' if cutoff else ""
    (work / "pyproject.toml").write_text(
        f'[project]\nname = "bench"\nversion = "0"\nrequires-python = "==3.11.*"\ndependencies = [\n{deps}]\n'
        f"[tool.uv]\npackage = false\n{cut}"
    )
    start = time.perf_counter()
    proc = subprocess.run([uv_bin(), "lock"], cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    versions: dict[str, list[str]] = {}
    for p in tomllib.loads((work / "uv.lock").read_text())["package"]:
        versions.setdefault(p["name"], []).append(p["version"])
    return seconds, versions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", default="/work/.mirror/Comfy-Org+ComfyUI/repo")
    parser.add_argument("--rev", default="HEAD")
    args = parser.parse_args()
    text = subprocess.run(["git", "-C", args.repo, "show", f"{args.rev}:requirements.txt"], capture_output=True, text=True, check=True).stdout
    requirements = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    date = commit_date(args.repo, args.rev)
    print(f"ComfyUI {args.rev} committed {date}; {len(requirements)} requirements")
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for label, cutoff in ((f"as of {date}", date), ("no cutoff", None)):
            seconds, versions = lock(requirements, cutoff, Path(tmp) / label.replace(" ", "-").replace(":", ""))
            rows[label] = versions
            print(f"  uv lock {label}: {seconds:.1f} s, {len(versions)} packages")
        print(f"  {'package':<16}" + "".join(f"{label:<32}" for label in rows))
        for name in WATCH:
            print(f"  {name:<16}" + "".join(f"{', '.join(v.get(name, ['(not locked)'])):<32}" for v in rows.values()))


if __name__ == "__main__":
    main()
