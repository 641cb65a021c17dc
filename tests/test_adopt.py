"""`comfydock adopt PATH`: an existing ComfyUI install (built here with real git, uv and wheels)
becomes an environment; the install itself is only read."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import zipfile

import git
import pytest

from comfydock.adopt import classify_node, find_nodes, inspect_install
from comfydock.demo.fixtures import build_node_repo, make_wheel, node_zip_bytes
from comfydock.environment import Environment
from tests.conftest import venv_has

PACK_PYPROJECT = """[project]
name = "comfyui-adopt-pack"
version = "1.2.0"
description = "a registry node"

[tool.comfy]
PublisherId = "fixture"
DisplayName = "Adopt Pack"
"""


def tree_digest(root) -> str:
    """Names, bytes and link targets of every file under root (.git and the venv included)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            p = os.path.join(dirpath, name)
            h.update(os.path.relpath(p, root).encode() + b"\0")
            if os.path.islink(p):
                h.update(b"link:" + os.readlink(p).encode())
            else:
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def _commit(repo, message):
    actor = git.Actor("Someone", "someone@example.invalid")
    repo.git.add(A=True)
    repo.index.commit(message, author=actor, committer=actor)


@pytest.fixture
def existing_install(tmp_path, comfyui_source, fixture_assets, registry):
    """A ComfyUI someone has used for months: local edit, nodes of every kind, a venv, models."""
    from comfydock import uv_runner

    pack_zip = node_zip_bytes("adopt-pack", "cdfix-beta\n", {"pyproject.toml": PACK_PYPROJECT, "nodes.py": "# pack\n"})
    registry.add_node(
        "comfyui-adopt-pack", {"1.2.0": pack_zip}, repository="https://git.example.invalid/fixture/ComfyUI-Adopt-Pack"
    )

    home = tmp_path / "old"
    comfy = home / "ComfyUI"
    git.Repo.clone_from(comfyui_source.as_uri(), comfy)
    (comfy / "README.md").write_text("my local edit\n")
    later = (comfy / "main.py").stat().st_mtime + 60
    os.utime(comfy / "main.py", (later, later))  # touched, same bytes: a plain 'git status' would rewrite the index
    nodes = comfy / "custom_nodes"
    repo = build_node_repo(tmp_path / "repos" / "ComfyUI-Git-Node", "git-node", {"v1.0": "cdfix-gamma<0.2\n"})
    git.Repo.clone_from(str(repo), nodes / "ComfyUI-Git-Node")
    with zipfile.ZipFile(io.BytesIO(pack_zip)) as zf:  # as ComfyUI-Manager leaves a registry install
        zf.extractall(nodes / "ComfyUI-Adopt-Pack")
    (nodes / "ComfyUI-Adopt-Pack" / ".tracking").write_text("__init__.py\nnodes.py\npyproject.toml\nrequirements.txt\n")
    (nodes / "my_node").mkdir()
    (nodes / "my_node" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}  # hand-made\n")
    (nodes / "my_node" / "requirements.txt").write_text("cdfix-alpha\nnot a requirement !!\n")
    (nodes / "old_node.disabled").mkdir()
    (nodes / "old_node.disabled" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    for rel, size in (("checkpoints/base.safetensors", 3000), ("loras/style.safetensors", 1000)):
        (comfy / "models" / rel).parent.mkdir(parents=True, exist_ok=True)
        (comfy / "models" / rel).write_bytes(os.urandom(size))
    (comfy / "user" / "default" / "workflows" / "portrait.json").write_text('{"nodes": [], "links": []}\n')
    (comfy / "user" / "default" / "comfy.settings.json").write_text('{"Comfy.Theme": "dark"}\n')
    environ = {**os.environ, "UV_NO_CONFIG": "1"}
    uv = uv_runner.uv_bin()
    subprocess.run([uv, "venv", "-q", "--python", "3.11", str(home / "venv")], check=True, env=environ)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(home / "venv" / "bin" / "python"), "--no-index"]
        + ["--find-links", str(fixture_assets["wheels"]), "cdfix-vision==1.0", "cdfix-alpha==1.5", "cdfix-gamma==0.1"],
        check=True,
        env=environ,
    )
    site = next((home / "venv" / "lib").glob("python3*/site-packages"))
    orphan = site / "cdfix_orphan-3.0.dist-info"  # installed from somewhere no index has it
    orphan.mkdir()
    (orphan / "METADATA").write_text("Metadata-Version: 2.1\nName: cdfix-orphan\nVersion: 3.0\n")
    private = make_wheel(tmp_path / "private", "cdfix-private", "0.1")
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(home / "venv" / "bin" / "python"), str(private)], check=True, env=environ
    )
    return comfy


