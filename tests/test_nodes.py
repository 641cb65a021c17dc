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
from conftest import interrupt_when_uv_asks, venv_has

from comfydock.environment import Environment

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


@pytest.mark.parametrize("path", ["/nodes/comfyui-fixture-pack", "/nodes/comfyui-fixture-pack/install"])
def test_a_registry_answer_nested_too_deep_is_one_line_and_installs_nothing(env, registry, run_cli, path):
    before = env.pyproject_path.read_bytes()
    registry.answers[path] = b'{"id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    result = run_cli("node", "add", "comfyui-fixture-pack")
    assert result.code == 1, result
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "more than 64 deep" in errors[0] and "hint:" in result.err, result.err
    assert env.pyproject_path.read_bytes() == before
    assert not any(env.custom_nodes_dir.glob("ComfyUI-Fixture*"))


def test_unreachable_registry_says_which_setting_to_fix(env, run_cli):
    run_cli("config", "registry-url", "http://127.0.0.1:9")
    result = run_cli("node", "add", "anything")
    assert result.code == 1 and "cannot reach the Comfy Registry" in result.err and "registry-url" in result.err


def test_cut_off_download_leaves_nothing_and_a_retry_works(env, registry, run_cli, workspace):
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    registry.mode = "truncate"
    result = run_cli("node", "add", "comfyui-fixture-pack")
    assert result.code == 1 and ("cut off" in result.err or "was interrupted" in result.err)
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before
    assert not (env.custom_nodes_dir / "ComfyUI-Fixture-Pack").exists()
    assert not any((workspace.node_cache_dir / "store").iterdir())  # no half entry in the cache
    registry.mode = None
    assert run_cli("node", "add", "comfyui-fixture-pack").code == 0
    assert (env.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "__init__.py").exists()


@pytest.mark.parametrize(
    "mode,setting,value,expected",
    [
        ("endless", "archive-max-bytes", str(1 << 20), "larger than 1048576 bytes"),
        ("trickle", "download-timeout", "1.5", "took longer than 1.5 s"),
        ("trickle-answers", "download-timeout", "1.5", "took longer than 1.5 s"),
    ],
)
def test_an_endless_or_trickling_registry_is_stopped_by_the_settings_and_leaves_nothing(
    env, registry, run_cli, workspace, mode, setting, value, expected
):
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    assert run_cli("config", setting, value).code == 0
    registry.mode, registry.trickle_delay = mode, 0.5
    result = run_cli("node", "add", "comfyui-fixture-pack")
    assert result.code == 1, result
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0] and setting in result.err and "hint:" in result.err, result.err
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before
    store = workspace.node_cache_dir / "store"
    assert not store.exists() or not any(store.iterdir())  # the partial download is gone
    registry.mode = None
    assert run_cli("node", "add", "comfyui-fixture-pack", "--no-test").code == 0


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
    second = Environment.open(workspace, "second")
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
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    result = run_cli("node", "add", "bad-node", "--dev")
    assert result.code == 1
    assert "No solution found" in result.err
    assert "--no-test" in result.err or "pyproject" in result.err
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before
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
    from comfydock.nodes.operations import add_nodes
    from comfydock.workspace import Workspace

    env = Environment.open(Workspace.open(workspace.root), "main")  # sees the registry-url set after `env` was made
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()

    def listener(kind, task):
        if kind == "start" and task == "lock_deps":  # node fetched, installed and scanned by now
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        add_nodes(env, ["comfyui-fixture-pack"], listener=listener)
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before
    assert not (env.custom_nodes_dir / "ComfyUI-Fixture-Pack").exists()
    assert venv_has(env, "cdfix_beta") is None
    # and the next attempt simply works, from the cache
    assert add_nodes(env, ["comfyui-fixture-pack"]).added[0]["id"] == "comfyui-fixture-pack"
    assert registry.hits["/files/comfyui-fixture-pack/1.1.0.zip"] == 1


