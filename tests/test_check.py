"""`comfydock check`: ComfyUI's quick test, its record, --cpu where there is no GPU, status' line."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def last_run_argv(env) -> list[str]:
    return json.loads((env.comfyui_dir / "user" / "fixture_last_run.json").read_text())["argv"]


def add_dev_node(env, run_cli, name: str, init: str):
    path = env.custom_nodes_dir / name
    path.mkdir()
    (path / "__init__.py").write_text(init)
    (path / "requirements.txt").write_text("")
    assert run_cli("node", "add", name, "--dev").code == 0


def test_check_passes_on_a_good_environment_and_answers_from_the_record_the_second_time(env, run_cli):
    first = run_cli("check")
    assert first.code == 0, first.err
    assert "ComfyUI starts and imports every custom node" in first.err
    assert last_run_argv(env)[0] == "--quick-test-for-ci"
    (env.comfyui_dir / "user" / "fixture_last_run.json").unlink()

    second = run_cli("check", "--json")
    assert second.code == 0
    assert second.json["ok"] is True and second.json["from_record"] is True
    assert not (env.comfyui_dir / "user" / "fixture_last_run.json").exists()  # ComfyUI was not started again

    assert run_cli("build", "check_comfyui").code == 0  # the same task, up to date
    assert not (env.comfyui_dir / "user" / "fixture_last_run.json").exists()

    rerun = run_cli("check", "--rerun")
    assert rerun.code == 0
    assert (env.comfyui_dir / "user" / "fixture_last_run.json").exists()


def test_a_broken_node_fails_the_check_naming_the_node_and_its_error_line(env, run_cli):
    add_dev_node(env, run_cli, "broken-node", "import cdfix_not_installed_anywhere\n")
    result = run_cli("check")
    assert result.code == 1
    assert "custom node broken-node (custom_nodes/broken-node)" in result.out
    assert "ModuleNotFoundError: No module named 'cdfix_not_installed_anywhere'" in result.out
    record = run_cli("check", "--json").json  # a failed check is run again, and fails the same way
    assert record["ok"] is False and record["from_record"] is False
    assert record["failed_nodes"] == [
        {"directory": "broken-node", "error": "ModuleNotFoundError: No module named 'cdfix_not_installed_anywhere'", "id": "broken-node"}
    ]
    build = run_cli("build", "check_comfyui")
    assert build.code == 1 and "broken-node" in build.err

    (env.custom_nodes_dir / "broken-node" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    assert run_cli("check").code == 0  # fixed: passes, and the record says so


def test_a_comfyui_import_error_is_reported_as_comfyuis_own(env, run_cli):
    main = env.comfyui_dir / "main.py"
    main.write_text("import cdfix_server_dependency  # undeclared, like requests in server.py\n" + main.read_text())
    result = run_cli("check", "--json")
    assert result.code == 1
    assert result.json["comfyui_error"] == "ModuleNotFoundError: No module named 'cdfix_server_dependency'"
    assert result.json["failed_nodes"] == []
    text = run_cli("check")
    assert "ComfyUI itself failed to start: ModuleNotFoundError: No module named 'cdfix_server_dependency'" in text.out


def test_check_passes_cpu_where_there_is_no_gpu_and_not_when_the_user_chose_a_device(env, run_cli, monkeypatch):
    monkeypatch.setenv("COMFYDOCK_FIXTURE_NO_GPU", "1")  # the fixture ComfyUI then fails without --cpu, as CUDA torch does
    result = run_cli("check")
    assert result.code == 0, result.out + result.err
    assert last_run_argv(env) == ["--quick-test-for-ci", "--cpu"]

    result = run_cli("check", "--json", "--", "--lowvram")
    assert result.json["command_args"] == ["--quick-test-for-ci", "--lowvram"]  # the user's choice, no --cpu beside it
    assert result.code == 1  # and on this GPU-less machine ComfyUI says why
    assert result.json["comfyui_error"].startswith("RuntimeError: Found no NVIDIA driver on your system")


def test_status_shows_the_last_check_and_for_which_version(env, run_cli):
    assert "Check: not run ('comfydock check'" in run_cli("status").out
    assert run_cli("check").code == 0
    status = run_cli("status")
    assert "Check: passed for v1 (uv.lock " in status.out
    assert "changed since" not in status.out
    data = run_cli("status", "--json").json["comfyui_check"]
    assert data["state"] == "passed" and data["current"] is True and data["environment_version"] == "v1"

    add_dev_node(env, run_cli, "broken-node", "raise ImportError('cannot load its weights table')\n")
    status = run_cli("status")
    assert "Check: passed for v1" in status.out and "the environment changed since: run 'comfydock check'" in status.out
    assert run_cli("check").code == 1
    status = run_cli("status")
    assert "Check: failed for v1 + uncommitted changes" in status.out
    assert "broken-node: ImportError: cannot load its weights table" in status.out


# --- node check: ComfyUI's options, and a hint that matches the error ------------------------------


def test_node_check_hint_for_a_missing_module_is_a_command_that_makes_it_pass(env, run_cli):
    import shlex

    add_dev_node(env, run_cli, "needs-beta", "import cdfix_beta\nNODE_CLASS_MAPPINGS = {}\n")
    # an install script that has nothing to do with the error: no "run its install script" hint
    (env.custom_nodes_dir / "needs-beta" / "install.py").write_text("open('weights.txt', 'w').close()\n")
    result = run_cli("node", "check", "--json")
    assert result.code == 1
    row = result.json[0]
    assert row["error"] == "ModuleNotFoundError: No module named 'cdfix_beta'"
    assert "'cdfix_beta'" in row["hint"] and "install script" not in row["hint"]
    command = row["hint"].split("'comfydock ", 1)[1].rstrip("'")
    assert run_cli(*shlex.split(command)).code == 0  # the hint, run as given
    assert run_cli("node", "check").code == 0


def test_node_check_passes_cpu_where_there_is_no_gpu_and_points_at_it_otherwise(env, run_cli, monkeypatch):
    monkeypatch.setenv("COMFYDOCK_FIXTURE_NO_GPU", "1")
    add_dev_node(env, run_cli, "gpu-node", "import comfy.model_management\nNODE_CLASS_MAPPINGS = {}\n")
    result = run_cli("node", "check")
    assert result.code == 0, result.out
    assert "started with --cpu" in result.err

    result = run_cli("node", "check", "--json", "gpu-node", "--", "--lowvram")
    assert result.code == 1
    row = result.json[0]
    assert row["comfyui_args"] == ["--lowvram"]
    assert row["error"].startswith("RuntimeError: Found no NVIDIA driver on your system")
    assert "-- --cpu" in row["hint"] and "install script" not in row["hint"]


# --- the core node-type listing: ComfyUI imported as main.py does, a static fallback said out loud --


def test_core_node_types_are_asked_of_comfyui_with_cpu_where_there_is_no_gpu(env, run_cli, monkeypatch):
    from comfydock.tasks.node_types import load_core_types

    monkeypatch.setenv("COMFYDOCK_FIXTURE_NO_GPU", "1")  # nodes.py picks the device at import, as ComfyUI's does
    (env.state_dir / "core-node-types.json").unlink()
    assert run_cli("build", "core_node_types").code == 0
    record = load_core_types(env)
    assert record["method"] == "probe", record["error"]
    assert "FixtureLatentBlend" in record["types"]


def test_the_probe_works_on_a_comfyui_without_comfy_options_or_utils(env, tmp_path):
    import shutil

    from comfydock.workflows.node_types import probe_core_types

    old = tmp_path / "OldComfyUI"
    shutil.copytree(env.comfyui_dir, old, ignore=shutil.ignore_patterns(".git", "comfy", "utils"))
    nodes_py = old / "nodes.py"
    nodes_py.write_text(nodes_py.read_text().replace("import comfy.model_management", "pass  # an older ComfyUI"))
    assert probe_core_types(env.python, old, comfyui_args=["--cpu"]) == {"CheckpointLoaderSimple", "SaveImage", "FixtureLatentBlend"}


def test_a_static_fallback_for_core_types_is_shown_with_its_reason(env, run_cli):
    nodes_py = env.comfyui_dir / "nodes.py"
    nodes_py.write_text("import cdfix_torch_stand_in_missing\n" + nodes_py.read_text())
    (env.state_dir / "core-node-types.json").unlink()
    assert run_cli("build", "core_node_types").code == 0
    said = "Core node types: read from ComfyUI's source (static scan), not asked of ComfyUI: ComfyUI could not list"
    status = run_cli("status")
    assert said in status.out and "cdfix_torch_stand_in_missing" in status.out
    show = run_cli("workflow", "show", "demo")
    assert said in show.out
    data = run_cli("workflow", "show", "demo", "--json").json
    assert data["core_types"]["method"] == "static" and "cdfix_torch_stand_in_missing" in data["core_types"]["reason"]


def test_comfyui_output_is_read_as_real_comfyui_prints_it():
    """The shape of ComfyUI v0.3.64's log: a node's traceback, then its 'Cannot import' line, the
    import-times table; a comfy_extras module listed as 'IMPORT FAILED: name'."""
    from comfydock.comfyui_check import parse_output

    log = """Traceback (most recent call last):
  File "/env/ComfyUI/nodes.py", line 2131, in load_custom_node
    module_spec.loader.exec_module(module)