def test_adopt_reproduces_an_install_and_leaves_it_untouched(workspace, existing_install, registry, run_cli):
    from comfydock import history, model_index
    from comfydock.nodes.spec import tracked_nodes
    from comfydock.workspace import Workspace

    before = tree_digest(existing_install.parent)
    old_head = git.Repo(existing_install).head.commit.hexsha
    result = run_cli("adopt", existing_install, "--name", "adopted", "--torch-backend", "cpu", "--json")
    assert result.code == 0, result.err
    report = result.json
    assert tree_digest(existing_install.parent) == before  # not one byte of the install changed

    env = Environment.open(workspace, "adopted")
    assert git.Repo(env.comfyui_dir).head.commit.hexsha == old_head
    assert report["comfyui"]["local_edits"] == ["README.md"] and report["comfyui"]["carried"] == "approximate"
    assert (env.comfyui_dir / "README.md").read_text() != "my local edit\n"

    rows = {n["directory"]: n for n in report["nodes"]}
    assert (rows["ComfyUI-Adopt-Pack"]["kind"], rows["ComfyUI-Adopt-Pack"]["carried"]) == ("registry", "exact")
    assert ".tracking" in rows["ComfyUI-Adopt-Pack"]["evidence"]
    assert (rows["ComfyUI-Git-Node"]["kind"], rows["ComfyUI-Git-Node"]["carried"]) == ("git", "exact")
    assert rows["my_node"]["kind"] == "development"
    assert rows["my_node"]["requirements_skipped"][0].startswith("not a requirement !! (not a valid requirement")
    assert rows["old_node"]["disabled"] is True
    tracked = tracked_nodes(env.manifest())
    assert {k: v.source for k, v in tracked.items()} == {
        "comfyui-adopt-pack": "registry",
        "ComfyUI-Git-Node": "git",
        "my_node": "development",
    }
    assert tracked["comfyui-adopt-pack"].version == "1.2.0"
    assert (
        tracked["ComfyUI-Git-Node"].commit == git.Repo(existing_install / "custom_nodes" / "ComfyUI-Git-Node").head.commit.hexsha
    )
    assert (env.custom_nodes_dir / "ComfyUI-Adopt-Pack" / "nodes.py").is_file()
    assert (env.custom_nodes_dir / "my_node" / "__init__.py").read_text().endswith("# hand-made\n")
    assert (env.custom_nodes_dir / "old_node.disabled" / "__init__.py").is_file()

    # the extra package comes back at its installed version; what the requirements bring stays theirs
    assert report["packages"]["added"] == ["cdfix-vision==1.0"]
    not_carried = {p["name"]: p["why"] for p in report["packages"]["not_carried"]}
    assert "not resolvable" in not_carried["cdfix-orphan"] and "local file" in not_carried["cdfix-private"]
    assert venv_has(env, "cdfix_vision") == "1.0"
    assert env.locked_versions()["cdfix-gamma"] == "0.1"  # the git node's requirement
    assert "cdfix-beta" in env.locked_versions()  # the registry node's requirement

    assert report["models"]["files"] == 2 and report["models"]["bytes"] == 4000
    assert len(model_index.list_models(workspace.models_db)) == 2  # indexed in place, not copied
    assert not any(env.root.rglob("*.safetensors"))
    assert "adopted" in (env.comfyui_dir / "extra_model_paths.yaml").read_text()

    assert sorted(report["workflows"]) == ["demo", "portrait"]
    assert (env.workflows_dir / "portrait.json").is_file() and (env.cec_dir / "workflows" / "portrait.json").is_file()
    assert (env.comfyui_dir / "user" / "default" / "comfy.settings.json").is_file()
    [v1] = history.versions(history.open_repo(env.cec_dir))
    assert (v1.version, v1.message) == ("v1", f"Adopted from {existing_install}")

    # a second adopt of the same install takes the nodes from the cache: no download again; in a
    # workspace without a models directory, the install's models/ becomes it
    downloads = registry.hits["/files/comfyui-adopt-pack/1.2.0.zip"]
    assert downloads == 1
    Workspace.open(workspace.root).set_setting("models-dir", None)
    workspace.models_db.unlink()  # a workspace whose index knows none of the install's models
    again = run_cli("adopt", existing_install, "--name", "again", "--torch-backend", "cpu")
    assert again.code == 0, again.err
    assert len(run_cli("models", "list", "--json").json) == 2  # the new models directory is indexed at once
    assert registry.hits["/files/comfyui-adopt-pack/1.2.0.zip"] == downloads
    assert "ComfyUI-Adopt-Pack (registry): exact" in again.out and "README.md" in again.out
    assert "cdfix-vision==1.0" in again.out and "2 files" in again.out
    assert Workspace.open(workspace.root).models_dir == existing_install / "models"
    assert tree_digest(existing_install.parent) == before