def everything(env) -> dict:
    """What a user could notice of an environment: manifest and lock byte for byte, custom_nodes/
    file by file, comfydock's node records, and what the venv has installed."""
    from comfydock.adopt import venv_distributions

    def tree(root):
        if not root.is_dir():
            return None
        files = (p for p in sorted(root.rglob("*")) if "__pycache__" not in p.parts)
        return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in files}

    return {
        "pyproject.toml": env.pyproject_path.read_bytes(),
        "uv.lock": env.uv_lock_path.read_bytes(),
        "custom_nodes": tree(env.custom_nodes_dir),
        "records": {d: tree(env.state_dir / d) for d in ("nodes", "reqs", "scripts")},
        "venv": venv_distributions(env.venv_dir),
    }


def test_node_add_whose_requirements_cannot_be_locked_changes_nothing_a_user_can_see(env, registry, run_cli):
    from comfydock.demo.fixtures import node_zip_bytes

    registry.add_node("comfyui-greedy", {"1.0": node_zip_bytes("greedy", "cdfix-alpha<1\n")})
    assert run_cli("node", "add", "comfyui-fixture-pack@1.0.0").code == 0
    before = everything(env)
    # --force: 1.1.0 replaces the installed 1.0.0 directory, which must come back
    result = run_cli("node", "add", "comfyui-fixture-pack@1.1.0", "comfyui-greedy", "--force")
    assert result.code == 1 and "No solution found" in result.err
    # the hint is chosen because the lock step failed (not from the message's wording)
    assert "comfydock node add comfyui-fixture-pack@1.1.0 comfyui-greedy --no-test" in result.err
    assert everything(env) == before
    assert statuses_of(run_cli("build", "--dry-run", "--json").json) == {"up-to-date"}


@pytest.mark.parametrize("command", ["add", "remove", "update"])
def test_ctrl_c_after_the_venv_changed_puts_everything_back(env, registry, workspace, command):
    """Interrupted once uv has already changed uv.lock and the venv: the files come back byte for
    byte, the venv is synced back to them, and the next build has nothing to do."""
    from comfydock.engine import plan
    from comfydock.nodes.operations import add_nodes, remove_nodes, update_node
    from comfydock.workspace import Workspace

    env = Environment.open(Workspace.open(workspace.root), "main")  # sees the registry-url set after `env` was made
    make_dev_node(env, "my-node", requirements="cdfix-gamma<0.2\n")
    add_nodes(env, ["comfyui-fixture-pack@1.0.0"])
    before = everything(env)
    assert before["venv"]["cdfix-beta"] == "1.0" and before["venv"]["cdfix-gamma"] == "0.2"

    def listener(kind, task):
        if kind == "ran" and task == "sync_venv":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        if command == "add":  # a dev node that moves cdfix-gamma down to 0.1
            add_nodes(env, ["my-node"], dev=True, listener=listener)
        elif command == "remove":  # cdfix-beta leaves the venv
            remove_nodes(env, ["comfyui-fixture-pack"], listener=listener)
        else:  # 1.1.0 lets cdfix-beta move up to 2.0
            update_node(env, "comfyui-fixture-pack", "1.1.0", listener=listener)
    assert everything(env) == before
    assert env.venv_in_sync()
    assert {e.status for e in plan(env, skip={"index_models", "core_node_types"})} == {"up-to-date"}


