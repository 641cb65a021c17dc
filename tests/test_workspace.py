"""Workspaces: layout, lookup order, settings, and the errors a user can make."""

import json

import pytest

from comfydock.workspace import Workspace


def test_init_creates_the_spec_layout(tmp_path, run_cli):
    ws = tmp_path / "w"
    result = run_cli("init", ws, "--no-interactive")
    assert result.code == 0
    for rel in (
        ".metadata/workspace.json",
        "comfydock_cache/custom_nodes/store",
        "comfydock_cache/api_cache",
        "environments",
        "logs/workspace",
    ):
        assert (ws / rel).exists(), rel
    config = json.loads((ws / ".metadata/workspace.json").read_text())
    assert config["version"] == 1 and config["active_environment"] is None
    assert "COMFYDOCK_HOME" in result.err


def test_init_twice_changes_nothing_and_says_so(tmp_path, run_cli):
    ws = tmp_path / "w"
    run_cli("init", ws, "--models-dir", tmp_path / "m", "--no-interactive")
    before = (ws / ".metadata/workspace.json").read_bytes()
    result = run_cli("init", ws, "--models-dir", tmp_path / "other", "--no-interactive")
    assert result.code == 0
    assert "already exists" in result.err
    assert (ws / ".metadata/workspace.json").read_bytes() == before


def test_init_records_and_creates_models_dir(tmp_path, run_cli):
    ws = tmp_path / "w"
    run_cli("init", ws, "--models-dir", tmp_path / "models", "--no-interactive")
    assert (tmp_path / "models").is_dir()
    assert Workspace.open(ws).models_dir == tmp_path / "models"


def test_workspace_lookup_order(tmp_path, run_cli, monkeypatch):
    home_ws = tmp_path / "home" / "comfydock_workspace"
    env_ws = tmp_path / "from-env"
    flag_ws = tmp_path / "from-flag"
    assert run_cli("init", "--no-interactive").code == 0  # default: ~/comfydock_workspace
    assert (home_ws / ".metadata").is_dir()
    monkeypatch.setenv("COMFYDOCK_HOME", str(env_ws))
    run_cli("init", "--no-interactive")
    assert (env_ws / ".metadata").is_dir()
    run_cli("--workspace", flag_ws, "init", "--no-interactive")
    assert (flag_ws / ".metadata").is_dir()
    # commands use the same order: --workspace beats $COMFYDOCK_HOME
    run_cli("--workspace", flag_ws, "config", "registry-url", "http://127.0.0.1:9/flag")
    assert run_cli("config", "registry-url").out.strip() == "https://api.comfy.org"
    assert run_cli("-w", flag_ws, "config", "registry-url").out.strip() == "http://127.0.0.1:9/flag"


def test_missing_workspace_is_a_clear_error(tmp_path, run_cli):
    result = run_cli("-w", tmp_path / "nowhere", "list")
    assert result.code == 1
    assert "no comfydock workspace" in result.err
    assert "comfydock init" in result.err


def test_corrupt_workspace_json_names_the_file_and_the_fix(tmp_path, run_cli):
    ws = tmp_path / "w"
    run_cli("init", ws, "--no-interactive")
    (ws / ".metadata/workspace.json").write_text("{not json")
    for argv in (("list",), ("init", ws, "--no-interactive")):
        result = run_cli("-w", ws, *argv)
        assert result.code == 1
        assert "workspace.json" in result.err and "hint:" in result.err
        assert "Traceback" not in result.err
    assert (ws / ".metadata/workspace.json").read_text() == "{not json"


def test_environment_variable_overrides_workspace_setting(workspace_path, run_cli, monkeypatch):
    run_cli("config", "comfyui-source", "file:///from/config")
    assert run_cli("config", "comfyui-source").out.strip() == "file:///from/config"
    monkeypatch.setenv("COMFYDOCK_COMFYUI_SOURCE", "file:///from/env")
    assert run_cli("config", "comfyui-source").out.strip() == "file:///from/env"
    rows = {r["key"]: r for r in run_cli("config", "--json").json}
    assert rows["comfyui-source"]["source"] == "env"
    assert rows["registry-url"]["source"] == "default"
    assert rows["registry-url"]["value"] == "https://api.comfy.org"


def test_unknown_setting_is_a_usage_error(workspace_path, run_cli):
    result = run_cli("config", "no-such-key", "x")
    assert result.code == 2
    assert "known settings" in result.err


def test_unknown_environment_lists_existing_ones(workspace_path, run_cli):
    result = run_cli("status", "-e", "ghost")
    assert result.code == 1
    assert "no environment named 'ghost'" in result.err


def test_no_active_environment_says_how_to_pick_one(workspace_path, run_cli):
    result = run_cli("status")
    assert result.code == 1
    assert "comfydock use" in result.err


