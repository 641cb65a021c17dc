"""list / use / delete / run / log / status as a user sees them."""

import json
import os
import subprocess
import sys

import pytest
from conftest import venv_has

from comfydock.workspace import Workspace

pytestmark = pytest.mark.slow


def test_list_json_marks_the_active_environment(env, run_cli):
    assert run_cli("create", "other", "--torch-backend", "cpu").code == 0
    rows = run_cli("list", "--json").json
    assert [(r["name"], r["active"]) for r in rows] == [("main", True), ("other", False)]
    assert rows[0]["comfyui_version"] == "v0.2.0"
    assert run_cli("use", "other").code == 0
    assert [r["name"] for r in run_cli("list", "--json").json if r["active"]] == ["other"]


def test_use_unknown_environment_fails(env, run_cli):
    result = run_cli("use", "ghost")
    assert result.code == 1 and "ghost" in result.err


def test_delete_with_yes_removes_everything_and_clears_active(env, run_cli, workspace):
    result = run_cli("delete", "main", "--yes")
    assert result.code == 0
    assert not env.root.exists()
    assert Workspace.open(workspace.root).active_environment is None
    assert run_cli("list", "--json").json == []


def test_delete_without_confirmation_refuses_when_not_interactive(env, run_cli):
    result = run_cli("delete", "main")
    assert result.code == 1 and "--yes" in result.err  # refused, as rollback without --yes is
    assert env.root.exists()


def test_run_passes_every_argument_and_returns_comfyuis_exit_code(env, run_cli):
    result = run_cli("run", "--listen", "0.0.0.0", "--port", "8190", "--exit-code", "7")
    assert result.code == 7
    record = json.loads((env.comfyui_dir / "user" / "fixture_last_run.json").read_text())
    assert record["argv"] == ["--listen", "0.0.0.0", "--port", "8190", "--exit-code", "7"]
    assert record["python"].startswith(str(env.venv_dir))
    assert record["cdfix_alpha"] == "2.0"


