"""Node type detection: core types (probe and static scan), the node map and its ranking, classification."""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import git
import pytest

from comfydock.errors import ComfydockError
from comfydock.workflows.analysis import analyze_bytes, analyze_file
from comfydock.workflows.node_types import (
    build_node_map,
    classify,
    fetch_node_map,
    load_node_map,
    probe_core_types,
    probe_custom_node_types,
    save_node_map,
    static_core_types,
    static_node_types,
)

DATA = Path(__file__).resolve().parent / "data"
CORPUS = DATA / "corpus" / "workflows"


@pytest.fixture(scope="module")
def map_bytes() -> bytes:
    return gzip.decompress((DATA / "extension-node-map.json.gz").read_bytes())


@pytest.fixture(scope="module")
def node_map(map_bytes):
    return build_node_map(json.loads(map_bytes))


def first(node_map, node_type):
    cands = node_map.candidates(node_type)
    return cands[0] if cands else None


# --- the node map ----------------------------------------------------------------------------
def test_imageremovealpha_maps_to_cubiq_essentials(node_map):
    (c,) = node_map.candidates("ImageRemoveAlpha+")
    assert c.url == "https://github.com/cubiq/ComfyUI_essentials" and c.package == c.url
    assert "the only package" in c.reason


def test_ailab_qwenvl_has_no_candidate(node_map):
    assert node_map.candidates("AILab_QwenVL") == []


def test_vhs_nodes_map_to_videohelpersuite(node_map):
    for t in ("VHS_VideoCombine", "VHS_LoadVideo", "VHS_LoadAudio", "VHS_LoadVideoPath"):
        assert first(node_map, t).url == "https://github.com/Kosinkadink/ComfyUI-VideoHelperSuite"


def test_rgthree_types_match_by_name_pattern(node_map):
    (c,) = node_map.candidates("Power Lora Loader (rgthree)")
    assert c.url == "https://github.com/rgthree/rgthree-comfy"
    assert "name pattern" in c.reason
    assert node_map.candidates("Power Lora Loader") == []


def test_exact_listing_ranks_before_a_name_pattern(node_map):
    cands = node_map.candidates("Simple String Combine (WLSH)")
    assert [c.url for c in cands] == [
        "https://github.com/wallish77/wlsh_nodes",
        "https://github.com/chrisgoringe/cg-use-everywhere",
    ]
    assert "name pattern ranks after exact listings" in cands[1].reason


def test_ambiguous_type_is_ranked_deterministically_with_the_reason(node_map):
    cands = node_map.candidates("CLIPLoaderGGUF")
    assert cands[0].url == "https://github.com/city96/ComfyUI-GGUF"
    assert "2 packages claim it" in cands[0].reason and "precedence" in cands[0].reason
    assert "ranked lower" in cands[1].reason
    tie = node_map.candidates("OpenAI Image API")
    assert [c.url for c in tie] == [
        "https://github.com/cjj198909/comfy_openai_image_api_azure",
        "https://github.com/unicough/comfy_openai_image_api",
    ]
    assert "alphabetical" in tie[0].reason
    original = node_map.candidates("DeforumCacheLatentNode")
    assert original[0].url == "https://github.com/XmYx/deforum-comfy-nodes" and "its own" in original[0].reason


def test_comfyui_itself_is_never_a_candidate(node_map):
    assert node_map.is_core("PreviewAny") and node_map.candidates("PreviewAny") == []
    assert all("comfyanonymous/ComfyUI" not in c.url for c in node_map.candidates("KSampler"))


def test_registry_entries_give_install_ids_and_rank_first(map_bytes):
    data = json.loads(map_bytes)
    registry = [{"id": "comfyui-videohelpersuite", "repository": "https://github.com/Kosinkadink/ComfyUI-VideoHelperSuite.git"}]
    assert first(build_node_map(data, registry), "VHS_VideoCombine").package == "comfyui-videohelpersuite"
    registry = [{"id": "comfy-openai-image-api", "repository": "https://github.com/unicough/comfy_openai_image_api"}]
    c = first(build_node_map(data, registry), "OpenAI Image API")
    assert c.package == "comfy-openai-image-api" and "Comfy Registry" in c.reason


