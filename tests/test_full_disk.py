"""A full disk (ENOSPC) is one line, 'disk is full at PATH', exit 1, and the environment is as it
was: every undo that had nothing to put back says nothing, and freeing space then running the
command again works. The disk is a small tmpfs in a private mount namespace (tests/fulldisk.py)."""

from __future__ import annotations

import json
import os

import pytest

from tests import fulldisk

_OK, _WHY = fulldisk.available()
pytestmark = pytest.mark.skipif(not _OK, reason=_WHY)


def _one_disk_full_line(result: dict) -> None:
    assert result["code"] == 1, result["err"]
    errors = [ln for ln in result["err"].splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: disk is full at /"), result["err"]
    assert "Traceback" not in result["err"] and "could not restore" not in result["err"], result["err"]
    assert "hint: free some space" in result["err"]


def _big_workflow(env, name="big.json"):
    env.workflows_dir.mkdir(parents=True, exist_ok=True)
    (env.workflows_dir / name).write_text(json.dumps({"nodes": [], "links": [], "note": os.urandom(600_000).hex()}))


def _run(env, workspace_path, tmp_path, commands, free):
    return fulldisk.run_on_full_disk(
        workspace_path,
        commands,
        free=free,
        watch=[env.cec_dir, env.workflows_dir, env.custom_nodes_dir, env.venv_dir],
        skip=[env.cec_dir / ".git"],
        git_repos=[env.cec_dir],
        scratch=tmp_path / f"disk-{free}",
    )


def _changed(out) -> dict:
    before, after = out["before"], out["after"]
    return {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}


@pytest.mark.parametrize("free", [8_000, 300_000])
def test_commit_on_a_full_disk_is_one_line_and_changes_nothing(env, workspace_path, run_cli, tmp_path, free):
    _big_workflow(env)
    assert run_cli("commit", "-m", "v2", "--no-interactive").code == 0
    _big_workflow(env)  # changed: the commit must copy it again (and save the old copy first)
    out = _run(env, workspace_path, tmp_path, [["commit", "-m", "v3", "--no-interactive"]], free)
    _one_disk_full_line(out["results"][0])
    assert _changed(out) == {}


def test_commit_works_once_space_is_freed(env, workspace_path, tmp_path):
    _big_workflow(env)
    argv = ["commit", "-m", "big", "--no-interactive"]
    out = _run(env, workspace_path, tmp_path, [argv, ["--free-space"], argv], 100_000)
    _one_disk_full_line(out["results"][0])
    assert out["results"][2]["code"] == 0, out["results"][2]["err"]
    assert "refs/tags/v2" in out["after"][f"{env.cec_dir} refs"]


def test_rollback_on_a_full_disk_leaves_no_half_rolled_back_history(env, workspace_path, run_cli, tmp_path):
    _big_workflow(env)
    assert run_cli("commit", "-m", "v2 with a big workflow", "--no-interactive").code == 0
    (env.workflows_dir / "big.json").unlink()
    assert run_cli("commit", "-m", "v3 without", "--no-interactive").code == 0
    out = _run(env, workspace_path, tmp_path, [["rollback", "v2", "--yes"]], 200_000)
    _one_disk_full_line(out["results"][0])
    assert _changed(out) == {}


def test_models_index_export_and_py_add_on_a_full_disk_are_one_line(env, workspace_path, tmp_path):
    _big_workflow(env)
    for argv, free in (
        (["models", "index"], 4_000),
        (["export", "--output", str(workspace_path / "out.tar.gz"), "--no-interactive"], 20_000),
        (["py", "add", "cdfix-alpha"], 12_000),
    ):
        out = _run(env, workspace_path, tmp_path, [argv], free)
        _one_disk_full_line(out["results"][0])
        if argv[0] == "py":
            assert _changed(out) == {}