def test_run_double_dash_passes_help_to_comfyui(env):
    # a real process, so ComfyUI's own output reaches the terminal as it would for a user
    proc = subprocess.run(
        [sys.executable, "-m", "comfydock", "run", "-e", "main", "--", "--help"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert proc.returncode == 0
    assert "Fixture ComfyUI" in proc.stdout  # ComfyUI's argparse help, not comfydock's


def test_run_splits_its_own_options_from_comfyuis_as_the_parser_declares_them():
    from comfydock.cli.main import _split_run, _subparser, build_parser

    parser = build_parser()
    argv = ["-w", "/ws", "-v", "run", "-e", "main", "--no-sync", "--port", "8190", "--", "--help"]
    assert _split_run(parser, argv) == (["-w", "/ws", "-v", "run", "-e", "main", "--no-sync"], ["--port", "8190", "--", "--help"])
    assert _split_run(parser, ["run", "--env=a", "--", "--help"]) == (["run", "--env=a"], ["--help"])
    assert _split_run(parser, ["status", "--json"]) == (["status", "--json"], None)
    _subparser(parser, "run").add_argument("--gpu", metavar="N")  # a new option of run is run's at once
    assert _split_run(parser, ["run", "--gpu", "1", "--cpu"]) == (["run", "--gpu", "1"], ["--cpu"])


def test_verbose_is_accepted_after_the_command_but_run_passes_it_to_comfyui():
    from comfydock.cli.main import _split_run, build_parser

    parser = build_parser()
    assert parser.parse_args(["node", "add", "x", "-v"]).verbose is True
    assert parser.parse_args(["-v", "status"]).verbose is True
    assert parser.parse_args(["status"]).verbose is False
    assert parser.parse_args(["status", "-w", "/ws"]).workspace == "/ws"
    assert parser.parse_args(["-w", "/ws", "status"]).workspace == "/ws"
    assert _split_run(parser, ["run", "--verbose", "DEBUG"]) == (["run"], ["--verbose", "DEBUG"])


def test_py_remove_says_a_removed_package_is_no_longer_installed(env, run_cli):
    assert run_cli("py", "add", "cdfix-beta").code == 0
    result = run_cli("py", "remove", "cdfix-beta")
    assert result.code == 0, result.err
    assert "cdfix-beta (no longer installed)" in result.out + result.err


def test_run_help_describes_comfydocks_run(run_cli):
    result = run_cli("run", "--help")
    assert result.code == 0
    assert "goes to ComfyUI" in result.out and "--env" in result.out


def test_log_formats(env, run_cli):
    data = run_cli("log", "--json").json
    assert [v["version"] for v in data] == ["v1"]
    assert data[0]["message"] == "Initial environment setup" and len(data[0]["commit"]) == 40
    assert "v1: Initial environment setup" in run_cli("log").out
    assert run_cli("log", "--limit", "0", "--json").json == data  # 0 means no limit


def test_status_reports_ref_python_and_venv_sync(env, run_cli):
    data = run_cli("status", "--json").json
    assert data["environment"] == "main"
    assert data["comfyui_version"] == "v0.2.0" and data["comfyui_checkout_matches"] is True
    assert data["python_version"] == "3.11"
    assert data["venv_in_sync"] is True and data["uncommitted_changes"] == []
    text = env.pyproject_path.read_text().replace('"cdfix-gamma",', '"cdfix-gamma",\n    "cdfix-beta",')
    env.pyproject_path.write_text(text)
    data = run_cli("status", "--json").json
    assert data["venv_in_sync"] is False
    assert "lock_deps" in data["pending_tasks"]
    assert data["uncommitted_changes"] == ["pyproject.toml"]
    assert "out of sync" in run_cli("status").out


def test_status_on_corrupt_pyproject_is_a_clear_error(env, run_cli):
    env.pyproject_path.write_text("[project\nname = ")
    result = run_cli("status")
    assert result.code == 1
    assert "pyproject.toml is not valid TOML" in result.err and "hint:" in result.err


def test_help_lists_every_command(run_cli):
    out = run_cli("--help").out
    for cmd in ("init", "create", "list", "use", "delete", "run", "log", "status", "build", "config", "demo"):
        assert cmd in out


def test_json_commands_report_errors_as_json_too(env, run_cli):
    result = run_cli("py", "add", "cdfix-alpha<1", "--json")
    assert result.code == 1
    error = result.json["error"]
    assert error["exit_code"] == 1 and "uv could not resolve" in error["message"] and error["hint"]
    assert "No solution found" in error["details"]
    failed = run_cli("build", "no_such_task", "--json")
    assert failed.code == 2 and failed.json["error"]["exit_code"] == 2


def test_run_syncs_the_venv_first_unless_told_not_to(env, run_cli):
    text = env.pyproject_path.read_text().replace('"cdfix-gamma",', '"cdfix-gamma",\n    "cdfix-beta<2",')
    env.pyproject_path.write_text(text)
    assert run_cli("run", "--no-sync", "--port", "1").code == 0
    assert venv_has(env, "cdfix_beta") is None
    assert run_cli("run", "--port", "1").code == 0
    assert venv_has(env, "cdfix_beta") == "1.0"
    record = json.loads((env.comfyui_dir / "user" / "fixture_last_run.json").read_text())
    assert record["argv"] == ["--port", "1"]


def test_ctrl_c_while_comfydock_is_still_loading_ends_quietly_with_130():
    """A Ctrl-C that lands while Python imports comfydock (the first tenth of a second)."""
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'comfydock.cli.main':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from comfydock.__main__ import entry\n"
        "sys.exit(entry())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr


def test_adopt_of_an_install_neither_in_git_nor_versioned_is_refused_with_1(env, run_cli, tmp_path):
    plain = tmp_path / "ComfyUI"  # an install that is neither a git checkout nor versioned
    (plain / "custom_nodes").mkdir(parents=True)
    (plain / "comfy").mkdir()
    (plain / "main.py").write_text("print('ComfyUI')\n")
    (plain / "nodes.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    result = run_cli("adopt", str(plain), "--no-interactive")
    assert result.code == 1 and "not a git checkout" in result.err, result.err
