"""Workflows and local history: workflow list/show, commit, rollback, models resolve (real git, uv, SQLite)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from conftest import venv_has

CORPUS = Path(__file__).parent / "data" / "corpus" / "workflows"
SDXL = CORPUS / "templates" / "sdxl_simple_example.json"
UPSCALER = CORPUS / "templates" / "utility-gan_upscaler.json"

pytestmark = pytest.mark.slow


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file below root (except git's internals) with its sha256: 'byte for byte as before'."""
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        if ".git" in p.relative_to(root).parts or p.is_dir():
            continue
        out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "link"
    return out


def _save_workflow(env, source: Path, name: str | None = None) -> Path:
    dest = env.workflows_dir / (name or source.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, dest)
    return dest


def _model(workspace, relative: str, content: bytes) -> Path:
    path = workspace.models_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_workflow_list_shows_new_modified_committed_and_deleted(env, run_cli):
    _save_workflow(env, SDXL)
    rows = run_cli("workflow", "list", "--json").json
    # the fixture ComfyUI ships demo.json: a workflow present at create is part of v1
    assert [(r["name"], r["state"]) for r in rows] == [("demo", "committed"), ("sdxl_simple_example", "new")]

    assert run_cli("commit", "-m", "first workflow", "--no-interactive").code == 0
    states = {r["name"]: r["state"] for r in run_cli("workflow", "list", "--json").json}
    assert states == {"demo": "committed", "sdxl_simple_example": "committed"}

    wf = env.workflows_dir / "sdxl_simple_example.json"
    wf.write_text(wf.read_text().replace("sd_xl_base_1.0", "sd_xl_base_1.1"))
    _save_workflow(env, UPSCALER, "upscale/gan.json")
    states = {r["name"]: r["state"] for r in run_cli("workflow", "list", "--json").json}
    assert states == {"demo": "committed", "sdxl_simple_example": "modified", "upscale/gan": "new"}

    wf.unlink()
    states = {r["name"]: r["state"] for r in run_cli("workflow", "list", "--json").json}
    assert states["sdxl_simple_example"] == "deleted"
    text = run_cli("workflow", "list").out
    assert "upscale/gan" in text and "not committed" in text


def test_commit_versions_workflow_and_records_its_resolved_models(env, workspace, run_cli):
    model = _model(workspace, "checkpoints/sd_xl_base_1.0.safetensors", b"base-model" * 1000)
    _save_workflow(env, SDXL)  # no 'models index' first: commit brings the index up to date itself

    result = run_cli("commit", "-m", "sdxl", "--no-interactive", "--json")
    assert result.code == 0, result.err
    assert result.json["version"] == "v2"
    assert (env.cec_dir / "workflows" / "sdxl_simple_example.json").read_bytes() == SDXL.read_bytes()
    # the refiner is not on disk: reported, never invented
    unresolved = [m["filename"] for m in result.json["unresolved"] if m["workflow"] == "sdxl_simple_example"]
    assert unresolved == ["sd_xl_refiner_1.0.safetensors"]

    text = env.pyproject_path.read_text()
    assert "[tool.comfydock.workflows.sdxl_simple_example]" in text
    from comfydock import manifest

    doc = manifest.load(env.pyproject_path)
    required = manifest.required_models(doc)
    (quick,) = required
    assert required[quick]["relative_path"] == "checkpoints/sd_xl_base_1.0.safetensors"
    assert required[quick]["urls"][0].startswith("https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/")
    entry = manifest.workflow_entries(doc)["sdxl_simple_example"]
    assert entry["unresolved"][0]["filename"] == "sd_xl_refiner_1.0.safetensors"
    log = run_cli("log", "--json").json
    assert log[0]["version"] == "v2" and log[0]["message"] == "sdxl"

    shown = run_cli("workflow", "show", "sdxl_simple_example", "--json").json
    base = next(m for m in shown["models"] if m["filename"] == "sd_xl_base_1.0.safetensors")
    assert base["status"] == "resolved" and base["path"] == str(model) and base["directory"] == "checkpoints"


