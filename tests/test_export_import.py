"""Export and import end to end: real environments, git, uv, SQLite, and a loopback model server."""

from __future__ import annotations

import hashlib
import json
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


def exported_env(env, workspace, run_cli, server, size=300_000) -> bytes:
    """Environment 'main' with the demo workflow's model (known to the loopback CivitAI) and a dev node."""
    model = write_model_file(workspace.models_dir / MODEL, size, seed=7)
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
        # the same bundle at the same --output is not rewritten (CI caches compare files)
        out_stat = (tmp_path / "b.tar.gz").stat()
        assert run_cli("build", "export", "--output", tmp_path / "b.tar.gz").code == 0
        assert (tmp_path / "b.tar.gz").stat().st_ino == out_stat.st_ino
        assert (tmp_path / "b.tar.gz").stat().st_mtime_ns == out_stat.st_mtime_ns

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

    twice = run_cli("-w", ws_b, "import", tmp_path / "a.tar.gz", "--no-interactive")
    assert twice.code == 1 and "already exists" in twice.err
    shown = run_cli("-w", ws_b, "import", tmp_path / "a.tar.gz", "--env", "shown", "--no-interactive")
    assert shown.code == 0, shown.err
    assert "uv: Installed" in shown.err  # uv's progress is shown while the venv is made, as create does
    assert not (ws_b / "comfydock_cache" / "imports" / info["sha256"]).exists()


def test_import_continues_an_interrupted_download_and_copies_from_models_from(
    env, workspace, run_cli, tmp_path, fixture_assets, comfyui_source, node_repo, registry
):
    from comfydock.bundle.importing import import_bundle
    from comfydock.workspace import Workspace

    with ModelServer() as server:
        data = exported_env(env, workspace, run_cli, server, size=9 << 20)  # more than one 4 MiB read
        assert run_cli("node", "add", f"{node_repo.as_uri()}@v1.0", "comfyui-plain@0.1.0").code == 0
        assert run_cli("commit", "-m", "git and registry nodes", "--no-interactive").code == 0
        assert run_cli("export", "--no-interactive", "--output", tmp_path / "a.tar.gz").code == 0

        ws_b = second_workspace(run_cli, tmp_path, fixture_assets, comfyui_source)
        assert run_cli("-w", ws_b, "config", "registry-url", registry.url).code == 0
        zip_path = "/files/comfyui-plain/0.1.0.zip"
        downloads = registry.hits[zip_path]

        url = f"{server.url}/api/download/models/4384"
        server.misbehave(url, "wrong-bytes", times=1)  # a source serving another file: refused, nothing kept
        wrong = run_cli("-w", ws_b, "import", tmp_path / "a.tar.gz", "--no-interactive")
        assert wrong.code == 1 and "demo_model.safetensors" in wrong.err and "does not match" in wrong.err
        assert not (ws_b / "environments" / "main").exists()
        assert not list((tmp_path / "wsB-models").rglob("*.safetensors*"))

        def interrupt(model):  # Ctrl-C in the middle of the download
            def progress(done, total):
                if done < total:
                    raise KeyboardInterrupt

            return progress

        with pytest.raises(KeyboardInterrupt):
            import_bundle(Workspace.open(ws_b), tmp_path / "a.tar.gz", progress=interrupt)
        assert not (ws_b / "environments" / "main").exists()  # nothing half-made ...
        part = tmp_path / "wsB-models" / (MODEL + ".part")
        kept = part.stat().st_size
        assert 0 < kept < len(data)  # ... except the partial download

        again = run_cli("-w", ws_b, "import", tmp_path / "a.tar.gz", "--no-interactive", "--json")
        assert again.code == 0, again.err
        [model] = again.json["models"]
        assert model["how"] == "downloaded" and model["resumed_from"] == kept
        assert (tmp_path / "wsB-models" / MODEL).read_bytes() == data and not part.exists()
        custom_nodes = ws_b / "environments" / "main" / "ComfyUI" / "custom_nodes"
        assert (custom_nodes / "ComfyUI-Git-Node").is_dir() and (custom_nodes / "comfyui-plain").is_dir()
        assert registry.hits[zip_path] == downloads + 1  # fetched by the first import, never again

    # the server is gone: workspace C copies the model from another directory instead
    ws_c = second_workspace(run_cli, tmp_path, fixture_assets, comfyui_source, "wsC")
    assert run_cli("-w", ws_c, "config", "registry-url", registry.url).code == 0
    result = run_cli("-w", ws_c, "import", tmp_path / "a.tar.gz", "--models-from", workspace.models_dir, "--json")
    assert result.code == 0, result.err
    assert [m["how"] for m in result.json["models"]] == ["copied"]
    assert (tmp_path / "wsC-models" / MODEL).read_bytes() == data

    # workspace D already has the model, in another sub-folder: used in place, the workflow follows it
    ws_d = second_workspace(run_cli, tmp_path, fixture_assets, comfyui_source, "wsD")
    assert run_cli("-w", ws_d, "config", "registry-url", registry.url).code == 0
    (tmp_path / "wsD-models" / "checkpoints" / "mine").mkdir(parents=True)
    (tmp_path / "wsD-models" / "checkpoints" / "mine" / "demo_model.safetensors").write_bytes(data)
    result = run_cli("-w", ws_d, "import", tmp_path / "a.tar.gz", "--no-interactive", "--json")
    assert result.code == 0, result.err
    assert [m["how"] for m in result.json["models"]] == ["indexed"]
    assert not (tmp_path / "wsD-models" / MODEL).exists()
    for wf in (".cec/workflows/demo.json", "ComfyUI/user/default/workflows/demo.json"):
        loader = json.loads((ws_d / "environments" / "main" / wf).read_text())["nodes"][0]
        assert loader["widgets_values"] == ["mine/demo_model.safetensors"]
    assert run_cli("-w", ws_d, "status", "--json").json["uncommitted_changes"] == []