def test_interactive_init_asks_for_the_models_directory(tmp_path):
    """On a terminal, init prompts; the answer becomes the workspace's models directory."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    ws = tmp_path / "w"
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfydock", "init", str(ws)], stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    while b"Models directory" not in seen and time.monotonic() < deadline:
        if select.select([master], [], [], 0.5)[0]:
            seen += os.read(master, 4096)
    assert b"Models directory" in seen
    os.write(master, f"{tmp_path / 'my-models'}\n".encode())
    assert proc.wait(30) == 0
    os.close(master)
    assert Workspace.open(ws).models_dir == tmp_path / "my-models"
    assert (tmp_path / "my-models").is_dir()


def test_a_setting_says_where_its_value_comes_from(workspace, monkeypatch):
    assert workspace.setting_with_source("registry-url") == ("https://api.comfy.org", "default")
    workspace.set_setting("registry-url", "http://127.0.0.1:1")
    assert workspace.setting_with_source("registry-url") == ("http://127.0.0.1:1", "workspace")
    monkeypatch.setenv("COMFYDOCK_REGISTRY_URL", "http://127.0.0.1:2")
    assert workspace.setting_with_source("registry-url") == ("http://127.0.0.1:2", "env")
    row = next(r for r in workspace.settings() if r["key"] == "registry-url")
    assert row == {**row, "value": "http://127.0.0.1:2", "source": "env", "env_var": "COMFYDOCK_REGISTRY_URL"}


def test_commands_find_the_workspace_and_environment_from_the_current_directory(env, run_cli, monkeypatch):
    ws = env.workspace.root
    config = json.loads((ws / ".metadata/workspace.json").read_text())
    config["active_environment"] = None
    (ws / ".metadata/workspace.json").write_text(json.dumps(config))
    monkeypatch.setenv("COMFYDOCK_HOME", str(ws.parent / "elsewhere"))  # the directory beats it
    monkeypatch.chdir(env.custom_nodes_dir)
    result = run_cli("status", "--json")
    assert result.code == 0, result.err
    assert result.json["environment"] == "main"
    assert result.json["workspace"] == {"path": str(ws), "found_by": "current directory"}
    text = run_cli("status").out
    assert f"Workspace: {ws} (from current directory)" in text
    monkeypatch.chdir(ws)  # in the workspace but no environment: the active one (none) is asked for
    assert "comfydock use" in run_cli("status").err


def test_workspace_flag_inside_an_environment_points_at_the_real_workspace(env, run_cli, monkeypatch):
    ws = env.workspace.root
    monkeypatch.chdir(env.root)
    result = run_cli("-w", ".", "status")
    assert result.code == 1
    assert f"inside the workspace {ws} (environment 'main')" in result.err
    assert "comfydock init" not in result.err  # never a workspace inside an environment
    assert run_cli("status").code == 0  # the hint followed: -w left out


def test_a_mistyped_environment_name_gets_the_close_one(env, run_cli):
    for typed in ("MAIN", "mian", "ma"):
        result = run_cli("status", "-e", typed)
        assert result.code == 1
        assert "did you mean 'main'?" in result.err, typed
    assert "did you mean" not in run_cli("use", "zzzz").err


def test_uv_cache_is_uvs_own_unless_the_workspace_asks_for_one(workspace_path, run_cli, monkeypatch, tmp_path):
    from comfydock import uv_runner

    monkeypatch.delenv("UV_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    ws = Workspace.open(workspace_path)
    assert ws.uv_cache_dir is None and "UV_CACHE_DIR" not in uv_runner.uv_environ(ws)
    assert uv_runner.cache_dir(uv_runner.uv_environ(ws)) == tmp_path / "xdg" / "uv"  # uv's own rule
    assert not (workspace_path / "uv_cache").exists()
    assert run_cli("config", "uv-cache", "my-uv-cache").code == 0
    ws = Workspace.open(workspace_path)
    assert uv_runner.uv_environ(ws)["UV_CACHE_DIR"] == str(workspace_path / "my-uv-cache")
    result = run_cli("cache", "prune", "--uv", "--json")
    assert result.code == 0, result.err
    assert result.json["uv"]["cache"] == str(workspace_path / "my-uv-cache")
    assert "Removed" in result.json["uv"]["said"] or "No cache" in result.json["uv"]["said"]


@pytest.mark.parametrize(
    "key,value",
    [
        ("archive-max-bytes", "abc"),
        ("archive-max-bytes", "-5"),
        ("archive-max-members", "0"),
        ("archive-max-ratio", "0"),
        ("archive-max-ratio", "nan"),
        ("download-timeout", "soon"),
        ("download-timeout", "0"),
        ("registry-url", "ftp://example.org"),
        ("node-map-url", "not a url"),
        ("no-index", "maybe"),
        ("comfyui-source", "ext::sh -c touch% /tmp/x"),
    ],
)
def test_config_refuses_an_invalid_value_and_keeps_the_old_one(workspace_path, run_cli, key, value):
    before = run_cli("config", key).out
    result = run_cli("config", key, value)
    assert result.code == 2, result
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and key in errors[0] and "hint:" in result.err
    assert run_cli("config", key).out == before
    assert run_cli("list").code == 0  # every command still works


def test_config_accepts_valid_numbers(workspace_path, run_cli):
    assert run_cli("config", "archive-max-bytes", str(32 << 20)).code == 0
    assert run_cli("config", "archive-max-ratio", "12.5").code == 0
    assert run_cli("config", "archive-max-ratio").out.strip() == "12.5"


def test_config_unset_without_a_key_is_a_usage_error(workspace_path, run_cli):
    result = run_cli("config", "--unset")
    assert result.code == 2 and "--unset" in result.err and "hint:" in result.err


@pytest.mark.parametrize("var", ["COMFYDOCK_LOCK_TIMEOUT", "COMFYDOCK_API_CACHE_TTL"])
def test_a_bad_seconds_variable_is_one_line_naming_it(env, run_cli, monkeypatch, var, registry):
    monkeypatch.setenv(var, "abc")
    result = run_cli("node", "add", "comfyui-plain")
    assert result.code == 1, result
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and var in errors[0] and "hint:" in result.err and "Traceback" not in result.err


def test_a_number_setting_takes_digits_only_and_no_absurd_size(workspace_path, run_cli):
    for value in (" 5", "99999999999999999999999999", "5_000", "+5"):
        assert run_cli("config", "archive-max-bytes", value).code == 2, value
    assert run_cli("config", "archive-max-bytes", "33554432").code == 0
