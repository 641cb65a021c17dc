"""Time export/import; prints figures, asserts nothing.

Figures: export time (first export: full hashes of the models; then an unchanged one), no-op
`comfydock build export` (target < 0.4 s whole process), import into a second environment with
every model already indexed (used in place), the full-hash counter (files actually read), and model download throughput from a loopback server through comfydock's download()
(streamed to .part, SHA256 + Blake3 verified, moved into place) relative to a plain `requests`
download of the same file that neither hashes nor verifies (target >= 90 %). Unthrottled loopback is faster than one core computes SHA256, so that run measures
the hashing ceiling (printed); the paced run (a real line's speed) shows whether hashing stays off
the hot path.
Run: python bench/export_import.py [--size-mib 512] [--rounds 3] [--model-mib 256] [--models 4]
Export/import figures are wall times of a fresh `comfydock` process, as a user would see them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from blake3 import blake3
from offline_workspace import offline_workspace

from comfydock.bundle.download import CHUNK, download, make_session
from comfydock.demo.model_server import ModelServer, write_model_file


def plain_requests(url: str, dest: Path) -> None:
    with requests.get(url, stream=True, timeout=60) as resp:
        resp.raise_for_status()
        with open(dest, "wb") as f:
            for chunk in resp.iter_content(CHUNK):
                f.write(chunk)


def digests(path: Path) -> tuple[str, str]:
    sha, b3 = hashlib.sha256(), blake3(max_threads=blake3.AUTO)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(16 << 20), b""):
            sha.update(chunk)
            b3.update(chunk)
    return sha.hexdigest(), b3.hexdigest()


def bench_download(size_mib: int, rounds: int, link_mib: float | None) -> None:
    with tempfile.TemporaryDirectory() as tmp, ModelServer() as server:
        server.rate_limit = link_mib * (1 << 20) if link_mib else None
        tmp = Path(tmp)
        source = write_model_file(tmp / "source.safetensors", size_mib << 20)
        sha, b3 = digests(source)
        url = server.add_file("model.safetensors", source)
        size = source.stat().st_size
        plain, ours = [], []
        session = make_session()
        for i in range(rounds):  # interleaved, so both see the same machine load
            start = time.perf_counter()
            plain_requests(url, tmp / f"plain-{i}")
            plain.append(time.perf_counter() - start)
            (tmp / f"plain-{i}").unlink()
            start = time.perf_counter()
            download(url, tmp / f"ours-{i}", sha256=sha, blake3=b3, size=size, session=session)
            ours.append(time.perf_counter() - start)
            (tmp / f"ours-{i}").unlink()
        session.close()
        best_plain, best_ours = min(plain), min(ours)
        mib = size / (1 << 20)
        link = f"a {link_mib:g} MiB/s link" if link_mib else "unthrottled loopback"
        print(f"download {mib:.0f} MiB from 127.0.0.1 ({link}), best of {rounds}:")
        print(f"  plain requests (no hashing)       {best_plain:6.2f} s  {mib / best_plain:7.0f} MiB/s")
        print(f"  comfydock download (SHA256+Blake3) {best_ours:6.2f} s  {mib / best_ours:7.0f} MiB/s")
        print(f"  relative throughput               {best_plain / best_ours * 100:6.0f} %   (target >= 90 %)")


def hash_ceiling() -> None:
    data = bytes(256 << 20)
    for name, h in (("SHA256", hashlib.sha256()), ("Blake3", blake3())):
        start = time.perf_counter()
        h.update(data)
        print(f"  {name} on one core                  {256 / (time.perf_counter() - start):7.0f} MiB/s (the ceiling above)")


def comfydock(argv: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "comfydock", *argv], env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, proc.stdout


def bench_export_import(model_mib: int, models: int, rounds: int) -> None:
    from comfydock.demo.fixtures import DEMO_WORKFLOW

    with tempfile.TemporaryDirectory(prefix="comfydock-bench-") as tmp, ModelServer() as server:
        base = Path(tmp)
        # loopback CivitAI: every lookup answers "not found"
        ws, env = offline_workspace(base, comfydock, settings=[("civitai-url", server.url)])
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        comfydock(["create", "e", "--python", py, "--torch-backend", "cpu"], env)
        workflows = ws / "environments" / "e" / "ComfyUI" / "user" / "default" / "workflows"
        for i in range(models):
            name = f"bench_{i}.safetensors"
            write_model_file(base / "models" / "checkpoints" / name, model_mib << 20, seed=i)
            wf = json.loads(json.dumps(DEMO_WORKFLOW))
            wf["nodes"][0]["widgets_values"] = [name]
            (workflows / f"bench_{i}.json").write_text(json.dumps(wf))
        comfydock(["models", "index"], env)
        comfydock(["commit", "-m", "bench", "--no-interactive"], env)
        total = models * model_mib
        first, out = comfydock(["export", "--no-interactive", "--json", "--output", str(base / "a.tar.gz")], env)
        hashed = json.loads(out)["full_hashes_computed"]
        print(f"export of {models} workflows and {models} models ({total} MiB):")
        row = "  {:<52}{:6.2f} s{}".format
        print(row(f"first export (full hashes: {hashed} files read)", first, ""))
        again = []
        for _ in range(rounds):
            t, out = comfydock(["export", "--no-interactive", "--json", "--output", str(base / "b.tar.gz")], env)
            again.append(t)
            hashed = json.loads(out)["full_hashes_computed"]
        print(row(f"unchanged export, best (full hashes: {hashed} files read)", min(again), ""))
        noop = []
        for _ in range(max(rounds, 5)):
            t, out = comfydock(["build", "export", "--json"], env)
            noop.append(t)
            ran = [e["task"] for e in json.loads(out)["tasks"] if e["status"] == "ran"]
        print(row(f"no-op build export, best ({len(ran)} tasks ran)", min(noop), "   (target < 0.4 s)"))
        t, out = comfydock(["import", str(base / "a.tar.gz"), "--env", "copy", "--json", "--no-interactive"], env)
        hows = sorted({m["how"] for m in json.loads(out)["models"]})
        print(row(f"import, every model already indexed (models: {', '.join(hows)})", t, ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512, help="size of the served model file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--link-mib", type=float, default=100, help="speed of the paced run (MiB/s; 100 ~ a 1 Gbit/s line)")
    parser.add_argument("--model-mib", type=int, default=256, help="size of each model in the export benchmark")
    parser.add_argument("--models", type=int, default=4, help="models (and workflows) in the export benchmark")
    opts = parser.parse_args()
    bench_export_import(opts.model_mib, opts.models, opts.rounds)
    bench_download(opts.size_mib, opts.rounds, None)
    hash_ceiling()
    bench_download(min(opts.size_mib, int(opts.link_mib * 3) or 1), opts.rounds, opts.link_mib)


if __name__ == "__main__":
    main()
