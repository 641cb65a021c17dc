"""`comfydock py` and `comfydock constraint`: real uv, real locks, nothing changed on refusal."""

import sys
import tomllib
from pathlib import Path

import pytest
import tomlkit
from conftest import interrupt_when_uv_asks, venv_has
from packaging.requirements import Requirement

pytestmark = pytest.mark.slow


def statuses(result):
    return {t["task"]: t["status"] for t in result.json["build"]["tasks"]}


def test_add_then_remove_round_trip(env, run_cli):
    result = run_cli("py", "add", "cdfix-beta<2", "--json")
    assert result.code == 0, result.err
    assert statuses(result) == {"lock_deps": "ran", "sync_venv": "ran"}
    assert venv_has(env, "cdfix_beta") == "1.0"
    rows = {r["name"]: r for r in run_cli("py", "list", "--json").json}
    assert rows["cdfix-beta"] == {"requirement": "cdfix-beta<2", "name": "cdfix-beta", "group": "user", "locked": "1.0"}
    assert rows["cdfix-alpha"]["group"] == "comfyui-core" and rows["cdfix-alpha"]["locked"] == "2.0"
    assert run_cli("py", "remove", "cdfix-beta").code == 0
    assert venv_has(env, "cdfix_beta") is None
    assert "cdfix-beta" not in {r["name"] for r in run_cli("py", "list", "--json").json}
    assert 'name = "cdfix-beta"' not in env.uv_lock_path.read_text()


def test_second_identical_add_does_no_work(env, run_cli):
    assert run_cli("py", "add", "cdfix-beta").code == 0
    mtime = env.pyproject_path.stat().st_mtime_ns
    result = run_cli("py", "add", "cdfix-beta", "--json")
    assert result.json["changed"] is False
    assert statuses(result) == {"lock_deps": "up-to-date", "sync_venv": "up-to-date"}
    assert env.pyproject_path.stat().st_mtime_ns == mtime


def test_add_replaces_the_spec_of_an_existing_package(env, run_cli):
    run_cli("py", "add", "cdfix-beta<2")
    run_cli("py", "add", "cdfix-beta>=2")
    deps = list(tomlkit.parse(env.pyproject_path.read_text())["project"]["dependencies"])
    assert [d for d in deps if d.startswith("cdfix-beta")] == ["cdfix-beta>=2"]
    assert venv_has(env, "cdfix_beta") == "2.0"


def test_add_to_a_named_group(env, run_cli):
    assert run_cli("py", "add", "cdfix-beta", "--group", "Extras").code == 0
    doc = tomlkit.parse(env.pyproject_path.read_text())
    assert list(doc["dependency-groups"]["extras"]) == ["cdfix-beta"]
    assert venv_has(env, "cdfix_beta") == "2.0"
    rows = {r["name"]: r for r in run_cli("py", "list", "--json").json}
    assert rows["cdfix-beta"]["group"] == "extras"
    assert run_cli("py", "remove", "cdfix-beta", "--group", "extras").code == 0
    assert "extras" not in tomlkit.parse(env.pyproject_path.read_text()).get("dependency-groups", {})


def test_the_groups_comfydock_manages_are_refused_for_py_add(env, run_cli):
    before = env.pyproject_path.read_bytes()
    for group in ("comfyui-core", "ComfyUI_Core", "node-my-node"):
        result = run_cli("py", "add", "cdfix-beta", "--group", group)
        assert result.code == 1 and "is reserved" in result.err, result.err
    assert env.pyproject_path.read_bytes() == before


def test_conflict_with_core_is_refused_and_changes_nothing(env, run_cli):
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    result = run_cli("py", "add", "cdfix-alpha<1")
    assert result.code == 1
    assert "No solution found" in result.err  # uv's explanation
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before
    assert venv_has(env, "cdfix_alpha") == "2.0"
    assert run_cli("build", "--dry-run", "sync_venv", "--json").json == [
        {"task": "lock_deps", "status": "up-to-date"},
        {"task": "sync_venv", "status": "up-to-date"},
    ]