def test_malformed_map_entries_are_skipped():
    m = build_node_map(
        {"https://x.invalid/a": [["A"], {}], "bad": 5, "https://x.invalid/b": [[7, "B"], {"nodename_pattern": "("}]}
    )
    assert first(m, "A").url == "https://x.invalid/a" and first(m, "B").url == "https://x.invalid/b"
    with pytest.raises(ComfydockError):
        build_node_map([])


def test_saved_node_map_loads_back_the_same(node_map, tmp_path):
    path = tmp_path / "node_mappings.json"
    save_node_map(node_map, path, source="test")
    again = load_node_map(path)
    for t in ("ImageRemoveAlpha+", "CLIPLoaderGGUF", "Seed (rgthree)", "AILab_QwenVL"):
        assert again.candidates(t) == node_map.candidates(t)
    path.write_text("{not json")
    with pytest.raises(ComfydockError, match="cannot read the node map"):
        load_node_map(path)


# --- fetching it -------------------------------------------------------------------------------
class MapServer:
    """extension-node-map.json on 127.0.0.1; `mode` None, "500" or "not-json"; the first
    `unavailable` requests answer 503."""

    def __init__(self, body: bytes):
        self.body, self.mode, self.hits, self.unavailable = body, None, Counter(), 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits[self.path] += 1
                body = b"<html>oops</html>" if server.mode == "not-json" else server.body
                status = 500 if server.mode == "500" else 200
                if server.unavailable > 0:
                    server.unavailable -= 1
                    body, status = b"busy", 503
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/extension-node-map.json"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def map_server(map_bytes):
    server = MapServer(map_bytes)
    yield server
    server.close()


def test_node_map_is_fetched_once_then_served_from_the_cache(workspace, map_server):
    workspace.set_setting("node-map-url", map_server.url)
    m = fetch_node_map(workspace)
    assert first(m, "ImageRemoveAlpha+").url == "https://github.com/cubiq/ComfyUI_essentials"
    assert (workspace.node_cache_dir / "node_mappings.json").is_file()
    fetch_node_map(workspace)
    assert map_server.hits["/extension-node-map.json"] == 1
    fetch_node_map(workspace, ttl=0)  # expired: fetched again
    assert map_server.hits["/extension-node-map.json"] == 2


def test_node_map_is_fetched_when_the_server_recovers_from_503s(workspace, map_server):
    workspace.set_setting("node-map-url", map_server.url)
    map_server.unavailable = 2
    assert first(fetch_node_map(workspace), "ImageRemoveAlpha+") is not None
    assert map_server.hits["/extension-node-map.json"] == 3


def test_node_map_url_comes_from_the_environment_variable(workspace, map_server, monkeypatch):
    monkeypatch.setenv("COMFYDOCK_NODE_MAP_URL", map_server.url)
    assert first(fetch_node_map(workspace), "VHS_VideoCombine") is not None
    assert map_server.hits["/extension-node-map.json"] == 1


def test_an_unreachable_node_map_falls_back_to_the_expired_cache(workspace, map_server):
    workspace.set_setting("node-map-url", map_server.url)
    fetch_node_map(workspace)
    map_server.mode = "500"
    assert first(fetch_node_map(workspace, ttl=0), "ImageRemoveAlpha+") is not None


@pytest.mark.parametrize("mode, message", [("500", "answered HTTP 500"), ("not-json", "is not JSON")])
def test_a_bad_node_map_answer_without_a_cache_is_a_clear_error(workspace, map_server, mode, message):
    workspace.set_setting("node-map-url", map_server.url)
    map_server.mode = mode
    with pytest.raises(ComfydockError, match=message) as info:
        fetch_node_map(workspace)
    assert "node-map-url" in info.value.hint
    assert not (workspace.node_cache_dir / "node_mappings.json").exists()


# --- core and custom node types ----------------------------------------------------------------
def test_static_scan_of_the_fixture_comfyui_finds_nodes_py_and_comfy_extras(fixture_assets):
    assert static_core_types(fixture_assets["comfyui"]) == {"CheckpointLoaderSimple", "SaveImage", "FixtureLatentBlend"}