def test_hostile_bundle_is_refused_by_import_and_nothing_is_written(workspace_path, run_cli, tmp_path):
    from test_bundle_archive import base_members, hostile_cases, raw_bundle

    assert run_cli("config", "archive-max-members", "50").code == 0
    assert run_cli("config", "archive-max-bytes", str(1 << 20)).code == 0
    for case, (extra, reason) in hostile_cases().items():
        bundle = raw_bundle(tmp_path / f"{case}.tar.gz", base_members() + extra)
        result = run_cli("import", bundle, "--env", "evil", "--no-interactive")
        assert result.code == 1, case
        assert "refused" in result.err and reason in result.err, (case, result.err)
        assert not (workspace_path / "environments" / "evil").exists(), case
        assert not (workspace_path / "comfydock_cache" / "imports").exists(), case
        assert not (tmp_path / "evil.py").exists()

    # well-formed, but its pyproject.toml would install a node the lock does not list, outside custom_nodes/
    from comfydock.bundle.archive import write_bundle

    sneaky = {
        "comfydock.lock": b'lock_version = 1\n[comfyui]\ncommit = "' + b"a" * 40 + b'"\n',
        "pyproject.toml": b'[project]\nname = "comfydock-env-x"\n[tool.comfydock.nodes.evil]\nsource = "development"\n'
        b'directory = "../../evil"\n',
        "uv.lock": b"version = 1\n",
    }
    write_bundle(sneaky, tmp_path / "sneaky.tar.gz")
    result = run_cli("import", tmp_path / "sneaky.tar.gz", "--no-interactive")
    assert result.code == 1 and "invalid directory '../../evil'" in result.err
    assert not (workspace_path / "environments" / "x").exists()
    assert not any((workspace_path / "comfydock_cache" / "imports").iterdir())


