"""A Comfy Registry on 127.0.0.1 (tests, bench, demo): the real API's JSON shapes, zips from fixture nodes."""

from __future__ import annotations

import json
import time
from collections import Counter
from urllib.parse import parse_qs, unquote, urlparse

from comfydock.demo.loopback import serve


class FakeRegistry:
    """nodes: id -> {"repository": url, "versions": {version: zip bytes} (newest last), "deprecated":
    set of versions, "node_types": the class names each version provides (None: not listed),
    "info": fields of the /nodes/<id> answer to set (description, downloads, license...)}."""

    def __init__(self):
        self.nodes: dict[str, dict] = {}
        self.hits: Counter = Counter()
        # None, "500", "not-json", "truncate"; for downloads (/files/) also "endless" (a body with no
        # length that never ends) and "trickle" (one byte every trickle_delay seconds);
        # "trickle-answers" trickles the API's JSON answers instead
        self.mode: str | None = None
        self.trickle_delay = 0.5
        # path -> what to answer instead (a JSON value, or bytes sent as they are): a hostile
        # registry for one test, e.g. answers["/nodes/x"] = {**registry.node_obj("x"), "id": "../x"}
        self.answers: dict[str, object] = {}
        self.file_delay = 0.0  # seconds before each download answers (to measure parallel fetches)
        self.unavailable = 0  # the next this many requests (any path) answer 503, as an overloaded registry does
        self.retry_after: str | None = None  # the Retry-After header those 503s carry
        self.server = serve(self._handle, http11=False)  # HTTP/1.0: each answer closes (as the trickle tests need)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def add_node(
        self,
        node_id: str,
        versions: dict[str, bytes],
        repository: str | None = None,
        node_types: list[str] | None = None,
        **info,
    ):
        self.nodes[node_id] = {
            "repository": repository or f"https://github.com/fixture/{node_id}",
            "versions": dict(versions),
            "deprecated": set(),
            "node_types": node_types,
            "info": info,
        }

    # --- the API ---------------------------------------------------------------------------
    def _version_obj(self, node_id: str, version: str) -> dict:
        return {
            "id": f"{node_id}-{version}",
            "version": version,
            "changelog": "",
            "dependencies": [],
            "deprecated": version in self.nodes[node_id]["deprecated"],
            "downloadUrl": f"{self.url}/files/{node_id}/{version}.zip",
            "createdAt": f"2025-01-{1 + list(self.nodes[node_id]['versions']).index(version):02d}T00:00:00Z",
            "status": "NodeVersionStatusActive",
        }

    def node_obj(self, node_id: str) -> dict:
        """The /nodes/<id> answer this registry would give (to build a bad one from)."""
        return self._node_obj(node_id)

    def _node_obj(self, node_id: str) -> dict:
        node = self.nodes[node_id]
        latest = list(node["versions"])[-1]
        return {
            "id": node_id,
            "name": node_id.replace("-", " ").title(),
            "description": "a node for tests",
            "author": "fixture",
            "license": "MIT",
            "icon": "",
            "repository": node["repository"],
            "tags": [],
            "latest_version": self._version_obj(node_id, latest),
            "downloads": 0,
            "rating": 0,
            "publisher": {"id": "fixture", "name": "fixture"},
            "status": "NodeStatusActive",
            **node["info"],
        }

    def _find(self, node_id: str) -> str | None:
        return next((n for n in self.nodes if n.lower() == node_id.lower()), None)

    def _handle(self, req):
        parsed = urlparse(req.path)
        path = unquote(parsed.path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        self.hits[path] += 1
        if self.unavailable > 0:
            self.unavailable -= 1
            req.send_response(503)
            if self.retry_after is not None:
                req.send_header("Retry-After", self.retry_after)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        if self.mode == "trickle-answers" and not path.startswith("/files/"):
            node_id = self._find(path.split("/")[2]) if path.startswith("/nodes/") and path.count("/") >= 2 else None
            body = json.dumps(self._node_obj(node_id) if node_id else {"message": "not found"}).encode()
            return self._trickle(req, body)
        if path in self.answers:
            answer = self.answers[path]
            if isinstance(answer, bytes):
                return self._send(req, 200, answer, "application/zip")
            return self._json(req, answer)
        if self.mode == "500" and not path.startswith("/files/"):
            return self._send(req, 500, b"internal error", "text/plain")
        if self.mode == "not-json" and not path.startswith("/files/"):
            return self._send(req, 200, b"<html>login</html>", "text/html")
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["nodes", "search"]:
            q = query.get("search", "").lower()
            found = [self._node_obj(n) for n in self.nodes if self._matches(n, q)]
            return self._json(req, self._page(found, "nodes", query, total="total"))
        if parts[:1] == ["nodes"] and len(parts) >= 2:
            node_id = self._find(parts[1])
            if node_id is None:
                return self._json(req, {"message": "Node not found"}, 404)
            if len(parts) == 2:
                return self._json(req, self._node_obj(node_id))
            if parts[2] == "versions" and len(parts) == 5 and parts[4] == "comfy-nodes":
                if parts[3] not in self.nodes[node_id]["versions"]:
                    return self._json(req, {"error": "not found", "message": "version not found"}, 404)
                names = self.nodes[node_id]["node_types"] or []
                listed = [{"comfy_node_name": n, "category": "fixture", "deprecated": False} for n in names]
                return self._json(req, self._page(listed, "comfy_nodes", query))
            if parts[2] == "versions":
                return self._json(req, [self._version_obj(node_id, v) for v in reversed(self.nodes[node_id]["versions"])])
            if parts[2] == "install":
                version = query.get("version") or list(self.nodes[node_id]["versions"])[-1]
                if version not in self.nodes[node_id]["versions"]:
                    return self._json(req, {"message": "version not found"}, 404)
                return self._json(req, self._version_obj(node_id, version))
        if parts[:1] == ["files"] and len(parts) == 3:
            node_id, version = parts[1], parts[2].removesuffix(".zip")
            data = self.nodes.get(node_id, {}).get("versions", {}).get(version)
            if data is None:
                return self._send(req, 404, b"no such file", "text/plain")
            if self.file_delay:
                time.sleep(self.file_delay)
            if self.mode == "endless":
                req.send_response(200)
                req.send_header("Content-Type", "application/zip")
                req.end_headers()  # no length: the body ends when the connection does
                try:
                    while True:
                        req.wfile.write(bytes(1 << 16))
                except OSError:
                    return
            if self.mode == "trickle":
                return self._trickle(req, data)
            if self.mode == "truncate":
                req.send_response(200)
                req.send_header("Content-Type", "application/zip")
                req.send_header("Content-Length", str(len(data)))
                req.end_headers()
                req.wfile.write(data[: len(data) // 2])
                req.wfile.flush()
                req.close_connection = True
                return
            return self._send(req, 200, data, "application/zip")
        return self._json(req, {"message": "not found"}, 404)

    def _matches(self, node_id: str, q: str) -> bool:
        """What the real search (a full-text index) finds, roughly: the words in id, name or
        description, or a name close to the query's start (for 'did you mean')."""
        obj = self._node_obj(node_id)
        text = " ".join(str(obj.get(k) or "") for k in ("id", "name", "description")).lower()
        return q in text or q[:4] in node_id.lower() or node_id.lower()[:4] in q

    @staticmethod
    def _page(items: list, key: str, query: dict, total: str | None = None) -> dict:
        limit, page = max(1, int(query.get("limit", 10))), max(1, int(query.get("page", 1)))
        answer = {key: items[(page - 1) * limit : page * limit], "page": page, "limit": limit}
        answer["totalNumberOfPages" if total is None else "totalPages"] = -(-len(items) // limit)
        if total:
            answer[total] = len(items)
        return answer

    def _trickle(self, req, body: bytes):
        req.send_response(200)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        try:
            for i in range(len(body)):
                req.wfile.write(body[i : i + 1])
                req.wfile.flush()
                time.sleep(self.trickle_delay)
        except OSError:
            return

    def _json(self, req, obj, status=200):
        self._send(req, status, json.dumps(obj).encode(), "application/json")

    @staticmethod
    def _send(req, status, body: bytes, ctype: str):
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)