def test_ctrl_c_of_the_cli_while_uv_locks_a_new_node_restores_everything(env, registry, run_cli, stalling_index, tmp_path):
    """A terminal's Ctrl-C (SIGINT to comfydock and uv) once the node is fetched and installed."""

    url, asked = stalling_index
    assert run_cli("node", "add", "comfyui-plain").code == 0
    assert run_cli("config", "python-index", url).code == 0
    assert run_cli("config", "no-index", "false").code == 0
    before = everything(env)
    code, err = interrupt_when_uv_asks(
        asked,
        ["node", "add", "comfyui-fixture-pack"],
        tmp_path,
        check=lambda: (env.custom_nodes_dir / "ComfyUI-Fixture-Pack").is_dir() or pytest.fail("not installed before uv lock"),
    )
    assert code == 130, err
    assert "Traceback" not in err
    assert everything(env) == before
    assert run_cli("status", "--json").json["venv_in_sync"] is True


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
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes(), (node_dir / "requirements.txt").read_text()
    result = run_cli("node", "update", "comfyui-fixture-pack", "--version", "2.0.0")
    assert result.code == 1 and "No solution found" in result.err
    after = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes(), (node_dir / "requirements.txt").read_text()
    assert after == before
    assert venv_has(env, "cdfix_beta") == "1.0"
    assert statuses_of(run_cli("build", "--dry-run", "--json").json) == {"up-to-date"}


def statuses_of(plan):
    return {row["status"] for row in plan if row["task"] not in {"index_models", "core_node_types"}}


def test_a_busy_environment_names_its_holder(env, registry):
    from comfydock.process_lock import process_lock

    with process_lock(env.process_lock_file):  # this test process plays the other comfydock
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
    other = Environment.open(workspace, "colleague")
    shutil.copy(env.pyproject_path, other.pyproject_path)
    shutil.copy(env.uv_lock_path, other.uv_lock_path)
    result = run_cli("build", "-e", "colleague", "--json")
    assert result.code == 0, result.err
    ran = {t["task"] for t in result.json["tasks"] if t["status"] == "ran"}
    assert {"install_node:comfyui-fixture-pack", "install_node:ComfyUI-Git-Node", "sync_venv"} <= ran
    assert (other.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "__init__.py").exists()
    assert (
        git.Repo(other.custom_nodes_dir / "ComfyUI-Git-Node").head.commit.hexsha == git.Repo(node_repo).tags["v1.0"].commit.hexsha
    )
    assert venv_has(other, "cdfix_beta") == "1.0" and venv_has(other, "cdfix_gamma") == "0.1"
    assert other.uv_lock_path.read_bytes() == env.uv_lock_path.read_bytes()


# --- annotated tags, refs that are not commits ------------------------------------------------------


def annotated_tag(repo_dir, tag, message="release"):
    repo = git.Repo(repo_dir)
    actor = git.Actor("Fixture Author", "fixture@example.invalid")
    (repo_dir / "CHANGES.md").write_text(f"{tag}\n")
    repo.git.add(A=True)
    commit = repo.index.commit(f"release {tag}", author=actor, committer=actor)
    with repo.config_writer() as cw:  # a tagger identity for the annotated tag (HOME is empty in tests)
        cw.set_value("user", "name", "Fixture Author")
        cw.set_value("user", "email", "fixture@example.invalid")
    repo.create_tag(tag, ref=commit, message=message)
    return commit.hexsha


def test_git_node_at_an_annotated_tag_records_the_commit_and_is_not_locally_modified(env, node_repo, run_cli):
    commit = annotated_tag(node_repo, "v3.0")
    assert git.Repo(node_repo).tags["v3.0"].object.hexsha != commit  # a real tag object
    assert run_cli("node", "add", f"{node_repo.as_uri()}@v3.0").code == 0
    entry = manifest(env)["tool"]["comfydock"]["nodes"]["ComfyUI-Git-Node"]
    assert entry["commit"] == commit
    assert git.Repo(env.custom_nodes_dir / "ComfyUI-Git-Node").head.commit.hexsha == commit
    result = run_cli("node", "remove", "ComfyUI-Git-Node")  # untouched: no "local work" refusal
    assert result.code == 0, result.err