def test_changed_workflow_reruns_only_its_chain_and_the_bundle_and_a_failed_lookup_resumes(env, workspace, run_cli, tmp_path):
    with ModelServer() as server:
        exported_env(env, workspace, run_cli, server)
        other = env.workflows_dir / "other.json"
        other.write_text((env.workflows_dir / "demo.json").read_text())
        sha = hashlib.sha256((workspace.models_dir / MODEL).read_bytes()).hexdigest()
        answer = server.civitai[sha]
        server.civitai[sha] = b"<html>502 Bad Gateway</html>"  # CivitAI answers garbage: the lookup fails
        failed = run_cli("build", "export", "--json")
        assert failed.code == 1
        status = {e["task"]: e["status"] for e in failed.json["tasks"]}
        assert [s for t, s in status.items() if t.startswith("full_hash:")] == ["ran"]
        assert [s for t, s in status.items() if t.startswith("lookup_source:")] == ["failed"]
        assert status.get("bundle") != "ran"
        assert "CivitAI lookup" in failed.err

        server.civitai[sha] = answer
        resumed = run_cli("build", "export", "--json")
        assert resumed.code == 0, resumed.err
        ran = {e["task"] for e in resumed.json["tasks"] if e["status"] == "ran"}
        assert not any(t.startswith("full_hash:") for t in ran)  # finished before the failure
        assert any(t.startswith("lookup_source:") for t in ran) and "bundle" in ran

        other.write_text(other.read_text().replace('"id": 1', '"id": 1, "title": "renamed"', 1))
        changed = run_cli("build", "export", "--json")
        assert changed.code == 0, changed.err
        ran = {e["task"] for e in changed.json["tasks"] if e["status"] == "ran"}
        assert {"copy_workflow:other", "analyze_workflow:other", "bundle"} <= ran
        assert not any(t.endswith(":demo") or t.startswith(("full_hash:", "lookup_source:")) for t in ran), ran

        # one workflow only: the bundle holds it and the models it needs; build export goes back to all
        one = run_cli("export", "other", "--no-interactive", "--json", "--output", tmp_path / "one.tar.gz")
        assert one.code == 0, one.err
        assert one.json["workflows"] == ["other"] and [m["path"] for m in one.json["models"]] == [MODEL]
        with tarfile.open(tmp_path / "one.tar.gz") as tar:
            assert "workflows/other.json" in tar.getnames() and "workflows/demo.json" not in tar.getnames()
        assert run_cli("build", "export").code == 0
        with tarfile.open(env.state_dir / "export" / "bundle.tar.gz") as tar:
            assert {"workflows/other.json", "workflows/demo.json"} <= set(tar.getnames())
        unknown = run_cli("export", "nope", "--no-interactive")
        assert unknown.code == 1 and "comfydock workflow list" in unknown.err  # well-formed, refused


def test_export_without_network_warns_exports_the_model_without_url_and_looks_it_up_again_next_time(
    env, workspace, run_cli, tmp_path
):
    with ModelServer() as server:
        exported_env(env, workspace, run_cli, server)
        assert run_cli("config", "civitai-url", "http://127.0.0.1:9").code == 0  # offline: nothing listens there
        offline = run_cli("export", "--no-interactive", "--output", tmp_path / "a.tar.gz")
        assert offline.code == 0, offline.err
        assert "warning: CivitAI lookup at http://127.0.0.1:9 failed: could not connect" in offline.err
        assert "1 model(s) have no download URL" in offline.err and MODEL in offline.err
        with tarfile.open(tmp_path / "a.tar.gz") as tar:
            assert "url =" not in tar.extractfile("comfydock.lock").read().decode()

        # the failure is not remembered as "no source": the next run asks again
        again = run_cli("build", "export", "--json")
        assert again.code == 0, again.err
        assert [e["status"] for e in again.json["tasks"] if e["task"].startswith("lookup_source:")] == ["ran"]
        assert [f["path"] for f in again.json["lookup_failures"]] == [MODEL]

        # a CivitAI outage (HTTP 503 after the retries): the same; once it is back, the URL is found and kept
        assert run_cli("config", "civitai-url", server.url).code == 0
        sha = hashlib.sha256((workspace.models_dir / MODEL).read_bytes()).hexdigest()
        server.misbehave(f"/api/v1/model-versions/by-hash/{sha}", "503")
        outage = run_cli("export", "--no-interactive", "--json", "--output", tmp_path / "b.tar.gz")
        assert outage.code == 0, outage.err
        assert [f["error"] for f in outage.json["lookup_failures"]] == [f"CivitAI lookup at {server.url} failed: HTTP 503"]
        assert [m["path"] for m in outage.json["without_url"]] == [MODEL]
        server.behave(f"/api/v1/model-versions/by-hash/{sha}")
        back = run_cli("export", "--no-interactive", "--json", "--output", tmp_path / "c.tar.gz")
        assert back.code == 0, back.err
        assert back.json["lookup_failures"] == [] and back.json["without_url"] == []
        assert [m["url"] for m in back.json["models"]] == [f"{server.url}/api/download/models/4384"]
        cached = run_cli("build", "export", "--json")
        assert not [e for e in cached.json["tasks"] if e["task"].startswith("lookup_source:") and e["status"] == "ran"]