def test_static_scan_reads_every_registration_form(tmp_path):
    (tmp_path / "__init__.py").write_text(
        "from .more import *\n"
        "NODE_CLASS_MAPPINGS = {'Literal': A, **OTHER}\n"
        "NODE_CLASS_MAPPINGS['Assigned'] = B\n"
        "NODE_CLASS_MAPPINGS.update({'Updated': C})\n"
    )
    (tmp_path / "v3.py").write_text(
        "from comfy_api.latest import io\nclass N(io.ComfyNode):\n    def define_schema(cls):\n        return io.Schema(node_id='V3Node', inputs=[])\n"
    )
    (tmp_path / "broken.py").write_text("NODE_CLASS_MAPPINGS = {'Never': (\n")
    assert static_node_types(tmp_path) == {"Literal", "Assigned", "Updated", "V3Node"}


@pytest.fixture
def torch_stand_in(tmp_path, monkeypatch):
    """The fixture ComfyUI imports cdfix_alpha where the real one imports torch: make it importable."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "cdfix_alpha.py").write_text("__version__ = '1.0'\n")
    monkeypatch.setenv("PYTHONPATH", str(site))


def test_probe_asks_comfyui_itself_including_extra_nodes(fixture_assets, torch_stand_in):
    assert probe_core_types(Path(sys.executable), fixture_assets["comfyui"]) == {
        "CheckpointLoaderSimple",
        "SaveImage",
        "FixtureLatentBlend",
    }


def test_probe_without_the_packages_comfyui_needs_fails_with_a_reason(fixture_assets):
    with pytest.raises(ComfydockError, match="cdfix_alpha") as info:
        probe_core_types(Path(sys.executable), fixture_assets["comfyui"])
    assert "read from the source" in info.value.hint


def test_probe_of_a_custom_node_reports_only_its_types(fixture_assets, torch_stand_in, tmp_path):
    node = tmp_path / "custom_nodes" / "my-node"
    node.mkdir(parents=True)
    (node / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {'MyNode': object, 'MyOther': object}\n")
    assert probe_custom_node_types(Path(sys.executable), fixture_assets["comfyui"], node) == {"MyNode", "MyOther"}
    (node / "__init__.py").write_text("import not_installed_anywhere\nNODE_CLASS_MAPPINGS = {'MyNode': object}\n")
    # the import fails: its source is read instead
    assert probe_custom_node_types(Path(sys.executable), fixture_assets["comfyui"], node) == {"MyNode"}


# --- classification ----------------------------------------------------------------------------
def statuses(analysis, core, node_map, installed=None, version="0.3.64", choices=None):
    return {s.type: s for s in classify(analysis, core, installed or {}, node_map, version, choices)}


def comfy_core_types(analysis):
    return {u.type for u in analysis.node_types if u.cnr_id == "comfy-core"}


def test_rob_template_custom_nodes_are_missing_and_core_ones_are_not(node_map):
    a = analyze_file(CORPUS / "templates" / "template_rob_realistic_2k_images_quick_variations.json")
    s = statuses(a, comfy_core_types(a), node_map)
    alpha = s["ImageRemoveAlpha+"]
    assert (alpha.provider, alpha.package) == ("missing", "https://github.com/cubiq/ComfyUI_essentials")
    qwen = s["AILab_QwenVL"]
    assert (qwen.provider, qwen.package, qwen.candidates) == ("missing", None, [])
    assert "0.14.1" in qwen.reason  # the workflow came from a newer ComfyUI: said, not decided
    assert s["KSampler"].provider == "core"
    assert s["Note"].provider == "frontend"
    assert s["c19ae9b8-d43c-40d3-8ae7-eea7d345a587"].provider == "subgraph"
    # core in a newer ComfyUI (ComfyUI's own entry lists it), even though FizzNodes also claims it
    concat = s["StringConcatenate"]
    assert (concat.provider, concat.package, concat.candidates) == ("newer-comfyui", None, [])


def test_newer_core_types_need_a_newer_comfyui_never_a_package(node_map):
    a = analyze_file(CORPUS / "templates" / "basic_datatype_conversion.json")
    s = statuses(a, {"PrimitiveFloat", "PrimitiveInt", "PrimitiveStringMultiline"}, node_map)
    for t in ("ComfyMathExpression", "ComfyNumberConvert", "PreviewAny"):
        assert (s[t].provider, s[t].needs_comfyui, s[t].package) == ("newer-comfyui", "0.22.0", None)
    assert "0.22.0" in s["ComfyMathExpression"].reason


def test_installed_custom_node_provides_its_types(node_map):
    a = analyze_file(CORPUS / "custom-nodes" / "vhs_simple.json")
    s = statuses(a, set(), node_map, installed={"VHS_VideoCombine": "comfyui-videohelpersuite"})
    assert (s["VHS_VideoCombine"].provider, s["VHS_VideoCombine"].package) == ("installed", "comfyui-videohelpersuite")
    assert s["VHS_LoadVideo"].provider == "missing"
    assert s["VHS_LoadVideo"].package == "https://github.com/Kosinkadink/ComfyUI-VideoHelperSuite"


def test_a_stored_choice_wins_for_an_ambiguous_type(node_map):
    a = analyze_bytes(json.dumps({"nodes": [{"id": 1, "type": "OpenAI Image API"}]}).encode())
    default = statuses(a, set(), node_map)["OpenAI Image API"]
    assert default.package == "https://github.com/cjj198909/comfy_openai_image_api_azure"
    chosen = statuses(a, set(), node_map, choices={"OpenAI Image API": "https://github.com/unicough/comfy_openai_image_api"})
    st = chosen["OpenAI Image API"]
    assert st.package == "https://github.com/unicough/comfy_openai_image_api" and "your choice" in st.reason
    assert [c.url for c in st.candidates] == [
        "https://github.com/unicough/comfy_openai_image_api",
        "https://github.com/cjj198909/comfy_openai_image_api_azure",
    ]


def test_the_workflows_own_package_mark_ranks_first(node_map):
    node = {"id": 1, "type": "OpenAI Image API", "properties": {"aux_id": "unicough/comfy_openai_image_api"}}
    s = statuses(analyze_bytes(json.dumps({"nodes": [node]}).encode()), set(), node_map)["OpenAI Image API"]
    assert s.package == "https://github.com/unicough/comfy_openai_image_api" and "names its repository" in s.reason
    node = {"id": 1, "type": "SomethingNew", "properties": {"cnr_id": "comfyui-something", "ver": "1.2.0"}}
    s = statuses(analyze_bytes(json.dumps({"nodes": [node]}).encode()), set(), node_map)["SomethingNew"]
    assert (s.provider, s.package) == ("missing", "comfyui-something")


def test_without_a_node_map_a_missing_type_is_still_reported(node_map):
    a = analyze_file(CORPUS / "custom-nodes" / "vhs_simple.json")
    s = statuses(a, set(), None)
    assert s["VHS_VideoCombine"].provider == "missing" and s["VHS_VideoCombine"].package is None
    assert "no node map" in s["VHS_VideoCombine"].reason


# --- the core_node_types task ------------------------------------------------------------------
def test_core_node_types_task_probes_once_per_comfyui_commit_and_falls_back_to_static(env, run_cli):
    from comfydock.tasks.node_types import load_core_types

    def build():
        result = run_cli("build", "core_node_types", "--json")
        assert result.code == 0, result.err
        return {t["task"]: t["status"] for t in result.json["tasks"]}

    # create already asked ComfyUI once: the record is there and nothing needs to run again
    assert build() == {"core_node_types": "up-to-date"}
    record = load_core_types(env)
    repo = git.Repo(env.comfyui_dir)
    assert record["method"] == "probe" and record["comfyui_commit"] == repo.head.commit.hexsha
    assert record["types"] == ["CheckpointLoaderSimple", "FixtureLatentBlend", "SaveImage"]
    assert build() == {"core_node_types": "up-to-date"}

    # a new ComfyUI commit whose nodes.py cannot be imported (as without torch): the source is read
    nodes_py = env.comfyui_dir / "nodes.py"
    nodes_py.write_text("import torch_is_not_installed\n" + nodes_py.read_text())
    actor = git.Actor("Test", "test@example.invalid")
    repo.index.add(["nodes.py"])
    repo.index.commit("needs torch", author=actor, committer=actor)
    assert build() == {"core_node_types": "ran"}
    record = load_core_types(env)
    assert record["method"] == "static" and "torch_is_not_installed" in record["error"]
    assert record["types"] == ["CheckpointLoaderSimple", "FixtureLatentBlend", "SaveImage"]
    assert build() == {"core_node_types": "up-to-date"}
    # once the venv is synced again (torch may be there now) the probe is tried again
    stamp = env.venv_marker.stat().st_mtime + 10
    os.utime(env.venv_marker, (stamp, stamp))
    assert build() == {"core_node_types": "ran"}
