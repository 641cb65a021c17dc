"""`comfydock models download URL` against loopback Hugging Face / CivitAI servers: where files land,
verification, resume, tokens, and hostile answers (nothing partial under the final name, ever)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from comfydock.demo.model_server import ModelServer
from comfydock.errors import ComfydockError
from comfydock.model_download import download_model
from comfydock.model_sources import SourceFinder, find_sources

CORPUS = Path(__file__).parent / "data" / "corpus" / "workflows" / "templates"

HF_TOKEN = "hf_SECRET_token_value_123"
CIVITAI_TOKEN = "civitai_SECRET_key_456"


@pytest.fixture
def server(workspace_path, run_cli, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("CIVITAI_API_TOKEN", raising=False)
    with ModelServer() as s:
        for key in ("huggingface-url", "civitai-url"):
            assert run_cli("config", key, s.url).code == 0
        yield s


@pytest.fixture
def models(workspace):
    return workspace.models_dir


def files_under(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_huggingface_file_lands_in_its_folder_verified_indexed_with_its_source(server, run_cli, models):
    data = os.urandom(1 << 20)
    url = server.add_hf_file("Comfy-Org/flux", "main", "split_files/vae/ae.safetensors", data)
    r = run_cli("models", "download", url, "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert (out["path"], out["size"], out["sha256"]) == (
        str(models / "vae" / "ae.safetensors"),
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert (models / "vae" / "ae.safetensors").read_bytes() == data
    found = json.loads(run_cli("models", "find", "ae.safetensors", "--json").out)
    assert [s["url"] for s in found[0]["sources"]] == [url]
    assert found[0]["sources"][0]["type"] == "huggingface"


def test_civitai_download_takes_name_folder_and_hash_from_the_api_and_sends_the_token_only_there(server, run_cli, models):
    data = os.urandom(300_000)
    url = server.add_civitai_file(4242, "detail_tweaker.safetensors", data, model_name="Detail Tweaker", model_type="LORA")
    assert run_cli("config", "civitai-token", CIVITAI_TOKEN).code == 0
    r = run_cli("models", "download", url)
    assert r.code == 0, r.err
    assert (models / "loras" / "detail_tweaker.safetensors").read_bytes() == data
    asked = {q["path"]: q["headers"].get("Authorization") for q in server.requests}
    assert asked["/api/v1/model-versions/4242"] == asked["/api/download/models/4242"] == f"Bearer {CIVITAI_TOKEN}"
    assert CIVITAI_TOKEN not in r.out + r.err


def test_a_cut_download_is_continued_with_range(server, workspace, models):
    data = os.urandom(3 << 20)
    url = server.add_hf_file("org/repo", "main", "model.safetensors", data)
    server.misbehave(url, "drop", times=1)
    path = download_model(workspace, url, category="checkpoints")
    assert path.read_bytes() == data
    ranges = [
        q["headers"].get("Range") for q in server.requests if q["path"].endswith("model.safetensors") and q["method"] == "GET"
    ]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


def test_an_interrupted_download_leaves_only_the_part_file_and_the_rerun_continues_it(server, workspace, models):
    data = os.urandom(9 << 20)  # more than one read
    url = server.add_file("big.safetensors", data)

    def interrupt(done, total):
        if done < len(data):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_model(workspace, url, category="checkpoints", progress=interrupt)
    assert files_under(models) == ["checkpoints/big.safetensors.part"]
    kept = (models / "checkpoints" / "big.safetensors.part").stat().st_size
    assert 0 < kept < len(data)
    path = download_model(workspace, url, category="checkpoints", sha256=hashlib.sha256(data).hexdigest())
    assert path.read_bytes() == data and files_under(models) == ["checkpoints/big.safetensors"]
    assert server.requests[-1]["headers"]["Range"] == f"bytes={kept}-"


def test_a_redirect_to_another_host_does_not_carry_the_token(server, run_cli, models, monkeypatch):
    data = os.urandom(200_000)
    url = server.add_hf_file("org/gated", "main", "loras/x.safetensors", data)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    server.misbehave(url, "redirect", times=1)  # to http://localhost:<port>/…: another host name
    assert run_cli("models", "download", url).code == 0
    gets = [q for q in server.requests if q["path"].endswith("x.safetensors") and q["method"] == "GET"]
    assert [q["headers"]["Host"].split(":")[0] for q in gets] == ["127.0.0.1", "localhost"]
    assert gets[0]["headers"]["Authorization"] == f"Bearer {HF_TOKEN}" and "Authorization" not in gets[1]["headers"]
    assert (models / "loras" / "x.safetensors").read_bytes() == data


def test_a_file_larger_than_announced_is_refused_and_nothing_is_left(server, run_cli, models):
    url = server.add_hf_file("org/repo", "main", "vae/big.safetensors", os.urandom(100_000))
    server.misbehave(url, "oversize")  # X-Linked-Size says 100000, the body goes on without a length
    r = run_cli("models", "download", url)
    assert r.code == 1 and "more than the 100000 bytes announced" in r.err
    assert files_under(models) == []


@pytest.mark.parametrize("how", ["--sha256", "wrong-bytes"])
def test_bytes_that_do_not_match_the_hash_are_refused_and_deleted(server, run_cli, models, how):
    data = os.urandom(200_000)
    url = server.add_civitai_file(77, "model.safetensors", data)
    extra = ["--sha256", "ab" * 32] if how == "--sha256" else []
    if how == "wrong-bytes":
        server.misbehave(url, "wrong-bytes")  # CivitAI's own SHA256 catches it
    r = run_cli("models", "download", url, *extra)
    assert r.code == 1
    assert ("differs from the source's own" if extra else "SHA256 does not match") in r.err
    assert files_under(models) == []


@pytest.mark.parametrize("name", ["../escape.safetensors", "/etc/evil.safetensors", "bad\x1b[31m.safetensors", "a/b.safetensors"])
def test_a_file_name_that_is_not_a_plain_name_is_refused(server, run_cli, models, name):
    url = server.add_file("fine", b"x" * 1000)
    r = run_cli("models", "download", url, "--category", "checkpoints", "--name", name)
    assert r.code == 1 and "error:" in r.err and "--name" in r.err
    server.dispositions["/files/fine"] = f'attachment; filename="{name}"'  # the same from a server
    r = run_cli("models", "download", url, "--category", "checkpoints")
    assert r.code == 1 and "file name" in r.err and "\x1b" not in r.err
    assert files_under(models) == []


def test_a_category_that_leaves_the_models_folder_is_refused(server, run_cli, models):
    url = server.add_file("fine.safetensors", b"x" * 1000)
    r = run_cli("models", "download", url, "--category", "../outside")
    assert r.code == 2 and "outside" in r.err
    assert not (models.parent / "outside").exists()


def test_a_web_page_instead_of_the_file_is_refused(server, run_cli, models):
    url = server.add_file("page.safetensors", b"x" * 1000)
    server.misbehave(url, "html")
    r = run_cli("models", "download", url, "--category", "checkpoints")
    assert r.code == 1 and "sent a web page, not a model file" in r.err
    assert files_under(models) == []


@pytest.mark.parametrize("site,variable", [("huggingface", "HF_TOKEN"), ("civitai", "CIVITAI_API_TOKEN")])
def test_http_401_names_the_token_variable(server, run_cli, models, site, variable):
    if site == "huggingface":
        url = server.add_hf_file("org/private", "main", "m.safetensors", b"x" * 1000)
    else:
        url = server.add_civitai_file(5, "m.safetensors", b"x" * 1000)
    server.misbehave(url, "401")
    r = run_cli("models", "download", url, "--category", "checkpoints")
    assert r.code == 1 and "HTTP 401" in r.err and variable in r.err.split("hint:")[1]
    assert files_under(models) == []


def test_tokens_are_never_shown_or_logged(server, run_cli, workspace_path):
    assert run_cli("config", "hf-token", HF_TOKEN).code == 0
    listing = run_cli("config").out + run_cli("config", "--json").out + run_cli("config", "hf-token").out
    assert HF_TOKEN not in listing and "hf-token = ***" in listing
    url = server.add_hf_file("org/private", "main", "m.safetensors", b"x" * 1000)
    server.misbehave(url, "500")
    r = run_cli("models", "download", url + "?token=" + HF_TOKEN, "--category", "checkpoints")
    assert r.code == 2 and HF_TOKEN not in r.err  # a token in the URL is refused, and not echoed
    r = run_cli("models", "download", url, "--category", "checkpoints")
    assert r.code == 1
    logs = "".join(p.read_text(errors="replace") for p in (workspace_path / "logs").rglob("*") if p.is_file())
    assert "HTTP 500" in logs and HF_TOKEN not in logs + r.err


def test_no_models_directory_is_one_error(server, run_cli, workspace_path):
    assert run_cli("config", "models-dir", "--unset").code == 0
    r = run_cli("models", "download", server.add_file("m.safetensors", b"x"), "--category", "checkpoints")
    assert r.code == 1 and "models-dir" in r.err


def test_the_domain_function_refuses_an_existing_file(server, workspace, models):
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / "m.safetensors").write_bytes(b"mine")
    url = server.add_file("m.safetensors", b"theirs")
    with pytest.raises(ComfydockError, match="already exists"):
        download_model(workspace, url, category="checkpoints")
    assert (models / "checkpoints" / "m.safetensors").read_bytes() == b"mine"


# --- finding sources -------------------------------------------------------------------------


def test_civitai_finds_a_file_by_hash_and_by_name_and_drops_a_name_with_another_hash(server, workspace):
    data = os.urandom(50_000)
    url = server.add_civitai_file(11, "dreamshaper_8.safetensors", data, model_name="DreamShaper")
    sha = hashlib.sha256(data).hexdigest()
    by_name = find_sources(workspace, "sub/dreamshaper_8.safetensors")
    assert [(s.kind, s.url, s.sha256, s.found_by) for s in by_name] == [("civitai", url, sha, "name")]
    assert [s.found_by for s in find_sources(workspace, "dreamshaper_8.safetensors", sha256=sha)] == ["hash"]
    assert find_sources(workspace, "dreamshaper_8.safetensors", sha256="0" * 64) == []
    assert find_sources(workspace, "other.safetensors") == []


def test_hugging_face_is_searched_in_the_repositories_the_workflow_points_to(server, workspace):
    data = os.urandom(40_000)
    server.add_hf_file("stabilityai/sdxl", "main", "sd_xl_base_1.0.safetensors", os.urandom(10))
    wanted = server.add_hf_file("stabilityai/sdxl", "main", "vae/sdxl_vae.safetensors", data)
    hint = f"{server.url}/stabilityai/sdxl/resolve/main/sd_xl_base_1.0.safetensors?download=true"
    found = find_sources(workspace, "sdxl_vae.safetensors", hint_urls=[hint, "https://example.com/x"])
    assert [(s.kind, s.url, s.sha256, s.size) for s in found] == [
        ("huggingface", wanted, hashlib.sha256(data).hexdigest(), len(data))
    ]


def test_answers_are_cached_until_the_ttl_and_a_damaged_cache_is_ignored(server, workspace, monkeypatch):
    server.add_hf_file("org/repo", "main", "a.safetensors", b"a" * 100)
    hint = [f"{server.url}/org/repo"]

    def asked():
        return sum(1 for q in server.requests if q["path"].startswith("/api/"))

    find_sources(workspace, "a.safetensors", hint_urls=hint)
    before = asked()
    assert len(find_sources(workspace, "a.safetensors", hint_urls=hint)) == 1 and asked() == before
    (workspace.api_cache_dir / "model_sources.json").write_text("{not json")
    assert len(find_sources(workspace, "a.safetensors", hint_urls=hint)) == 1 and asked() == before + 2
    monkeypatch.setenv("COMFYDOCK_API_CACHE_TTL", "0.000001")
    find_sources(workspace, "a.safetensors", hint_urls=hint)
    assert asked() == before + 4


def test_a_service_without_an_answer_is_one_warning_and_the_others_still_answer(server, workspace, run_cli):
    assert run_cli("config", "civitai-url", "http://127.0.0.1:9").code == 0
    server.add_hf_file("org/repo", "main", "a.safetensors", b"a" * 100)
    from comfydock.workspace import Workspace

    warnings = []
    finder = SourceFinder(Workspace.open(workspace.root), warnings.append)
    assert len(finder.find("a.safetensors", hint_urls=[f"{server.url}/org/repo"])) == 1
    assert finder.find("b.safetensors") == []
    assert warnings == ["CivitAI lookup at http://127.0.0.1:9 failed: could not connect"]


@pytest.mark.slow
def test_models_resolve_offers_the_sources_it_finds_and_the_download_resolves_the_model(env, server, run_cli, workspace):
    text = (CORPUS / "sdxl_refiner_prompt_example.json").read_text().replace("https://huggingface.co", server.url)
    (env.workflows_dir / "sdxl.json").write_text(text)
    base = server.add_hf_file(
        "stabilityai/stable-diffusion-xl-base-1.0", "main", "sd_xl_base_1.0.safetensors", os.urandom(30_000)
    )
    r = run_cli("models", "resolve", "sdxl", "--no-interactive")
    assert r.code == 0, r.err
    assert f"found on huggingface: comfydock models download {base} --category checkpoints" in r.out
    rows = run_cli("models", "resolve", "sdxl", "--no-interactive", "--json").json
    base_row = next(m for m in rows if m["filename"] == "sd_xl_base_1.0.safetensors")
    assert [s["url"] for s in base_row["sources"]] == [base]
    refiner = next(m for m in rows if m["filename"] == "sd_xl_refiner_1.0.safetensors")
    assert refiner["sources"] == []  # its repository does not exist on this server
    assert run_cli("models", "download", base, "--category", "checkpoints").code == 0
    rows = run_cli("models", "resolve", "sdxl", "--no-interactive", "--json", "--no-lookup").json
    assert next(m for m in rows if m["filename"] == "sd_xl_base_1.0.safetensors")["status"] == "resolved"


@pytest.mark.slow
def test_export_finds_a_model_by_name_and_hash_in_a_repository_a_workflow_points_to(env, server, run_cli, workspace, tmp_path):
    from comfydock.demo.model_server import write_model_file

    data = write_model_file(workspace.models_dir / "checkpoints" / "demo_model.safetensors", 20_000, seed=5).read_bytes()
    wanted = server.add_hf_file("org/demo", "main", "demo_model.safetensors", data)
    declared = server.add_hf_file("org/demo", "main", "vae/other_vae.safetensors", b"v" * 100)
    other = {
        "nodes": [
            {"id": 1, "type": "VAELoader", "widgets_values": ["other_vae.safetensors"],
             "properties": {"models": [{"name": "other_vae.safetensors", "url": declared, "directory": "vae"}]}},
        ],
        "links": [],
    }  # fmt: skip
    (env.workflows_dir / "other.json").write_text(json.dumps(other))
    assert run_cli("models", "download", declared).code == 0
    assert run_cli("models", "index").code == 0
    assert run_cli("commit", "-m", "two workflows", "--no-interactive").code == 0
    r = run_cli("export", "--no-interactive", "--json", "--output", tmp_path / "b.tar.gz")
    assert r.code == 0, r.err
    urls = {m["path"]: m.get("url") for m in r.json["models"]}
    assert urls["checkpoints/demo_model.safetensors"] == wanted


def test_hostile_answers_are_skipped_or_one_warning(server, workspace):
    server.add_hf_file("org/repo", "main", "fine.safetensors", b"f" * 10)
    server.hf["org/repo"]["../../evil.safetensors"] = ("main", b"x")  # a path that leaves the repository
    server.versions[99] = {"id": 99, "modelId": 1, "model": {"name": "evil", "type": "LORA"}, "files": "not a list"}
    warnings = []
    found = find_sources(workspace, "evil.safetensors", hint_urls=[f"{server.url}/org/repo"], warn=warnings.append)
    assert found == []
    assert warnings == [f"CivitAI lookup at {server.url} answered something that is not a model version"]
    cache = workspace.api_cache_dir / "model_sources.json"
    data = json.loads(cache.read_text())
    for entry in data.values():
        entry["rows"] = [{"kind": 1, "url": None, "filename": [], "sha256": 5, "size": "x"}]
    cache.write_text(json.dumps(data))  # a damaged cache is asked again, never trusted
    assert [s.filename for s in find_sources(workspace, "fine.safetensors", hint_urls=[f"{server.url}/org/repo"])] == [
        "fine.safetensors"
    ]


def test_without_civitai_metadata_the_name_comes_from_content_disposition(server, run_cli, models):
    data = os.urandom(10_000)
    url = server.add_civitai_file(8, "from_header_lora.safetensors", data)
    del server.versions[8]  # the version API does not know it: 404
    r = run_cli("models", "download", url, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["path"] == str(models / "loras" / "from_header_lora.safetensors")  # folder from the name


def test_a_file_whose_folder_cannot_be_told_asks_for_category(server, run_cli, models):
    url = server.add_file("mystery.safetensors", b"m" * 100)
    r = run_cli("models", "download", url)
    assert r.code == 1 and "--category" in r.err
    assert files_under(models) == []
