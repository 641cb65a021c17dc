"""`comfydock py` and `comfydock constraint`: real uv, real locks, nothing changed on refusal."""

import pytest
import tomlkit
from conftest import venv_has

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
    assert rows["cdfix-alpha"]["group"] == "core" and rows["cdfix-alpha"]["locked"] == "2.0"
    assert run_cli("py", "remove", "cdfix-beta").code == 0
    assert venv_has(env, "cdfix_beta") is None
    assert "cdfix-beta" not in {r["name"] for r in run_cli("py", "list", "--json").json}
    assert 'name = "cdfix-beta"' not in env.lock_path.read_text()


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


def test_conflict_with_core_is_refused_and_changes_nothing(env, run_cli):
    before = env.pyproject_path.read_bytes(), env.lock_path.read_bytes()
    result = run_cli("py", "add", "cdfix-alpha<1")
    assert result.code == 1
    assert "No solution found" in result.err  # uv's explanation
    assert (env.pyproject_path.read_bytes(), env.lock_path.read_bytes()) == before
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
    assert result.code == 1 and "requests" in result.err


def test_constraint_forces_an_older_version_a_group_asks_for(env, run_cli):
    assert run_cli("py", "add", "cdfix-beta", "--group", "node-fixture").code == 0
    assert venv_has(env, "cdfix_beta") == "2.0" and venv_has(env, "cdfix_alpha") == "2.0"
    assert run_cli("constraint", "add", "cdfix-alpha<2").code == 0
    assert venv_has(env, "cdfix_alpha") == "1.5"
    assert venv_has(env, "cdfix_beta") == "1.0"  # beta 2.0 needs alpha>=2: uv picks 1.0
    assert run_cli("constraint", "list", "--json").json == [{"constraint": "cdfix-alpha<2", "locked": "1.5"}]
    doc = tomlkit.parse(env.pyproject_path.read_text())
    assert list(doc["tool"]["uv"]["constraint-dependencies"]) == ["cdfix-alpha<2"]
    assert "constraints = [" in env.lock_path.read_text()
    assert run_cli("constraint", "remove", "cdfix-alpha").code == 0
    assert run_cli("constraint", "list", "--json").json == []
    # like 'uv remove', uv keeps the locked versions that still fit; the bound itself is gone
    assert "constraints = [" not in env.lock_path.read_text()


def test_impossible_constraint_is_refused_and_changes_nothing(env, run_cli):
    before = env.pyproject_path.read_bytes(), env.lock_path.read_bytes()
    result = run_cli("constraint", "add", "cdfix-alpha<0.5")
    assert result.code == 1 and "No solution found" in result.err
    assert (env.pyproject_path.read_bytes(), env.lock_path.read_bytes()) == before


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
