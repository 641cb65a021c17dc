"""The manifest module owns every section of .cec/pyproject.toml: what the edits write reads back
and looks like a file a person would write (no empty [tool] or [tool.comfydock] headers)."""

from __future__ import annotations

import re

from comfydock import manifest, pydeps, torch_family
from comfydock.nodes.spec import NodeSpec, drop_node, set_node, tracked_node, tracked_nodes


def _edited_manifest():
    doc = manifest.new_manifest("demo", "3.11.7", ["tinyreq==1.0"], "v0.3.0", "a" * 40)
    set_node(
        doc, NodeSpec(id="my-node", source="git", directory="my-node", url="file:///x/my-node.git", ref="v1", commit="b" * 40)
    )
    pydeps.add_requirements(doc, ["tinyutil>=1"])
    pydeps.add_constraints(doc, ["numpy<2"])
    torch_family.record_release(doc, "2.5.1")
    manifest.set_workflows(doc, {"wf": {"path": "wf.json", "state": "ok"}}, {"abc": {"filename": "m.safetensors"}})
    manifest.set_node_type_choice(doc, "KSamplerX", "my-node")
    return doc


def test_every_section_edit_reads_back_after_a_save(tmp_path):
    path = tmp_path / "pyproject.toml"
    manifest.save(path, _edited_manifest())
    doc = manifest.load(path)  # the shape check passes
    assert list(tracked_nodes(doc)) == ["my-node"]
    assert tracked_node(doc, "file:///x/my-node.git").id == "my-node"
    assert "tinyutil>=1" in manifest.user_requirements(doc)
    assert "numpy<2" in pydeps.constraints(doc)
    assert torch_family.recorded_release(doc) == "2.5.1"
    assert manifest.workflow_entries(doc)["wf"]["path"] == "wf.json"
    assert manifest.required_models(doc) == {"abc": {"filename": "m.safetensors"}}
    assert manifest.node_type_choices(doc) == {"KSamplerX": "my-node"}
    assert manifest.environment_info(doc)["comfyui_commit"] == "a" * 40


def test_sections_are_written_under_their_own_headers_only(tmp_path):
    text = manifest.dumps(_edited_manifest())
    headers = re.findall(r"^\[([^\]]+)\]$", text, flags=re.M)
    assert "tool" not in headers and "tool.comfydock" not in headers and "tool.comfydock.models" not in headers
    for wanted in ("tool.comfydock.environment", "tool.comfydock.nodes.my-node", "tool.comfydock.torch", "tool.uv"):
        assert wanted in headers, headers


def test_dropping_the_last_node_and_release_leaves_no_empty_sections_behind():
    doc = _edited_manifest()
    drop_node(doc, tracked_nodes(doc)["my-node"])
    torch_family.clear_release(doc)
    assert tracked_nodes(doc) == {}
    assert manifest.section(doc, "torch") is None
    assert "node-my-node" not in manifest.dependency_groups(doc)
    assert pydeps.constraints(doc) == ["numpy<2"]