def test_comfyui_at_an_annotated_tag_resolves_to_its_commit(tmp_path):
    from comfydock import comfyui
    from comfydock.demo.fixtures import build_node_repo

    repo_dir = build_node_repo(tmp_path / "cui", "cui", {"v0.1.0": ""})
    commit = annotated_tag(repo_dir, "v0.3.64")
    repo = git.Repo(repo_dir)
    assert comfyui.resolve_ref(repo, "v0.3.64").commit == commit
    assert comfyui.resolve_ref(repo, None) == comfyui.ResolvedRef("v0.3.64", commit)
    repo.git.tag("treetag", "HEAD^{tree}")
    from comfydock.errors import ComfydockError

    with pytest.raises(ComfydockError, match="unknown ComfyUI ref 'treetag'") as refused:
        comfyui.resolve_ref(repo, "treetag")
    assert refused.value.exit_code == 1  # a well-formed request the repository cannot satisfy


@pytest.mark.parametrize("ref", ["deadbee", "treetag"])
def test_git_ref_that_is_not_a_commit_is_a_clear_error(env, node_repo, run_cli, ref):
    repo = git.Repo(node_repo)
    repo.git.tag("treetag", "HEAD^{tree}")  # a tag that names a tree, not a commit
    before = env.pyproject_path.read_bytes()
    result = run_cli("node", "add", f"{node_repo.as_uri()}@{ref}")
    assert result.code == 1
    assert f"'{ref}' is not a commit of" in result.err and "--detach" not in result.err
    assert env.pyproject_path.read_bytes() == before
    assert not (env.custom_nodes_dir / "ComfyUI-Git-Node").exists()


# --- node identity: the normalised URL; the directory is a name ------------------------------------


def test_two_forks_with_one_name_conflict_until_one_gets_another_directory(env, run_cli, tmp_path):
    from comfydock.demo.fixtures import build_node_repo

    fork_a = build_node_repo(tmp_path / "forkA" / "ComfyUI-Foo", "foo-a", {"v1": ""})
    fork_b = build_node_repo(tmp_path / "forkB" / "ComfyUI-Foo", "foo-b", {"v1": ""})
    assert run_cli("node", "add", fork_a.as_uri()).code == 0
    result = run_cli("node", "add", f"{fork_b.as_uri()}@v1")
    assert result.code == 1 and "already installed" not in result.err
    assert "custom_nodes/ComfyUI-Foo is already used by node ComfyUI-Foo" in result.err
    assert f"'comfydock node add {fork_b.as_uri()}@v1 --name DIR'" in result.err  # the @ref as typed
    assert run_cli("node", "add", f"{fork_b.as_uri()}@v1", "--name", "ComfyUI-Foo-B").code == 0
    rows = {r["id"]: r for r in run_cli("node", "list", "--json").json}
    assert rows["ComfyUI-Foo"]["url"] == fork_a.as_uri() and rows["ComfyUI-Foo-B"]["url"] == fork_b.as_uri()
    assert "foo-b" in (env.custom_nodes_dir / "ComfyUI-Foo-B" / "__init__.py").read_text()
    # the same repository spelled another way is the same node, whatever its directory
    again = run_cli("node", "add", str(fork_b) + "/.git", "--json")
    assert again.code == 0 and again.json["added"] == [] and "ComfyUI-Foo-B is already installed" in again.json["notes"][0]
    moved = run_cli("node", "add", fork_b.as_uri(), "--name", "Elsewhere", "--force")
    assert moved.code == 1 and "--name cannot move it" in moved.err
    assert run_cli("node", "remove", fork_b.as_uri()).code == 0  # a node can be named by its URL
    assert not (env.custom_nodes_dir / "ComfyUI-Foo-B").exists() and (env.custom_nodes_dir / "ComfyUI-Foo").exists()


def test_already_installed_hint_keeps_the_ref_the_user_typed(env, node_repo, run_cli):
    assert run_cli("node", "add", f"{node_repo.as_uri()}@v1.0").code == 0
    result = run_cli("node", "add", f"{node_repo.as_uri()}@v2.0")
    assert result.code == 1 and f"'comfydock node add {node_repo.as_uri()}@v2.0 --force'" in result.err