@pytest.mark.parametrize("bad", ["numpy>>2", "../evil", "pkg @ https://example.invalid/pkg.whl"])
def test_invalid_requirement_is_refused_before_anything_changes(env, run_cli, bad):
    before = env.pyproject_path.read_bytes()
    result = run_cli("py", "add", bad)
    assert result.code == 2
    assert repr(bad) in result.err
    assert env.pyproject_path.read_bytes() == before


def test_remove_of_something_not_required_is_an_error(env, run_cli):
    result = run_cli("py", "remove", "requests")
    assert result.code == 1 and "requests" in result.err  # a well-formed request, refused


def test_constraint_forces_an_older_version_a_group_asks_for(env, run_cli):
    assert run_cli("py", "add", "cdfix-beta", "--group", "fixture").code == 0
    assert venv_has(env, "cdfix_beta") == "2.0" and venv_has(env, "cdfix_alpha") == "2.0"
    assert run_cli("constraint", "add", "cdfix-alpha<2").code == 0
    assert venv_has(env, "cdfix_alpha") == "1.5"
    assert venv_has(env, "cdfix_beta") == "1.0"  # beta 2.0 needs alpha>=2: uv picks 1.0
    assert run_cli("constraint", "list", "--json").json == [{"constraint": "cdfix-alpha<2", "locked": "1.5"}]
    doc = tomlkit.parse(env.pyproject_path.read_text())
    assert list(doc["tool"]["uv"]["constraint-dependencies"]) == ["cdfix-alpha<2"]
    assert "constraints = [" in env.uv_lock_path.read_text()
    assert run_cli("constraint", "remove", "cdfix-alpha").code == 0
    assert run_cli("constraint", "list", "--json").json == []
    # like 'uv remove', uv keeps the locked versions that still fit; the bound itself is gone
    assert "constraints = [" not in env.uv_lock_path.read_text()


def test_impossible_constraint_is_refused_and_changes_nothing(env, run_cli):
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    result = run_cli("constraint", "add", "cdfix-alpha<0.5")
    assert result.code == 1 and "No solution found" in result.err
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before


def test_constraint_without_a_bound_is_refused(env, run_cli):
    result = run_cli("constraint", "add", "cdfix-alpha")
    assert result.code == 2 and "no version bound" in result.err


def test_user_comments_and_formatting_survive_edits(env, run_cli):
    text = env.pyproject_path.read_text()
    text = text.replace("[project]", "# my own note about this env\n[project]")
    text = text.replace('"cdfix-gamma",', '"cdfix-gamma",  # keep gamma: my workflow needs it')
    env.pyproject_path.write_text(text)
    assert run_cli("py", "add", "cdfix-beta").code == 0
    assert run_cli("constraint", "add", "cdfix-alpha<2").code == 0
    assert run_cli("py", "remove", "cdfix-beta").code == 0
    after = env.pyproject_path.read_text()
    assert "# my own note about this env" in after
    assert "# keep gamma: my workflow needs it" in after


def test_status_shows_uncommitted_dependency_changes(env, run_cli):
    run_cli("py", "add", "cdfix-beta")
    run_cli("constraint", "add", "cdfix-alpha<2")
    changes = run_cli("status", "--json").json["dependency_changes"]
    assert changes == {"added": ["constraint:cdfix-alpha<2", "requirement:cdfix-beta"], "removed": []}
    assert "+requirement:cdfix-beta" in run_cli("status").out


# --- ComfyUI's requirements in their own group (issue 8 item 4) ---------------------------------


def manifest(env):
    return tomlkit.parse(env.pyproject_path.read_text())


