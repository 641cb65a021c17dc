"""`comfydock create`: real git checkouts, real uv venvs and locks, all-or-nothing."""

import subprocess

import git
import pytest
import tomlkit
import yaml
from conftest import venv_has

from comfydock.environment import Environment
from comfydock.lifecycle import create_environment
from comfydock.workspace import Workspace

pytestmark = pytest.mark.slow


def test_create_checks_out_newest_release_and_installs_its_requirements(env, workspace):
    repo = git.Repo(env.comfyui_dir)
    assert repo.head.commit == repo.tags["v0.2.0"].commit  # newest tag, not master's HEAD
    doc = tomlkit.parse(env.pyproject_path.read_text())
    # ComfyUI's requirements in their own group; [project].dependencies is the user's alone
    assert list(doc["dependency-groups"]["comfyui-core"]) == ["cdfix-alpha>=1.0", "cdfix-gamma"]
    assert list(doc["project"]["dependencies"]) == []
    assert doc["project"]["requires-python"] == "==3.11.*"  # the venv's Python only
    info = doc["tool"]["comfydock"]["environment"]
    assert info["comfyui_version"] == "v0.2.0"
    assert info["comfyui_commit"] == repo.head.commit.hexsha
    assert info["python_version"] == "3.11"
    lock = tomlkit.parse(env.uv_lock_path.read_text())
    assert {p["name"] for p in lock["package"]} >= {"cdfix-alpha", "cdfix-gamma"}
    assert venv_has(env, "cdfix_alpha") == "2.0"
    assert venv_has(env, "cdfix_gamma") == "0.2"
    assert Workspace.open(workspace.root).active_environment == "main"  # the first one becomes active


def test_create_commits_v1_in_cec_and_keeps_state_out_of_git(env, run_cli):
    cec = git.Repo(env.cec_dir)
    assert [t.name for t in cec.tags] == ["v1"]
    assert cec.tags["v1"].commit.message.strip() == "Initial environment setup"
    tracked = set(cec.git.ls_files().split())
    assert {"pyproject.toml", "uv.lock", ".python-version"} <= tracked
    assert not any("doit" in f or f.startswith(".venv") for f in tracked)
    assert not cec.is_dirty(untracked_files=True)
    log = run_cli("log", "--oneline")
    assert log.out.strip() == "v1: Initial environment setup"


def test_create_points_comfyui_at_the_workspace_models(env, workspace):
    data = yaml.safe_load((env.comfyui_dir / "extra_model_paths.yaml").read_text())
    assert data["comfydock"]["base_path"] == str(workspace.models_dir)
    assert data["comfydock"]["checkpoints"] == "checkpoints/"


def test_create_at_an_older_tag_a_branch_or_a_commit(workspace, run_cli, comfyui_source):
    assert run_cli("create", "old", "--comfyui-version", "v0.1.0", "--torch-backend", "cpu").code == 0
    old = Environment.open(workspace, "old")
    assert git.Repo(old.comfyui_dir).head.commit == git.Repo(comfyui_source).tags["v0.1.0"].commit
    assert venv_has(old, "cdfix_gamma") is None  # v0.1.0 does not require it
    assert run_cli("create", "tip", "--comfyui-version", "master", "--torch-backend", "cpu").code == 0
    assert (Environment.open(workspace, "tip").comfyui_dir / "README.md").exists()
    sha = git.Repo(comfyui_source).tags["v0.1.0"].commit.hexsha
    assert run_cli("create", "bysha", "--comfyui-version", sha[:10], "--torch-backend", "cpu").code == 0
    info = Environment.open(workspace, "bysha").info()
    assert info["comfyui_commit"] == sha
    assert info["comfyui_version"] == "v0.1.0"  # a commit a release tags is named by the release
    master = git.Repo(comfyui_source).heads["master"].commit.hexsha  # one commit after the last release
    assert run_cli("create", "untagged", "--comfyui-version", master, "--torch-backend", "cpu").code == 0
    assert Environment.open(workspace, "untagged").info()["comfyui_version"] == master[:12]


def test_second_create_fetches_only_new_refs_and_survives_an_offline_source(workspace, run_cli, comfyui_source):
    assert run_cli("create", "a", "--torch-backend", "cpu").code == 0
    caches = list(workspace.comfyui_cache_dir.iterdir())
    assert len(caches) == 1
    # a new release appears upstream: the next create sees it through a fetch into the same cache
    src = git.Repo(comfyui_source)
    (comfyui_source / "requirements.txt").write_text("cdfix-alpha>=1.0\n")
    src.git.add(A=True)
    src.index.commit("Release v0.3.0")
    src.create_tag("v0.3.0")
    assert run_cli("create", "b", "--torch-backend", "cpu").code == 0
    assert Environment.open(workspace, "b").info()["comfyui_version"] == "v0.3.0"
    assert list(workspace.comfyui_cache_dir.iterdir()) == caches
    # the source disappears: create still works from the cache, and says so
    import shutil

    shutil.rmtree(comfyui_source)
    result = run_cli("create", "c", "--comfyui-version", "v0.1.0", "--torch-backend", "cpu")
    assert result.code == 0, result.err
    assert "using the cached copy" in result.err


def test_unknown_ref_fails_cleanly(workspace, run_cli):
    result = run_cli("create", "x", "--comfyui-version", "v9.9.9")
    assert result.code != 0
    assert "unknown ComfyUI ref 'v9.9.9'" in result.err
    assert "v0.2.0" in result.err  # the hint lists real tags
    assert not (workspace.environments_dir / "x").exists()