def test_bad_name_for_a_node_directory_is_refused(env, node_repo, run_cli):
    result = run_cli("node", "add", node_repo.as_uri(), "--name", "../../outside")
    assert result.code == 2 and "invalid node directory" in result.err
    assert not (env.root.parent / "outside").exists()


# --- a hostile registry: nothing from it becomes a path unchecked -----------------------------------


def zip_bytes(members) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def hostile_answer(registry, case):
    """Make the registry answer `case` badly for node comfyui-evil; returns what the user types."""
    from comfydock.demo.fixtures import node_zip_bytes

    registry.add_node("comfyui-evil", {"1.0": node_zip_bytes("evil", "")})
    node = registry.node_obj("comfyui-evil")
    if case == "id-escapes":
        registry.answers["/nodes/comfyui-evil"] = {**node, "id": "../../../../tmp/comfydock-evil"}
    elif case == "latest-is-a-string":
        registry.answers["/nodes/comfyui-evil"] = {**node, "latest_version": "1.0"}
    elif case == "versions-is-a-number":
        registry.answers["/nodes/comfyui-evil/versions"] = 42
        return "comfyui-evil@1.0"
    elif case == "version-with-semicolon":
        registry.answers["/nodes/comfyui-evil"] = {
            **node,
            "latest_version": {**node["latest_version"], "version": "1.0;rm -rf ~"},
        }
    elif case == "empty-zip":
        registry.nodes["comfyui-evil"]["versions"]["1.0"] = zip_bytes([])
    elif case == "file-and-directory":
        registry.nodes["comfyui-evil"]["versions"]["1.0"] = zip_bytes([("__init__.py", ""), ("lib", "x"), ("lib/a.py", "")])
    elif case == "download-url-not-http":
        registry.answers["/nodes/comfyui-evil/install"] = {"version": "1.0", "downloadUrl": "file:///etc/passwd"}
    return "comfyui-evil"


@pytest.mark.parametrize(
    "case,says",
    [
        ("id-escapes", "node id '../../../../tmp/comfydock-evil' when asked for 'comfyui-evil'"),
        ("latest-is-a-string", "latest_version that is not an object"),
        ("versions-is-a-number", "instead of a list of versions"),
        ("version-with-semicolon", "invalid version '1.0;rm -rf ~'"),
        ("empty-zip", "empty"),
        ("file-and-directory", "a file and a directory both named 'lib'"),
        ("download-url-not-http", "not http(s)"),
    ],
)
def test_malformed_registry_answers_are_one_line_errors_and_install_nothing(env, registry, run_cli, case, says, tmp_path):
    ident = hostile_answer(registry, case)
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    result = run_cli("node", "add", ident)
    assert result.code == 1, result.err
    assert says in result.err and "Traceback" not in result.err
    error_line = next(ln for ln in result.err.splitlines() if ln.startswith("error:"))
    assert says in error_line
    if case not in ("empty-zip", "file-and-directory"):  # an archive error names the archive
        assert registry.url in error_line
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before
    assert sorted(p.name for p in env.custom_nodes_dir.iterdir()) == ["example_node.py.example"]
    assert not os.path.exists("/tmp/comfydock-evil")
    assert not list((env.state_dir / "nodes").glob("*")) if (env.state_dir / "nodes").exists() else True


def test_a_manifest_entry_pointing_outside_custom_nodes_deletes_nothing(env, registry, run_cli, tmp_path):
    outside = env.root / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    with env.pyproject_path.open("a") as f:  # a colleague's (or an attacker's) manifest
        f.write('\n[tool.comfydock.nodes.evil]\nsource = "registry"\ndirectory = "../../precious"\nversion = "1.0"\n')
    for argv in (("node", "remove", "evil", "--force"), ("build",), ("node", "list")):
        result = run_cli(*argv)
        assert result.code == 1 and "invalid directory '../../precious'" in result.err, argv
    assert (outside / "keep.txt").read_text() == "mine"