def test_a_user_pin_never_replaces_comfyuis_requirement(env, run_cli):
    assert run_cli("py", "add", "cdfix-alpha<1.5").code == 0
    doc = manifest(env)
    assert list(doc["dependency-groups"]["comfyui-core"]) == ["cdfix-alpha>=1.0", "cdfix-gamma"]
    assert list(doc["project"]["dependencies"]) == ["cdfix-alpha<1.5"]
    assert venv_has(env, "cdfix_alpha") == "1.0"  # both hold: >=1.0 (ComfyUI) and <1.5 (the user)
    rows = [(r["group"], r["requirement"], r["locked"]) for r in run_cli("py", "list", "--json").json]
    assert ("comfyui-core", "cdfix-alpha>=1.0", "1.0") in rows and ("user", "cdfix-alpha<1.5", "1.0") in rows


def test_a_pin_contradicting_comfyui_is_refused_with_uvs_reason(env, run_cli):
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    result = run_cli("py", "add", "cdfix-alpha<1")  # 0.9 exists: only ComfyUI's >=1.0 forbids it
    assert result.code == 1
    assert "No solution found" in result.err and "cdfix-alpha" in result.err
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before
    assert venv_has(env, "cdfix_alpha") == "2.0"


def make_legacy(env, user_lines, user_names):
    """Rewrite the manifest the way the previous version wrote it: ComfyUI's and the user's lines
    together in [project].dependencies, the user's names in user_added, requires-python >=."""
    doc = manifest(env)
    core = [str(x) for x in doc["dependency-groups"]["comfyui-core"]]
    del doc["dependency-groups"]["comfyui-core"]
    kept = [c for c in core if Requirement(c).name not in {Requirement(u).name for u in user_lines}]
    deps = tomlkit.array()
    deps.extend(kept + user_lines)
    doc["project"]["dependencies"] = deps.multiline(True)
    doc["project"]["requires-python"] = ">=3.11"
    python = tomlkit.table()
    python["user_added"] = user_names
    doc["tool"]["comfydock"]["python"] = python
    env.pyproject_path.write_text(tomlkit.dumps(doc))


def test_an_environment_of_the_previous_layout_keeps_working_and_migrates_on_the_next_change(env, run_cli):
    # the old bug: the user's pin on cdfix-alpha had replaced ComfyUI's 'cdfix-alpha>=1.0'
    make_legacy(env, ["cdfix-alpha<1.5"], ["cdfix-alpha"])
    assert run_cli("build").code == 0
    rows = {(r["group"], r["requirement"]) for r in run_cli("py", "list", "--json").json}
    assert rows == {("comfyui-core", "cdfix-gamma"), ("user", "cdfix-alpha<1.5")}
    assert run_cli("status", "--json").json["requirement_groups"] == {"comfyui-core": 1, "user": 1}
    assert run_cli("py", "add", "cdfix-beta<2").code == 0
    doc = manifest(env)
    # ComfyUI's requirement is back (from its requirements.txt) in its own group; the user's stay
    assert sorted(doc["dependency-groups"]["comfyui-core"]) == ["cdfix-alpha>=1.0", "cdfix-gamma"]
    assert list(doc["project"]["dependencies"]) == ["cdfix-alpha<1.5", "cdfix-beta<2"]
    assert "python" not in doc["tool"]["comfydock"]
    assert doc["project"]["requires-python"] == "==3.11.*"
    assert venv_has(env, "cdfix_alpha") == "1.0" and venv_has(env, "cdfix_beta") == "1.0"


# --- py remove by spec; what a removed pin held back moves up (issue 8 item 5) --------------------


def test_remove_by_name_or_by_the_spec_it_was_added_with(env, run_cli):
    assert run_cli("py", "add", "cdfix-beta>=1.0").code == 0
    other = run_cli("py", "remove", "cdfix-beta<2")
    assert other.code == 1 and "'cdfix-beta>=1.0'" in other.err and "py remove cdfix-beta" in other.err
    assert run_cli("py", "remove", "cdfix-beta >= 1").code == 0  # the same spec, spelled differently
    assert venv_has(env, "cdfix_beta") is None
    assert run_cli("py", "add", "cdfix-beta>=1.0").code == 0
    assert run_cli("py", "remove", "CDFix_Beta").code == 0
    core = run_cli("py", "remove", "cdfix-gamma")
    assert core.code == 1 and "required by comfyui-core" in core.err


