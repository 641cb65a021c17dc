"""The resolution date: an environment resolves packages as uploaded up to its ComfyUI commit's date
(uv's exclude-newer), and a later part that needs something newer moves only what it needs.

The slow tests resolve against a loopback PEP 691 index that gives every fixture wheel an upload
time (find-links files have none, so a cutoff would not matter there)."""

from __future__ import annotations

import os
import subprocess
import tomllib
from datetime import datetime, timezone

import pytest

from comfydock import resolution
from comfydock.demo.fixtures import build_node_repo, make_wheel
from comfydock.demo.package_index import PackageIndex
from comfydock.environment import Environment
from comfydock.errors import UsageError

# name -> version -> upload time: each later version is from a later world
UPLOADS = {
    "cdfix-alpha": {"0.9": "2024-01-01T00:00:00Z", "1.0": "2024-06-01T00:00:00Z", "1.5": "2025-03-01T00:00:00Z", "2.0": "2025-09-01T00:00:00Z"},
    "cdfix-gamma": {"0.1": "2024-06-01T00:00:00Z", "0.2": "2025-09-01T00:00:00Z"},
}
# fixture ComfyUI commits made at chosen dates (GIT_COMMITTER_DATE): tag -> date
COMFYUI_DATES = {"v0.3.0": "2025-01-01T00:00:00Z", "v0.4.0": "2025-12-01T00:00:00Z"}
NODE_DATE = "2025-10-01T00:00:00Z"

# what uv 0.13.9 printed against real PyPI (ComfyUI v0.3.64's date) and against an index without upload times
UV_FILTERED = """error: No solution found when resolving dependencies
  cause: Because only hf-xet<=1.1.10 is available and huggingface-hub>=1.0.0 depends on hf-xet>=1.2.0,<2.0.0, we can conclude that huggingface-hub>=1.0.0 cannot be used.

hint: `huggingface-hub` was filtered by `exclude-newer-package` to only include packages uploaded before 2026-03-01T00:00:00Z. The latest version satisfying the requirement is v2.4.0, published at 2026-10-29T15:30:10Z. Consider removing the setting or updating it to a later date.

hint: `hf-xet` was filtered by `exclude-newer` to only include packages uploaded before
2025-10-12T04:28:01Z. The latest version satisfying the requirement is v1.8.0, published at 2026-10-30T10:04:03Z. Consider using `exclude-newer-package` to override the cutoff for this package."""
UV_UNDATED = """warning: `cdfix_gamma-0.2-py3-none-any.whl` is missing an upload date, but user provided: 2025-01-01T00:00:00Z
error: No solution found when resolving dependencies
  cause: Because there are no versions of cdfix-gamma and your project depends on cdfix-gamma, we can conclude that your project's requirements are unsatisfiable.

hint: `cdfix-gamma` was filtered by `exclude-newer` to only include packages uploaded before 2025-01-01T00:00:00Z. The latest version satisfying the requirement is v0.2. Consider using `exclude-newer-package` to override the cutoff for this package."""


# --- the rule, as pure functions ---------------------------------------------------------------


def test_as_of_accepts_dates_times_and_now_and_writes_utc():
    now = datetime(2026, 12, 2, 14, 45, 3, 123, tzinfo=timezone.utc)
    assert resolution.parse_as_of("2025-10-12") == "2025-10-12T00:00:00Z"
    assert resolution.parse_as_of("2025-10-12T00:28:01-04:00") == "2025-10-12T04:28:01Z"
    assert resolution.parse_as_of("now", now) == "2026-12-02T14:45:03Z"
    for bad in ("yesterday", "2025-13-01", "2025-10-12T04:28", "2025-10-12; rm -rf /", ""):
        with pytest.raises(UsageError):
            resolution.parse_as_of(bad)


UV_NO_UPLOAD_TIMES = """\
  warning: `torch-2.10.0-py3-none-any.whl` is missing an upload date, but user provided: 2026-12-02T15:27:23Z
  warning: `torchaudio-2.10.0-py3-none-any.whl` is missing an upload date, but user provided: 2026-12-02T15:27:23Z
  error: No solution found when resolving dependencies
    cause: Because there is no version of torch==2.10.0 and your project depends on torch==2.10.0, we can conclude \
that your project's requirements are unsatisfiable.
  hint: `torch` was filtered by `exclude-newer` to only include packages uploaded before 2026-12-02T15:27:23Z. \
Consider using `exclude-newer-package` to override the cutoff for this package.
"""