def test_second_commit_without_changes_makes_no_version_and_redoes_nothing(env, run_cli):
    _save_workflow(env, SDXL)
    assert run_cli("commit", "--no-interactive").code == 0
    again = run_cli("commit", "--no-interactive", "--json")
    assert again.code == 0
    assert again.json["version"] is None and "nothing changed" in again.json["message"]
    ran = {t["task"] for t in again.json["build"]["tasks"] if t["status"] == "ran"}
    assert not any(t.startswith(("copy_workflow", "analyze_workflow")) for t in ran)
    assert [v["version"] for v in run_cli("log", "--json").json] == ["v2", "v1"]
    text = run_cli("commit", "--no-interactive")  # the unresolved models were warned about at v2: a summary now
    assert "Nothing to commit" in text.out and "is not in the model index" not in text.err
    assert "Still open: 3 unresolved model references" in text.err  # demo + the two SDXL checkpoints


def test_unreadable_workflow_is_named_and_still_versioned(env, run_cli):
    (env.workflows_dir).mkdir(parents=True, exist_ok=True)
    (env.workflows_dir / "broken.json").write_text('{"nodes": [')
    _save_workflow(env, UPSCALER)
    result = run_cli("commit", "--no-interactive", "--json")
    assert result.code == 0, result.err
    assert result.json["unreadable"] == ["broken"]
    assert (env.cec_dir / "workflows" / "broken.json").read_text() == '{"nodes": ['
    shown = run_cli("workflow", "show", "broken", "--json").json
    assert "not valid JSON" in shown["error"]