def test_failed_adopt_leaves_no_environment_and_no_setting_behind(workspace, existing_install, run_cli):
    from comfydock.workspace import Workspace

    (existing_install / "custom_nodes" / "my_node" / "requirements.txt").write_text("cdfix-not-on-any-index\n")
    Workspace.open(workspace.root).set_setting("models-dir", None)
    before = tree_digest(existing_install.parent)
    result = run_cli("adopt", existing_install, "--name", "broken", "--torch-backend", "cpu")
    assert result.code == 1 and "error:" in result.err and "Traceback" not in result.err
    assert not (workspace.environments_dir / "broken").exists()
    reopened = Workspace.open(workspace.root)
    assert reopened.models_dir is None and reopened.active_environment is None
    assert tree_digest(existing_install.parent) == before


def test_adopt_of_a_folder_that_is_not_comfyui_is_refused_and_creates_nothing(workspace, tmp_path, run_cli):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "main.py").write_text("print('hi')\n")
    result = run_cli("adopt", tmp_path / "stuff", "--name", "x")
    assert result.code == 1
    assert "is not a ComfyUI install" in result.err and "hint:" in result.err and "Traceback" not in result.err
    assert not (workspace.environments_dir / "x").exists()


def test_node_with_local_changes_or_no_remote_is_copied_as_development_node(tmp_path):
    repo_dir = build_node_repo(tmp_path / "src" / "Node", "n", {"v1": "# none\n"})
    clone = tmp_path / "custom_nodes" / "Node"
    git.Repo.clone_from(str(repo_dir), clone)
    assert classify_node(clone, "Node").kind == "git"
    (clone / "__init__.py").write_text("# my fix\n")
    changed = classify_node(clone, "Node")
    assert changed.kind == "development" and "local changes (__init__.py)" in changed.evidence
    assert classify_node(repo_dir, "Node").kind == "development"  # the origin itself has no remote
    (clone / "__init__.py").write_text("x")
    (tmp_path / "custom_nodes" / ".disabled" / "Other@1.0").mkdir(parents=True)
    found = {f.directory: f for f in find_nodes(tmp_path / "custom_nodes")}
    assert found["Other"].disabled and not found["Node"].disabled


def test_broken_node_git_is_reported_not_fatal(tmp_path):
    node = tmp_path / "custom_nodes" / "Broken"
    (node / ".git").mkdir(parents=True)
    (node / "__init__.py").write_text("")
    finding = classify_node(node, "Broken")
    assert finding.kind == "development" and finding.evidence == "a broken .git"