def test_uv_refusal_names_each_filtered_package_and_whether_its_file_has_an_upload_time():
    first, second = resolution.filtered_packages(UV_FILTERED)
    assert (first.name, first.by_package_setting, first.published) == ("huggingface-hub", True, "2026-10-29T15:30:10Z")
    assert (second.name, second.by_package_setting, second.version) == ("hf-xet", False, "v1.8.0")
    (undated,) = resolution.filtered_packages(UV_UNDATED)
    assert (undated.name, undated.published, undated.undated) == ("cdfix-gamma", None, True)
    # uv 0.13 on an index without upload times at all: warnings per file, a hint with no version
    (torch,) = resolution.filtered_packages(UV_NO_UPLOAD_TIMES)
    assert (torch.name, torch.undated) == ("torch", True)
    assert resolution.plan_moves(_doc(), UV_NO_UPLOAD_TIMES, datetime(2026, 12, 2, tzinfo=timezone.utc))[0].until is None
    # the same hint without those warnings: dated files, moved by the rule, never to no cutoff
    (dated,) = resolution.filtered_packages(UV_NO_UPLOAD_TIMES.split("  error:", 1)[1])
    assert (dated.name, dated.undated) == ("torch", False)
    assert resolution.filtered_packages("error: Failed to fetch: http://127.0.0.1:9/simple/x/") == []


def _doc(as_of="2025-01-01T00:00:00Z", node_date=NODE_DATE):
    import tomlkit

    doc = tomlkit.document()
    resolution.record(doc, as_of, "ComfyUI v0.3.0 commit", as_of)
    if node_date:
        resolution.set_node_date(doc, "late-node", node_date, "abc")
    return doc


def test_a_filtered_package_moves_to_the_newest_part_then_to_now_and_an_undated_one_has_no_cutoff():
    now = datetime(2026, 12, 2, tzinfo=timezone.utc)
    doc = _doc()
    text = UV_FILTERED.replace("exclude-newer-package`", "exclude-newer`")
    moves = resolution.plan_moves(doc, text, now)
    assert [(m.name, m.until) for m in moves] == [("huggingface-hub", NODE_DATE), ("hf-xet", NODE_DATE)]
    assert moves[0].describe() == "huggingface-hub may be newer than the resolution date: up to 2025-10-01 (late-node's date)"
    resolution.apply_moves(doc, moves)
    # still filtered, now by its own entry: no part is newer, so up to now (once per run)
    again = resolution.plan_moves(doc, UV_FILTERED, now)
    assert [(m.name, m.until, m.final) for m in again] == [
        ("huggingface-hub", "2026-12-02T00:00:00Z", True),
        ("hf-xet", "2026-12-02T00:00:00Z", True),
    ]
    assert resolution.plan_moves(doc, UV_FILTERED, now, spent={"huggingface-hub", "hf-xet"}) == []
    (undated,) = resolution.plan_moves(doc, UV_UNDATED, now)
    assert undated.until is None and "no upload time" in undated.reason
    resolution.apply_moves(doc, [undated])
    assert doc["tool"]["uv"]["exclude-newer-package"]["cdfix-gamma"] is False


def test_a_new_date_drops_the_moves_it_makes_unnecessary():
    doc = _doc()
    resolution.apply_moves(doc, resolution.plan_moves(doc, UV_FILTERED.replace("-package`", "`"), datetime.now(timezone.utc)))
    resolution.allow_package(doc, "undated", None, "no cutoff")
    resolution.record(doc, "2025-12-01T00:00:00Z", "ComfyUI v0.4.0 commit", "2025-12-01T00:00:00Z")
    assert sorted(resolution.allowed_newer(doc)) == ["undated"]
    assert resolution.info(doc)["as_of"] == "2025-12-01T00:00:00Z"


def test_a_manifest_without_a_date_has_no_cutoff_and_a_bad_date_is_refused():
    from comfydock import manifest

    doc = manifest.new_manifest("x", "3.11", [], "v0.1.0", "0" * 40)
    assert resolution.info(doc) == {"as_of": None, "source": None, "packages": []}
    assert resolution.plan_moves(doc, UV_FILTERED, datetime.now(timezone.utc)) == []
    doc["tool"]["uv"]["exclude-newer"] = "2025-01-01 --index-url http://evil"
    assert "exclude-newer is not a date" in manifest.shape_problem(doc)


def test_bad_as_of_is_refused_before_anything_is_made(workspace_path, run_cli):
    result = run_cli("create", "dated", "--as-of", "last tuesday")
    assert result.code == 2
    assert "--as-of 'last tuesday' is not a date" in result.err and "2025-10-12" in result.err
    assert not (workspace_path / "environments" / "dated").exists()


