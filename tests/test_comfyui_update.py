"""comfydock comfyui update: another ComfyUI release as one step, and rollback taking it back."""

from __future__ import annotations

import git
import pytest
from conftest import venv_has

from comfydock.environment import Environment

pytestmark = pytest.mark.slow


@pytest.fixture
def old_env(workspace, run_cli):
    result = run_cli("create", "old", "--comfyui-version", "v0.1.0", "--torch-backend", "cpu", "--use")
    assert result.code == 0, result.err
    return Environment.open(workspace, "old")


def _head(env) -> str:
    return git.Repo(env.comfyui_dir).head.commit.hexsha


def test_update_moves_checkout_requirements_and_venv_then_rollback_moves_back(old_env, comfyui_source, run_cli):
    env = old_env
    v010 = _head(env)
    assert venv_has(env, "cdfix_gamma") is None  # v0.1.0 does not need it
    result = run_cli("comfyui", "update", "v0.2.0", "--json")
    assert result.code == 0, result.err
    data = result.json
    assert data["changed"] and data["new_ref"] == "v0.2.0" and data["requirements_added"] == ["cdfix-gamma"]
    v020 = git.Repo(comfyui_source).commit("v0.2.0").hexsha
    assert _head(env) == v020
    assert venv_has(env, "cdfix_gamma") is not None
    info = env.info()
    assert info["comfyui_version"] == "v0.2.0" and info["comfyui_commit"] == v020
    status = run_cli("status", "--json").json
    assert status["comfyui_checkout_matches"] and status["venv_in_sync"]
    assert run_cli("commit", "-m", "ComfyUI v0.2.0", "--no-interactive").code == 0

    back = run_cli("rollback", "v1", "--yes", "--json")
    assert back.code == 0, back.err
    assert back.json["comfyui"] == {"from": v020, "to": v010}
    assert _head(env) == v010 and venv_has(env, "cdfix_gamma") is None

    again = run_cli("comfyui", "update", "v0.1.0")
    assert again.code == 0 and "already at" in again.out


def test_failed_update_puts_the_old_checkout_and_manifest_back(old_env, run_cli, fixture_assets, tmp_path):
    env = old_env
    before = (_head(env), env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes())
    # uv cannot find cdfix-gamma when the wheels are hidden: the lock step fails
    assert run_cli("config", "find-links", tmp_path / "no-wheels-here").code == 0
    result = run_cli("comfyui", "update", "v0.2.0")
    assert result.code == 1
    assert "Traceback" not in result.err
    assert (_head(env), env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before


def test_update_refused_for_local_comfyui_edits_keeps_them(old_env, run_cli):
    env = old_env
    tracked = next(p for p in sorted(env.comfyui_dir.iterdir()) if p.suffix == ".py")
    tracked.write_text(tracked.read_text() + "# my local fix\n")
    before = (_head(env), tracked.read_bytes(), env.pyproject_path.read_bytes())
    result = run_cli("comfyui", "update", "v0.2.0")
    assert result.code == 1 and "--force" in result.err
    assert (_head(env), tracked.read_bytes(), env.pyproject_path.read_bytes()) == before


def test_unknown_ref_lists_release_tags(old_env, run_cli):
    result = run_cli("comfyui", "update", "v9.9.9")
    assert result.code != 0 and "v0.2.0" in result.err