def test_inspect_reads_packages_without_running_the_old_python(tmp_path):
    comfy = tmp_path / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "main.py").write_text("")
    site = tmp_path / "venv" / "lib" / "python3.10" / "site-packages"
    dist = site / "foo_bar-2.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 2.3\n")
    (dist / "direct_url.json").write_text('{"url": "file:///src/foo", "dir_info": {"editable": true}}')
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /gone\nversion_info = 3.10.12\n")
    found = inspect_install(comfy).python  # its bin/python does not exist
    assert found.version == "3.10" and found.distributions == {"foo-bar": "2.3"}
    assert "editable" in found.not_on_index["foo-bar"] and "gone" in found.note


def test_comfyui_comes_from_the_install_itself_when_its_origin_is_unreachable_or_lacks_the_commit(
    workspace, comfyui_source, tmp_path
):
    from comfydock.adopt import _comfyui_source

    comfy = tmp_path / "ComfyUI"
    repo = git.Repo.clone_from(comfyui_source.as_uri(), comfy)
    warnings = []
    assert _comfyui_source(workspace, inspect_install(comfy), warnings.append)[0] == comfyui_source.as_uri()
    assert warnings == []
    (comfy / "mine.txt").write_text("x")
    _commit(repo, "my own commit, never pushed")
    source, how = _comfyui_source(workspace, inspect_install(comfy), warnings.append)
    assert source == comfy.as_uri() and "own git repository" in how and "lacks commit" in warnings[-1]
    repo.remotes.origin.set_url(str(tmp_path / "gone"))
    before = tree_digest(comfy)
    assert _comfyui_source(workspace, inspect_install(comfy), warnings.append)[0] == comfy.as_uri()
    assert "cannot be used" in warnings[-1]
    assert tree_digest(comfy) == before  # mirrored from the install through file://: read only


def test_portable_install_without_git_maps_to_the_matching_release(workspace, tmp_path):
    from comfydock.adopt import _release_tag, inspect_comfyui

    comfy = tmp_path / "ComfyUI_windows_portable" / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "main.py").write_text("")
    (comfy / "comfyui_version.py").write_text('__version__ = "0.2.0"\n')
    found = inspect_comfyui(comfy)
    assert (found["git"], found["version"]) == (False, "0.2.0")
    assert _release_tag(workspace, found["version"]) == "v0.2.0"
    with pytest.raises(Exception, match="no ComfyUI release 9.9.9"):
        _release_tag(workspace, "9.9.9")


def test_status_shows_drift_and_adopt_here_tracks_it(env, registry, node_repo, fixture_assets, run_cli):
    """ComfyUI-Manager dropped nodes into custom_nodes/ and pip-installed a package: status says
    so, and adopt --here turns it all into tracked nodes and requirements, files left in place."""
    from comfydock import uv_runner
    from comfydock.nodes.spec import tracked_nodes

    pack_zip = node_zip_bytes("adopt-pack", "# none\n", {"pyproject.toml": PACK_PYPROJECT})
    registry.add_node("comfyui-adopt-pack", {"1.2.0": pack_zip})
    with zipfile.ZipFile(io.BytesIO(pack_zip)) as zf:
        zf.extractall(env.custom_nodes_dir / "ComfyUI-Adopt-Pack")
    (env.custom_nodes_dir / "ComfyUI-Adopt-Pack" / ".tracking").write_text("__init__.py\n")
    clone = git.Repo.clone_from(str(node_repo), env.custom_nodes_dir / "ComfyUI-Git-Node")
    clone.git.checkout("v1.0")
    (env.custom_nodes_dir / "manual").mkdir()
    (env.custom_nodes_dir / "manual" / "__init__.py").write_text("# mine\n")
    subprocess.run(
        [uv_runner.uv_bin(), "pip", "install", "-q", "--python", str(env.python), "--no-index"]
        + ["--find-links", str(fixture_assets["wheels"]), "cdfix-vision==1.0"],
        check=True,
    )

    status = run_cli("status", "--json").json["drift"]
    assert {n["directory"]: n["kind"] for n in status["nodes"]} == {
        "ComfyUI-Adopt-Pack": "registry",
        "ComfyUI-Git-Node": "git",
        "manual": "development",
    }
    assert status["packages"]["added"] == [{"name": "cdfix-vision", "version": "1.0"}]
    assert status["packages"]["removed"] == [] and status["packages"]["other_version"] == []
    assert "Untracked node directory custom_nodes/manual" in run_cli("status").out

    result = run_cli("adopt", "--here", "--json")
    assert result.code == 0, result.err
    assert result.json["packages"]["added"] == ["cdfix-vision==1.0"]
    tracked = tracked_nodes(env.manifest())
    assert {k: v.source for k, v in tracked.items()} == {
        "comfyui-adopt-pack": "registry",
        "ComfyUI-Git-Node": "git",
        "manual": "development",
    }
    assert (env.custom_nodes_dir / "manual" / "__init__.py").read_text() == "# mine\n"
    assert env.locked_versions()["cdfix-vision"] == "1.0" and venv_has(env, "cdfix_vision") == "1.0"
    after = run_cli("status", "--json").json["drift"]
    assert after["nodes"] == [] and after["packages"]["added"] == []
    assert run_cli("adopt", "--here").out.startswith("No drift")


