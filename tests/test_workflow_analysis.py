"""Workflow analysis on the real corpus (tests/data/corpus) and on hand-made edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfydock.workflows.analysis import (
    FRONTEND_TYPES,
    MODEL_LOADERS,
    WorkflowAnalysis,
    WorkflowError,
    analyze_bytes,
    analyze_file,
)

CORPUS = Path(__file__).resolve().parent / "data" / "corpus" / "workflows"
ALL_FILES = sorted(CORPUS.glob("*/*.json"))


def corpus(rel: str) -> WorkflowAnalysis:
    return analyze_file(CORPUS / rel)


def refs(analysis, **where):
    return [m for m in analysis.models if all(getattr(m, k) == v for k, v in where.items())]


def filenames(analysis) -> set[str]:
    return {m.filename for m in analysis.models}


def use(analysis, node_type):
    return next(u for u in analysis.node_types if u.type == node_type)


def test_corpus_copy_is_complete():
    assert len(ALL_FILES) == 40  # 33 templates + 6 custom-node workflows + 1 API graph


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_corpus_workflow_is_analysed_and_round_trips_through_json(path):
    analysis = analyze_file(path)
    assert analysis.node_types, "every corpus workflow has nodes"
    assert [u.type for u in analysis.node_types] == sorted(u.type for u in analysis.node_types)
    for u in analysis.node_types:
        if u.type in FRONTEND_TYPES:
            assert u.kind == "frontend"
    for m in analysis.models:
        assert m.filename and "://" not in m.filename
    again = WorkflowAnalysis.from_json(json.loads(json.dumps(analysis.to_json())))
    assert again == analysis
    assert analyze_file(path) == analysis  # deterministic


def test_sdxl_simple_names_the_base_checkpoint_with_its_download_url():
    a = corpus("templates/sdxl_simple_example.json")
    assert a.format == "ui"
    (base,) = refs(a, filename="sd_xl_base_1.0.safetensors")
    assert (base.node_id, base.node_type, base.widget_index) == ("4", "CheckpointLoaderSimple", 0)
    assert base.directory == "checkpoints"
    assert (
        base.url
        == "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors?download=true"
    )
    assert base.optional is False
    assert filenames(a) == {"sd_xl_base_1.0.safetensors", "sd_xl_refiner_1.0.safetensors"}
    assert a.comfyui_version == "0.3.33"


def test_chroma_vae_option_pixel_space_is_not_a_model():
    a = corpus("templates/image_chroma1_radiance_text_to_image.json")
    assert "pixel_space" not in filenames(a)
    assert use(a, "VAELoader").node_ids == ["762:710"]  # the loader is still a used node type
    assert filenames(a) == {"chroma-radiance-x0.safetensors", "t5xxl_fp8_e4m3fn_scaled.safetensors"}


def test_sdpose_stale_extra_prompt_models_are_ignored():
    a = corpus("templates/utility_sdpose_multi_person_video.json")
    names = filenames(a)
    assert "ltx-av-step-1751000_vocoder_24K.safetensors" not in names
    assert not any("gemma-3-12b-it-qat" in n for n in names)
    assert names == {"sdpose_wholebody_fp16.safetensors", "rt_detr_v4-x-hgnet_fp16.safetensors"}
    (ckpt,) = refs(a, node_type="CheckpointLoaderSimple")
    assert ckpt.node_id == "675:673" and ckpt.directory == "checkpoints"


def test_bypassed_loaders_in_instantx_inpainting_are_optional_but_listed():
    a = corpus("templates/image_qwen_image_instantx_inpainting_controlnet.json")
    bypassed = {m.node_id for m in a.models if m.optional}
    required = {m.node_id for m in a.models if not m.optional}
    assert bypassed == {"80", "174", "175", "177", "178", "185"}
    assert required == {"37", "38", "39", "84"}
    (cn,) = refs(a, node_id="177")
    assert (cn.node_type, cn.filename, cn.directory) == (
        "ControlNetLoader",
        "Qwen-Image-InstantX-ControlNet-Inpainting.safetensors",
        "controlnet",
    )
    assert cn.url.startswith("https://huggingface.co/")


def test_flux_depth_dual_clip_loader_names_two_files_inside_a_subgraph():
    a = corpus("templates/flux_depth_lora_example.json")
    dual = refs(a, node_type="DualCLIPLoader")
    assert [(m.node_id, m.widget_index, m.filename, m.directory) for m in dual] == [
        ("150:34", 0, "clip_l.safetensors", "text_encoders"),
        ("150:34", 1, "t5xxl_fp16.safetensors", "text_encoders"),
    ]
    assert all(m.url.startswith("https://huggingface.co/comfyanonymous/flux_text_encoders/") for m in dual)
    (lora,) = refs(a, node_type="LoraLoaderModelOnly")
    assert (lora.filename, lora.directory) == ("flux1-depth-dev-lora.safetensors", "loras")
    # a subgraph inside a subgraph: instance 150 holds instance 41 holding loader 87
    (lotus,) = refs(a, filename="lotus-depth-d-v1-1.safetensors")
    assert lotus.node_id == "150:41:87" and lotus.directory == "diffusion_models"
    subgraphs = {u.type for u in a.node_types if u.kind == "subgraph"}
    assert subgraphs == {"93bb962d-07fe-4a22-88e4-2df05e9caf80", "d4b3d2cf-e436-4abb-84b8-47133c37745a"}
    assert a.comfyui_version == "0.18.1"  # the newest comfy-core version that saved a node


def test_api_format_default_graph_names_checkpoints_by_input_name():
    a = corpus("api/default_graph_sdxl1_0.json")
    assert a.format == "api"
    assert [(m.node_id, m.widget_index, m.filename, m.directory, m.url) for m in a.models] == [
        ("4", "ckpt_name", "sd_xl_base_1.0.safetensors", "checkpoints", None),
        ("16", "ckpt_name", "sd_xl_refiner_1.0.safetensors", "checkpoints", None),
    ]
    assert {u.type for u in a.node_types} >= {"CheckpointLoaderSimple", "KSamplerAdvanced", "CLIPTextEncode", "SaveImage"}
    assert a.comfyui_version is None


def test_declared_sha256_hashes_are_kept():
    a = corpus("templates/hidream_e1_full.json")
    (unet,) = refs(a, node_type="UNETLoader")
    assert unet.declared_hash == "b645503c5d5d583a135d7e77c655237ebc6dc132d49d763759c1dd51683bd1dd"
    assert unet.hash_type == "SHA256"
    assert [m.widget_index for m in refs(a, node_type="QuadrupleCLIPLoader")] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "rel, node_type, folder",
    [
        ("templates/3d_hunyuan3d_multiview_to_model.json", "ImageOnlyCheckpointLoader", "checkpoints"),
        ("templates/flux_redux_model_example.json", "StyleModelLoader", "style_models"),
        ("templates/flux_redux_model_example.json", "CLIPVisionLoader", "clip_vision"),
        ("templates/utility-gan_upscaler.json", "UpscaleModelLoader", "upscale_models"),
        ("templates/video_wan2_1_infinitetalk.json", "AudioEncoderLoader", "audio_encoders"),
        ("templates/video_wan2_1_infinitetalk.json", "ModelPatchLoader", "model_patches"),
        ("templates/video_ltx2_i2v_lora.json", "LatentUpscaleModelLoader", "latent_upscale_models"),
        ("templates/image_anima_lllite_depth_control_to_image.json", "LoadDA3Model", "geometry_estimation"),
        ("templates/video_wan_vace_14B_t2v.json", "LoraLoader", "loras"),
    ],
)
def test_loaders_name_files_in_their_folder(rel, node_type, folder):
    found = refs(corpus(rel), node_type=node_type)
    assert found and all(m.directory == folder for m in found)


def test_loader_table_folder_is_used_when_the_workflow_declares_none(tmp_path):
    for node_type, entries in MODEL_LOADERS.items():
        data = {"nodes": [{"id": 1, "type": node_type, "mode": 0, "widgets_values": ["a.safetensors", "b.safetensors"]}]}
        a = analyze_bytes(json.dumps(data).encode())
        expected = {i: f for i, f in entries if isinstance(i, int)}
        assert {m.widget_index: m.directory for m in a.models} == {0: expected.get(0), 1: expected.get(1)}, node_type


def test_custom_node_widgets_with_subfolders_are_models_without_a_folder():
    a = corpus("custom-nodes/impact_detailer-pipe-test.json")
    found = {(m.node_type, m.filename, m.directory) for m in a.models}
    assert ("CheckpointLoaderSimple", "SD1.5/V07_v07.safetensors", "checkpoints") in found
    assert ("SAMLoader", "sam_vit_b_01ec64.pth", None) in found
    assert ("UltralyticsDetectorProvider", "bbox/face_yolov8m.pt", None) in found
    assert use(a, "## make-basic_pipe [2c8c61]").kind == "node"


def test_a_note_with_a_model_url_is_not_a_model_reference():
    a = corpus("custom-nodes/kjnodes_leapfusion_hunyuanvideo_i2v.json")
    assert use(a, "Note").kind == "frontend"
    assert not any("leapfusion_img2vid544p_comfy" in m.filename for m in a.models)
    (unet,) = refs(a, node_type="UNETLoader")
    assert unet.filename == "hyvideo\\hunyuan_video_720_fp8_e4m3fn.safetensors"  # as written in the workflow


def test_frontend_and_subgraph_kinds():
    a = corpus("templates/flux_redux_model_example.json")
    assert {u.type for u in a.node_types if u.kind == "frontend"} == {"MarkdownNote", "Note", "PrimitiveNode"}
    b = corpus("templates/template_rob_realistic_2k_images_quick_variations.json")
    assert use(b, "ImageRemoveAlpha+").kind == "node" and use(b, "ImageRemoveAlpha+").cnr_id is None
    assert use(b, "AILab_QwenVL").node_ids == ["126:96"]
    assert use(b, "c19ae9b8-d43c-40d3-8ae7-eea7d345a587").kind == "subgraph"
    assert use(b, "CLIPLoader").cnr_id == "comfy-core"


def test_custom_node_workflows_list_their_node_types():
    vhs = corpus("custom-nodes/vhs_simple.json")
    assert any(u.type.startswith("VHS_") for u in vhs.node_types)
    ess = corpus("custom-nodes/essentials_workflow_all_nodes.json")
    assert {"ImageResize+", "GetImageSize+", "MaskBlur+"} <= {u.type for u in ess.node_types}
    assert ess.models == []


def test_comfyui_version_from_legacy_node_versions():
    data = {"nodes": [{"id": 1, "type": "SaveImage", "mode": 0}], "extra": {"node_versions": {"comfy-core": "0.3.10"}}}
    assert analyze_bytes(json.dumps(data).encode()).comfyui_version == "0.3.10"
    a = corpus("templates/api_openai_image_1_t2i.json")
    assert a.comfyui_version == "0.34.0"
    assert (use(a, "OpenAIGPTImageNodeV2").cnr_id, use(a, "OpenAIGPTImageNodeV2").version) == ("comfy-core", "0.34.0")


# --- hand-made edge cases ------------------------------------------------------------------
def _wf(nodes, **extra) -> bytes:
    return json.dumps({"nodes": nodes, "links": [], **extra}).encode()


def test_widget_values_of_any_shape_are_read_without_error():
    node = {
        "id": 7,
        "type": "Power Lora Loader (rgthree)",
        "mode": 0,
        "widgets_values": [None, 3, 1.5, True, {"on": True, "lora": "style.safetensors"}, ["x", "sub/y.gguf"], "", "notes.txt"],
    }
    a = analyze_bytes(_wf([node]))
    assert [(m.widget_index, m.filename, m.directory) for m in a.models] == [
        ("4.lora", "style.safetensors", None),
        ("5.1", "sub/y.gguf", None),
    ]
    named = {"id": 8, "type": "VHS_LoadVideo", "mode": 0, "widgets_values": {"video": "a.mp4", "model": "m.pth", "n": None}}
    b = analyze_bytes(_wf([named]))
    assert [(m.widget_index, m.filename) for m in b.models] == [("model", "m.pth")]


def test_muted_node_and_bypassed_subgraph_make_optional_references():
    sub = {
        "id": "0f0f0f0f-0000-4000-8000-000000000001",
        "nodes": [{"id": 5, "type": "VAELoader", "mode": 0, "widgets_values": ["v.safetensors"]}],
    }
    nodes = [
        {"id": 1, "type": "CheckpointLoaderSimple", "mode": 2, "widgets_values": ["c.safetensors"]},
        {"id": 2, "type": sub["id"], "mode": 4, "widgets_values": []},
        {"id": 3, "type": sub["id"], "mode": 0, "widgets_values": []},
    ]
    a = analyze_bytes(_wf(nodes, definitions={"subgraphs": [sub]}))
    assert [(m.node_id, m.optional) for m in a.models] == [("1", True), ("2:5", True), ("3:5", False)]
    assert use(a, sub["id"]).node_ids == ["2", "3"] and use(a, sub["id"]).kind == "subgraph"
    assert use(a, "VAELoader").node_ids == ["2:5", "3:5"]


def test_subgraph_instance_value_not_named_inside_is_reported_on_the_instance():
    sub = {
        "id": "0f0f0f0f-0000-4000-8000-000000000002",
        "nodes": [{"id": 5, "type": "UNETLoader", "widgets_values": ["inner.safetensors"]}],
    }
    nodes = [{"id": 9, "type": sub["id"], "widgets_values": ["inner.safetensors", "edited.safetensors"]}]
    a = analyze_bytes(_wf(nodes, definitions={"subgraphs": [sub]}))
    assert [(m.node_id, m.widget_index, m.filename) for m in a.models] == [
        ("9", 1, "edited.safetensors"),
        ("9:5", 0, "inner.safetensors"),
    ]


def test_a_subgraph_that_contains_itself_does_not_loop():
    sid = "0f0f0f0f-0000-4000-8000-000000000003"
    sub = {
        "id": sid,
        "nodes": [{"id": 1, "type": sid}, {"id": 2, "type": "LoraLoader", "widgets_values": ["l.safetensors", 1, 1]}],
    }
    a = analyze_bytes(_wf([{"id": 4, "type": sid}], definitions={"subgraphs": [sub]}))
    assert [m.node_id for m in a.models] == ["4:2"]


def test_group_node_members_are_analysed():
    groups = {
        "my group": {
            "nodes": [
                {"index": 0, "type": "CheckpointLoaderSimple", "widgets_values": ["g.safetensors"]},
                {"index": 1, "type": "ImageRemoveAlpha+", "widgets_values": []},
            ]
        }
    }
    a = analyze_bytes(
        _wf(
            [{"id": 3, "type": "workflow>my group", "mode": 0, "widgets_values": ["g.safetensors"]}], extra={"groupNodes": groups}
        )
    )
    assert use(a, "workflow>my group").kind == "subgraph"
    assert use(a, "ImageRemoveAlpha+").node_ids == ["3:1"]
    assert [(m.node_id, m.filename, m.directory) for m in a.models] == [("3:0", "g.safetensors", "checkpoints")]


def test_top_level_models_declarations_give_url_and_folder():
    models = [{"name": "x.safetensors", "url": "https://example.invalid/x.safetensors", "directory": "loras"}]
    a = analyze_bytes(_wf([{"id": 1, "type": "SomeCustomLoader", "widgets_values": ["x.safetensors"]}], models=models))
    (m,) = a.models
    assert (m.url, m.directory) == ("https://example.invalid/x.safetensors", "loras")


def test_a_workflow_without_nodes_is_fine_and_empty():
    a = analyze_bytes(b'{"nodes": [], "links": []}')
    assert (a.node_types, a.models, a.comfyui_version) == ([], [], None)


@pytest.mark.parametrize(
    "content, why",
    [
        (b"this is not json", "not valid JSON"),
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"[]", "not a ComfyUI workflow"),
        (b"{}", "not a ComfyUI workflow"),
        (b'{"nodes": 5}', "'nodes' is not a list"),
        (b'{"nodes": [5]}', "a node is not an object"),
        (b'"text"', "not a ComfyUI workflow"),
        (b'{"1": {"class_type": "X"}, "2": 3}', "not a ComfyUI workflow"),
        (b"\x80\x81 binary", "not UTF-8 text"),
    ],
)
def test_malformed_workflows_raise_workflow_error_naming_the_file(content, why):
    with pytest.raises(WorkflowError) as info:
        analyze_bytes(content, "broken.json")
    assert "broken.json" in info.value.message and why in info.value.message
    assert info.value.hint


def test_truncated_real_workflow_is_a_workflow_error(tmp_path):
    data = (CORPUS / "templates" / "sdxl_simple_example.json").read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkflowError, match=r"cut\.json is not valid JSON"):
        analyze_file(path)


def test_missing_file_is_a_workflow_error(tmp_path):
    with pytest.raises(WorkflowError, match="cannot read"):
        analyze_file(tmp_path / "nope.json")


def test_nested_subgraph_instances_cannot_explode_the_analysis(monkeypatch):
    from comfydock.workflows import analysis

    monkeypatch.setattr(analysis, "_MAX_NODES", 5000)  # the real cap (50,000) only makes this slower
    # 8 levels of 10 instances each would be 10^8 nodes from a file of a few kilobytes
    ids = [f"0f0f0f0f-0000-4000-8000-{i:012d}" for i in range(8)]
    subgraphs = [{"id": ids[i], "nodes": [{"id": n, "type": ids[i + 1]} for n in range(10)]} for i in range(7)]
    subgraphs.append({"id": ids[7], "nodes": [{"id": 1, "type": "KSampler"}]})
    with pytest.raises(WorkflowError, match="expands to more than"):
        analyze_bytes(_wf([{"id": 1, "type": ids[0]}], definitions={"subgraphs": subgraphs}), "bomb.json")