ModuleNotFoundError: No module named 'onnxruntime'

Cannot import /env/ComfyUI/custom_nodes/comfyui-rembg module for custom nodes: No module named 'onnxruntime'
Traceback (most recent call last):
  File "/env/ComfyUI/nodes.py", line 2131, in load_custom_node
ImportError: cannot import name 'x' from 'av'
Cannot import /env/ComfyUI/comfy_extras/nodes_video.py module for custom nodes: cannot import name 'x' from 'av'
WARNING: some comfy_extras/ nodes did not import correctly. This may be because they are missing some dependencies.

IMPORT FAILED: nodes_video.py

Import times for custom nodes:
   0.0 seconds: /env/ComfyUI/custom_nodes/websocket_image_save.py
   0.4 seconds (IMPORT FAILED): /env/ComfyUI/custom_nodes/comfyui-rembg
"""
    found = parse_output(log, 0)
    assert found["failed_nodes"] == [{"directory": "comfyui-rembg", "error": "ModuleNotFoundError: No module named 'onnxruntime'"}]
    assert found["comfyui_import_failures"] == [
        {"module": "comfy_extras/nodes_video.py", "error": "ImportError: cannot import name 'x' from 'av'"}
    ]
    assert found["comfyui_error"] is None


def test_a_damaged_check_record_reads_as_not_run_and_the_next_check_writes_it_again(env, run_cli):
    from comfydock.comfyui_check import record_file

    assert run_cli("check").code == 0
    record_file(env).write_text('{"ok": true, "inputs": {}, "failed_nodes": [3], "comfyui_import_failures": []}')
    assert "Check: not run" in run_cli("status").out
    assert run_cli("check", "--json").json["from_record"] is False
    assert "Check: passed for v1" in run_cli("status").out


def test_a_node_that_registers_routes_at_import_passes_node_check_and_check(env, run_cli):
    # as rgthree-comfy does: ComfyUI's main.py makes the server before it loads custom nodes
    add_dev_node(
        env,
        run_cli,
        "routes-node",
        "from server import PromptServer\n\n"
        "@PromptServer.instance.routes.get('/routes-node/ping')\n"
        "async def ping(request):\n    return None\n\n"
        "NODE_CLASS_MAPPINGS = {}\n",
    )
    checked = run_cli("node", "check", "routes-node")
    assert checked.code == 0, checked.out + checked.err
    assert "PromptServer" not in checked.out
    assert run_cli("check").code == 0
