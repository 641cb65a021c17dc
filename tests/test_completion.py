"""Shell completion, run the way the shell runs it: comfydock with _ARGCOMPLETE, COMP_LINE and
COMP_POINT set, the candidates read from the file argcomplete writes them to."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def complete(line: str, tmp_path, cwd=None) -> list[str]:
    """What pressing Tab at the end of `line` offers."""
    out = tmp_path / "candidates"
    environ = dict(
        os.environ,
        _ARGCOMPLETE="1",
        _ARGCOMPLETE_SHELL="bash",
        COMP_LINE=line,
        COMP_POINT=str(len(line)),
        _ARGCOMPLETE_STDOUT_FILENAME=str(out),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "comfydock"], env=environ, cwd=cwd or tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return sorted(c.strip() for c in out.read_text().split("\v") if c.strip())


def test_environment_names_complete_after_use_delete_and_dash_e(env, run_cli, tmp_path):
    assert run_cli("create", "team", "--torch-backend", "cpu").code == 0
    assert complete("comfydock use ", tmp_path) == ["main", "team"]
    assert complete("comfydock delete t", tmp_path) == ["team"]
    assert complete("comfydock status -e m", tmp_path) == ["main"]


def test_node_ids_of_the_environment_complete_after_node_remove_update_check(env, run_cli, tmp_path):
    for name in ("my-node", "other-node"):
        (env.custom_nodes_dir / name).mkdir()
        (env.custom_nodes_dir / name / "__init__.py").write_text("")
        assert run_cli("node", "add", name, "--dev", "--no-test").code == 0
    assert complete("comfydock node remove ", tmp_path) == ["my-node", "other-node"]
    assert complete("comfydock node update m", tmp_path) == ["my-node"]
    assert complete("comfydock node check -e main o", tmp_path) == ["other-node"]


def test_workflow_names_complete_after_workflow_show_models_resolve_and_export(env, tmp_path):
    (env.workflows_dir / "portraits").mkdir()
    (env.workflows_dir / "portraits" / "studio.json").write_text("{}")
    assert complete("comfydock workflow show ", tmp_path) == ["demo", "portraits/studio"]
    assert complete("comfydock models resolve p", tmp_path) == ["portraits/studio"]
    assert complete("comfydock export d", tmp_path) == ["demo"]


def test_rollback_completes_version_tags_newest_first(env, run_cli, tmp_path):
    (env.workflows_dir / "second.json").write_text("{}")
    assert run_cli("commit", "-m", "second", "--no-interactive").code == 0
    out = tmp_path / "candidates"
    complete("comfydock rollback v", tmp_path)
    assert out.read_text().split("\v") == ["v2", "v1"]


def test_completion_reads_the_environment_from_the_current_directory(env, run_cli, tmp_path):
    assert run_cli("create", "team", "--torch-backend", "cpu").code == 0
    (env.workspace.environments_dir / "team" / "ComfyUI" / "user" / "default" / "workflows" / "only-team.json").write_text("{}")
    inside = env.workspace.environments_dir / "team" / "ComfyUI"
    assert "only-team" in complete("comfydock workflow show ", tmp_path, cwd=inside)
    assert "only-team" not in complete("comfydock workflow show ", tmp_path)


def test_completion_outside_any_workspace_offers_nothing_and_says_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYDOCK_HOME", str(tmp_path / "no-workspace"))
    assert complete("comfydock use ", tmp_path) == []
    assert complete("comfydock node remove ", tmp_path) == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_the_shell(shell, run_cli):
    result = run_cli("completion", shell)
    assert result.code == 0
    assert "comfydock" in result.out and "_ARGCOMPLETE" in result.out
    if shell == "fish":
        assert "complete --command comfydock" in result.out
    else:
        assert "_python_argcomplete" in result.out