def test_unreachable_source_fails_cleanly(workspace, run_cli, tmp_path):
    run_cli("config", "comfyui-source", (tmp_path / "no-such-repo").as_uri())
    result = run_cli("create", "x")
    assert result.code == 1
    assert "cannot clone ComfyUI" in result.err and "hint:" in result.err
    assert not (workspace.environments_dir / "x").exists()


def test_uv_resolution_failure_removes_the_half_made_environment(workspace, run_cli, comfyui_source):
    src = git.Repo(comfyui_source)
    (comfyui_source / "requirements.txt").write_text("cdfix-alpha>=9\n")
    src.git.add(A=True)
    src.index.commit("Impossible requirement")
    src.create_tag("v0.9.0")
    result = run_cli("create", "x", "--torch-backend", "cpu")
    assert result.code == 1
    assert "lock_deps" in result.err
    assert "cdfix-alpha" in result.err  # uv's own explanation is shown
    assert not (workspace.environments_dir / "x").exists()


def test_unavailable_python_names_the_interpreters_that_exist(workspace, run_cli):
    result = run_cli("create", "x", "--python", "3.4")
    assert result.code == 1
    assert "Python 3.4 is not available" in result.err
    assert "3.11" in result.err  # the interpreter this machine has
    assert not (workspace.environments_dir / "x").exists()


def test_interrupt_midway_removes_the_half_made_environment(workspace):
    def step(message):
        if message.startswith("Creating Python"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        create_environment(workspace, "x", torch_backend="cpu", step=step)
    assert not (workspace.environments_dir / "x").exists()


def test_existing_environment_is_never_touched(env, run_cli):
    before = env.pyproject_path.read_bytes()
    marker = env.comfyui_dir / "my-notes.txt"
    marker.write_text("mine")
    result = run_cli("create", "main")
    assert result.code == 1  # a well-formed request, refused
    assert "already exists" in result.err
    assert env.pyproject_path.read_bytes() == before and marker.read_text() == "mine"


@pytest.mark.parametrize("name", ["..", "a/b", "", "_x", "has space", "node.disabled", "x" * 65])
def test_bad_environment_names_are_refused(workspace, run_cli, name):
    result = run_cli("create", name)
    assert result.code == 2
    assert "invalid environment name" in result.err
    assert list(workspace.environments_dir.iterdir()) == []


def test_create_torch_backend_is_kept_outside_the_shared_manifest(workspace, run_cli):
    assert run_cli("create", "gpu", "--torch-backend", "cu126").code == 0
    env = Environment.open(workspace, "gpu")
    doc = tomlkit.parse(env.pyproject_path.read_text())
    assert "index" not in doc["tool"]["uv"] and "sources" not in doc["tool"]["uv"]
    assert "torch_backend" not in doc["tool"]["comfydock"]["environment"]
    status = run_cli("status", "--json").json
    assert status["torch_backend"] == "cu126" and status["torch_backend_requested"] == "cu126"
    assert "own choice" in status["torch_backend_source"]
    assert ".comfydock" in str(env.state_dir) and (env.state_dir / "torch-backend").read_text().strip() == "cu126"


def test_auto_torch_backend_status_shows_requested_and_detected(workspace, run_cli):
    assert run_cli("create", "a").code == 0
    status = run_cli("status", "--json").json
    assert status["torch_backend_requested"] == "auto" and status["torch_backend_source"] == "default"
    assert status["torch_backend_detected"] in {"cpu", "pypi", "cu118", "cu121", "cu124", "cu126", "cu128", "cu130"}
    assert "requested auto, detected" in run_cli("status").out


def test_unknown_torch_backend_setting_is_refused(workspace, run_cli):
    result = run_cli("config", "torch-backend", "cuda99")
    assert result.code == 2 and "unknown torch backend" in result.err
    assert run_cli("config", "torch-backend").out.strip() == "auto"


def test_unknown_torch_backend_is_a_usage_error(workspace, run_cli):
    result = run_cli("create", "a", "--torch-backend", "cuda99")
    assert result.code == 2 and "unknown torch backend" in result.err


def test_use_flag_switches_the_active_environment(env, workspace, run_cli):
    assert run_cli("create", "second", "--torch-backend", "cpu").code == 0
    assert Workspace.open(workspace.root).active_environment == "main"
    assert run_cli("create", "third", "--torch-backend", "cpu", "--use").code == 0
    assert Workspace.open(workspace.root).active_environment == "third"


def test_created_venv_python_runs(env):
    out = subprocess.run([str(env.python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True).stdout
    assert out.strip() == str(env.venv_dir)


def test_create_with_the_pypi_backend_on_linux_without_gpu_points_at_cpu(workspace_path, run_cli):
    import platform

    from comfydock.torch_backend import detect_torch_backend

    if platform.system() != "Linux" or detect_torch_backend() != "cpu":
        pytest.skip("only a Linux machine without a GPU gets the note")
    result = run_cli("create", "p", "--torch-backend", "pypi")
    assert result.code == 0, result.err
    assert "about 3 GB of nvidia-* wheels" in result.err and "--torch-backend cpu" in result.err
    quiet = run_cli("create", "c", "--torch-backend", "cpu")
    assert quiet.code == 0 and "nvidia" not in quiet.err
