"""Undeclared imports: what ComfyUI's or a node's code imports that nothing installs."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import tomlkit

from comfydock.demo import fixtures
from comfydock.demo.fixtures import UNDECLARED_TAG
from comfydock.environment import Environment
from comfydock.import_scan import Provided, missing_imports, scan_imports, unconditional_imports

# the line of server.py that imports cdfix_gamma in the v0.2.1-undeclared fixture
GAMMA_LINE = next(
    i
    for i, line in enumerate(
        (Path(fixtures.__file__).parent / "comfyui" / "server.py").read_text().splitlines()
        + fixtures.UNDECLARED_SERVER.splitlines(),
        start=1,
    )
    if line.startswith("import cdfix_gamma")
)


def _imports(source: str) -> list[str]:
    return [m for m, _ in unconditional_imports(ast.parse(source))]


def test_only_imports_that_always_run_are_collected():
    source = """
import os, requests.adapters
from google.protobuf import message
from . import sibling
try:
    import optional_one
except ImportError:
    optional_one = None
try:
    import optional_two
except (ModuleNotFoundError, AttributeError):
    pass
if sys.platform == "win32":
    import winonly
def later():
    import lazy
class Holder:
    import in_class
with open(__file__):
    import in_with
try:
    import unguarded
finally:
    import after