def test_adopt_here_and_a_path_together_is_a_usage_error(run_cli, tmp_path):
    assert run_cli("adopt", tmp_path, "--here").code == 2
    assert run_cli("adopt").code == 2


def test_build_names_the_untracked_packages_its_sync_removes_and_keeps_untracked_nodes(env, fixture_assets, run_cli):
    from comfydock import uv_runner

    subprocess.run(
        [uv_runner.uv_bin(), "pip", "install", "-q", "--python", str(env.python), "--no-index"]
        + ["--find-links", str(fixture_assets["wheels"]), "cdfix-vision==1.0"],
        check=True,
    )
    (env.custom_nodes_dir / "manual").mkdir()
    (env.custom_nodes_dir / "manual" / "__init__.py").write_text("# mine\n")
    env.venv_marker.unlink()  # the next build syncs the venv
    result = run_cli("build")
    assert result.code == 0, result.err
    assert "removes what it does not list: cdfix-vision 1.0" in result.err
    assert venv_has(env, "cdfix_vision") is None
    assert (env.custom_nodes_dir / "manual" / "__init__.py").read_text() == "# mine\n"


def test_adopt_into_an_existing_environment_name_is_refused_before_any_work(workspace, tmp_path, run_cli):
    comfy = tmp_path / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "main.py").write_text("")
    (workspace.environments_dir / "taken").mkdir(parents=True)
    (workspace.environments_dir / "taken" / "keep.txt").write_text("mine")
    result = run_cli("adopt", comfy, "--name", "taken")
    assert result.code == 1 and "already exists" in result.err
    assert [p.name for p in (workspace.environments_dir / "taken").iterdir()] == ["keep.txt"]


def test_adopt_here_tracks_a_second_clone_of_a_tracked_node_as_development(env, node_repo, run_cli):
    """Two directories holding one node would share a cache entry and install target: the
    second copy becomes a development node in place, nothing fails and nothing is lost."""
    from comfydock.nodes.spec import tracked_nodes

    assert run_cli("node", "add", f"{node_repo.as_uri()}@v1.0").code == 0
    copy = git.Repo.clone_from(str(node_repo), env.custom_nodes_dir / "Another")
    copy.git.checkout("v1.0")
    result = run_cli("adopt", "--here", "--json")
    assert result.code == 0, result.err
    (row,) = [n for n in result.json["nodes"] if n["directory"] == "Another"]
    assert row["kind"] == "development" and "second copy" in row["why"]
    tracked = tracked_nodes(env.manifest())
    assert tracked["Another"].source == "development" and tracked["ComfyUI-Git-Node"].source == "git"
    assert (env.custom_nodes_dir / "Another" / "__init__.py").exists()


