"""Model downloads from a loopback server: verified, resumed, retried; tokens never leak. CivitAI/HF sources."""

from __future__ import annotations

import hashlib
import logging
import os
from urllib.parse import unquote, urlsplit

import pytest
from blake3 import blake3

from comfydock.bundle.download import download, download_model, make_session, part_path, tokens_from_env
from comfydock.bundle.sources import civitai_lookup, huggingface_url, parse_huggingface_url, redact_url
from comfydock.demo.model_server import ModelServer
from comfydock.errors import ComfydockError

TOKEN = "hf_SECRET_token_value_123"


@pytest.fixture(scope="module")
def server():
    with ModelServer() as s:
        yield s


@pytest.fixture
def model(server, request):
    data = os.urandom(3 << 20)
    url = server.add_file(f"{request.node.name}.safetensors", data)
    yield {
        "url": url,
        "data": data,
        "sha256": hashlib.sha256(data).hexdigest(),
        "blake3": blake3(data).hexdigest(),
        "size": len(data),
    }
    server.behave(url)


def fetch(model, dest, **kw):
    kw.setdefault("backoff", 0)
    return download(model["url"], dest, sha256=model["sha256"], blake3=model["blake3"], size=model["size"], **kw)


def requests_to(server, url):
    path = unquote(urlsplit(url).path)
    return [r for r in server.requests if r["path"] == path]


def test_download_verifies_and_moves_the_file_into_place(model, tmp_path):
    seen = []
    result = fetch(model, tmp_path / "checkpoints" / "m.safetensors", progress=lambda done, total: seen.append((done, total)))
    assert (tmp_path / "checkpoints" / "m.safetensors").read_bytes() == model["data"]
    assert not part_path(tmp_path / "checkpoints" / "m.safetensors").exists()
    assert (result.size, result.resumed_from, result.requests) == (model["size"], 0, 1)
    assert seen[-1] == (model["size"], model["size"])


