"""A PEP 691 JSON simple index on 127.0.0.1 that gives each file an upload time (tests, bench).

uv's `exclude-newer` only means something against an index that says when each file was
uploaded (PyPI does; `find-links` directories and PyTorch's index do not). This one serves
wheels built by `fixtures.make_wheel` at /files/<filename> and lists them at /simple/<name>/ as
`application/vnd.pypi.simple.v1+json`, with `upload-time` per file (None: left out, as
indexes without upload times do).
"""

from __future__ import annotations

import hashlib
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from packaging.utils import canonicalize_name

from comfydock.demo.loopback import serve

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class PackageIndex:
    def __init__(self):
        self.files: dict[str, list[tuple[Path, str | None]]] = {}  # canonical name -> [(wheel, upload time)]
        self.server = serve(self._handle, head=True)

    @property
    def url(self) -> str:
        """The index URL for uv (`UV_DEFAULT_INDEX`, the `python-index` setting)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def add(self, wheel: Path, uploaded: str | None) -> None:
        """Serve `wheel` as uploaded at `uploaded` (RFC 3339, e.g. '2025-01-01T00:00:00Z'; None: no time)."""
        name = canonicalize_name(wheel.name.split("-")[0])
        self.files.setdefault(name, []).append((wheel, uploaded))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _project(self, name: str) -> dict | None:
        entries = self.files.get(canonicalize_name(name))
        if entries is None:
            return None
        files = []
        for wheel, uploaded in entries:
            entry = {
                "filename": wheel.name,
                "url": f"/files/{wheel.name}",
                "hashes": {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()},
            }
            if uploaded is not None:
                entry["upload-time"] = uploaded
            files.append(entry)
        versions = sorted({w.name.split("-")[1] for w, _ in entries})
        return {"meta": {"api-version": "1.1"}, "name": canonicalize_name(name), "versions": versions, "files": files}

    def _handle(self, req: BaseHTTPRequestHandler, head: bool = False) -> None:
        path = req.path.split("?", 1)[0]
        body, kind = None, "application/octet-stream"
        if path.startswith("/simple/"):
            project = self._project(path[len("/simple/") :].strip("/"))
            if project is not None:
                body, kind = json.dumps(project).encode(), JSON_TYPE
        elif path.startswith("/files/"):
            wanted = path[len("/files/") :]
            wheel = next((w for entries in self.files.values() for w, _ in entries if w.name == wanted), None)
            if wheel is not None:
                body = wheel.read_bytes()
        if body is None:
            req.send_response(404)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        req.send_response(200)
        req.send_header("Content-Type", kind)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if not head:
            req.wfile.write(body)
