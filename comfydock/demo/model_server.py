"""Model downloads and CivitAI/Hugging Face lookups on 127.0.0.1 (tests, bench, demo), with ways to misbehave.

Files are served with HTTP Range support at /files/<name>, at Hugging Face's /<repo>/resolve/<rev>/<path>
(HEAD and GET carry X-Linked-Etag/X-Linked-Size, as for an LFS file) and at CivitAI's
/api/download/models/<version id> (with Content-Disposition). The APIs answer their real JSON:
CivitAI's /api/v1/model-versions/by-hash/<sha256>, /api/v1/model-versions/<id>, /api/v1/models?query=,
Hugging Face's /api/models/<repo>[/revision/<rev>][?blobs=true] (siblings) and /api/models/<repo>/tree/<rev>. A behaviour set on a path (for the next N requests, or always) makes it misbehave:
  drop          send the headers and half the body, then close the connection (resume tests)
  wrong-bytes   serve the right length with different bytes (hash mismatch)
  401, 404, 500 answer that status
  html          answer 200 with a web page (a login or error page instead of the file)
  oversize      send the file and as much again, without Content-Length (a server that lies about the size)
  slow          wait `delay` seconds before each 64 KiB of body
  stall         wait `delay` seconds before answering at all
  ignore-range  answer 200 with the whole file even when asked for a Range
  redirect      302 to the same path on http://localhost:<port> (another host name: tokens must not follow)
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

from comfydock.demo.loopback import serve

_BODY_CHUNK = 64 << 10


class ModelServer:
    def __init__(self):
        self.files: dict[str, bytes | Path] = {}  # URL path -> content
        self.civitai: dict[str, dict | bytes] = {}  # sha256 -> model version JSON (bytes: sent as is)
        self.versions: dict[int, dict] = {}  # CivitAI model version id -> its JSON
        self.hf: dict[str, dict[str, tuple[str, bytes]]] = {}  # repo -> path -> (revision, bytes)
        self.dispositions: dict[str, str] = {}  # URL path -> Content-Disposition
        self.behaviours: dict[str, dict] = {}  # URL path -> {"mode", "times", "delay"}
        self.requests: list[dict] = []  # {"path", "headers"} of every request, in order
        self.hits: Counter = Counter()
        self.rate_limit: float | None = None  # bytes per second per response (a link of that speed)
        self._lock = threading.Lock()
        self.server = serve(self._handle, head=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- content -----------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes | Path) -> str:
        """Serve `data` at /files/<name>; returns its URL."""
        return self._add(f"/files/{name}", data)

    def add_hf_file(self, repo: str, revision: str, path: str, data: bytes | Path) -> str:
        if isinstance(data, bytes):
            self.hf.setdefault(repo, {})[path] = (revision, data)
        return self._add(f"/{repo}/resolve/{revision}/{path}", data)

    def add_civitai_file(
        self, version_id: int, name: str, data: bytes, model_name: str = "Fixture model", model_type: str = "Checkpoint"
    ) -> str:
        """Serve `data` as CivitAI model version `version_id`, findable by its SHA256, its id and its
        model's name; returns the download URL."""
        from blake3 import blake3

        url = self._add(f"/api/download/models/{version_id}", data)
        self.dispositions[f"/api/download/models/{version_id}"] = f'attachment; filename="{name}"'
        sha = hashlib.sha256(data).hexdigest()
        self.civitai[sha] = {
            "id": version_id,
            "modelId": version_id * 10,
            "name": "v1.0",
            "createdAt": "2025-01-01T00:00:00.000Z",
            "baseModel": "SD 1.5",
            "model": {"name": model_name, "type": model_type, "nsfw": False, "poi": False},
            "files": [
                {
                    "id": version_id * 100,
                    "sizeKB": len(data) / 1024,
                    "name": name,
                    "type": "Model",
                    "pickleScanResult": "Success",
                    "virusScanResult": "Success",
                    "metadata": {"fp": "fp16", "size": "pruned", "format": "SafeTensor"},
                    "hashes": {
                        "AutoV2": sha[:10].upper(),
                        "SHA256": sha.upper(),
                        "CRC32": "00000000",
                        "BLAKE3": blake3(data).hexdigest().upper(),
                    },
                    "primary": True,
                    "downloadUrl": url,
                }
            ],
            "images": [],
            "downloadUrl": url,
        }
        self.versions[version_id] = self.civitai[sha]
        return url

    def _add(self, path: str, data: bytes | Path) -> str:
        path = quote(path)
        self.files[unquote(path)] = data
        return self.url + path

    def misbehave(
        self, url_or_path: str, mode: str, times: int | None = None, delay: float = 0.05, target: str | None = None
    ) -> None:
        """Make a path misbehave for the next `times` requests (None: until told otherwise).

        `target`: where "redirect" points (default: the same path on http://localhost:<port>)."""
        path = unquote(urlparse(url_or_path).path)
        self.behaviours[path] = {"mode": mode, "times": times, "delay": delay, "target": target}

    def behave(self, url_or_path: str) -> None:
        self.behaviours.pop(unquote(urlparse(url_or_path).path), None)

    def _behaviour(self, path: str) -> dict | None:
        with self._lock:
            b = self.behaviours.get(path)
            if b is None:
                return None
            if b["times"] is not None:
                b["times"] -= 1
                if b["times"] <= 0:
                    del self.behaviours[path]
            return dict(b)

    # --- serving -----------------------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler, head: bool = False) -> None:
        parsed = urlparse(req.path)
        path = unquote(parsed.path)
        with self._lock:
            self.hits[path] += 1
            self.requests.append({"path": path, "headers": dict(req.headers.items()), "method": req.command})
        api = self._api(path, parse_qs(parsed.query))
        if api is not None:
            return self._send(req, 200 if api != 404 else 404, *_json(api if api != 404 else {"error": "Not found"}))
        prefix = "/api/v1/model-versions/by-hash/"
        if path.startswith(prefix) and (b := self._behaviour(path)) and b["mode"] in ("404", "500", "503"):
            return self._send(req, int(b["mode"]), f"HTTP {b['mode']} from the fixture".encode(), "text/plain")
        if path.startswith(prefix):
            found = self.civitai.get(path[len(prefix) :].lower())
            if found is None:
                return self._send(req, 404, json.dumps({"error": "Model not found"}).encode(), "application/json")
            if isinstance(found, bytes):  # a test's raw answer (not JSON)
                return self._send(req, 200, found, "text/html")
            return self._send(req, 200, json.dumps(found).encode(), "application/json")
        data = self.files.get(path)
        if data is None:
            return self._send(req, 404, b"Not Found", "text/plain")
        # a HEAD (a client asking for headers first) does not use up a behaviour meant for the download
        b = (self.behaviours.get(path) if head else self._behaviour(path)) or {"mode": None, "delay": 0}
        mode = b["mode"]
        if mode in ("401", "404", "500", "503"):
            return self._send(req, int(mode), f"HTTP {mode} from the fixture".encode(), "text/plain")
        if mode == "html":
            return self._send(req, 200, b"<!DOCTYPE html><html><body>Please log in</body></html>", "text/html; charset=utf-8")
        if mode == "redirect":
            req.send_response(302)
            req.send_header("Location", b.get("target") or f"http://localhost:{self.port}{quote(path)}")
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        if mode == "stall":
            time.sleep(b["delay"])
        size = data.stat().st_size if isinstance(data, Path) else len(data)
        start = 0
        end = size  # exclusive
        status = 200
        wanted = req.headers.get("Range")
        if wanted and mode != "ignore-range":
            try:
                unit, _, spec = wanted.partition("=")
                first, _, last = spec.partition("-")
                start = int(first)
                end = min(size, int(last) + 1) if last else size
                assert unit.strip() == "bytes"
            except (ValueError, AssertionError):
                return self._send(req, 400, b"bad Range", "text/plain")
            if start >= size:
                req.send_response(416)
                req.send_header("Content-Range", f"bytes */{size}")
                req.send_header("Content-Length", "0")
                req.end_headers()
                return
            status = 206
        req.send_response(status)
        req.send_header("Content-Type", "application/octet-stream")
        req.send_header("Accept-Ranges", "bytes")
        self._file_headers(req, path, data if isinstance(data, bytes) else None)
        if mode == "oversize":
            req.close_connection = True
            req.send_header("Connection", "close")
            data = (data.read_bytes() if isinstance(data, Path) else data) * 2
            start, end = 0, 2 * size
        else:
            req.send_header("Content-Length", str(end - start))
        if status == 206:
            req.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        req.end_headers()
        if head:
            return
        stop = end
        if mode == "drop":
            stop = start + (end - start) // 2
        try:
            if isinstance(data, Path) and mode not in ("wrong-bytes", "slow"):
                req.wfile.flush()
                with open(data, "rb") as f:
                    self._sendfile(req.connection, f, start, stop)
            else:
                body = data.read_bytes() if isinstance(data, Path) else data
                if mode == "wrong-bytes":
                    body = bytes(b ^ 0x5A for b in body)
                for offset in range(start, stop, _BODY_CHUNK):
                    if mode == "slow":
                        time.sleep(b["delay"])
                    req.wfile.write(body[offset : min(stop, offset + _BODY_CHUNK)])
            req.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            req.close_connection = True
            return
        if mode == "drop":
            req.close_connection = True
            try:
                req.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _sendfile(self, conn: socket.socket, f, start: int, stop: int) -> None:
        if not self.rate_limit:
            conn.sendfile(f, start, stop - start)
            return
        began = time.perf_counter()
        piece = 1 << 20
        for offset in range(start, stop, piece):
            conn.sendfile(f, offset, min(piece, stop - offset))
            due = began + (offset + piece - start) / self.rate_limit
            time.sleep(max(0.0, due - time.perf_counter()))

    def _file_headers(self, req, path: str, data: bytes | None) -> None:
        if path in self.dispositions:
            req.send_header("Content-Disposition", self.dispositions[path])
        if data is not None and "/resolve/" in path:  # what Hugging Face says of an LFS file
            req.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            req.send_header("X-Linked-Size", str(len(data)))

    def _api(self, path: str, query: dict):
        """The JSON of a CivitAI or Hugging Face API path (404: not found), or None: not an API path."""
        if m := re.fullmatch(r"/api/v1/model-versions/([0-9]+)", path):
            return self.versions.get(int(m.group(1)), 404)
        if path == "/api/v1/models":
            wanted = (query.get("query") or [""])[0].lower()
            items = {}
            for v in self.versions.values():
                files = v["files"] if isinstance(v["files"], list) else []  # a test's hostile version: by model name
                if wanted in v["model"]["name"].lower() or any(wanted in f["name"].lower() for f in files):
                    model = items.setdefault(v["modelId"], {"id": v["modelId"], **v["model"], "modelVersions": []})
                    model["modelVersions"].append({k: x for k, x in v.items() if k != "model"})
            return {"items": list(items.values()), "metadata": {"totalItems": len(items), "currentPage": 1, "pageSize": 20}}
        m = re.fullmatch(r"/api/models/(.+?)(?:/revision/([^/]+)|/tree/([^/]+))?", path)
        if not m:
            return None
        files = self.hf.get(m.group(1))
        if files is None:
            return 404
        if m.group(3) is not None:  # the tree listing
            return [
                {"type": "file", "oid": hashlib.sha1(d).hexdigest(), "size": len(d), "path": p,
                 "lfs": {"oid": hashlib.sha256(d).hexdigest(), "size": len(d), "pointerSize": 134}}
                for p, (_, d) in files.items()
            ]  # fmt: skip
        siblings = []
        for p, (_, d) in files.items():
            sibling = {"rfilename": p}
            if query.get("blobs") == ["true"]:
                lfs = {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d), "pointerSize": 134}
                sibling.update(blobId=hashlib.sha1(d).hexdigest(), size=len(d), lfs=lfs)
            siblings.append(sibling)
        repo = m.group(1)
        return {"_id": hashlib.md5(repo.encode()).hexdigest()[:24], "id": repo, "modelId": repo, "author": repo.split("/")[0],
                "sha": "0" * 40, "private": False, "gated": False, "disabled": False, "tags": [], "siblings": siblings}  # fmt: skip

    @staticmethod
    def _send(req, status: int, body: bytes, ctype: str) -> None:
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)


def _json(data) -> tuple[bytes, str]:
    return json.dumps(data).encode(), "application/json; charset=utf-8"


def write_model_file(path: Path, size: int, seed: int = 0) -> Path:
    """A file of `size` pseudo-random bytes (incompressible, reproducible), written in 16 MiB pieces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    piece = random.Random(seed).randbytes(16 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(piece))
            f.write(piece[:n])
            left -= n
    return path