def test_no_drift_after_create_for_platform_only_dependencies_and_setuptools(workspace, run_cli):
    env_dir = workspace.environments_dir / "main"
    assert run_cli("create", "main", "--torch-backend", "cpu").code == 0
    assert run_cli("py", "add", "cdfix-delta").code == 0
    from comfydock.environment import Environment

    env = Environment.open(workspace, "main")
    lock = env.uv_lock_path.read_text()
    assert "sys_platform == 'win32'" in lock and 'name = "cdfix-winonly"' in lock and 'name = "setuptools"' in lock
    assert (env_dir / ".venv").is_dir() and venv_has(env, "cdfix_winonly") is None
    drift = run_cli("status", "--json").json["drift"]["packages"]
    assert drift["checked"] and (drift["added"], drift["removed"], drift["other_version"]) == ([], [], [])
    assert "Venv differs" not in run_cli("status").out


def test_the_drift_hint_when_followed_removes_the_drift(env, fixture_assets, run_cli):
    from comfydock import uv_runner

    def pip(*args):
        subprocess.run([uv_runner.uv_bin(), "pip", *args, "-q", "--python", str(env.python)], check=True)

    pip("install", "--no-index", "--find-links", str(fixture_assets["wheels"]), "cdfix-vision==1.0")
    pip("install", "--no-index", "--find-links", str(fixture_assets["wheels"]), "cdfix-alpha==1.5")
    pip("uninstall", "cdfix-gamma")
    text = run_cli("status").out
    assert "Venv differs from uv.lock: +cdfix-vision 1.0, -cdfix-gamma 0.2, cdfix-alpha 1.5 (uv.lock: 2.0)" in text
    hint = next(line for line in text.splitlines() if "adopt --here" in line)
    assert "keeps the added packages as your requirements and puts uv.lock's versions back" in hint
    assert run_cli("adopt", "--here").code == 0  # the hinted command
    drift = run_cli("status", "--json").json["drift"]["packages"]
    assert (drift["added"], drift["removed"], drift["other_version"]) == ([], [], [])
    assert venv_has(env, "cdfix_alpha") == "2.0" and venv_has(env, "cdfix_gamma") == "0.2"


def test_adopt_here_puts_back_a_package_removed_behind_its_back(env, run_cli):
    from comfydock import uv_runner

    subprocess.run([uv_runner.uv_bin(), "pip", "uninstall", "-q", "--python", str(env.python), "cdfix-gamma"], check=True)
    assert "Run 'comfydock adopt --here': it puts uv.lock's versions back" in run_cli("status").out
    result = run_cli("adopt", "--here")
    assert result.code == 0 and "Venv synced to uv.lock again: cdfix-gamma 0.2" in result.out
    assert venv_has(env, "cdfix_gamma") == "0.2"
    assert "Venv differs" not in run_cli("status").out