def test_removing_a_pin_lets_the_package_move_up_to_what_remains_allowed(env, run_cli):
    assert run_cli("py", "add", "cdfix-alpha==1.5").code == 0
    assert venv_has(env, "cdfix_alpha") == "1.5"
    result = run_cli("py", "remove", "cdfix-alpha==1.5")
    assert result.code == 0 and "cdfix-alpha 2.0" in result.err
    assert venv_has(env, "cdfix_alpha") == "2.0"  # ComfyUI's >=1.0 alone now decides
    assert run_cli("constraint", "add", "cdfix-alpha<2").code == 0
    assert venv_has(env, "cdfix_alpha") == "1.5"
    assert run_cli("constraint", "remove", "cdfix-alpha<2").code == 0
    assert venv_has(env, "cdfix_alpha") == "2.0"
    plan = {row["task"]: row["status"] for row in run_cli("build", "--dry-run", "--json").json}
    assert plan["lock_deps"] == plan["sync_venv"] == "up-to-date"  # the upgrade request did not outlive its run


# --- py list: the versions this environment installs (issue 8 item 6) ---------------------------


def test_py_list_shows_the_version_locked_for_this_platform_not_another_fork(env, run_cli):
    here = sys.platform
    text = env.pyproject_path.read_text().replace(
        '"cdfix-gamma",',
        f'"cdfix-gamma",\n    "cdfix-alpha<2; sys_platform == \'{here}\'",\n    "cdfix-alpha>=2; sys_platform != \'{here}\'",',
    )
    env.pyproject_path.write_text(text)
    assert run_cli("build").code == 0
    assert {p["version"] for p in tomllib.loads(env.uv_lock_path.read_text())["package"] if p["name"] == "cdfix-alpha"} == {
        "1.5",
        "2.0",
    }
    assert venv_has(env, "cdfix_alpha") == "1.5"
    locked = {r["requirement"]: r["locked"] for r in run_cli("py", "list", "--json").json}
    assert locked["cdfix-alpha>=1.0"] == "1.5"


FORKED_LOCK = """
version = 1
requires-python = ">=3.11"
resolution-markers = ["python_full_version >= '3.12'", "python_full_version < '3.12'"]

[[package]]
name = "numpy"
version = "2.4.6"
resolution-markers = ["python_full_version < '3.12'"]

[[package]]
name = "numpy"
version = "2.5.5"
resolution-markers = ["python_full_version >= '3.12'"]

[[package]]
name = "Pillow"
version = "11.0"
"""


def test_locked_versions_pick_the_fork_of_the_environments_python():
    from comfydock.pydeps import locked_versions
    from comfydock.uv_runner import marker_environment

    py311 = marker_environment(Path("/nonexistent"), "3.11")
    py312 = marker_environment(Path("/nonexistent"), "3.12.1")
    assert locked_versions(FORKED_LOCK, py311) == {"numpy": "2.4.6", "pillow": "11.0"}
    assert locked_versions(FORKED_LOCK, py312) == {"numpy": "2.5.5", "pillow": "11.0"}
    assert locked_versions("not [ toml", py311) == {}


# --- two distributions, one module (issue 8 item 11) -------------------------------------------