def test_dropped_connection_is_resumed_with_range(server, model, tmp_path):
    server.misbehave(model["url"], "drop", times=1)
    result = fetch(model, tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").read_bytes() == model["data"]
    assert result.requests == 2
    second = requests_to(server, model["url"])[-1]["headers"]
    assert second["Range"] == f"bytes={model['size'] // 2}-"


def test_rerun_continues_the_partial_file_of_an_interrupted_download(server, model, tmp_path):
    dest = tmp_path / "m.safetensors"
    server.misbehave(model["url"], "drop")
    with pytest.raises(ComfydockError, match="the connection dropped") as err:
        fetch(model, dest, attempts=1)
    assert "continues where it stopped" in err.value.hint
    kept = part_path(dest).stat().st_size
    assert model["size"] // 2 <= kept < model["size"] and not dest.exists()
    server.behave(model["url"])
    result = fetch(model, dest)
    assert result.resumed_from == kept and result.requests == 1
    assert dest.read_bytes() == model["data"]


def test_server_that_ignores_range_restarts_the_file(server, model, tmp_path):
    dest = tmp_path / "m.safetensors"
    part_path(dest).write_bytes(model["data"][:1000])
    server.misbehave(model["url"], "ignore-range")
    fetch(model, dest)
    assert dest.read_bytes() == model["data"]


def test_wrong_bytes_fail_naming_the_file_and_delete_the_partial(server, model, tmp_path):
    dest = tmp_path / "m.safetensors"
    server.misbehave(model["url"], "wrong-bytes")
    with pytest.raises(ComfydockError, match=r"m\.safetensors: SHA256 does not match") as err:
        fetch(model, dest)
    assert "deleted" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_corrupt_partial_file_fails_verification_and_is_deleted(model, tmp_path):
    dest = tmp_path / "m.safetensors"
    part_path(dest).write_bytes(b"\0" * 1000)  # not what the server has
    with pytest.raises(ComfydockError, match="does not match"):
        fetch(model, dest)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status, hint", [("404", "no longer at that address"), ("500", "run the same command again")])
def test_http_errors_are_one_clear_line(server, model, tmp_path, status, hint):
    server.misbehave(model["url"], status)
    before = len(requests_to(server, model["url"]))
    with pytest.raises(ComfydockError) as err:
        fetch(model, tmp_path / "m.safetensors", session=make_session(retries=2, backoff=0))
    assert f"download of m.safetensors from {model['url']} failed: HTTP {status}" == err.value.message
    assert hint in err.value.hint
    made = len(requests_to(server, model["url"])) - before
    assert made == (3 if status == "500" else 1)  # 5xx retried, 404 not
    assert list(tmp_path.iterdir()) == []  # no file, no empty .part


def test_a_passing_server_error_is_retried(server, model, tmp_path):
    server.misbehave(model["url"], "500", times=2)
    fetch(model, tmp_path / "m.safetensors", session=make_session(retries=3, backoff=0))
    assert (tmp_path / "m.safetensors").read_bytes() == model["data"]


def test_stalled_server_times_out_and_keeps_nothing_half_done(server, model, tmp_path):
    server.misbehave(model["url"], "stall", delay=1.0)
    with pytest.raises(ComfydockError, match="timed out"):
        fetch(model, tmp_path / "m.safetensors", timeout=(2, 0.3), attempts=1, session=make_session(retries=0))
    assert not (tmp_path / "m.safetensors").exists()


def test_redirect_to_a_local_file_is_a_clear_error(server, model, tmp_path):
    server.misbehave(model["url"], "redirect", target="file:///etc/passwd")
    with pytest.raises(ComfydockError, match="download of m.safetensors from .* failed"):
        fetch(model, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_existing_file_is_never_overwritten(model, tmp_path):
    (tmp_path / "m.safetensors").write_bytes(b"mine")
    with pytest.raises(ComfydockError, match="already exists"):
        fetch(model, tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").read_bytes() == b"mine"


def test_token_goes_to_its_host_only_and_never_into_messages_or_logs(server, model, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    tokens = tokens_from_env(huggingface_url=server.url, environ={"HF_TOKEN": TOKEN})
    fetch(model, tmp_path / "a.safetensors", tokens=tokens)
    assert requests_to(server, model["url"])[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"

    server.misbehave(model["url"], "404")
    with pytest.raises(ComfydockError) as err:
        fetch(model, tmp_path / "b.safetensors", tokens=tokens)
    assert TOKEN not in err.value.message + (err.value.hint or "")
    assert TOKEN not in caplog.text

    # A redirect to another host (localhost instead of 127.0.0.1) does not carry the token along.
    server.misbehave(model["url"], "redirect", times=1)
    fetch(model, tmp_path / "c.safetensors", tokens=tokens)
    last = server.requests[-1]
    assert last["headers"]["Host"].startswith("localhost") and "Authorization" not in last["headers"]
    assert TOKEN not in caplog.text


def test_token_for_another_host_is_not_sent(server, model, tmp_path):
    tokens = tokens_from_env(civitai_url="https://civitai.com", environ={"CIVITAI_API_TOKEN": TOKEN})
    fetch(model, tmp_path / "m.safetensors", tokens=tokens)
    assert "Authorization" not in requests_to(server, model["url"])[-1]["headers"]


def test_url_with_a_token_in_its_query_is_refused_without_echoing_it(tmp_path):
    with pytest.raises(ComfydockError) as err:
        download("https://civitai.com/api/download/models/1?token=s3cret", tmp_path / "m", sha256="a" * 64, blake3=None, size=1)
    assert "s3cret" not in err.value.message
    assert redact_url("https://u:p@h.example/x?token=s3cret&type=Model") == "https://h.example/x?token=***&type=Model"


def test_file_url_is_copied_and_verified(model, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(model["data"])
    out = tmp_path / "out" / "m.bin"
    with pytest.raises(ComfydockError, match="scheme 'file'"):  # a bundle's URL: http(s) only
        download(src.as_uri(), out, sha256=model["sha256"], blake3=model["blake3"], size=model["size"])
    download(src.as_uri(), out, sha256=model["sha256"], blake3=model["blake3"], size=model["size"], schemes=("file",))
    assert out.read_bytes() == model["data"]


# --- sources ---------------------------------------------------------------------------------


def test_civitai_lookup_finds_download_urls_by_sha256(server):
    data = os.urandom(1000)
    url = server.add_civitai_file(4384, "sd15.safetensors", data)
    assert civitai_lookup(hashlib.sha256(data).hexdigest(), server.url) == [url]
    assert civitai_lookup("0" * 64, server.url) is None


def test_civitai_answer_pointing_elsewhere_is_ignored(server):
    data = os.urandom(1000)
    sha = hashlib.sha256(data).hexdigest()
    server.add_civitai_file(77, "x.safetensors", data)
    server.civitai[sha]["files"][0]["downloadUrl"] = "https://evil.example/payload"
    server.civitai[sha]["files"].append({"hashes": {"SHA256": sha}, "downloadUrl": "file:///etc/passwd"})
    assert civitai_lookup(sha, server.url) is None


def test_civitai_without_an_answer_is_unavailable_but_a_garbage_answer_is_refused():
    from comfydock.bundle.sources import LookupUnavailable

    with ModelServer() as s:
        base = s.url
    with pytest.raises(LookupUnavailable, match="CivitAI lookup at .* failed: could not connect"):
        civitai_lookup("0" * 64, base)
    with ModelServer() as s:
        s.misbehave(f"/api/v1/model-versions/by-hash/{'2' * 64}", "503")  # an outage, after the retries
        with pytest.raises(LookupUnavailable, match="failed: HTTP 503"):
            civitai_lookup("2" * 64, s.url)
        s.civitai["1" * 64] = b"<html>Just a moment...</html>"  # a CDN challenge page instead of JSON
        with pytest.raises(ComfydockError, match="not JSON") as refused:
            civitai_lookup("1" * 64, s.url)
        assert not isinstance(refused.value, LookupUnavailable)


def test_huggingface_urls_round_trip_and_refuse_escapes():
    url = huggingface_url("stabilityai/sd-vae", "vae/diffusion model.safetensors", "refs/pr/1")
    assert url == "https://huggingface.co/stabilityai/sd-vae/resolve/refs%2Fpr%2F1/vae/diffusion%20model.safetensors"
    assert parse_huggingface_url(url) == ("stabilityai/sd-vae", "refs/pr/1", "vae/diffusion model.safetensors")
    assert parse_huggingface_url("https://huggingface.co/gpt2/blob/main/model.safetensors") == (
        "gpt2",
        "main",
        "model.safetensors",
    )
    assert parse_huggingface_url("https://example.com/a/b/resolve/main/x") is None
    with pytest.raises(ComfydockError):
        huggingface_url("a/b", "../../etc/passwd")
    with pytest.raises(ComfydockError):
        huggingface_url("../b", "x")


def test_huggingface_file_downloads_from_its_resolve_url(server, tmp_path):
    data = b"weights" * 1000
    url = server.add_hf_file("owner/repo", "main", "unet/model.safetensors", data)
    assert parse_huggingface_url(url, server.url) == ("owner/repo", "main", "unet/model.safetensors")
    download(url, tmp_path / "m", sha256=hashlib.sha256(data).hexdigest(), blake3=None, size=len(data))
    assert (tmp_path / "m").read_bytes() == data


def test_lookup_hosts_are_settings_and_tokens_follow_them(tmp_path, run_cli, monkeypatch):
    from comfydock.workspace import Workspace

    run_cli("init", tmp_path / "ws", "--no-interactive")
    ws = Workspace.open(tmp_path / "ws")
    assert (ws.setting("civitai-url"), ws.setting("huggingface-url")) == ("https://civitai.com", "https://huggingface.co")
    assert run_cli("--workspace", tmp_path / "ws", "config", "civitai-url", "http://127.0.0.1:9").code == 0
    monkeypatch.setenv("COMFYDOCK_HUGGINGFACE_URL", "http://127.0.0.1:8")
    ws = Workspace.open(tmp_path / "ws")
    tokens = tokens_from_env(
        ws.setting("civitai-url"), ws.setting("huggingface-url"), {"CIVITAI_API_TOKEN": "c", "HF_TOKEN": "h"}
    )
    assert tokens == {"127.0.0.1:9": "c", "127.0.0.1:8": "h"}


def test_second_download_of_the_same_file_waits_its_turn(model, tmp_path):
    import fcntl

    dest = tmp_path / "m.safetensors"
    with open(part_path(dest), "ab") as held:  # another process downloading it right now
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(ComfydockError, match="being downloaded by another process"):
            fetch(model, dest)
    fetch(model, dest)
    assert dest.read_bytes() == model["data"]


def test_model_download_falls_back_to_its_next_url(server, model, tmp_path):
    from comfydock.bundle.lockfile import LockedModel

    broken = server.add_file("gone.safetensors", b"")
    server.misbehave(broken, "404")
    locked = LockedModel(
        "0123456789abcdef",
        "m.safetensors",
        "checkpoints/m.safetensors",
        model["sha256"],
        model["blake3"],
        model["size"],
        urls=(broken, model["url"]),
    )
    result = download_model(locked, tmp_path / "models", backoff=0)
    assert result.path == tmp_path / "models" / "checkpoints" / "m.safetensors"
    assert result.path.read_bytes() == model["data"]


def test_model_download_names_every_failed_source(server, model, tmp_path):
    from comfydock.bundle.lockfile import LockedModel

    server.misbehave(model["url"], "wrong-bytes")
    gone = server.add_file("gone2.safetensors", b"")
    server.misbehave(gone, "404")
    locked = LockedModel(
        "0123456789abcdef",
        "m.safetensors",
        "m.safetensors",
        model["sha256"],
        model["blake3"],
        model["size"],
        urls=(model["url"], gone),
    )
    with pytest.raises(ComfydockError, match=r"model m\.safetensors: all 2 sources failed \(.*SHA256 does not match.*HTTP 404"):
        download_model(locked, tmp_path / "models", backoff=0)
    assert list((tmp_path / "models").iterdir()) == []


def test_model_path_through_a_symlink_out_of_the_models_dir_is_refused(model, tmp_path):
    from comfydock.bundle.lockfile import LockedModel
    from comfydock.errors import CorruptFile

    (tmp_path / "models").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "models" / "loras").symlink_to(tmp_path / "elsewhere")
    locked = LockedModel(
        "0123456789abcdef",
        "m.safetensors",
        "loras/m.safetensors",
        model["sha256"],
        model["blake3"],
        model["size"],
        urls=(model["url"],),
    )
    with pytest.raises(CorruptFile, match="outside"):
        download_model(locked, tmp_path / "models")
    assert list((tmp_path / "elsewhere").iterdir()) == []
