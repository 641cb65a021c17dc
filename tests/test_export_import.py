"""Export and import end to end: real environments, git, uv, SQLite, and a loopback model server."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest

from comfydock.demo.model_server import ModelServer, write_model_file

pytestmark = pytest.mark.slow

MODEL = "checkpoints/demo_model.safetensors"  # what the fixture ComfyUI's demo workflow loads


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def second_workspace(run_cli, tmp_path, fixture_assets, comfyui_source, name="wsB") -> Path:
    ws = tmp_path / name
    assert run_cli("init", ws, "--models-dir", tmp_path / f"{name}-models", "--no-interactive").code == 0
    for key, value in (
        ("comfyui-source", comfyui_source.as_uri()),
        ("find-links", fixture_assets["wheels"]),
        ("no-index", "true"),
        ("node-map-url", "http://127.0.0.1:9/extension-node-map.json"),
        ("civitai-url", "http://127.0.0.1:9"),
    ):
        assert run_cli("-w", ws, "config", key, value).code == 0
    return ws


def exported_env(env, workspace, run_cli, server) -> bytes:
    """Environment 'main' with the demo workflow's model (known to the loopback CivitAI) and a dev node."""
    model = write_model_file(workspace.models_dir / MODEL, 300_000, seed=7)
    data = model.read_bytes()
    server.add_civitai_file(4384, "demo_model.safetensors", data)
    assert run_cli("config", "civitai-url", server.url).code == 0
    dev = env.custom_nodes_dir / "my-dev-node"
    dev.mkdir(parents=True)
    (dev / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    (dev / ".gitignore").write_text("secret.txt\n")
    (dev / "secret.txt").write_text("not for sharing\n")
    assert run_cli("node", "add", "my-dev-node", "--dev").code == 0
    assert run_cli("models", "index").code == 0
    assert run_cli("commit", "-m", "model and dev node", "--no-interactive").code == 0
    return data


def test_export_import_round_trip_rebuilds_the_environment_in_another_workspace(
    env, workspace, run_cli, tmp_path, fixture_assets, comfyui_source
):
    with ModelServer() as server:
        data = exported_env(env, workspace, run_cli, server)
        result = run_cli("export", "--no-interactive", "--json", "--output", tmp_path / "a.tar.gz")
        assert result.code == 0, result.err
        exported = result.json
        assert exported["full_hashes_computed"] == 1
        [model] = exported["models"]
        assert model["path"] == MODEL and model["url"] == f"{server.url}/api/download/models/4384"
        assert exported["without_url"] == []

        # nothing changed: build export runs no task, and rewrites nothing
        mtime = (env.state_dir / "export" / "bundle.tar.gz").stat().st_mtime_ns
        noop = run_cli("build", "export", "--json")
        assert noop.code == 0, noop.err
        assert [e["task"] for e in noop.json["tasks"] if e["status"] == "ran"] == []
        assert (env.state_dir / "export" / "bundle.tar.gz").stat().st_mtime_ns == mtime

        # deterministic: a second export is byte-identical and reads no model again
        again = run_cli("export", "--no-interactive", "--json", "--output", tmp_path / "b.tar.gz").json
        assert again["sha256"] == exported["sha256"] == sha256(tmp_path / "b.tar.gz") == sha256(tmp_path / "a.tar.gz")
        assert again["full_hashes_computed"] == 0

        with tarfile.open(tmp_path / "a.tar.gz") as tar:
            names = set(tar.getnames())
            lock = tar.extractfile("comfydock.lock").read().decode()
        assert {
            "pyproject.toml",
            "uv.lock",
            "comfydock.lock",
            "workflows/demo.json",
            "dev_nodes/my-dev-node/__init__.py",
        } <= names
        assert "dev_nodes/my-dev-node/secret.txt" not in names
        assert hashlib.sha256(data).hexdigest() in lock and 'method = "development"' in lock

        # workspace B downloads the model from the loopback server
        ws_b = second_workspace(run_cli, tmp_path, fixture_assets, comfyui_source)
        imported = run_cli("-w", ws_b, "import", tmp_path / "a.tar.gz", "--no-interactive", "--json")
        assert imported.code == 0, imported.err
    info = imported.json
    assert info["environment"] == "main" and info["version"] == "v1"
    assert [(m["path"], m["how"]) for m in info["models"]] == [(MODEL, "downloaded")]
    assert (tmp_path / "wsB-models" / MODEL).read_bytes() == data

    env_b = ws_b / "environments" / "main"
    for rel in (".cec/pyproject.toml", ".cec/uv.lock", ".cec/workflows/demo.json"):
        assert (env_b / rel).read_bytes() == (env.root / rel).read_bytes(), rel
    assert (env_b / "ComfyUI/user/default/workflows/demo.json").read_bytes() == (env.workflows_dir / "demo.json").read_bytes()
    assert (env_b / "ComfyUI/custom_nodes/my-dev-node/__init__.py").exists()
    assert not (env_b / "ComfyUI/custom_nodes/my-dev-node/secret.txt").exists()

    status = run_cli("-w", ws_b, "status", "--json").json
    assert status["uncommitted_changes"] == [] and status["pending_tasks"] == [] and status["venv_in_sync"]
    assert all(w["state"] == "committed" for w in status["workflows"])
    assert "Imported from a.tar.gz" in run_cli("-w", ws_b, "log").out
    assert run_cli("-w", ws_b, "run", "--quick-test-for-ci").code == 0
    assert not (ws_b / "comfydock_cache" / "imports" / info["sha256"]).exists()