# uv 0.13's lock of a manifest with two conflicting torch extras (cpu pins cdfix-alpha 1.0, cu
# pins 2.0 and adds cdfix-vision) and a dependency only Windows installs
_FORKED_LOCK = """version = 1
revision = 5
requires-python = "==3.11.*"
conflicts = [[
    { package = "comfydock-env-main", extra = "torch-cpu" },
    { package = "comfydock-env-main", extra = "torch-cu" },
]]

[[package]]
name = "cdfix-alpha"
version = "1.0"
source = { registry = "../wheels" }
wheels = [
    { path = "cdfix_alpha-1.0-py3-none-any.whl" },
]

[[package]]
name = "cdfix-alpha"
version = "2.0"
source = { registry = "../wheels" }
wheels = [
    { path = "cdfix_alpha-2.0-py3-none-any.whl" },
]

[[package]]
name = "cdfix-beta"
version = "1.0"
source = { registry = "../wheels" }
dependencies = [
    { name = "cdfix-alpha", version = "1.0", source = { registry = "../wheels" }, marker = "extra == 'extra-18-comfydock-env-main-torch-cpu'" },
]
wheels = [
    { path = "cdfix_beta-1.0-py3-none-any.whl" },
]

[[package]]
name = "cdfix-beta"
version = "2.0"
source = { registry = "../wheels" }
dependencies = [
    { name = "cdfix-alpha", version = "2.0", source = { registry = "../wheels" }, marker = "extra != 'extra-18-comfydock-env-main-torch-cpu' or extra == 'extra-18-comfydock-env-main-torch-cu'" },
]
wheels = [
    { path = "cdfix_beta-2.0-py3-none-any.whl" },
]

[[package]]
name = "cdfix-delta"
version = "1.0"
source = { registry = "../wheels" }
dependencies = [
    { name = "cdfix-winonly", marker = "sys_platform == 'win32'" },
]
wheels = [
    { path = "cdfix_delta-1.0-py3-none-any.whl" },
]

[[package]]
name = "cdfix-vision"
version = "1.0"
source = { registry = "../wheels" }
wheels = [
    { path = "cdfix_vision-1.0-py3-none-any.whl" },
]

[[package]]
name = "cdfix-winonly"
version = "1.0"
source = { registry = "../wheels" }
wheels = [
    { path = "cdfix_winonly-1.0-py3-none-any.whl" },
]

[[package]]
name = "comfydock-env-main"
version = "0.0.0"
source = { virtual = "." }
default-groups = "all"

[package.optional-dependencies]
torch-cpu = [
    { name = "cdfix-alpha", version = "1.0", source = { registry = "../wheels" } },
]
torch-cu = [
    { name = "cdfix-alpha", version = "2.0", source = { registry = "../wheels" } },
    { name = "cdfix-vision" },
]

[package.dev-dependencies]
comfyui-core = [
    { name = "cdfix-alpha", version = "1.0", source = { registry = "../wheels" }, marker = "extra == 'extra-18-comfydock-env-main-torch-cpu'" },
    { name = "cdfix-alpha", version = "2.0", source = { registry = "../wheels" }, marker = "extra != 'extra-18-comfydock-env-main-torch-cpu' or extra == 'extra-18-comfydock-env-main-torch-cu'" },
    { name = "cdfix-delta" },
]
node-x = [
    { name = "cdfix-beta", version = "1.0", source = { registry = "../wheels" }, marker = "extra == 'extra-18-comfydock-env-main-torch-cpu'" },
    { name = "cdfix-beta", version = "2.0", source = { registry = "../wheels" }, marker = "extra != 'extra-18-comfydock-env-main-torch-cpu' or extra == 'extra-18-comfydock-env-main-torch-cu'" },
]

[package.metadata]
requires-dist = [
    { name = "cdfix-alpha", marker = "extra == 'torch-cpu'", specifier = "==1.0" },
    { name = "cdfix-alpha", marker = "extra == 'torch-cu'", specifier = "==2.0" },
    { name = "cdfix-vision", marker = "extra == 'torch-cu'" },
]
provides-extras = ["torch-cpu", "torch-cu"]

[package.metadata.requires-dev]
comfyui-core = [
    { name = "cdfix-alpha" },
    { name = "cdfix-delta" },
]
node-x = [{ name = "cdfix-beta" }]
"""


def test_what_a_sync_installs_follows_dependency_markers_and_the_synced_extra():
    from pathlib import Path

    from comfydock.pydeps import synced_versions
    from comfydock.uv_runner import marker_environment

    linux = marker_environment(Path("/nonexistent"), "3.11.7") | {"sys_platform": "linux"}
    cpu = {"cdfix-alpha": "1.0", "cdfix-beta": "1.0", "cdfix-delta": "1.0"}
    assert synced_versions(_FORKED_LOCK, linux, "torch-cpu") == cpu
    assert synced_versions(_FORKED_LOCK, linux, "torch-cu") == {
        "cdfix-alpha": "2.0",
        "cdfix-beta": "2.0",
        "cdfix-delta": "1.0",
        "cdfix-vision": "1.0",
    }
    assert synced_versions(_FORKED_LOCK, linux | {"sys_platform": "win32"}, "torch-cpu") == cpu | {"cdfix-winonly": "1.0"}
