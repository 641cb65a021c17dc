"""Benchmark workflow analysis and node classification on the real corpus; prints figures, asserts nothing.

Target (2-core machine): the whole corpus analysed in < 1 s (the issue's figure); building the
node map from the full extension-node-map.json and classifying every workflow are shown too.
Reads /work/shared/corpus when it exists, else the copy in tests/data/corpus.
Run: python bench/workflows.py [--repeat N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from comfydock.workflows.analysis import WorkflowError, analyze_file
from comfydock.workflows.node_types import build_node_map, classify

REPO = Path(__file__).resolve().parent.parent
SHARED = Path("/work/shared/corpus")
COPY = REPO / "tests" / "data" / "corpus"


def corpus_root() -> Path:
    return SHARED if (SHARED / "workflows").is_dir() else COPY


def load_map_data(root: Path) -> dict:
    if (root / "extension-node-map.json").is_file():
        return json.loads((root / "extension-node-map.json").read_bytes())
    return json.loads(gzip.decompress((REPO / "tests" / "data" / "extension-node-map.json.gz").read_bytes()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the best is shown")
    args = parser.parse_args()
    root = corpus_root()
    files = sorted((root / "workflows").rglob("*.json"))
    size = sum(f.stat().st_size for f in files)
    print(f"corpus: {root} ({len(files)} workflows, {size / 1e6:.1f} MB)")

    best, analyses = float("inf"), []
    for _ in range(args.repeat):
        start = time.perf_counter()
        analyses = []
        for f in files:
            try:
                analyses.append(analyze_file(f))
            except WorkflowError:
                pass
        best = min(best, time.perf_counter() - start)
    models = sum(len(a.models) for a in analyses)
    types = sum(len(a.node_types) for a in analyses)
    print(f"analyse whole corpus: {best * 1000:.1f} ms  (target < 1000 ms; {models} model refs, {types} node-type uses)")

    data = load_map_data(root)
    start = time.perf_counter()
    node_map = build_node_map(data)
    print(f"build node map: {(time.perf_counter() - start) * 1000:.1f} ms  ({len(node_map.repos)} repositories)")

    start = time.perf_counter()
    missing = 0
    for a in analyses:
        core = {u.type for u in a.node_types if u.cnr_id == "comfy-core"}
        missing += sum(1 for s in classify(a, core, {}, node_map, "0.3.64") if s.provider == "missing")
    print(f"classify every workflow: {(time.perf_counter() - start) * 1000:.1f} ms  ({missing} missing types)")


if __name__ == "__main__":
    main()
