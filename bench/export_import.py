"""Time export/import pieces; prints figures, asserts nothing.

Figures now: model download throughput from a loopback server through comfydock's download()
(streamed to .part, SHA256 + Blake3 verified, moved into place) relative to a plain `requests`
download of the same file that neither hashes nor verifies (target >= 90 %). Unthrottled loopback is faster than one core computes SHA256, so that run measures
the hashing ceiling (printed); the paced run (a real line's speed) shows whether hashing stays off
the hot path.
To come (issue 11): export time, no-op `build export` time (target < 0.4 s whole process), import
time with every model already indexed, and the full-hash counter.
Run: python bench/export_import.py [--size-mib 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import requests
from blake3 import blake3

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512, help="size of the served model file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--link-mib", type=float, default=100, help="speed of the paced run (MiB/s; 100 ~ a 1 Gbit/s line)")
    opts = parser.parse_args()
    bench_download(opts.size_mib, opts.rounds, None)
    hash_ceiling()
    bench_download(min(opts.size_mib, int(opts.link_mib * 3) or 1), opts.rounds, opts.link_mib)


if __name__ == "__main__":
    main()
