"""The registry verbs: node search, node info, node update --all, py add -r."""

import pytest
import tomlkit
from conftest import venv_has

HOSTILE = "pack \x1b[2J\x1b]0;pwned\x07 \u202etxt.exe"


def _no_raw_controls(text: str) -> bool:
    return not any(c in text for c in ("\x1b", "\x07", "\u202e"))


def _one_error(result) -> bool:
    lines = [line for line in result.err.splitlines() if line.strip()]
    return result.code != 0 and [line.split(":")[0] for line in lines] == ["error", "hint"]


# --- node search ----------------------------------------------------------------------------------


def test_search_lists_matching_nodes_with_the_line_that_adds_them(registry, run_cli):
    registry.nodes["comfyui-fixture-pack"]["info"].update(downloads=12345, description="Fixture nodes for tests")
    result = run_cli("node", "search", "fixture")
    assert result.code == 0, result.err
    row = next(line for line in result.out.splitlines() if line.startswith("comfyui-fixture-pack"))
    for cell in ("1.1.0", "12,345", "Fixture nodes for tests", "comfydock node add comfyui-fixture-pack"):
        assert cell in row
    rows = run_cli("node", "search", "fixture", "--json").json
    assert [r["id"] for r in rows] == ["comfyui-fixture-pack"]
    assert rows[0]["latest_version"] == "1.1.0" and rows[0]["downloads"] == 12345


def test_search_limit_and_no_match(registry, run_cli):
    assert len(run_cli("node", "search", "comfyui", "--limit", "1", "--json").json) == 1
    assert len(run_cli("node", "search", "comfyui", "--json").json) == 2
    result = run_cli("node", "search", "zzzzzz")
    assert result.code == 0 and "No registry node matches" in result.err and result.out == ""
    assert run_cli("node", "search", "x", "--limit", "0").code == 2


def test_search_answers_come_from_the_cache_until_refresh(registry, run_cli):
    for _ in range(2):
        assert run_cli("node", "search", "fixture").code == 0
    assert registry.hits["/nodes/search"] == 1
    assert run_cli("node", "search", "fixture", "--refresh").code == 0
    assert registry.hits["/nodes/search"] == 2


def test_registry_down_is_one_line_naming_the_setting(workspace_path, run_cli):
    assert run_cli("config", "registry-url", "http://127.0.0.1:9").code == 0
    for argv in (("node", "search", "impact"), ("node", "info", "comfyui-impact-pack")):
        result = run_cli(*argv)
        assert _one_error(result), result.err
        assert "cannot reach the Comfy Registry" in result.err and "registry-url" in result.err


@pytest.mark.parametrize("argv", [("node", "search", "fixture"), ("node", "info", "comfyui-fixture-pack")])
def test_a_corrupt_registry_answer_is_one_line(registry, run_cli, argv):
    registry.mode = "not-json"
    result = run_cli(*argv)
    assert _one_error(result) and "not JSON" in result.err


def test_a_search_answer_of_the_wrong_shape_is_refused(registry, run_cli):
    registry.answers["/nodes/search"] = {"nodes": "everything"}
    result = run_cli("node", "search", "fixture")
    assert _one_error(result) and "without a list of nodes" in result.err


def test_hostile_strings_from_the_registry_are_shown_printable(registry, run_cli):
    from comfydock.demo.fixtures import node_zip_bytes

    registry.add_node("comfyui-hostile", {"1.0": node_zip_bytes("hostile", "")}, description=HOSTILE, name=HOSTILE, license=HOSTILE)
    evil = {**registry.node_obj("comfyui-hostile"), "id": "evil\x1b[31m; rm -rf ~"}
    registry.answers["/nodes/search"] = {"nodes": [registry.node_obj("comfyui-hostile"), evil], "total": 2}
    result = run_cli("node", "search", "hostile")
    assert result.code == 0, result.err
    assert _no_raw_controls(result.out) and "\\x1b[2J" in result.out and "\\u202e" in result.out
    assert "(not a valid id)" in result.out and "node add evil" not in result.out
    info = run_cli("node", "info", "comfyui-hostile")
    assert info.code == 0, info.err
    assert _no_raw_controls(info.out) and info.out.count("\\x1b]0;pwned\\x07") == 3  # name, description, license


# --- node info -----------------------------------------------------------------------------------


def test_info_shows_versions_with_dates_deprecation_and_node_types(registry, run_cli):
    node = registry.nodes["comfyui-fixture-pack"]
    node["deprecated"].add("1.0.0")
    node["node_types"] = ["FixtureLoader", "FixtureSampler"]
    node["info"].update(description="Fixture nodes", license="MIT")
    result = run_cli("node", "info", "comfyui-fixture-pack")
    assert result.code == 0, result.err
    out = result.out
    for text in ("Fixture nodes", "https://github.com/fixture/ComfyUI-Fixture-Pack", "MIT", "FixtureLoader, FixtureSampler"):
        assert text in out
    assert "no environment to look in" in out
    lines = out.splitlines()
    assert any("1.1.0" in line and "2025-01-02" in line and "deprecated" not in line for line in lines)
    assert any("1.0.0" in line and "2025-01-01" in line and "deprecated" in line for line in lines)
    info = run_cli("node", "info", "comfyui-fixture-pack", "--json").json
    assert info["latest_version"] == "1.1.0" and info["installed"] is None
    assert [(v["version"], v["deprecated"]) for v in info["versions"]] == [("1.1.0", False), ("1.0.0", True)]