def test_export_says_when_it_updated_pyproject_toml(env, workspace, run_cli, tmp_path):
    (env.workflows_dir / "other.json").write_text((env.workflows_dir / "demo.json").read_text())
    changed = run_cli("export", "--no-interactive", "--output", tmp_path / "a.tar.gz")
    assert changed.code == 0, changed.err
    line = "export updated pyproject.toml with the workflows' current models: 'comfydock commit' records it"
    assert line in changed.err
    assert run_cli("commit", "-m", "other workflow", "--no-interactive").code == 0
    same = run_cli("export", "--no-interactive", "--output", tmp_path / "a.tar.gz")
    assert same.code == 0 and "export updated pyproject.toml" not in same.err
    assert run_cli("export", "--no-interactive", "--json", "--output", tmp_path / "a.tar.gz").json["manifest_updated"] is False


def test_import_adds_this_machines_backend_keeping_the_exporters_and_other_indexes():
    import tomlkit

    from comfydock import manifest
    from comfydock.torch_family import ensure_backend

    doc = manifest.new_manifest("e", "3.12", ["numpy", "torch"], "v1", "c" * 40)
    ensure_backend(doc, "cu128", "https://torch.example/whl")  # the exporter's machine
    doc["tool"]["uv"]["index"].append({"name": "mine", "url": "https://mine.example/simple"})
    doc["tool"]["uv"]["sources"]["mypkg"] = {"index": "mine"}
    assert ensure_backend(doc, "cpu", "https://torch.example/whl")  # the importer's machine
    uv = tomlkit.loads(tomlkit.dumps(doc)).unwrap()["tool"]["uv"]
    assert [i["name"] for i in uv["index"]] == ["pytorch-cu128", "mine", "pytorch-cpu"]
    assert uv["index"][2]["url"] == "https://torch.example/whl/cpu"
    assert [s["index"] for s in uv["sources"]["torch"]] == ["pytorch-cu128", "pytorch-cpu"]
    assert uv["sources"]["mypkg"] == {"index": "mine"}
    assert not ensure_backend(doc, "cu128", "https://torch.example/whl")  # already there: unchanged


def test_export_asks_for_missing_urls_and_never_writes_tokens(
    env, workspace, run_cli, tmp_path, monkeypatch, fixture_assets, comfyui_source
):
    import gzip
    import io
    import sys

    write_model_file(workspace.models_dir / MODEL, 50_000, seed=3)
    token = "secret-token-123"
    monkeypatch.setenv("CIVITAI_API_TOKEN", token)
    with ModelServer() as server:  # CivitAI does not know the model
        assert run_cli("config", "civitai-url", server.url).code == 0
        assert run_cli("models", "index").code == 0
        listed = run_cli("export", "--no-interactive", "--output", tmp_path / "a.tar.gz")
        assert listed.code == 0, listed.err
        assert "no download URL" in listed.err and MODEL in listed.err

        url = "https://models.example/demo_model.safetensors"
        monkeypatch.setattr(sys, "stdin", io.StringIO(f"ftp://nope\n{url}\n"))
        asked = run_cli("export", "--interactive", "--json", "--output", tmp_path / "b.tar.gz")
        assert asked.code == 0, asked.err
        assert [m["url"] for m in asked.json["models"]] == [url] and asked.json["without_url"] == []
        lookups = [r for r in server.requests if r["path"].startswith("/api/v1/model-versions/by-hash/")]
        assert lookups and all(r["headers"].get("Authorization") == f"Bearer {token}" for r in lookups)

    assert url in run_cli("models", "info", MODEL).out  # the answer is kept in the index
    for written in (
        gzip.decompress((tmp_path / "b.tar.gz").read_bytes()),
        (env.state_dir / "export" / "comfydock.lock").read_bytes(),
        env.log_file.read_bytes(),
    ):
        assert token.encode() not in written

    # the bundle without a URL, imported elsewhere: the user picks a local substitute
    substitute = write_model_file(tmp_path / "elsewhere" / "my_model.safetensors", 1000, seed=9)
    ws_b = second_workspace(run_cli, tmp_path, fixture_assets, comfyui_source)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"7\n1\n{tmp_path / 'nope'}\n{substitute}\n"))
    imported = run_cli("-w", ws_b, "import", tmp_path / "a.tar.gz", "--interactive")
    assert imported.code == 0, imported.err
    assert "Select local substitute" in imported.err and "not verified" in imported.err
    assert (tmp_path / "wsB-models" / MODEL).read_bytes() == substitute.read_bytes()


