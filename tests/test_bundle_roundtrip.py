"""The primitives together, as export and import will use them: a dev node and a lock go into a bundle,
come out elsewhere, and the locked model is downloaded from a loopback server into the models directory."""

from __future__ import annotations

import hashlib
import os

from blake3 import blake3

from comfydock.bundle.archive import dev_node_files, extract_bundle, write_bundle
from comfydock.bundle.download import download_model
from comfydock.bundle.lockfile import ComfyUIPin, LockedModel, LockedNode, Lockfile, dumps, read_lock
from comfydock.bundle.sources import civitai_lookup
from comfydock.demo.model_server import ModelServer
from comfydock.hashing import quick_hash


def test_bundle_carries_dev_node_and_lock_and_import_fetches_the_model(tmp_path):
    weights = tmp_path / "src-models" / "loras" / "style.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(os.urandom(200_000))
    node = tmp_path / "my-node"
    (node / "__pycache__").mkdir(parents=True)
    (node / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    (node / "__pycache__" / "x.pyc").write_bytes(b"\0")
    with ModelServer() as server:
        data = weights.read_bytes()
        server.add_civitai_file(4384, weights.name, data)
        # export side: full hashes, a CivitAI lookup, the lock, the bundle
        sha = hashlib.sha256(data).hexdigest()
        urls = civitai_lookup(sha, server.url)
        lock = Lockfile(
            models=(
                LockedModel(
                    quick_hash(weights)[0],
                    weights.name,
                    "loras/style.safetensors",
                    sha,
                    blake3(data).hexdigest(),
                    len(data),
                    tuple(urls),
                ),
            ),
            nodes=(LockedNode("my-node", "development"),),
            comfyui=ComfyUIPin("0" * 40),
            python_version="3.12",
        )
        files, skipped = dev_node_files(node, "dev_nodes/my-node")
        members = {
            "comfydock.lock": dumps(lock).encode(),
            "pyproject.toml": b'[project]\nname = "e"\n',
            "uv.lock": b"version = 1\n",
        }
        write_bundle(members | files | {"workflows/w.json": b"{}"}, tmp_path / "e.tar.gz")

        # import side: check + extract, read the lock, download the model into place
        extract_bundle(tmp_path / "e.tar.gz", tmp_path / "staging")
        got = read_lock(tmp_path / "staging" / "comfydock.lock")
        assert got == Lockfile(models=lock.models, nodes=lock.nodes, comfyui=lock.comfyui, python_version="3.12")
        assert sorted(p.name for p in (tmp_path / "staging" / "dev_nodes" / "my-node").iterdir()) == ["__init__.py"]
        result = download_model(got.models[0], tmp_path / "models")
    assert result.path.read_bytes() == data
    assert result.path == tmp_path / "models" / "loras" / "style.safetensors"
