"""Every HTTP client retries what is safe to retry (comfydock.http): loopback servers that answer
503 a few times, then properly."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from comfydock import http
from comfydock.bundle.sources import civitai_lookup
from comfydock.demo.fixtures import node_zip_bytes
from comfydock.demo.model_server import ModelServer
from comfydock.demo.registry_server import FakeRegistry
from comfydock.errors import ComfydockError
from comfydock.registry import RegistryClient, RegistryError


@pytest.fixture
def registry():
    reg = FakeRegistry()
    reg.add_node("comfyui-plain", {"0.1.0": node_zip_bytes("plain", "")})
    yield reg
    reg.close()


def test_registry_lookup_succeeds_after_two_503s(registry):
    registry.unavailable = 2
    assert RegistryClient(registry.url).node("comfyui-plain")["id"] == "comfyui-plain"
    assert registry.hits["/nodes/comfyui-plain"] == 3


def test_node_zip_download_succeeds_after_a_503(registry, tmp_path):
    url = RegistryClient(registry.url).install_info("comfyui-plain", None)["downloadUrl"]
    registry.unavailable = 1
    size = RegistryClient(registry.url).download(url, tmp_path / "plain.zip")
    assert (tmp_path / "plain.zip").read_bytes() == registry.nodes["comfyui-plain"]["versions"]["0.1.0"] and size > 0


def test_a_registry_that_stays_unavailable_is_reported_after_the_retries(registry):
    registry.unavailable = 100
    with pytest.raises(RegistryError, match="answered 503"):
        RegistryClient(registry.url).node("comfyui-plain")
    assert registry.hits["/nodes/comfyui-plain"] == 1 + http.RETRIES


def test_retry_after_is_honoured(registry):
    registry.unavailable, registry.retry_after = 1, "1"
    began = time.monotonic()
    assert RegistryClient(registry.url).node("comfyui-plain")["id"] == "comfyui-plain"
    assert time.monotonic() - began >= 0.9  # the server asked for a second; the backoff alone is 0.01 s in tests


def test_a_huge_retry_after_is_capped(registry):
    class Answer:
        headers = {"Retry-After": "86400"}

    assert http.retry_policy().get_retry_after(Answer()) == http.RETRY_AFTER_MAX


def test_civitai_lookup_succeeds_after_503s():
    with ModelServer() as server:
        data = os.urandom(100)
        url = server.add_civitai_file(4384, "sd15.safetensors", data)
        sha = hashlib.sha256(data).hexdigest()
        server.misbehave(f"/api/v1/model-versions/by-hash/{sha}", "503", times=2)
        assert civitai_lookup(sha, server.url) == [url]
        server.misbehave(f"/api/v1/model-versions/by-hash/{sha}", "503")
        with pytest.raises(ComfydockError, match="HTTP 503"):
            civitai_lookup(sha, server.url)


def test_a_refused_connection_fails_at_once_but_a_dropped_one_is_retried(monkeypatch):
    import socket
    import threading
    import time

    monkeypatch.setenv("COMFYDOCK_HTTP_BACKOFF", "2")  # a retry would make this test wait seconds
    with socket.socket() as s:  # a port nobody listens on: an offline machine, a wrong port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(RegistryError, match="cannot reach the Comfy Registry"):
        RegistryClient(f"http://127.0.0.1:{port}").node("comfyui-plain")
    assert time.monotonic() - start < 1.5

    monkeypatch.setenv("COMFYDOCK_HTTP_BACKOFF", "0.01")
    accepts = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def hang_up():  # accepts and closes at once, every time
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepts.append(1)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        with pytest.raises(RegistryError):
            RegistryClient(f"http://127.0.0.1:{server.getsockname()[1]}").node("comfyui-plain")
    finally:
        server.close()
    assert len(accepts) == 1 + 3  # the first try and COMFYDOCK_HTTP_RETRIES' default 3


def test_a_server_trickling_its_headers_is_cut_at_the_deadline_without_retries():
    """The deadline covers the whole request: a status line sent a byte at a time is not waited out."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepts = []

    def trickle(conn):
        try:
            conn.recv(1000)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                conn.send(bytes([byte]))
                time.sleep(0.3)
        except OSError:
            pass

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepts.append(1)
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        with pytest.raises(http.DownloadTooSlow, match="took longer than 1.5 s"):
            with http.bounded_get(
                http.make_session(), f"http://127.0.0.1:{server.getsockname()[1]}/", max_bytes=100, seconds=1.5, what="it"
            ) as answer:
                answer.read()
    finally:
        server.close()
    assert len(accepts) == 1  # past the deadline nothing is retried


def test_a_node_archive_larger_than_the_cap_is_refused_from_its_content_length(registry, tmp_path):
    client = RegistryClient(registry.url, max_bytes=100)
    url = client.install_info("comfyui-plain", None)["downloadUrl"]
    with pytest.raises(http.DownloadTooLarge, match="larger than 100 bytes") as info:
        client.download(url, tmp_path / "plain.zip")
    assert "archive-max-bytes" in info.value.hint


def test_a_civitai_answer_nested_too_deep_is_refused_not_a_crash():
    with ModelServer() as server:
        sha = hashlib.sha256(b"m").hexdigest()
        server.civitai[sha] = b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        with pytest.raises(http.BadAnswer, match="more than 64 deep"):
            civitai_lookup(sha, server.url)


def test_json_depth_ignores_brackets_inside_strings_and_is_linear_on_unterminated_ones():
    assert http.json_depth(b'{"a": [1, {"b": "[[[[\\"]]"}]}') == 3
    assert http.loads_json(b'{"a": "[[["}', "it", "hint") == {"a": "[[["}
    assert http.json_depth(b'"' + b'\\"' * 100_000 + b"[[") == 0  # one unterminated string to the end
    with pytest.raises(http.BadAnswer, match="is not JSON"):
        http.loads_json(b"<html>", "it", "hint")