def test_two_distributions_installing_one_module_are_warned_with_the_fix(env, run_cli):
    result = run_cli("py", "add", "cdfix-vision", "cdfix-vision-headless")
    assert result.code == 0
    warning = "cdfix-vision and cdfix-vision-headless both install the module 'cdfix_vision'"
    fix = "override-dependencies = [\"cdfix-vision-headless; sys_platform == 'never'\"]"
    assert warning in result.err and fix in result.err
    assert run_cli("status", "--json").json["module_clashes"] == [
        {"module": "cdfix_vision", "distributions": ["cdfix-vision", "cdfix-vision-headless"]}
    ]
    assert warning in run_cli("status").err and warning in run_cli("py", "list").err
    # the fix the warning gives works
    text = env.pyproject_path.read_text().replace("[tool.uv]\n", f"[tool.uv]\n{fix}\n", 1)
    env.pyproject_path.write_text(text)
    assert run_cli("build").code == 0
    assert run_cli("status", "--json").json["module_clashes"] == []
    assert "cdfix_vision" not in run_cli("py", "list").err


def test_provided_modules_ignore_namespace_packages_and_stray_test_folders():
    from comfydock.uv_runner import provided_modules

    assert provided_modules(["cv2/__init__.py", "cv2/data/x.xml", "opencv_python-4.dist-info/RECORD"]) == {"cv2"}
    assert provided_modules(["google/protobuf/__init__.py", "google/protobuf/x.py"]) == {"google.protobuf"}
    assert provided_modules(["google/auth/__init__.py"]) == {"google.auth"}  # shared 'google': no clash
    assert provided_modules(["six.py", "_cffi.cpython-311-x86_64-linux-gnu.so", "x.pth"]) == {"six", "_cffi"}
    assert provided_modules(["tests/__init__.py", "../../bin/tool", "pkg/__pycache__/a.pyc"]) == set()


def test_record_files_are_read_as_csv_where_a_path_needs_quoting(tmp_path):
    from comfydock.uv_runner import _record_paths

    (tmp_path / "RECORD").write_text('a/__init__.py,sha256=x,1\n"b,c/__init__.py",sha256=y,2\nd/e/f/g.py,,\n')
    assert _record_paths(tmp_path) == ["a/__init__.py", "b,c/__init__.py"]  # deeper files are never needed


# --- Ctrl-C is rolled back (issue 10 item 4) ----------------------------------------------------


@pytest.mark.parametrize("command", ["py add", "constraint add"])
def test_ctrl_c_while_the_venv_syncs_puts_everything_back(env, command):
    """uv.lock has changed by then: it goes back, and the venv is synced to it again."""
    from comfydock import pydeps
    from comfydock.manifest_change import change_manifest

    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    if command == "py add":
        mutate = lambda doc: pydeps.add_requirements(doc, ["cdfix-beta<2"])  # noqa: E731
    else:
        mutate = lambda doc: pydeps.add_constraints(doc, ["cdfix-alpha<2"])  # noqa: E731

    def listener(kind, task):
        if kind == "start" and task == "sync_venv":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        change_manifest(env, mutate, listener=listener)
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before
    assert venv_has(env, "cdfix_beta") is None and venv_has(env, "cdfix_alpha") == "2.0"
    assert env.venv_in_sync()
    # and the same change then simply works
    assert change_manifest(env, mutate).changed


@pytest.mark.parametrize("command", [["py", "add", "cdfix-beta<2"], ["constraint", "add", "cdfix-alpha<2"]])
def test_ctrl_c_of_the_cli_while_uv_locks_restores_everything(env, run_cli, stalling_index, command, tmp_path):

    url, asked = stalling_index
    assert run_cli("config", "python-index", url).code == 0
    assert run_cli("config", "no-index", "false").code == 0
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    code, err = interrupt_when_uv_asks(asked, command, tmp_path)
    assert code == 130, err
    assert "Traceback" not in err
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before
    assert venv_has(env, "cdfix_beta") is None and venv_has(env, "cdfix_alpha") == "2.0"
    assert run_cli("status", "--json").json["venv_in_sync"] is True