def test_archive_bomb_from_the_registry_is_refused_with_the_reason(env, registry, run_cli, workspace):
    registry.add_node("comfyui-bomb", {"1.0": zip_bytes([("__init__.py", ""), ("zeros.bin", b"\0" * (16 << 20))])})
    result = run_cli("node", "add", "comfyui-bomb")
    assert result.code == 1 and "200:1" in result.err and "archive-max-ratio" in result.err
    assert not (env.custom_nodes_dir / "comfyui-bomb").exists()
    assert not any((workspace.node_cache_dir / "store").iterdir())
    assert run_cli("config", "archive-max-ratio", "100000").code == 0  # the user trusts it
    assert run_cli("node", "add", "comfyui-bomb", "--no-test").code == 0


def test_cache_prune_removes_only_entries_no_environment_uses(env, registry, run_cli, workspace):
    assert run_cli("node", "add", "comfyui-plain", "comfyui-fixture-pack@1.0.0").code == 0
    assert run_cli("node", "remove", "comfyui-plain").code == 0
    assert len(list((workspace.node_cache_dir / "store").iterdir())) == 2  # kept: a re-add needs no download
    result = run_cli("cache", "prune", "--json")
    assert result.code == 0
    assert [r["identity"] for r in result.json["removed"]] == ["registry:comfyui-plain@0.1.0"]
    index = json.loads((workspace.node_cache_dir / "index.json").read_text())
    assert [v["identity"] for v in index.values()] == ["registry:comfyui-fixture-pack@1.0.0"]
    assert run_cli("cache", "prune", "--json").json["removed"] == []
    shutil.rmtree(env.custom_nodes_dir / "ComfyUI-Fixture-Pack")
    assert run_cli("build").code == 0  # what is referenced is still there
    assert registry.hits["/files/comfyui-fixture-pack/1.0.0.zip"] == 1


# --- damaged derived state ------------------------------------------------------------------------------


def test_failed_forced_add_puts_back_the_old_directory_and_its_marker(env, registry, run_cli):
    from comfydock.demo.fixtures import node_zip_bytes

    registry.nodes["comfyui-fixture-pack"]["versions"]["2.0.0"] = node_zip_bytes("fixture-pack", "cdfix-alpha<1\n")
    assert run_cli("node", "add", "comfyui-fixture-pack@1.0.0").code == 0
    marker = env.state_dir / "nodes" / "comfyui-fixture-pack.json"
    before = marker.read_bytes()
    result = run_cli("node", "add", "comfyui-fixture-pack@2.0.0", "--force")
    assert result.code == 1 and "No solution found" in result.err
    assert marker.read_bytes() == before
    result = run_cli("build", "--json")
    assert result.code == 0, result.err
    assert {t["status"] for t in result.json["tasks"] if "comfyui-fixture-pack" in t["task"]} == {"up-to-date"}


def test_deleted_state_directory_is_rederived_and_the_nodes_adopted(env, registry, node_repo, run_cli):
    assert run_cli("node", "add", "comfyui-fixture-pack@1.0.0", f"{node_repo.as_uri()}@v1.0").code == 0
    for node in ("ComfyUI-Fixture-Pack", "ComfyUI-Git-Node"):  # files added beside the node's own
        (env.custom_nodes_dir / node / "__pycache__").mkdir(exist_ok=True)
        (env.custom_nodes_dir / node / "__pycache__" / "x.pyc").write_bytes(b"cache")
    shutil.rmtree(env.state_dir)
    result = run_cli("build", "--json")
    assert result.code == 0, result.err
    assert not (env.state_dir / "trash").exists()  # adopted where they are, nothing replaced
    assert (env.state_dir / "nodes" / "comfyui-fixture-pack.json").exists()
    assert (env.state_dir / "nodes" / "ComfyUI-Git-Node.json").exists()
    # a directory that is not the recorded node is still refused
    (env.state_dir / "nodes" / "comfyui-fixture-pack.json").unlink()
    (env.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "__init__.py").write_text("# my edit\n")
    result = run_cli("build")
    assert result.code == 1 and "not installed by comfydock" in result.err
    assert (env.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "__init__.py").read_text() == "# my edit\n"