def test_info_reads_every_page_of_node_types_and_says_when_none_are_listed(registry, run_cli):
    names = [f"FixtureNode{i:03d}" for i in range(250)]
    registry.nodes["comfyui-fixture-pack"]["node_types"] = names
    assert run_cli("node", "info", "comfyui-fixture-pack", "--json").json["node_types"] == names
    assert registry.hits["/nodes/comfyui-fixture-pack/versions/1.1.0/comfy-nodes"] == 3
    plain = run_cli("node", "info", "comfyui-plain")
    assert plain.code == 0 and "not listed by the registry" in plain.out


def test_info_of_an_unknown_node_suggests_a_search(registry, run_cli):
    result = run_cli("node", "info", "comfyui-fixture-pak")
    assert _one_error(result) and "did you mean: comfyui-fixture-pack" in result.err
    result = run_cli("node", "info", "zzzz")
    assert _one_error(result) and "comfydock node search" in result.err
    assert run_cli("node", "info", "../etc").code == 2


# --- py add -r (bad input: refused before any environment is touched) --------------------------------


def test_py_add_r_of_a_missing_file_names_it(workspace_path, run_cli, tmp_path):
    result = run_cli("py", "add", "-r", tmp_path / "nope.txt")
    assert result.code == 2 and "no requirements file" in result.err and "nope.txt" in result.err


@pytest.mark.parametrize(
    "line,says",
    [
        ("https://example.org/pkg-1.0-py3-none-any.whl", "is a URL or a path"),
        ("git+https://example.org/pkg.git", "is a URL or a path"),
        ("pkg @ https://example.org/pkg-1.0.tar.gz", "points at a URL"),
        ("-e ./src/pkg", "editable"),
        ("--extra-index-url https://example.org/simple", "python-index"),
        ("pkg==1.0 --global-option=x", "does not know"),
        ("not a requirement !", "not a valid requirement"),
    ],
)
def test_py_add_r_refuses_what_a_lock_cannot_hold_naming_the_line(workspace_path, run_cli, tmp_path, line, says):
    (tmp_path / "requirements.txt").write_text("cdfix-gamma\n-r nested.txt\n")
    (tmp_path / "nested.txt").write_text(f"# nested\n{line}\n")
    result = run_cli("py", "add", "-r", tmp_path / "requirements.txt")
    assert result.code == 2 and says in result.err and "nested.txt" in result.err, result.err
    assert _one_error(result)


def test_requirements_file_reading_follows_includes_constraints_and_continuations(tmp_path):
    from comfydock.requirements_txt import read_requirements_file

    (tmp_path / "sub").mkdir()
    (tmp_path / "requirements.txt").write_text(
        "# top\ncdfix-beta<2 \\\n    --hash=sha256:00ff  # pinned\n-r sub/more.txt\n--constraint sub/cons.txt\n"
        "cdfix-vision ; python_version >= '3'\n--prefer-binary\n"
    )
    (tmp_path / "sub" / "more.txt").write_text("cdfix-gamma<0.2\n-r ../requirements.txt\n")  # a loop: read once
    (tmp_path / "sub" / "cons.txt").write_text("cdfix-alpha<2\n")
    read = read_requirements_file(tmp_path / "requirements.txt")
    assert read.requirements == ["cdfix-beta<2", "cdfix-gamma<0.2", 'cdfix-vision; python_version >= "3"']
    assert read.constraints == ["cdfix-alpha<2"]
    assert len(read.notes) == 2 and "--hash" in read.notes[0] and "--prefer-binary" in read.notes[1]


# --- with an environment -------------------------------------------------------------------------------


def _manifest(env):
    return tomlkit.parse(env.pyproject_path.read_text())


@pytest.mark.slow
def test_py_add_r_adds_a_files_requirements_and_constraints_in_one_lock(env, run_cli, tmp_path):
    (tmp_path / "requirements.txt").write_text("cdfix-beta<2 --hash=sha256:00ff\n-r extra.txt\n-c cons.txt\n")
    (tmp_path / "extra.txt").write_text("cdfix-vision\n")
    (tmp_path / "cons.txt").write_text("cdfix-alpha<2\n")
    result = run_cli("py", "add", "-r", tmp_path / "requirements.txt", "--group", "mine")
    assert result.code == 0, result.err
    assert "--hash" in result.err and "not applied" in result.err
    doc = _manifest(env)
    assert list(doc["dependency-groups"]["mine"]) == ["cdfix-beta<2", "cdfix-vision"]
    assert list(doc["tool"]["uv"]["constraint-dependencies"]) == ["cdfix-alpha<2"]
    assert (venv_has(env, "cdfix_beta"), venv_has(env, "cdfix_vision"), venv_has(env, "cdfix_alpha")) == ("1.0", "1.0", "1.5")