# --- against a loopback index with upload times ------------------------------------------------


def _git(repo, *args, date=None):
    env = dict(os.environ, GIT_AUTHOR_NAME="Fixture", GIT_AUTHOR_EMAIL="f@example.invalid")
    env |= {"GIT_COMMITTER_NAME": "Fixture", "GIT_COMMITTER_EMAIL": "f@example.invalid"}
    if date:
        env |= {"GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@pytest.fixture
def dated_index(workspace_path, run_cli, comfyui_source, tmp_path):
    """The workspace resolves from a loopback index with upload times; ComfyUI gains v0.3.0
    (2025-01-01) and v0.4.0 (2025-12-01), both needing cdfix-alpha>=1.0 and cdfix-gamma."""
    wheels = tmp_path / "dated-wheels"
    with PackageIndex() as index:
        for name, versions in UPLOADS.items():
            for version, uploaded in versions.items():
                index.add(make_wheel(wheels, name, version), uploaded)
        for tag, date in COMFYUI_DATES.items():
            (comfyui_source / "requirements.txt").write_text("cdfix-alpha>=1.0\ncdfix-gamma\n")
            (comfyui_source / "README.md").write_text(f"Fixture ComfyUI {tag}\n")
            _git(comfyui_source, "commit", "-qam", f"Release {tag}", date=date)
            _git(comfyui_source, "tag", tag)
        assert run_cli("config", "python-index", index.url).code == 0
        for key in ("no-index", "find-links"):
            assert run_cli("config", key, "--unset").code == 0
        yield index


def _locked(env) -> dict[str, str]:
    return env.locked_versions()


def _uv_options(env) -> dict:
    return tomllib.loads(env.uv_lock_path.read_text())["options"]


@pytest.mark.slow
def test_create_resolves_as_of_comfyui_and_a_newer_node_moves_only_what_it_needs(dated_index, workspace, run_cli, tmp_path):
    created = run_cli("create", "dated", "--comfyui-version", "v0.3.0", "--torch-backend", "cpu")
    assert created.code == 0, created.err
    assert "Resolution date: 2025-01-01T00:00:00Z (from ComfyUI v0.3.0 commit)" in created.err
    env = Environment.open(workspace, "dated")
    assert _uv_options(env)["exclude-newer"] == "2025-01-01T00:00:00Z"  # every later uv lock carries it
    assert {k: v for k, v in _locked(env).items() if k.startswith("cdfix")} == {"cdfix-alpha": "1.0", "cdfix-gamma": "0.1"}

    node = build_node_repo(tmp_path / "repos" / "Late-Node", "late-node", {})
    (node / "requirements.txt").write_text("cdfix-gamma>=0.2\n")
    _git(node, "add", "-A")
    _git(node, "commit", "-qm", "needs the newer gamma", date=NODE_DATE)
    added = run_cli("node", "add", node.as_uri())
    assert added.code == 0, added.err
    assert "cdfix-gamma may be newer than the resolution date: up to 2025-10-01 (Late-Node's date)" in added.err
    versions = _locked(env)
    assert (versions["cdfix-gamma"], versions["cdfix-alpha"]) == ("0.2", "1.0")  # alpha stays in its world

    status = run_cli("status", "--json").json["resolution"]
    assert status["as_of"] == "2025-01-01T00:00:00Z" and status["source"] == "ComfyUI v0.3.0 commit"
    assert status["packages"] == [
        {"name": "cdfix-gamma", "until": NODE_DATE, "reason": "up to 2025-10-01 (Late-Node's date)"}
    ]
    text = run_cli("status").out
    assert "Resolution date: 2025-01-01T00:00:00Z (from ComfyUI v0.3.0 commit)" in text
    assert "cdfix-gamma may be newer: up to 2025-10-01 (Late-Node's date)" in text

    updated = run_cli("comfyui", "update", "v0.4.0", "--json")
    assert updated.code == 0, updated.err
    assert updated.json["resolution"]["as_of"] == "2025-12-01T00:00:00Z"
    assert updated.json["resolution"]["packages"] == []  # 2025-12-01 already allows the node's gamma
    assert _uv_options(env)["exclude-newer"] == "2025-12-01T00:00:00Z"
    assert "exclude-newer-package" not in _uv_options(env)


@pytest.mark.slow
def test_as_of_picks_another_world_and_an_import_keeps_it(dated_index, workspace, run_cli, tmp_path, comfyui_source):
    created = run_cli("create", "june", "--comfyui-version", "v0.3.0", "--as-of", "2025-06-01", "--torch-backend", "cpu")
    assert created.code == 0, created.err
    env = Environment.open(workspace, "june")
    assert (_locked(env)["cdfix-alpha"], _locked(env)["cdfix-gamma"]) == ("1.5", "0.1")
    assert resolution.info(env.manifest_data())["source"] == "--as-of 2025-06-01"

    assert run_cli("export", "-e", "june", "--no-interactive", "--output", tmp_path / "june.tar.gz").code == 0
    ws_b = tmp_path / "wsB"
    assert run_cli("init", ws_b, "--models-dir", tmp_path / "models-b", "--no-interactive").code == 0
    for key, value in (("comfyui-source", comfyui_source.as_uri()), ("python-index", dated_index.url)):
        assert run_cli("-w", ws_b, "config", key, value).code == 0
    imported = run_cli("-w", ws_b, "import", tmp_path / "june.tar.gz", "--env", "june-b", "--no-interactive")
    assert imported.code == 0, imported.err
    from comfydock.workspace import Workspace

    env_b = Environment.open(Workspace.open(ws_b), "june-b")
    info = resolution.info(env_b.manifest_data())
    assert (info["as_of"], info["source"]) == ("2025-06-01T00:00:00Z", "--as-of 2025-06-01")
    assert _uv_options(env_b)["exclude-newer"] == "2025-06-01T00:00:00Z"
    assert (_locked(env_b)["cdfix-alpha"], _locked(env_b)["cdfix-gamma"]) == ("1.5", "0.1")


@pytest.mark.slow
def test_environment_without_a_date_resolves_as_before_and_status_says_none(env, run_cli):
    from comfydock import manifest

    doc = manifest.load(env.pyproject_path)  # as an older comfydock wrote it: no date
    del doc["tool"]["uv"]["exclude-newer"]
    manifest.drop_section(doc, "resolution")
    manifest.save(env.pyproject_path, doc)
    assert run_cli("build").code == 0
    assert "exclude-newer" not in tomllib.loads(env.uv_lock_path.read_text()).get("options", {})
    assert run_cli("status", "--json").json["resolution"] == {"as_of": None, "source": None, "packages": []}
    assert "Resolution date: none" in run_cli("status").out


# uv 0.13.9 on PyPI, v0.3.64's requirements + huggingface-hub>=1.0 after hub moved: no hint names
# transformers, whose versions of the cutoff's world require huggingface-hub<1.0
UV_HELD_BACK = """error: No solution found when resolving dependencies
  cause: Because transformers>=4.37.2,<=4.41.2 depends on huggingface-hub>=0.19.3,<1.0 and transformers>=4.54.0,<=4.56.2
         depends on huggingface-hub>=0.34.0,<1.0, we can conclude that transformers>=4.37.2 depends on huggingface-hub>=0.19.3,<1.0.
         And because your project depends on huggingface-hub>=1.0 and transformers>=4.37.2, we can conclude that your project's requirements are unsatisfiable."""


def test_a_package_holding_a_moved_one_back_moves_with_it():
    doc = _doc()
    resolution.allow_package(doc, "huggingface-hub", NODE_DATE, "up to 2025-10-01 (late-node's date)")
    (move,) = resolution.plan_moves(doc, UV_HELD_BACK, datetime.now(timezone.utc))
    assert (move.name, move.until) == ("transformers", NODE_DATE)
    assert move.describe() == "transformers may be newer than the resolution date: up to 2025-10-01 (with huggingface-hub, which it holds back)"
    resolution.apply_moves(doc, [move])
    assert resolution.plan_moves(doc, UV_HELD_BACK, datetime.now(timezone.utc)) == []  # nothing left: uv's error stands


@pytest.mark.slow
def test_a_node_that_moves_a_package_past_what_comfyui_imports_still_leaves_an_environment_that_starts(
    dated_index, workspace, run_cli, tmp_path, comfyui_source
):
    """ComfyUI v0.3.64's case: server.py imports requests, which only huggingface-hub < 1.0 brought
    in; a node needing huggingface-hub >= 1.0 moves it, and requests goes. Here cdfix-hub 1.0
    brings cdfix-req, 2.0 does not, and the fixture ComfyUI's server.py imports cdfix_req."""
    wheels = tmp_path / "hub-wheels"
    dated_index.add(make_wheel(wheels, "cdfix-req", "1.0"), "2024-06-01T00:00:00Z")
    dated_index.add(make_wheel(wheels, "cdfix-hub", "1.0", ["cdfix-req"]), "2024-06-01T00:00:00Z")
    dated_index.add(make_wheel(wheels, "cdfix-hub", "2.0"), "2025-09-01T00:00:00Z")
    server = (comfyui_source / "server.py").read_text() + "\nimport cdfix_req  # undeclared: cdfix-hub 1.0 brings it\n"
    (comfyui_source / "server.py").write_text(server)
    (comfyui_source / "requirements.txt").write_text("cdfix-alpha>=1.0\ncdfix-hub\n")
    _git(comfyui_source, "commit", "-qam", "Release v0.3.1-hub", date="2025-02-01T00:00:00Z")
    _git(comfyui_source, "tag", "v0.3.1-hub")  # its server.py: the fixture's, which main.py imports first

    created = run_cli("create", "hub", "--comfyui-version", "v0.3.1-hub", "--torch-backend", "cpu")
    assert created.code == 0, created.err
    env = Environment.open(workspace, "hub")
    assert {k: v for k, v in _locked(env).items() if k in ("cdfix-hub", "cdfix-req")} == {"cdfix-hub": "1.0", "cdfix-req": "1.0"}
    assert "to comfyui-core" not in created.err  # nothing to fill: cdfix-hub 1.0 brings cdfix_req

    node = build_node_repo(tmp_path / "repos" / "Hub-Node", "hub-node", {})
    (node / "requirements.txt").write_text("cdfix-hub>=2.0\n")
    _git(node, "add", "-A")
    _git(node, "commit", "-qm", "needs the newer hub", date=NODE_DATE)
    added = run_cli("node", "add", node.as_uri())
    assert added.code == 0, added.err
    assert "cdfix-hub may be newer than the resolution date" in added.err
    assert "Added cdfix-req to comfyui-core (cdfix_req: imported by server.py:" in added.err
    assert _locked(env)["cdfix-hub"] == "2.0" and _locked(env)["cdfix-req"] == "1.0"
    assert "cdfix-req" in [str(x) for x in tomllib.loads(env.pyproject_path.read_text())["dependency-groups"]["comfyui-core"]]
    checked = run_cli("check")
    assert checked.code == 0, checked.out + checked.err  # ComfyUI starts: its import is there


# uv 0.13.9 against real PyPI: ComfyUI v0.3.64 as of its date, plus a node (2026-08-01) needing
# huggingface-hub 1.x; uv names nothing as filtered: the conflict runs through 2025's transformers
UV_THROUGH_TRANSFORMERS = """\
  error: No solution found when resolving dependencies for split (markers: python_full_version == '3.11.*')
    cause: Because transformers>=4.54.0,<=4.56.2 depends on huggingface-hub>=0.34.0,<1.0 and all of:
               transformers>=4.51.0,<=4.51.3
           depend on huggingface-hub>=0.30.0,<1.0, we can conclude that all of:
               transformers>=4.51.0,<=4.56.2
           And because transformers>=4.37.2,<=4.40.2 depends on huggingface-hub>=0.19.3,<1.0 and \
comfydock-env-real:node-hubnode depends on huggingface-hub>=1.0, we can conclude that comfydock-env-real:node-hubnode and all of:
               transformers>=4.37.2,<=4.56.2
            are incompatible.
           And because comfydock-env-real:comfyui-core depends on transformers>=4.37.2, we can conclude that \
comfydock-env-real:comfyui-core and comfydock-env-real:node-hubnode are incompatible.
"""


def test_what_a_newer_node_requires_moves_when_uv_names_nothing_filtered():
    now = datetime(2026, 12, 2, tzinfo=timezone.utc)
    doc = _doc(as_of="2025-10-12T04:28:01Z", node_date=None)
    resolution.set_node_date(doc, "hubnode", "2026-08-01T00:00:00Z", "abc")
    first = resolution.plan_moves(doc, UV_THROUGH_TRANSFORMERS, now)
    assert [(m.name, m.until, m.reason) for m in first] == [
        ("huggingface-hub", "2026-08-01T00:00:00Z", "up to 2026-08-01 (hubnode requires it)")
    ]
    resolution.apply_moves(doc, first)
    # the same refusal once the hub moved: transformers follows it; a node's group never moves
    second = resolution.plan_moves(doc, UV_THROUGH_TRANSFORMERS, now)
    assert [(m.name, m.until) for m in second] == [("transformers", "2026-08-01T00:00:00Z")]
    # a node no newer than the date is not why anything moves
    old = _doc(as_of="2025-10-12T04:28:01Z", node_date=None)
    resolution.set_node_date(old, "hubnode", "2025-01-01T00:00:00Z", "abc")
    assert resolution.plan_moves(old, UV_THROUGH_TRANSFORMERS, now) == []
