"""Custom nodes end to end: registry, git and dev nodes, the cache, conflicts, bad input."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import git
import pytest
import tomlkit
from conftest import venv_has

pytestmark = pytest.mark.slow


def manifest(env):
    return tomlkit.parse(env.pyproject_path.read_text())


# --- registry nodes ----------------------------------------------------------------------------


def test_add_registry_node_installs_scans_and_syncs(env, registry, run_cli):
    result = run_cli("node", "add", "comfyui-fixture-pack", "--json")
    assert result.code == 0, result.err
    node_dir = env.custom_nodes_dir / "ComfyUI-Fixture-Pack"
    assert (node_dir / "__init__.py").exists()
    doc = manifest(env)
    entry = doc["tool"]["comfydock"]["nodes"]["comfyui-fixture-pack"]
    assert (entry["source"], entry["version"], entry["registry_id"]) == ("registry", "1.1.0", "comfyui-fixture-pack")
    assert list(doc["dependency-groups"]["node-comfyui-fixture-pack"]) == ["cdfix-beta"]
    assert venv_has(env, "cdfix_beta") == "2.0"
    assert registry.hits["/nodes/comfyui-fixture-pack/install"] == 1
    rows = run_cli("node", "list", "--json").json
    assert [(r["id"], r["present"], r["requirements"]) for r in rows] == [("comfyui-fixture-pack", True, ["cdfix-beta"])]
    py = {r["name"]: r["group"] for r in run_cli("py", "list", "--json").json}
    assert py["cdfix-beta"] == "node:comfyui-fixture-pack"


def test_add_registry_node_at_a_version(env, registry, run_cli):
    assert run_cli("node", "add", "comfyui-fixture-pack@1.0.0").code == 0
    assert manifest(env)["tool"]["comfydock"]["nodes"]["comfyui-fixture-pack"]["version"] == "1.0.0"
    assert venv_has(env, "cdfix_beta") == "1.0"


def test_unknown_registry_id_suggests_similar_ones(env, registry, run_cli):
    result = run_cli("node", "add", "comfyui-fixture-pak")
    assert result.code == 1
    assert "no node 'comfyui-fixture-pak'" in result.err and "did you mean: comfyui-fixture-pack" in result.err


def test_unknown_registry_version_lists_available(env, registry, run_cli):
    result = run_cli("node", "add", "comfyui-fixture-pack@9.9")
    assert result.code == 1 and "1.1.0" in result.err and "1.0.0" in result.err


def test_registry_answers_are_cached_with_an_expiry(env, registry, run_cli, monkeypatch):
    assert run_cli("node", "add", "comfyui-plain", "--no-test").code == 0
    assert run_cli("node", "remove", "comfyui-plain").code == 0
    assert run_cli("node", "add", "comfyui-plain", "--no-test").code == 0
    assert registry.hits["/nodes/comfyui-plain"] == 1  # second lookup came from api_cache/
    monkeypatch.setenv("COMFYDOCK_API_CACHE_TTL", "0")
    run_cli("node", "remove", "comfyui-plain")
    assert run_cli("node", "add", "comfyui-plain", "--no-test").code == 0
    assert registry.hits["/nodes/comfyui-plain"] == 2


@pytest.mark.parametrize("mode,expected", [("500", "answered 500"), ("not-json", "not JSON")])
def test_broken_registry_is_a_clear_error_and_changes_nothing(env, registry, run_cli, mode, expected):
    before = env.pyproject_path.read_bytes()
    registry.mode = mode
    result = run_cli("node", "add", "comfyui-fixture-pack")
    assert result.code == 1 and expected in result.err and "hint:" in result.err
    assert env.pyproject_path.read_bytes() == before
    assert not any(env.custom_nodes_dir.glob("ComfyUI-Fixture*"))


def test_unreachable_registry_says_which_setting_to_fix(env, run_cli):
    run_cli("config", "registry-url", "http://127.0.0.1:9")
    result = run_cli("node", "add", "anything")
    assert result.code == 1 and "cannot reach the Comfy Registry" in result.err and "registry-url" in result.err


def test_cut_off_download_leaves_nothing_and_a_retry_works(env, registry, run_cli, workspace):
    before = env.pyproject_path.read_bytes(), env.lock_path.read_bytes()
    registry.mode = "truncate"
    result = run_cli("node", "add", "comfyui-fixture-pack")
    assert result.code == 1 and ("cut off" in result.err or "was interrupted" in result.err)
    assert (env.pyproject_path.read_bytes(), env.lock_path.read_bytes()) == before
    assert not (env.custom_nodes_dir / "ComfyUI-Fixture-Pack").exists()
    assert not any((workspace.node_cache_dir / "store").iterdir())  # no half entry in the cache
    registry.mode = None
    assert run_cli("node", "add", "comfyui-fixture-pack").code == 0
    assert (env.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "__init__.py").exists()


@pytest.mark.parametrize(
    "entry,kind",
    [("../escape.py", "outside"), ("/abs.py", "outside"), ("link", "symbolic link")],
)
def test_hostile_zip_is_refused(env, registry, run_cli, entry, kind, tmp_path):
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__init__.py", "")
        info = zipfile.ZipInfo(entry)
        if entry == "link":
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr(info, "print('owned')")
    registry.add_node("comfyui-evil", {"1.0": buf.getvalue()})
    before = env.pyproject_path.read_bytes()
    result = run_cli("node", "add", "comfyui-evil")
    assert result.code == 1 and kind in result.err
    assert env.pyproject_path.read_bytes() == before
    assert not (env.custom_nodes_dir / "comfyui-evil").exists()
    assert not (env.custom_nodes_dir.parent / "escape.py").exists()


def test_second_environment_reuses_the_cache_without_downloading(env, registry, run_cli, workspace):
    assert run_cli("node", "add", "comfyui-fixture-pack").code == 0
    assert run_cli("create", "second", "--torch-backend", "cpu").code == 0
    assert run_cli("node", "add", "comfyui-fixture-pack", "-e", "second").code == 0
    assert registry.hits["/files/comfyui-fixture-pack/1.1.0.zip"] == 1
    assert registry.hits["/nodes/comfyui-fixture-pack/install"] == 1
    second = workspace.environment("second")
    assert (second.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "__init__.py").exists()
    index = json.loads((workspace.node_cache_dir / "index.json").read_text())
    assert [v["identity"] for v in index.values()] == ["registry:comfyui-fixture-pack@1.1.0"]


# --- git nodes -------------------------------------------------------------------------------------


def test_add_git_node_records_the_exact_commit(env, node_repo, run_cli):
    url = node_repo.as_uri()
    assert run_cli("node", "add", f"{url}@v1.0").code == 0
    entry = manifest(env)["tool"]["comfydock"]["nodes"]["ComfyUI-Git-Node"]
    assert entry["source"] == "git" and entry["ref"] == "v1.0"
    assert entry["commit"] == git.Repo(node_repo).tags["v1.0"].commit.hexsha
    installed = git.Repo(env.custom_nodes_dir / "ComfyUI-Git-Node")
    assert installed.head.commit.hexsha == entry["commit"]
    assert venv_has(env, "cdfix_gamma") == "0.1"


def test_git_url_that_does_not_exist(env, run_cli, tmp_path):
    result = run_cli("node", "add", (tmp_path / "nope").as_uri())
    assert result.code == 1 and "cannot read git repository" in result.err


def test_git_ref_that_does_not_exist(env, node_repo, run_cli):
    result = run_cli("node", "add", f"{node_repo.as_uri()}@v9")
    assert result.code == 1 and "no branch or tag 'v9'" in result.err


def test_git_link_out_of_the_node_is_refused(env, run_cli, tmp_path):
    from comfydock.demo.fixtures import build_node_repo

    repo_dir = build_node_repo(tmp_path / "evil-node", "evil", {"v1": ""})
    os.symlink("../../../../etc/passwd", repo_dir / "sneaky")
    repo = git.Repo(repo_dir)
    repo.git.add(A=True)
    repo.index.commit("link out")
    result = run_cli("node", "add", repo_dir.as_uri())
    assert result.code == 1 and "leaves the node" in result.err
    assert not (env.custom_nodes_dir / "evil-node").exists()


def test_update_git_node_moves_to_another_ref(env, node_repo, run_cli):
    assert run_cli("node", "add", f"{node_repo.as_uri()}@v1.0").code == 0
    assert run_cli("node", "update", "ComfyUI-Git-Node", "--version", "v2.0").code == 0
    entry = manifest(env)["tool"]["comfydock"]["nodes"]["ComfyUI-Git-Node"]
    assert entry["commit"] == git.Repo(node_repo).tags["v2.0"].commit.hexsha
    assert git.Repo(env.custom_nodes_dir / "ComfyUI-Git-Node").head.commit.hexsha == entry["commit"]
    assert venv_has(env, "cdfix_gamma") == "0.2"


def test_update_registry_node(env, registry, run_cli):
    assert run_cli("node", "add", "comfyui-fixture-pack@1.0.0").code == 0
    assert run_cli("node", "update", "comfyui-fixture-pack").code == 0
    assert manifest(env)["tool"]["comfydock"]["nodes"]["comfyui-fixture-pack"]["version"] == "1.1.0"
    assert venv_has(env, "cdfix_beta") == "2.0"


# --- conflicts ---------------------------------------------------------------------------------------


def test_conflict_regular_directory(env, node_repo, run_cli):
    (env.custom_nodes_dir / "ComfyUI-Git-Node").mkdir()
    (env.custom_nodes_dir / "ComfyUI-Git-Node" / "mine.py").write_text("# mine")
    result = run_cli("node", "add", node_repo.as_uri())
    assert result.code == 1
    assert "already exists and is not a git repository" in result.err
    assert "--dev" in result.err and "--force" in result.err
    assert (env.custom_nodes_dir / "ComfyUI-Git-Node" / "mine.py").read_text() == "# mine"


def test_conflict_local_git_repo_without_remote(env, node_repo, run_cli):
    local = env.custom_nodes_dir / "ComfyUI-Git-Node"
    git.Repo.init(local)
    result = run_cli("node", "add", node_repo.as_uri())
    assert result.code == 1 and "without a remote" in result.err


def test_conflict_same_repository_offers_dev_tracking(env, node_repo, run_cli):
    git.Repo.clone_from(str(node_repo) + "/", env.custom_nodes_dir / "ComfyUI-Git-Node")  # a path, not a URL
    result = run_cli("node", "add", node_repo.as_uri())  # the same repository, spelled differently
    assert result.code == 1 and "already a clone of" in result.err
    assert "comfydock node add ComfyUI-Git-Node --dev" in result.err
    assert run_cli("node", "add", "ComfyUI-Git-Node", "--dev").code == 0
    assert manifest(env)["tool"]["comfydock"]["nodes"]["ComfyUI-Git-Node"]["source"] == "development"


def test_conflict_different_repository(env, node_repo, run_cli, tmp_path):
    from comfydock.demo.fixtures import build_node_repo

    other = build_node_repo(tmp_path / "elsewhere" / "ComfyUI-Git-Node", "other", {"v1": ""})
    git.Repo.clone_from(other.as_uri(), env.custom_nodes_dir / "ComfyUI-Git-Node")
    result = run_cli("node", "add", node_repo.as_uri())
    assert result.code == 1 and "not of" in result.err and "rename" in result.err


def test_force_replaces_but_keeps_the_old_directory(env, node_repo, run_cli):
    (env.custom_nodes_dir / "ComfyUI-Git-Node").mkdir()
    (env.custom_nodes_dir / "ComfyUI-Git-Node" / "mine.py").write_text("# mine")
    result = run_cli("node", "add", node_repo.as_uri(), "--force", "--json")
    assert result.code == 0
    assert (env.custom_nodes_dir / "ComfyUI-Git-Node" / "requirements.txt").exists()
    kept = list((env.state_dir / "trash").glob("ComfyUI-Git-Node-*/mine.py"))
    assert len(kept) == 1


# --- dev nodes and the .disabled pattern -------------------------------------------------------------


def make_dev_node(env, name="my-node", requirements="cdfix-gamma\n"):
    path = env.custom_nodes_dir / name
    path.mkdir()
    (path / "__init__.py").write_text("# my work\n")
    (path / "requirements.txt").write_text(requirements)
    return path


def test_remove_dev_node_keeps_its_files_as_disabled_and_add_brings_them_back(env, run_cli):
    path = make_dev_node(env)
    assert run_cli("node", "add", "my-node", "--dev").code == 0
    assert manifest(env)["tool"]["comfydock"]["nodes"]["my-node"]["source"] == "development"
    result = run_cli("node", "remove", "my-node")
    assert result.code == 0
    assert not path.exists()
    assert (env.custom_nodes_dir / "my-node.disabled" / "__init__.py").read_text() == "# my work\n"
    assert "node-my-node" not in manifest(env).get("dependency-groups", {})
    assert run_cli("node", "add", "my-node", "--dev").code == 0
    assert (path / "__init__.py").read_text() == "# my work\n"
    assert not (env.custom_nodes_dir / "my-node.disabled").exists()


def test_adding_a_node_whose_disabled_copy_exists_moves_the_copy_aside(env, node_repo, run_cli):
    disabled = env.custom_nodes_dir / "ComfyUI-Git-Node.disabled"
    disabled.mkdir()
    (disabled / "old.py").write_text("old")
    result = run_cli("node", "add", node_repo.as_uri(), "--json")
    assert result.code == 0
    assert not disabled.exists()
    assert any("moved custom_nodes/ComfyUI-Git-Node.disabled aside" in n for n in result.json["notes"])
    assert list((env.state_dir / "trash").glob("ComfyUI-Git-Node.disabled-*/old.py"))


def test_remove_registry_node_deletes_it_but_the_cache_keeps_it(env, registry, run_cli, workspace):
    run_cli("node", "add", "comfyui-fixture-pack")
    assert run_cli("node", "remove", "comfyui-fixture-pack").code == 0
    assert not (env.custom_nodes_dir / "ComfyUI-Fixture-Pack").exists()
    assert venv_has(env, "cdfix_beta") is None
    assert len(list((workspace.node_cache_dir / "store").iterdir())) == 1
    assert run_cli("node", "add", "comfyui-fixture-pack").code == 0
    assert registry.hits["/files/comfyui-fixture-pack/1.1.0.zip"] == 1


def test_remove_refuses_a_registry_node_with_local_edits_unless_forced(env, registry, run_cli):
    run_cli("node", "add", "comfyui-fixture-pack")
    edited = env.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "__init__.py"
    edited.write_text("# I fixed a bug here\n")
    result = run_cli("node", "remove", "comfyui-fixture-pack")
    assert result.code == 1 and "local work" in result.err and "--force" in result.err
    assert edited.read_text() == "# I fixed a bug here\n"
    assert run_cli("node", "remove", "comfyui-fixture-pack", "--force").code == 0


def test_remove_refuses_a_git_node_with_uncommitted_changes(env, node_repo, run_cli):
    run_cli("node", "add", node_repo.as_uri())
    (env.custom_nodes_dir / "ComfyUI-Git-Node" / "new.py").write_text("x")
    result = run_cli("node", "remove", "ComfyUI-Git-Node")
    assert result.code == 1 and "uncommitted changes" in result.err


def test_remove_something_not_installed(env, run_cli):
    result = run_cli("node", "remove", "ghost")
    assert result.code == 1 and "not installed" in result.err


def test_dev_node_without_directory(env, run_cli):
    result = run_cli("node", "add", "nothing-here", "--dev")
    assert result.code == 1 and "no directory custom_nodes/nothing-here" in result.err


def test_update_dev_node_rescans_requirements(env, run_cli):
    path = make_dev_node(env, requirements="cdfix-gamma<0.2\n")
    run_cli("node", "add", "my-node", "--dev")
    assert venv_has(env, "cdfix_gamma") == "0.1"
    (path / "requirements.txt").write_text("cdfix-gamma<0.2\ncdfix-beta<2\n")
    assert run_cli("node", "update", "my-node").code == 0
    assert list(manifest(env)["dependency-groups"]["node-my-node"]) == ["cdfix-gamma<0.2", "cdfix-beta<2"]
    assert venv_has(env, "cdfix_beta") == "1.0"


def test_node_list_dev_filter_and_untracked_note(env, registry, run_cli):
    make_dev_node(env)
    run_cli("node", "add", "my-node", "--dev")
    run_cli("node", "add", "comfyui-plain")
    (env.custom_nodes_dir / "stray").mkdir()
    assert [r["id"] for r in run_cli("node", "list", "--dev", "--json").json] == ["my-node"]
    assert "Not tracked: stray" in run_cli("node", "list").err


# --- requirements ------------------------------------------------------------------------------------


def test_requirements_txt_and_pyproject_are_scanned_options_reported(env, run_cli):
    path = env.custom_nodes_dir / "scanned"
    path.mkdir()
    (path / "base.txt").write_text("cdfix-gamma\n")
    (path / "requirements.txt").write_text(
        "# comment\n-r base.txt\n--extra-index-url https://x.invalid/simple\ncdfix-beta<2 ; python_version >= '3.8'\n"
    )
    (path / "pyproject.toml").write_text('[project]\nname = "scanned"\ndependencies = ["cdfix-alpha>=1"]\n')
    result = run_cli("node", "add", "scanned", "--dev", "--json")
    assert result.code == 0, result.err
    (info,) = result.json["added"]
    assert info["requirements"] == ["cdfix-gamma", 'cdfix-beta<2; python_version >= "3.8"', "cdfix-alpha>=1"]
    assert info["skipped"] == [["--extra-index-url https://x.invalid/simple", "pip option, not a requirement"]]


def test_conflicting_node_requirements_change_nothing(env, run_cli, workspace):
    make_dev_node(env, "bad-node", requirements="cdfix-alpha<1\n")
    before = env.pyproject_path.read_bytes(), env.lock_path.read_bytes()
    result = run_cli("node", "add", "bad-node", "--dev")
    assert result.code == 1
    assert "No solution found" in result.err
    assert "--no-test" in result.err or "pyproject" in result.err
    assert (env.pyproject_path.read_bytes(), env.lock_path.read_bytes()) == before
    assert (env.custom_nodes_dir / "bad-node").is_dir()  # the user's directory is untouched
    assert venv_has(env, "cdfix_alpha") == "2.0"


def test_conflicting_registry_node_stays_in_the_cache(env, registry, run_cli, workspace):
    from comfydock.demo.fixtures import node_zip_bytes

    registry.add_node("comfyui-greedy", {"1.0": node_zip_bytes("greedy", "cdfix-alpha<1\n")})
    before = env.pyproject_path.read_bytes()
    result = run_cli("node", "add", "comfyui-greedy")
    assert result.code == 1 and "No solution found" in result.err
    assert env.pyproject_path.read_bytes() == before
    assert not (env.custom_nodes_dir / "comfyui-greedy").exists()
    assert len(list((workspace.node_cache_dir / "store").iterdir())) == 1  # kept for a retry
    result = run_cli("node", "add", "comfyui-greedy", "--no-test")
    assert result.code == 0 and "--no-test" in result.err
    assert list(manifest(env)["dependency-groups"]["node-comfyui-greedy"]) == ["cdfix-alpha<1"]
    assert registry.hits["/files/comfyui-greedy/1.0.zip"] == 1


def test_comfydock_ignore_protects_directories(env, run_cli):
    make_dev_node(env, "private-node")
    (env.cec_dir / ".comfydock_ignore").write_text("# mine\nprivate-*\n")
    result = run_cli("node", "add", "private-node", "--dev")
    assert result.code == 1 and "ignored" in result.err
    assert "private-node" not in run_cli("node", "list").err


def test_several_nodes_in_one_call(env, registry, node_repo, run_cli):
    make_dev_node(env)
    result = run_cli("node", "add", "comfyui-plain", node_repo.as_uri(), "--json")
    assert result.code == 0
    assert [a["id"] for a in result.json["added"]] == ["comfyui-plain", "ComfyUI-Git-Node"]
    assert {r["id"] for r in run_cli("node", "list", "--json").json} == {"comfyui-plain", "ComfyUI-Git-Node"}


def test_build_reinstalls_a_deleted_node_from_the_cache(env, registry, run_cli):
    run_cli("node", "add", "comfyui-fixture-pack")
    shutil.rmtree(env.custom_nodes_dir / "ComfyUI-Fixture-Pack")
    result = run_cli("build", "--json")
    statuses = {t["task"]: t["status"] for t in result.json["tasks"]}
    assert statuses["install_node:comfyui-fixture-pack"] == "ran"
    assert statuses["fetch_node:comfyui-fixture-pack"] == "up-to-date"
    assert (env.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "__init__.py").exists()


def test_two_processes_changing_one_environment_take_turns(env, registry, run_cli):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "comfydock", "node", "add", node, "-e", "main"], stderr=subprocess.PIPE, text=True
        )
        for node in ("comfyui-plain", "comfyui-fixture-pack")
    ]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    assert {r["id"] for r in run_cli("node", "list", "--json").json} == {"comfyui-plain", "comfyui-fixture-pack"}


def test_status_lists_node_changes_since_the_last_commit(env, registry, node_repo, run_cli):
    run_cli("node", "add", "comfyui-plain")
    data = run_cli("status", "--json").json
    assert data["node_changes"] == {"added": ["comfyui-plain"], "removed": [], "changed": []}
    assert "Custom nodes added since the last commit: comfyui-plain" in run_cli("status").out


def test_ctrl_c_midway_through_node_add_puts_everything_back(env, registry, workspace):
    from comfydock.nodes import add_nodes
    from comfydock.workspace import Workspace

    env = Workspace.open(workspace.root).environment("main")  # sees the registry-url set after `env` was made
    before = env.pyproject_path.read_bytes(), env.lock_path.read_bytes()

    def listener(kind, task):
        if kind == "start" and task == "lock_deps":  # node fetched, installed and scanned by now
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        add_nodes(env, ["comfyui-fixture-pack"], listener=listener)
    assert (env.pyproject_path.read_bytes(), env.lock_path.read_bytes()) == before
    assert not (env.custom_nodes_dir / "ComfyUI-Fixture-Pack").exists()
    assert venv_has(env, "cdfix_beta") is None
    # and the next attempt simply works, from the cache
    assert add_nodes(env, ["comfyui-fixture-pack"]).added[0]["id"] == "comfyui-fixture-pack"
    assert registry.hits["/files/comfyui-fixture-pack/1.1.0.zip"] == 1


def test_adding_an_installed_node_again_changes_nothing(env, registry, run_cli):
    assert run_cli("node", "add", "comfyui-fixture-pack@1.0.0").code == 0
    before = env.pyproject_path.read_bytes()
    again = run_cli("node", "add", "comfyui-fixture-pack@1.0.0", "--json")
    assert again.code == 0 and again.json["added"] == []
    assert "already installed" in again.json["notes"][0]
    other = run_cli("node", "add", "comfyui-fixture-pack@1.1.0")
    assert other.code == 1 and "node update comfyui-fixture-pack" in other.err
    assert env.pyproject_path.read_bytes() == before


def test_failed_update_puts_the_old_version_back(env, registry, run_cli):
    from comfydock.demo.fixtures import node_zip_bytes

    registry.nodes["comfyui-fixture-pack"]["versions"]["2.0.0"] = node_zip_bytes("fixture-pack", "cdfix-alpha<1\n")
    assert run_cli("node", "add", "comfyui-fixture-pack@1.0.0").code == 0
    node_dir = env.custom_nodes_dir / "ComfyUI-Fixture-Pack"
    before = env.pyproject_path.read_bytes(), env.lock_path.read_bytes(), (node_dir / "requirements.txt").read_text()
    result = run_cli("node", "update", "comfyui-fixture-pack", "--version", "2.0.0")
    assert result.code == 1 and "No solution found" in result.err
    after = env.pyproject_path.read_bytes(), env.lock_path.read_bytes(), (node_dir / "requirements.txt").read_text()
    assert after == before
    assert venv_has(env, "cdfix_beta") == "1.0"
    assert statuses_of(run_cli("build", "--dry-run", "--json").json) == {"up-to-date"}


def statuses_of(plan):
    return {row["status"] for row in plan if row["task"] not in {"index_models", "core_node_types"}}


def test_a_busy_environment_names_its_holder(env, registry):
    from comfydock.locking import environment_lock

    with environment_lock(env.lock_file):  # this test process plays the other comfydock
        proc = subprocess.run(
            [sys.executable, "-m", "comfydock", "node", "add", "comfyui-plain", "-e", "main"],
            capture_output=True,
            text=True,
            env=dict(os.environ, COMFYDOCK_LOCK_TIMEOUT="0.5"),
        )
    assert proc.returncode == 1
    assert f"Waiting for the environment lock (pid {os.getpid()}" in proc.stderr
    assert f"environment is busy: pid {os.getpid()}" in proc.stderr
    assert not (env.custom_nodes_dir / "comfyui-plain").exists()


def test_filesystem_errors_in_a_task_are_one_line_and_change_nothing(env, registry, run_cli):
    shutil.rmtree(env.custom_nodes_dir)
    env.custom_nodes_dir.write_text("not a directory")  # installing into it must fail
    before = env.pyproject_path.read_bytes()
    result = run_cli("node", "add", "comfyui-plain")
    assert result.code == 1
    assert "install_node:comfyui-plain" in result.err and "custom_nodes" in result.err
    assert "Traceback" not in result.err and "hint:" in result.err
    assert env.pyproject_path.read_bytes() == before
    assert env.custom_nodes_dir.read_text() == "not a directory"


def test_registry_zip_with_one_top_folder_installs_its_contents(env, registry, run_cli):
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Wrapped-Node-1.0/__init__.py", "NODE_CLASS_MAPPINGS = {}\n")
        zf.writestr("Wrapped-Node-1.0/requirements.txt", "cdfix-gamma\n")
    registry.add_node("comfyui-wrapped", {"1.0": buf.getvalue()})
    result = run_cli("node", "add", "comfyui-wrapped", "--json")
    assert result.code == 0, result.err
    assert (env.custom_nodes_dir / "comfyui-wrapped" / "__init__.py").exists()
    assert result.json["added"][0]["requirements"] == ["cdfix-gamma"]


def test_build_rebuilds_nodes_from_a_copied_manifest(env, registry, node_repo, run_cli, workspace):
    """A colleague's manifest is enough: build fetches, installs, scans, locks and syncs."""
    assert run_cli("node", "add", "comfyui-fixture-pack@1.0.0", f"{node_repo.as_uri()}@v1.0").code == 0
    assert run_cli("create", "colleague", "--torch-backend", "cpu").code == 0
    other = workspace.environment("colleague")
    shutil.copy(env.pyproject_path, other.pyproject_path)
    shutil.copy(env.lock_path, other.lock_path)
    result = run_cli("build", "-e", "colleague", "--json")
    assert result.code == 0, result.err
    ran = {t["task"] for t in result.json["tasks"] if t["status"] == "ran"}
    assert {"install_node:comfyui-fixture-pack", "install_node:ComfyUI-Git-Node", "sync_venv"} <= ran
    assert (other.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "__init__.py").exists()
    assert (
        git.Repo(other.custom_nodes_dir / "ComfyUI-Git-Node").head.commit.hexsha == git.Repo(node_repo).tags["v1.0"].commit.hexsha
    )
    assert venv_has(other, "cdfix_beta") == "1.0" and venv_has(other, "cdfix_gamma") == "0.1"
    assert other.lock_path.read_bytes() == env.lock_path.read_bytes()