def test_model_paths_are_rewritten_only_within_the_same_model_folder():
    from comfydock.bundle.importing import _set_widget

    ui = {"nodes": [{"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["sd15.safetensors"]}]}
    api = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}}}
    assert _set_widget(ui, "4", "0", "sd15.safetensors", "sd/sd15.safetensors")
    assert ui["nodes"][0]["widgets_values"] == ["sd/sd15.safetensors"]
    assert _set_widget(api, "4", "ckpt_name", "sd15.safetensors", "sd/sd15.safetensors")
    assert api["4"]["inputs"]["ckpt_name"] == "sd/sd15.safetensors"
    assert not _set_widget(ui, "4", "0", "other.safetensors", "x.safetensors")  # a value it does not hold
    assert not _set_widget(ui, "5", "0", "sd/sd15.safetensors", "x.safetensors")


def test_rewrite_skips_a_model_found_in_another_folder(tmp_path):
    from comfydock.bundle.importing import rewrite_model_paths

    wf = {"nodes": [{"id": 1, "type": "LoraLoader", "widgets_values": ["a.safetensors", 1.0]}]}
    (tmp_path / "w.json").write_text(json.dumps(wf))
    entries = {"w": {"models": {"h1": {"nodes": [{"node_id": "1", "widget_idx": "0", "filename": "a.safetensors"}]}}}}
    assert rewrite_model_paths(["w"], entries, {"h1": ("loras/a.safetensors", "checkpoints/a.safetensors")}, tmp_path) == []
    notes = rewrite_model_paths(["w"], entries, {"h1": ("loras/a.safetensors", "loras/x/a.safetensors")}, tmp_path)
    assert notes and json.loads((tmp_path / "w.json").read_text())["nodes"][0]["widgets_values"] == ["x/a.safetensors", 1.0]


def test_export_names_a_model_indexed_twice_as_ambiguous_not_as_missing(env, workspace, run_cli, tmp_path):
    # the demo workflow loads demo_model.safetensors; two different files of that name are indexed
    write_model_file(workspace.models_dir / "other" / "demo_model.safetensors", 4096, seed=1)
    write_model_file(workspace.models_dir / "more" / "demo_model.safetensors", 4096, seed=2)
    assert run_cli("models", "index").code == 0
    assert run_cli("commit", "-m", "two candidates", "--no-interactive").code == 0
    result = run_cli("export", "--no-interactive", "--output", tmp_path / "x.tar.gz")
    assert result.code == 0, result.err
    assert "several indexed files match model demo_model.safetensors" in result.err
    assert "comfydock models resolve demo" in result.err
    assert "is not in the model index" not in result.err
    shared = (tmp_path / "x.tar.gz").stat().st_mode & 0o777
    assert shared & 0o044 == 0o044  # readable by others under the usual umask: it is meant to be shared


def test_export_warns_of_a_misplaced_model_and_the_import_puts_it_where_comfyui_looks(
    env, workspace, run_cli, tmp_path, fixture_assets, comfyui_source
):
    # the demo workflow's checkpoint sits under loras/, where CheckpointLoaderSimple does not look
    model = write_model_file(workspace.models_dir / "loras" / "demo_model.safetensors", 4096, seed=3)
    with ModelServer() as server:
        server.add_civitai_file(4384, "demo_model.safetensors", model.read_bytes())
        assert run_cli("config", "civitai-url", server.url).code == 0
        assert run_cli("commit", "-m", "misplaced checkpoint", "--no-interactive").code == 0
        exported = run_cli("export", "--no-interactive", "--json", "--output", tmp_path / "a.tar.gz")
        assert exported.code == 0, exported.err
        [misplaced] = exported.json["misplaced"]
        assert misplaced["relative_path"] == "loras/demo_model.safetensors"
        assert misplaced["expected_path"] == MODEL and misplaced["workflows"] == ["demo"]
        assert [m["path"] for m in exported.json["models"]] == [MODEL]  # the same file, bundled where it belongs
        text = run_cli("export", "--no-interactive", "--output", tmp_path / "a.tar.gz")
        assert "loras/demo_model.safetensors is outside the folder CheckpointLoaderSimple reads (checkpoints/)" in text.err
        assert f"the bundle places it at {MODEL}" in text.err

    ws_b = second_workspace(run_cli, tmp_path, fixture_assets, comfyui_source)
    imported = run_cli("-w", ws_b, "import", tmp_path / "a.tar.gz", "--no-interactive", "--models-from", workspace.models_dir)
    assert imported.code == 0, imported.err
    assert (tmp_path / "wsB-models" / MODEL).read_bytes() == model.read_bytes()
    shown = run_cli("-w", ws_b, "workflow", "show", "demo", "--json").json
    assert shown["models"][0]["status"] == "resolved" and shown["models"][0]["misplaced"] is False