def test_plain_doit_takes_the_upgrade_request_as_a_task_parameter(env, run_cli):
    import os
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    assert run_cli("py", "add", "cdfix-gamma==0.1", "--group", "extras").code == 0
    env.pyproject_path.write_text(env.pyproject_path.read_text().replace('"cdfix-gamma==0.1"', '"cdfix-gamma"'))
    environ = dict(os.environ, COMFYDOCK_ENV="main")

    def doit(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "doit", "-f", str(repo / "dodo.py"), *args],
            capture_output=True,
            text=True,
            env=environ,
            cwd=repo,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    doit("lock_deps", "sync_venv")
    assert venv_has(env, "cdfix_gamma") == "0.1"  # uv keeps a locked version that still fits
    doit("lock_deps", "--upgrade-package", "cdfix-gamma", "sync_venv")
    assert venv_has(env, "cdfix_gamma") == "0.2"


def test_node_add_warns_when_its_package_shares_a_module_with_an_installed_one(env, registry, run_cli):
    from comfydock.demo.fixtures import node_zip_bytes

    registry.add_node("comfyui-headless-user", {"1.0.0": node_zip_bytes("headless-user", "cdfix-vision-headless\n")})
    assert run_cli("py", "add", "cdfix-vision").code == 0
    result = run_cli("node", "add", "comfyui-headless-user")
    assert result.code == 0, result.err
    assert "cdfix-vision and cdfix-vision-headless both install the module 'cdfix_vision'" in result.err


LEGACY = """\
[project]
name = "comfydock-env-old"
version = "0.0.0"
requires-python = ">=3.11"
dependencies = ["torch", "numpy>=1.25"]  # ComfyUI's, from before the comfyui-core group

[dependency-groups]
node-foo = ["einops"]

[tool.comfydock.environment]
python_version = "3.12"
"""


def test_migrating_a_manifest_without_user_additions_moves_every_line_to_comfyui_core():
    from comfydock.pydeps import dependency_snapshot, is_legacy_layout, migrate_layout

    doc = tomlkit.parse(LEGACY)
    before = dependency_snapshot(doc)
    assert is_legacy_layout(doc) and migrate_layout(doc, ["torch", "numpy>=1.25"])
    assert list(doc["dependency-groups"]) == ["comfyui-core", "node-foo"]  # ComfyUI's group first
    assert list(doc["dependency-groups"]["comfyui-core"]) == ["torch", "numpy>=1.25"]
    assert list(doc["project"]["dependencies"]) == []
    assert doc["project"]["requires-python"] == "==3.12.*"
    assert dependency_snapshot(doc) == before  # status reports no change for the move itself
    assert not migrate_layout(doc)  # once


def test_wheels_sharing_one_identical_empty_init_beside_their_own_subpackages_do_not_clash(tmp_path):
    """PyPI's torch brings nvidia-cublas-cu12, nvidia-cudnn-cu12, ... which all ship the same empty
    nvidia/__init__.py beside their own nvidia/<lib>/: dropping one of them (the clash fix) would
    break torch. Two wheels shipping different cv2/ files do clash."""
    from comfydock.uv_runner import module_clashes

    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    empty = "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0"

    def dist(name, files):
        info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "RECORD").write_text("".join(f"{path},{digest}\n" for path, digest in files.items()))

    dist("nvidia-cublas-cu12", {"nvidia/__init__.py": empty, "nvidia/cublas/__init__.py": empty, "nvidia/cublas/lib/x.so": "sha256=a,1"})
    dist("nvidia-cudnn-cu12", {"nvidia/__init__.py": empty, "nvidia/cudnn/__init__.py": empty, "nvidia/cudnn/lib/y.so": "sha256=b,1"})
    assert module_clashes(tmp_path / "venv") == []
    dist("opencv-python", {"cv2/__init__.py": "sha256=c,5", "cv2/cv2.abi3.so": "sha256=d,9"})
    dist("opencv-python-headless", {"cv2/__init__.py": "sha256=c,5", "cv2/cv2.abi3.so": "sha256=e,9"})
    assert module_clashes(tmp_path / "venv") == [
        {"module": "cv2", "distributions": ["opencv-python", "opencv-python-headless"]}
    ]
