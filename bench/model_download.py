"""Benchmark `models download` against a plain `requests` stream on a paced loopback link; prints figures, asserts nothing.

Target: download_model (Range-capable download, SHA256 + Blake3 while streaming, index and source
record at the end) reaches >= 90 % of the throughput of `requests.get(stream=True)` written to a
file, both fetching the same Hugging Face URL from the loopback model server paced at --rate MiB/s.
Each is run --rounds times, alternating; the best round of each is compared.
Run: python bench/model_download.py [--size MIB] [--rate MIB_PER_S] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import requests

from comfydock.demo.model_server import ModelServer, write_model_file
from comfydock.model_download import download_model
from comfydock.workspace import Workspace

MIB = 1 << 20


def plain(url: str, dest: Path) -> float:
    started = time.perf_counter()
    with requests.get(url, stream=True, timeout=60) as resp, open(dest, "wb") as f:
        resp.raise_for_status()
        for chunk in resp.iter_content(1 << 20):
            f.write(chunk)
    seconds = time.perf_counter() - started
    dest.unlink()
    return seconds


def ours(ws: Workspace, url: str) -> float:
    started = time.perf_counter()
    path = download_model(ws, url, category="checkpoints")
    seconds = time.perf_counter() - started
    path.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="file size in MiB")
    parser.add_argument("--rate", type=float, default=100, help="link speed in MiB/s")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp, ModelServer() as server:
        tmp = Path(tmp)
        os.environ["COMFYDOCK_HUGGINGFACE_URL"] = server.url
        ws, _ = Workspace.init(tmp / "ws", models_dir=tmp / "models")
        model = write_model_file(tmp / "src" / "model.safetensors", args.size * MIB, seed=1)
        url = server.add_hf_file("bench/model", "main", "model.safetensors", model)
        server.rate_limit = args.rate * MIB
        times = {"requests": [], "comfydock": []}
        for _ in range(args.rounds):
            times["requests"].append(plain(url, tmp / "plain.bin"))
            times["comfydock"].append(ours(ws, url))
        best = {k: args.size / min(v) for k, v in times.items()}
        print(f"file {args.size} MiB, link paced at {args.rate:g} MiB/s, best of {args.rounds}")
        for k, v in times.items():
            print(f"  {k:10s} {best[k]:7.1f} MiB/s  (rounds: {', '.join(f'{t:.2f}s' for t in v)})")
        print(f"  comfydock / requests: {best['comfydock'] / best['requests'] * 100:.1f} % (target >= 90 %)")


if __name__ == "__main__":
    main()