# --- install scripts, node check, run's import report ---------------------------------------------------

SCRIPT_NODE_INIT = "from .subpack import NODE_CLASS_MAPPINGS\n"
SCRIPT_NODE_INSTALL = """import os, sys
os.makedirs("subpack", exist_ok=True)
with open(os.path.join("subpack", "__init__.py"), "w") as f:
    f.write("NODE_CLASS_MAPPINGS = {}\\n")
with open("installed-by.txt", "w") as f:
    f.write(sys.executable)
"""


def test_install_script_is_reported_run_on_request_and_rerun_by_a_rebuild(env, run_cli, tmp_path):
    from comfydock.demo.fixtures import build_node_repo

    repo_dir = build_node_repo(tmp_path / "ComfyUI-Script-Node", "script", {"v1": ""}, files={"install.py": SCRIPT_NODE_INSTALL})
    (repo_dir / "__init__.py").write_text(SCRIPT_NODE_INIT)
    repo = git.Repo(repo_dir)
    repo.git.add(A=True)
    repo.index.commit("needs its install script")
    node_dir = env.custom_nodes_dir / "ComfyUI-Script-Node"

    result = run_cli("node", "add", repo_dir.as_uri())
    assert result.code == 0
    assert "has an install script (install.py) that comfydock did not run" in result.err
    assert f"comfydock node add {repo_dir.as_uri()} --run-install-script" in result.err
    assert not (node_dir / "installed-by.txt").exists()

    check = run_cli("node", "check", "--json")
    assert check.code == 1
    assert check.json[0]["ok"] is False and "No module named 'ComfyUI-Script-Node.subpack'" in check.json[0]["error"]
    run = run_cli("run", "--", "--cpu")
    assert run.code == 0
    assert "(IMPORT FAILED)" in run.out
    assert "ComfyUI could not import 1 custom node(s): ComfyUI-Script-Node" in run.err
    last_run = json.loads((env.comfyui_dir / "user" / "fixture_last_run.json").read_text())
    assert last_run["output_unbuffered"] is True  # its log reaches the terminal as it is written

    result = run_cli("node", "add", repo_dir.as_uri(), "--run-install-script")
    assert result.code == 0, result.err
    assert "ran its install script" in result.err
    assert (node_dir / "installed-by.txt").read_text() == str(env.python)
    assert manifest(env)["tool"]["comfydock"]["nodes"]["ComfyUI-Script-Node"]["run_install_script"] is True
    assert run_cli("node", "check").code == 0
    run = run_cli("run")
    assert run.code == 0 and "could not import" not in run.err

    shutil.rmtree(node_dir)  # a rebuild (or a colleague's) repeats the script
    result = run_cli("build", "--json")
    assert result.code == 0
    assert {t["task"]: t["status"] for t in result.json["tasks"]}["install_script:ComfyUI-Script-Node"] == "ran"
    assert (node_dir / "subpack" / "__init__.py").exists()


def test_a_damaged_registry_answer_cache_is_asked_again(tmp_path):
    from comfydock.demo.fixtures import node_zip_bytes
    from comfydock.demo.registry_server import FakeRegistry
    from comfydock.registry import RegistryClient

    reg = FakeRegistry()
    try:
        reg.add_node("comfyui-plain", {"0.1.0": node_zip_bytes("plain", "")})
        cache = tmp_path / "registry_cache.json"
        cache.write_text(json.dumps({"/nodes/comfyui-plain": 5, "/other": {"at": "yesterday", "value": 1}}))
        assert RegistryClient(reg.url, cache).node("comfyui-plain")["id"] == "comfyui-plain"
        assert reg.hits["/nodes/comfyui-plain"] == 1
        assert RegistryClient(reg.url, cache).node("comfyui-plain")["id"] == "comfyui-plain"  # now cached
        assert reg.hits["/nodes/comfyui-plain"] == 1
    finally:
        reg.close()