def _node_state(env):
    import git

    git_node = env.custom_nodes_dir / "ComfyUI-Git-Node"
    return (
        env.pyproject_path.read_bytes(),
        env.uv_lock_path.read_bytes(),
        (env.custom_nodes_dir / "ComfyUI-Fixture-Pack" / "requirements.txt").read_text(),
        git.Repo(git_node).head.commit.hexsha,
        venv_has(env, "cdfix_beta"),
        venv_has(env, "cdfix_gamma"),
    )


@pytest.mark.slow
def test_update_all_moves_every_node_to_its_newest_in_one_change(env, registry, node_repo, run_cli):
    import git

    from comfydock.demo.fixtures import node_zip_bytes

    (env.custom_nodes_dir / "my-node").mkdir()
    (env.custom_nodes_dir / "my-node" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    for argv in (("comfyui-fixture-pack@1.0.0",), (f"{node_repo.as_uri()}@v1.0",), ("my-node", "--dev")):
        assert run_cli("node", "add", *argv).code == 0
    info = run_cli("node", "info", "comfyui-fixture-pack", "--json").json
    assert info["installed"] == {"environment": "main", "id": "comfyui-fixture-pack", "version": "1.0.0", "directory": "ComfyUI-Fixture-Pack"}
    # a newer version that is deprecated is not one to move to
    registry.nodes["comfyui-fixture-pack"]["versions"]["1.2.0"] = node_zip_bytes("fixture-pack", "cdfix-beta\n")
    registry.nodes["comfyui-fixture-pack"]["deprecated"].add("1.2.0")
    before = _node_state(env)

    dry = run_cli("node", "update", "--all", "--dry-run")
    assert dry.code == 0, dry.err
    assert "comfyui-fixture-pack: 1.0.0 → 1.1.0" in dry.err and "dry run" in dry.err
    assert _node_state(env) == before

    result = run_cli("node", "update", "--all")
    assert result.code == 0, result.err
    head = git.Repo(node_repo).heads.main.commit.hexsha
    assert "comfyui-fixture-pack: 1.0.0 → 1.1.0" in result.err and f"ComfyUI-Git-Node: {before[3][:10]} → {head[:10]}" in result.err
    assert "skipped my-node: a development node" in result.err
    nodes = _manifest(env)["tool"]["comfydock"]["nodes"]
    assert nodes["comfyui-fixture-pack"]["version"] == "1.1.0" and nodes["ComfyUI-Git-Node"]["commit"] == head
    assert (venv_has(env, "cdfix_beta"), venv_has(env, "cdfix_gamma")) == ("2.0", "0.2")

    lock = env.uv_lock_path.stat().st_mtime_ns
    again = run_cli("node", "update", "--all", "--json")
    assert again.code == 0 and again.json["added"] == [] and again.json["build"] is None
    assert sorted(again.json["unchanged"]) == ["ComfyUI-Git-Node", "comfyui-fixture-pack"]
    assert env.uv_lock_path.stat().st_mtime_ns == lock
    assert "Nothing to update" in run_cli("node", "update", "--all").err


@pytest.mark.slow
@pytest.mark.parametrize(
    "requirements,mode,says",
    [("cdfix-alpha<1\n", None, "No solution found"), ("cdfix-beta\n", "truncate", "was interrupted")],
    ids=["unlockable", "download-cut"],
)
def test_update_all_that_fails_midway_leaves_every_node_as_before(env, registry, node_repo, run_cli, requirements, mode, says):
    from comfydock.demo.fixtures import node_zip_bytes

    for ident in ("comfyui-fixture-pack@1.0.0", f"{node_repo.as_uri()}@v1.0"):
        assert run_cli("node", "add", ident).code == 0
    # the git node moves fine; the registry node's newest version cannot be locked, or its download is cut
    registry.nodes["comfyui-fixture-pack"]["versions"]["2.0.0"] = node_zip_bytes("fixture-pack", requirements)
    registry.mode = mode
    before = _node_state(env)
    result = run_cli("node", "update", "--all")
    assert result.code == 1 and says in result.err, result.err
    assert _node_state(env) == before
    plan = run_cli("build", "--dry-run", "--json").json  # nothing left for a build to redo
    assert {r["status"] for r in plan if r["task"] not in {"index_models", "core_node_types"}} == {"up-to-date"}


def test_update_needs_one_node_or_all(workspace_path, run_cli):
    for argv in (("node", "update"), ("node", "update", "x", "--all")):
        result = run_cli(*argv)
        assert result.code == 2 and "name one node, or give --all" in result.err