"""
    assert _imports(source) == ["os", "requests.adapters", "google.protobuf", "in_class", "in_with", "unguarded", "after"]


def test_a_tree_reports_only_what_nothing_provides(tmp_path):
    node = tmp_path / "my-node"
    (node / "lib").mkdir(parents=True)
    (node / "__init__.py").write_text("import json\nimport helper\nfrom lib import tools\nimport cv2\nimport yaml\n")
    (node / "helper.py").write_text("import numpy\nimport folder_paths\n")
    (node / "lib" / "__init__.py").write_text("")
    (node / "lib" / "tools.py").write_text("import cv2\n")
    (node / "broken.py").write_text("def (:\n")  # unparsable: skipped
    (node / "tests").mkdir()
    (node / "tests" / "test_x.py").write_text("import pytest\n")
    (node / "linked").symlink_to(tmp_path)  # never followed out of the tree
    (tmp_path / "outside.py").write_text("import outside_only\n")
    scan = scan_imports(node)
    assert scan.unreadable == 1
    found = missing_imports(
        scan, stdlib=set(sys.stdlib_module_names), provided=Provided({"numpy"}, {}), also_own={"folder_paths"}
    )
    assert [(u.module, u.package, u.where, u.more) for u in found] == [
        ("cv2", "opencv-python", "__init__.py:4", 1),
        ("yaml", "pyyaml", "__init__.py:5", 0),
    ]


def _dev_node(env, name: str, files: dict[str, str]) -> None:
    path = env.custom_nodes_dir / name
    path.mkdir()
    (path / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    (path / "requirements.txt").write_text("# nothing\n")
    for rel, text in files.items():
        (path / rel).write_text(text)


def test_a_node_importing_what_nothing_installs_is_named_with_its_fix(env, run_cli):
    _dev_node(
        env,
        "my-node",
        {
            "extra.py": "import cdfix_beta\n",
            "optional.py": "try:\n    import cdfix_vision\nexcept ImportError:\n    cdfix_vision = None\n",
        },
    )
    assert run_cli("node", "add", "my-node", "--dev").code == 0

    report = run_cli("status", "--json").json["undeclared_imports"]
    assert report["checked"] is True
    [owner] = report["owners"]
    assert owner["owner"] == "node" and owner["id"] == "my-node"
    assert [(u["module"], u["package"], u["where"]) for u in owner["imports"]] == [("cdfix_beta", "cdfix-beta", "extra.py:1")]
    assert owner["fix"] == "comfydock py add cdfix-beta --group node-my-node"
    text = run_cli("status").out
    assert "Custom node my-node imports what nothing installs" in text and "extra.py:1" in text

    check = run_cli("node", "check", "--json").json
    assert check[0]["undeclared_imports"][0]["where"] == "extra.py:1"
    assert check[0]["undeclared_fix"] == owner["fix"]
    assert "comfydock py add cdfix-beta --group node-my-node" in run_cli("node", "check").out

    result = run_cli(*owner["fix"].split()[1:])  # the hint, as the user types it
    assert result.code == 0, result.err
    assert run_cli("status", "--json").json["undeclared_imports"]["owners"] == []
    assert "imports what nothing installs" not in run_cli("node", "check").out
    # the addition outlives a rescan of the node's requirements
    (env.custom_nodes_dir / "my-node" / "requirements.txt").write_text("cdfix-gamma\n")
    assert run_cli("build").code == 0
    groups = tomlkit.parse(env.pyproject_path.read_text())["dependency-groups"]
    assert [str(x) for x in groups["node-my-node"]] == ["cdfix-gamma", "cdfix-beta"]


def test_comfyui_gap_is_filled_into_comfyui_core_with_its_reason_and_it_starts(workspace, run_cli):
    result = run_cli("create", "gap", "--comfyui-version", UNDECLARED_TAG, "--torch-backend", "cpu")
    assert result.code == 0, result.err
    assert f"Added cdfix-gamma to comfyui-core (cdfix_gamma: imported by server.py:{GAMMA_LINE}" in result.err
    env = Environment.open(workspace, "gap")
    doc = tomlkit.parse(env.pyproject_path.read_text())
    assert [str(x) for x in doc["dependency-groups"]["comfyui-core"]] == ["cdfix-alpha>=1.0", "cdfix-gamma"]
    reason = doc["tool"]["comfydock"]["requirement_reasons"]["comfyui-core"]["cdfix-gamma"]
    assert reason == f"cdfix_gamma: imported by server.py:{GAMMA_LINE}, not declared by ComfyUI {UNDECLARED_TAG}"
    status = run_cli("status", "-e", "gap", "--json").json
    assert status["undeclared_imports"] == {"checked": True, "owners": []}
    assert status["uncommitted_changes"] == []  # part of v1
    ran = run_cli("run", "-e", "gap", "--no-sync", "--quick-test-for-ci")
    assert ran.code == 0, ran.err
    assert json.loads((env.comfyui_dir / "user" / "fixture_last_run.json").read_text())["argv"] == ["--quick-test-for-ci"]


def test_comfyui_update_drops_the_fill_when_the_next_version_needs_none(workspace, run_cli):
    assert run_cli("create", "gap", "--comfyui-version", UNDECLARED_TAG, "--torch-backend", "cpu").code == 0
    env = Environment.open(workspace, "gap")
    assert run_cli("comfyui", "update", "v0.1.0", "-e", "gap").code == 0
    doc = tomlkit.parse(env.pyproject_path.read_text())
    assert [str(x) for x in doc["dependency-groups"]["comfyui-core"]] == ["cdfix-alpha>=1.0"]
    assert "requirement_reasons" not in doc["tool"]["comfydock"]
    assert run_cli("status", "-e", "gap", "--json").json["undeclared_imports"]["owners"] == []


def test_status_names_a_comfyui_gap_and_its_hint_fills_it(workspace, run_cli):
    assert run_cli("create", "gap", "--comfyui-version", UNDECLARED_TAG, "--torch-backend", "cpu").code == 0
    env = Environment.open(workspace, "gap")
    doc = tomlkit.parse(env.pyproject_path.read_text())  # as an environment made before the fill
    doc["dependency-groups"]["comfyui-core"] = ["cdfix-alpha>=1.0"]
    del doc["tool"]["comfydock"]["requirement_reasons"]
    env.pyproject_path.write_text(tomlkit.dumps(doc))
    assert run_cli("build", "-e", "gap").code == 0

    [owner] = run_cli("status", "-e", "gap", "--json").json["undeclared_imports"]["owners"]
    assert owner["owner"] == "comfyui" and owner["imports"][0]["where"] == f"server.py:{GAMMA_LINE}"
    assert owner["fix"] == f"comfydock comfyui update {UNDECLARED_TAG}"
    assert f"ComfyUI imports what nothing installs: cdfix_gamma (server.py:{GAMMA_LINE})" in run_cli("status", "-e", "gap").out
    result = run_cli(*owner["fix"].split()[1:], "-e", "gap")  # the hint, as the user types it
    assert result.code == 0, result.err
    assert run_cli("status", "-e", "gap", "--json").json["undeclared_imports"]["owners"] == []
    reasons = tomlkit.parse(env.pyproject_path.read_text())["tool"]["comfydock"]["requirement_reasons"]
    assert f"server.py:{GAMMA_LINE}" in reasons["comfyui-core"]["cdfix-gamma"]