def test_install_script_requested_with_no_test_runs_at_the_next_build(env, run_cli, tmp_path):
    from comfydock.demo.fixtures import build_node_repo

    repo_dir = build_node_repo(tmp_path / "ComfyUI-Script-Node", "script", {"v1": ""}, files={"install.py": SCRIPT_NODE_INSTALL})
    node_dir = env.custom_nodes_dir / "ComfyUI-Script-Node"
    result = run_cli("node", "add", repo_dir.as_uri(), "--run-install-script", "--no-test")
    assert result.code == 0 and "runs at the next 'comfydock build'" in result.err
    assert not (node_dir / "installed-by.txt").exists()
    result = run_cli("build", "--json")
    assert result.code == 0
    assert {t["task"]: t["status"] for t in result.json["tasks"]}["install_script:ComfyUI-Script-Node"] == "ran"
    assert (node_dir / "installed-by.txt").read_text() == str(env.python)
    again = run_cli("build", "--json")  # done once per installation
    assert {t["task"]: t["status"] for t in again.json["tasks"]}["install_script:ComfyUI-Script-Node"] == "up-to-date"


def test_git_node_at_a_short_commit_hash_is_not_called_locally_modified(env, node_repo, run_cli):
    short = git.Repo(node_repo).tags["v1.0"].commit.hexsha[:10]
    assert run_cli("node", "add", f"{node_repo.as_uri()}@{short}").code == 0
    assert git.Repo(env.custom_nodes_dir / "ComfyUI-Git-Node").head.commit.hexsha.startswith(short)
    result = run_cli("node", "remove", "ComfyUI-Git-Node")
    assert result.code == 0, result.err


def test_registry_node_in_a_directory_of_the_users_choosing(env, registry, run_cli):
    result = run_cli("node", "add", "comfyui-plain", "--name", "Plain-Node", "--no-test", "--json")
    assert result.code == 0
    assert result.json["added"][0]["directory"] == "Plain-Node"
    assert (env.custom_nodes_dir / "Plain-Node" / "__init__.py").exists()
    two = run_cli("node", "add", "comfyui-plain", "comfyui-fixture-pack", "--name", "X")
    assert two.code == 2 and "one node at a time" in two.err


def test_a_node_from_a_mirror_url_ending_in_repo_is_named_after_its_package(env, run_cli, tmp_path):
    from comfydock.demo.fixtures import build_node_repo

    named = build_node_repo(
        tmp_path / "mirrors" / "owner+cool-node" / "repo",
        "cool",
        {"v1": "cdfix-gamma\n"},
        files={"pyproject.toml": '[project]\nname = "comfyui-cool-node"\nversion = "1.0"\n'},
    )
    result = run_cli("node", "add", named.as_uri())
    assert result.code == 0, result.err
    assert (env.custom_nodes_dir / "comfyui-cool-node" / "__init__.py").is_file()
    assert not (env.custom_nodes_dir / "repo").exists()
    assert "after its pyproject.toml's [project].name" in result.err and "--name DIR" in result.err
    plain = build_node_repo(tmp_path / "mirrors" / "plain-node" / "repo", "plain", {"v1": ""})
    assert run_cli("node", "add", plain.as_uri() + "/.git").code == 0
    assert (env.custom_nodes_dir / "plain-node").is_dir()  # no pyproject: the URL's last meaningful part
    listed = {n["id"] for n in run_cli("node", "list", "--json").json}
    assert {"comfyui-cool-node", "plain-node"} <= listed