def test_ambiguous_model_is_asked_once_and_the_answer_reused(env, workspace, run_cli, monkeypatch):
    import io

    _model(workspace, "upscale_models/old/RealESRGAN_x4plus.safetensors", b"one" * 100)
    chosen = _model(workspace, "upscale_models/new/RealESRGAN_x4plus.safetensors", b"two" * 100)
    assert run_cli("models", "index").code == 0
    _save_workflow(env, UPSCALER)

    monkeypatch.setattr("sys.stdin", io.StringIO("1\n"))  # 1. new/..., 2. old/... (sorted)
    result = run_cli("commit", "--interactive")
    assert result.code == 0, result.err
    assert "Multiple matches found" in result.err and "upscale_models/new/RealESRGAN_x4plus.safetensors" in result.err
    shown = run_cli("workflow", "show", "utility-gan_upscaler", "--json").json
    assert shown["models"][0]["path"] == str(chosen)

    # the workflow changes elsewhere: the stored answer is reused, nothing is asked
    wf = env.workflows_dir / "utility-gan_upscaler.json"
    wf.write_text(wf.read_text().replace('"title"', '"title" ', 1) + "\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    again = run_cli("commit", "--interactive", "--json")
    assert again.code == 0 and again.json["version"] == "v3"
    assert [m for m in again.json["unresolved"] if m["workflow"] != "demo"] == []
    assert "Multiple matches" not in again.err


def test_skipped_ambiguous_model_is_not_asked_again_and_models_resolve_can_pick_it(env, workspace, run_cli, monkeypatch):
    import io

    _model(workspace, "upscale_models/old/RealESRGAN_x4plus.safetensors", b"one" * 100)
    chosen = _model(workspace, "upscale_models/new/RealESRGAN_x4plus.safetensors", b"two" * 100)
    _save_workflow(env, UPSCALER)

    monkeypatch.setattr("sys.stdin", io.StringIO("s\n"))
    first = run_cli("commit", "--interactive", "--json")
    assert first.code == 0, first.err
    assert "Multiple matches found" in first.err

    # the workflow changes: the skip is an answer like any other, nothing is asked again
    wf = env.workflows_dir / "utility-gan_upscaler.json"
    wf.write_text(wf.read_text().replace('"title"', '"title" ', 1) + "\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("1\n"))
    again = run_cli("commit", "--interactive")
    assert again.code == 0, again.err
    assert "Multiple matches found" not in again.err and "several indexed files match" not in again.err
    assert "RealESRGAN_x4plus.safetensors skipped (your answer, kept)" in again.err
    assert [v["version"] for v in run_cli("log", "--json").json][0] == "v3"
    shown = run_cli("workflow", "show", "utility-gan_upscaler", "--json").json
    assert shown["models"][0]["status"] == "ambiguous" and shown["models"][0]["skipped"] is True
    assert (
        "skipped; 'comfydock models resolve utility-gan_upscaler' picks a file"
        in run_cli("workflow", "show", "utility-gan_upscaler").out
    )

    # models resolve asks about the skipped reference, says it was skipped, and stores the pick
    monkeypatch.setattr("sys.stdin", io.StringIO("1\n"))
    picked = run_cli("models", "resolve", "utility-gan_upscaler", "--interactive")
    assert picked.code == 0, picked.err
    assert "skipped before" in picked.err and "Multiple matches found" in picked.err
    shown = run_cli("workflow", "show", "utility-gan_upscaler", "--json").json
    assert shown["models"][0]["status"] == "resolved" and shown["models"][0]["path"] == str(chosen)
    assert "skipped" not in env.pyproject_path.read_text()


def test_rollback_round_trip_restores_workflows_nodes_and_venv(env, run_cli, node_repo):
    _save_workflow(env, SDXL)
    assert run_cli("node", "add", f"{node_repo.as_uri()}@v1.0").code == 0
    assert run_cli("commit", "-m", "v2 state", "--no-interactive").code == 0
    v2 = {"cec": _tree_digest(env.cec_dir), "wf": _tree_digest(env.workflows_dir)}
    assert venv_has(env, "cdfix_gamma") == "0.1"

    wf = env.workflows_dir / "sdxl_simple_example.json"
    wf.write_text(wf.read_text().replace("sd_xl_base_1.0", "sd_xl_base_9"))
    _save_workflow(env, UPSCALER)
    assert run_cli("node", "remove", "ComfyUI-Git-Node").code == 0
    assert run_cli("py", "add", "cdfix-beta").code == 0
    assert run_cli("commit", "-m", "v3 state", "--no-interactive").code == 0
    v3 = {"cec": _tree_digest(env.cec_dir), "wf": _tree_digest(env.workflows_dir)}

    result = run_cli("rollback", "v2", "--yes", "--json")
    assert result.code == 0, result.err
    assert result.json["nodes_installed"] == ["ComfyUI-Git-Node"]
    assert _tree_digest(env.cec_dir) == v2["cec"]
    assert _tree_digest(env.workflows_dir) == v2["wf"]
    assert (env.custom_nodes_dir / "ComfyUI-Git-Node" / "__init__.py").exists()
    assert venv_has(env, "cdfix_beta") is None
    status = run_cli("status", "--json").json
    assert status["venv_in_sync"]
    assert "pyproject.toml" in " ".join(status["uncommitted_changes"])  # on the branch, not a checkout

    assert run_cli("rollback", "v3", "--yes").code == 0
    assert _tree_digest(env.cec_dir) == v3["cec"]
    assert _tree_digest(env.workflows_dir) == v3["wf"]
    assert not (env.custom_nodes_dir / "ComfyUI-Git-Node").exists()
    assert venv_has(env, "cdfix_beta") == "2.0"
    # committing the rolled-back state records no change: v3 already is this state
    assert run_cli("commit", "--no-interactive", "--json").json["version"] is None


def test_rollback_disables_dev_node_and_keeps_never_committed_workflow(env, run_cli):
    dev = env.custom_nodes_dir / "my-dev-node"
    dev.mkdir(parents=True)
    (dev / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    assert run_cli("commit", "-m", "empty", "--no-interactive").code in (0,)
    assert run_cli("node", "add", "my-dev-node", "--dev").code == 0
    assert run_cli("commit", "-m", "with dev node", "--no-interactive").code == 0
    _save_workflow(env, UPSCALER, "scratch.json")  # never committed

    result = run_cli("rollback", "v1", "--yes")
    assert result.code == 0, result.err
    assert not dev.exists()
    assert (env.custom_nodes_dir / "my-dev-node.disabled" / "__init__.py").exists()
    assert (env.workflows_dir / "scratch.json").exists()
    assert "kept workflow scratch" in result.err


def test_rollback_to_unknown_version_lists_the_versions(env, run_cli):
    result = run_cli("rollback", "v9", "--yes")
    assert result.code == 1
    assert "v9" in result.err and "v1" in result.err


def test_rollback_refuses_to_discard_uncommitted_work_without_yes(env, run_cli):
    demo = env.workflows_dir / "demo.json"  # committed in v1
    demo.write_text(demo.read_text().replace("demo_model", "other_model"))
    result = run_cli("rollback", "v1")
    assert result.code == 1
    assert "workflow demo (modified)" in result.err and "rollback v1 --yes" in result.err
    assert "other_model" in demo.read_text()
    # a workflow that was never committed is not something rollback discards: no refusal for it
    demo.write_text(demo.read_text().replace("other_model", "demo_model"))
    _save_workflow(env, SDXL)
    kept = run_cli("rollback")
    assert kept.code == 0 and (env.workflows_dir / "sdxl_simple_example.json").exists()


def test_rollback_without_target_discards_uncommitted_changes(env, run_cli):
    _save_workflow(env, SDXL)
    assert run_cli("commit", "--no-interactive").code == 0
    wf = env.workflows_dir / "sdxl_simple_example.json"
    wf.write_text("{}")
    assert run_cli("py", "add", "cdfix-beta").code == 0
    assert run_cli("rollback", "--yes").code == 0
    assert wf.read_bytes() == SDXL.read_bytes()
    assert "cdfix-beta" not in env.pyproject_path.read_text()
    assert venv_has(env, "cdfix_beta") is None
    assert run_cli("status", "--json").json["uncommitted_changes"] == []


def test_rollback_discards_a_damaged_manifest_and_lock(env, run_cli):
    manifest_bytes, lock_bytes = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    env.pyproject_path.write_text(env.pyproject_path.read_text() + "\n[broken\n")
    env.uv_lock_path.write_text("not a lock = = =\n")
    assert run_cli("status").code == 1  # the damage is named (status needs the manifest)
    asked = run_cli("rollback")  # not a terminal: refused, naming what would be discarded
    assert asked.code == 1 and "pyproject.toml" in asked.err and "rollback --yes" in asked.err
    result = run_cli("rollback", "--yes")
    assert result.code == 0, result.err
    assert "discarded a damaged pyproject.toml" in result.err
    assert env.pyproject_path.read_bytes() == manifest_bytes and env.uv_lock_path.read_bytes() == lock_bytes
    status = run_cli("status", "--json").json
    assert status["uncommitted_changes"] == [] and status["venv_in_sync"]
    env.pyproject_path.write_text("[broken\n")  # a named version works too
    assert run_cli("rollback", "v1", "--yes").code == 0
    assert env.pyproject_path.read_bytes() == manifest_bytes


def test_failed_rollback_leaves_everything_as_it_was(env, workspace, run_cli, node_repo):
    assert run_cli("node", "add", f"{node_repo.as_uri()}@v1.0").code == 0
    assert run_cli("commit", "-m", "with node", "--no-interactive").code == 0
    assert run_cli("node", "remove", "ComfyUI-Git-Node").code == 0
    _save_workflow(env, SDXL)
    assert run_cli("commit", "-m", "without node", "--no-interactive").code == 0
    wf = env.workflows_dir / "sdxl_simple_example.json"
    wf.write_text(wf.read_text() + "\n")  # an uncommitted edit that must survive
    # the node cannot come back: its source and the cached copy are gone
    shutil.rmtree(node_repo)
    shutil.rmtree(workspace.node_cache_dir)
    before = {d: _tree_digest(d) for d in (env.cec_dir, env.custom_nodes_dir, env.workflows_dir)}

    result = run_cli("rollback", "v2", "--yes")
    assert result.code == 1
    assert "Traceback" not in result.err and "error:" in result.err
    assert {d: _tree_digest(d) for d in before} == before
    assert run_cli("status", "--json").json["venv_in_sync"]


def test_commit_failure_leaves_cec_as_it_was(env, run_cli, monkeypatch):
    _save_workflow(env, SDXL)
    before = _tree_digest(env.cec_dir)
    # a pyproject that uv cannot lock: commit's lock step fails after workflows were copied
    text = env.pyproject_path.read_text()
    env.pyproject_path.write_text(text.replace("dependencies = [", 'dependencies = [\n    "cdfix-beta>=99",', 1))
    before = _tree_digest(env.cec_dir)
    result = run_cli("commit", "--no-interactive")
    assert result.code == 1
    assert _tree_digest(env.cec_dir) == before
    assert [v["version"] for v in run_cli("log", "--json").json] == ["v1"]


def test_status_names_missing_node_packages_with_the_node_add_line(env, workspace, run_cli):
    import gzip

    from test_node_types import MapServer

    server = MapServer(gzip.decompress((Path(__file__).parent / "data" / "extension-node-map.json.gz").read_bytes()))
    try:
        assert run_cli("config", "node-map-url", server.url).code == 0
        _save_workflow(env, CORPUS / "custom-nodes" / "essentials_workflow_all_nodes.json", "essentials.json")
        committed = run_cli("commit", "--no-interactive", "--json")
        assert committed.code == 0, committed.err
        missing = {m["type"]: m for m in committed.json["missing_nodes"]}
        some = next(iter(missing.values()))
        assert some["command"].startswith("comfydock node add ") and "essentials" in some["command"].lower()

        status = run_cli("status", "--json").json
        assert {m["type"] for m in status["missing_nodes"]} == set(missing)
        text = run_cli("status").out
        assert "Missing custom nodes:" in text and some["command"] in text
    finally:
        server.close()


def test_interactive_commit_asks_which_package_provides_an_ambiguous_type(env, run_cli, monkeypatch):
    import gzip
    import io
    import json

    from test_node_types import MapServer

    server = MapServer(gzip.decompress((Path(__file__).parent / "data" / "extension-node-map.json.gz").read_bytes()))
    try:
        assert run_cli("config", "node-map-url", server.url).code == 0
        env.workflows_dir.mkdir(parents=True, exist_ok=True)
        (env.workflows_dir / "openai.json").write_text(json.dumps({"nodes": [{"id": 1, "type": "OpenAI Image API"}]}))
        monkeypatch.setattr("sys.stdin", io.StringIO("2\n"))
        result = run_cli("commit", "--interactive", "--json")
        assert result.code == 0, result.err
        assert "provided by several packages" in result.err
        (missing,) = [m for m in result.json["missing_nodes"] if m["type"] == "OpenAI Image API"]
        assert missing["command"] == "comfydock node add https://github.com/unicough/comfy_openai_image_api"
        assert "node_choices" in env.pyproject_path.read_text()
        # stored and reused: the next commit asks nothing
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        (env.workflows_dir / "openai.json").write_text(json.dumps({"nodes": [{"id": 2, "type": "OpenAI Image API"}]}))
        again = run_cli("commit", "--interactive")
        assert again.code == 0 and "provided by several packages" not in again.err
    finally:
        server.close()


def test_status_and_workflow_show_agree_on_the_comfyui_a_workflow_needs(env, run_cli):
    import json

    env.workflows_dir.mkdir(parents=True, exist_ok=True)
    node = {"id": 1, "type": "BrandNewCoreNode", "properties": {"cnr_id": "comfy-core", "ver": "0.22.0"}}
    (env.workflows_dir / "future.json").write_text(json.dumps({"nodes": [node], "links": []}))
    try:
        status = run_cli("status", "--json").json
        assert status["needs_comfyui"] == {"future": "0.22.0"}
        assert "Workflow future needs ComfyUI 0.22.0 or newer" in run_cli("status").out
        assert run_cli("workflow", "show", "future", "--json").json["comfyui_version"] == "0.22.0"
    finally:
        (env.workflows_dir / "future.json").unlink()


def test_ctrl_c_at_the_which_package_prompt_stages_nothing_and_makes_no_version(env, run_cli):
    """The prompt comes after 'git add': the undo un-stages .cec/ again, the workflow stays new."""
    import gzip
    import json

    import git
    from test_node_types import MapServer

    from comfydock.environment import Environment
    from comfydock.versioning import commit_environment
    from comfydock.workspace import Workspace

    server = MapServer(gzip.decompress((Path(__file__).parent / "data" / "extension-node-map.json.gz").read_bytes()))
    try:
        assert run_cli("config", "node-map-url", server.url).code == 0
        env = Environment.open(Workspace.open(env.workspace.root), env.name)  # sees the node-map-url just set
        env.workflows_dir.mkdir(parents=True, exist_ok=True)
        (env.workflows_dir / "openai.json").write_text(json.dumps({"nodes": [{"id": 1, "type": "OpenAI Image API"}]}))
        repo = git.Repo(env.cec_dir)
        head = repo.head.commit.hexsha

        def ctrl_c(node_type, candidates, reason):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            commit_environment(env, "openai", choose_package=ctrl_c)
        assert repo.head.commit.hexsha == head and repo.git.diff("--cached", "--name-only") == ""
        assert [v["version"] for v in run_cli("log", "--json").json] == ["v1"]
        assert [w["state"] for w in run_cli("workflow", "list", "--json").json if w["name"] == "openai"] == ["new"]
    finally:
        server.close()


def test_commit_with_a_damaged_model_index_refuses_instead_of_dropping_every_resolution(env, workspace, run_cli):
    _save_workflow(env, SDXL)
    assert run_cli("commit", "-m", "sdxl", "--no-interactive").code == 0
    before = env.pyproject_path.read_bytes()
    workspace.models_db.write_bytes(b"\x07garbage" * 400)
    _save_workflow(env, UPSCALER)
    result = run_cli("commit", "-m", "with a damaged index", "--no-interactive")
    assert result.code == 1
    assert "is not a comfydock model index" in result.err and "models index --rebuild" in result.err
    assert env.pyproject_path.read_bytes() == before
    assert [v["version"] for v in run_cli("log", "--json").json][0] == "v2"
    (env.workflows_dir / UPSCALER.name).unlink()
    assert run_cli("status", "--json").code == 0  # committed workflows only: status still answers


def test_model_moved_where_its_loader_does_not_look_is_shown_as_misplaced(env, workspace, run_cli):
    # the fixture's demo workflow loads demo_model.safetensors with CheckpointLoaderSimple (checkpoints/)
    moved = _model(workspace, "loras/demo_model.safetensors", b"checkpoint" * 1000)
    assert run_cli("models", "index").code == 0

    shown = run_cli("workflow", "show", "demo", "--json").json
    (model,) = shown["models"]
    assert model["status"] == "resolved" and model["path"] == str(moved)
    assert model["misplaced"] is True and model["expected_path"] == "checkpoints/demo_model.safetensors"
    assert "misplaced: ComfyUI looks in checkpoints/" in run_cli("workflow", "show", "demo").out

    status = run_cli("status", "--json").json  # demo is committed: still checked
    assert [(m["relative_path"], m["expected_path"], m["workflows"]) for m in status["misplaced_models"]] == [
        ("loras/demo_model.safetensors", "checkpoints/demo_model.safetensors", ["demo"])
    ]
    text = run_cli("status").out
    assert "Misplaced model: loras/demo_model.safetensors is outside the folder CheckpointLoaderSimple reads" in text
    assert "move it to checkpoints/demo_model.safetensors" in text

    # put back where ComfyUI looks: nothing to say
    (workspace.models_dir / "checkpoints").mkdir()
    moved.rename(workspace.models_dir / "checkpoints" / "demo_model.safetensors")
    assert run_cli("models", "index").code == 0
    assert run_cli("status", "--json").json["misplaced_models"] == []
    assert run_cli("workflow", "show", "demo", "--json").json["models"][0]["misplaced"] is False


def test_commit_goes_on_without_a_node_map_nested_too_deep_and_says_so(env, run_cli):
    """A hostile node map (arrays inside arrays 100,000 deep) crashed commit with a RecursionError."""
    import json

    from test_node_types import MapServer

    server = MapServer(b"[" * 100_000 + b"]" * 100_000)
    try:
        assert run_cli("config", "node-map-url", server.url).code == 0
        env.workflows_dir.mkdir(parents=True, exist_ok=True)
        (env.workflows_dir / "odd.json").write_text(json.dumps({"nodes": [{"id": 1, "type": "NoSuchNodeAnywhere"}]}))
        result = run_cli("commit", "-m", "odd", "--no-interactive")
        assert result.code == 0, result.err
        warning = [ln for ln in result.err.splitlines() if "node map" in ln]
        assert warning and "deep" in warning[0] and "Traceback" not in result.err, result.err
        assert [v["version"] for v in run_cli("log", "--json").json][0] == "v2"
    finally:
        server.close()
