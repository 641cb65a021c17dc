"""The Comfy Registry HTTP API (api.comfy.org by default), with an expiring response cache."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json
from comfydock.limits import seconds_from_env

DEFAULT_TTL = 4 * 3600  # seconds; $COMFYDOCK_API_CACHE_TTL overrides
_TIMEOUT = 30


class RegistryError(ComfydockError):
    pass


class NodeNotFound(RegistryError):
    pass


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        cache_file: Path | None = None,
        ttl: float | None = None,
        *,
        max_bytes: int | None = None,
        seconds: float | None = None,
        refresh: bool = False,
    ):
        """`max_bytes`: the largest node archive downloaded (archive-max-bytes); `seconds`: how long
        one download may take (download-timeout; an answer gets at most http.ANSWER_DEADLINE_MAX)."""
        from comfydock.limits import DOWNLOAD_SECONDS, ArchiveLimits

        self.base_url = base_url.rstrip("/")
        self.max_bytes = ArchiveLimits().max_bytes if max_bytes is None else max_bytes
        self.seconds = DOWNLOAD_SECONDS if seconds is None else seconds
        self.cache_file = cache_file
        self.ttl = seconds_from_env("COMFYDOCK_API_CACHE_TTL", DEFAULT_TTL) if ttl is None else ttl
        self.refresh = refresh  # answers are asked again (and cached anew), never read from the cache
        self._session = None

    @property
    def session(self):
        if self._session is None:
            from comfydock.http import make_session  # requests only when the registry is really asked

            self._session = make_session()
        return self._session

    # --- cache ----------------------------------------------------------------------------
    def _cache_load(self) -> dict:
        if self.cache_file is None or not self.cache_file.exists():
            return {}
        try:
            data = json.loads(self.cache_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError, RecursionError):
            return {}  # a damaged cache is only a cache: start over

    def _cache_get(self, key: str):
        if self.refresh:
            return None
        entry = self._cache_load().get(key)
        if isinstance(entry, dict) and isinstance(entry.get("at"), (int, float)) and time.time() - entry["at"] < self.ttl:
            return entry.get("value")
        return None  # missing, expired or damaged: ask again

    def _cache_put(self, key: str, value) -> None:
        if self.cache_file is None:
            return
        data = self._cache_load()
        now = time.time()
        data = {
            k: v
            for k, v in data.items()
            if isinstance(v, dict) and isinstance(v.get("at"), (int, float)) and now - v["at"] < self.ttl
        }
        data[key] = {"at": now, "value": value}
        atomic_write_json(self.cache_file, data)

    # --- requests -------------------------------------------------------------------------
    def _get(self, path: str, params: dict | None = None, *, cache: bool = True, not_found=None):
        key = path + ("?" + "&".join(f"{k}={v}" for k, v in sorted(params.items())) if params else "")
        if cache:
            hit = self._cache_get(key)
            if hit is not None:
                return hit
        import requests  # only when the registry is really asked (~0.15 s)

        from comfydock import http

        url = self.base_url + path
        try:
            with http.bounded_get(
                self.session,
                url,
                params=params,
                timeout=_TIMEOUT,
                max_bytes=http.ANSWER_MAX_BYTES,
                seconds=min(self.seconds, http.ANSWER_DEADLINE_MAX),
                what=f"the Comfy Registry's answer for {path}",
                too_large_hint=f"is {self.base_url} really a Comfy Registry API? check 'comfydock config registry-url'",
            ) as resp:
                status = resp.status_code
                body = resp.read() if status == 200 else b""
        except requests.RequestException as exc:
            raise RegistryError(
                f"cannot reach the Comfy Registry at {self.base_url} ({type(exc).__name__})",
                hint="check your network, or point 'comfydock config registry-url' / $COMFYDOCK_REGISTRY_URL elsewhere",
            ) from None
        if status == 404 and not_found is not None:
            raise not_found()
        if status != 200:
            raise RegistryError(
                f"the Comfy Registry at {self.base_url} answered {status} for {path}",
                hint="try again later; the registry may be having trouble",
            )
        value = http.loads_json(
            body,
            f"the Comfy Registry at {self.base_url}'s answer for {path}",
            hint=f"nothing was installed; is {self.base_url} really a Comfy Registry API? check 'comfydock config registry-url'",
        )
        if cache:
            self._cache_put(key, value)
        return value

    def bad_answer(self, what: str) -> RegistryError:
        """The error for an answer that breaks the API's rules (nothing is installed from it)."""
        return RegistryError(
            f"the Comfy Registry at {self.base_url} sent {what}",
            hint="nothing was installed; if this persists, report it to the registry (or check 'comfydock config registry-url')",
        )

    def node(self, node_id: str) -> dict:
        def missing():
            suggestions = self.suggest(node_id)
            hint = (
                f"did you mean: {', '.join(suggestions)}?" if suggestions else "find its id with 'comfydock node search WORDS'"
            )
            return NodeNotFound(f"no node {node_id!r} in the Comfy Registry", hint=hint)

        data = self._get(f"/nodes/{quote(node_id)}", not_found=missing)
        if not isinstance(data, dict) or "id" not in data:
            raise self.bad_answer(f"an unexpected answer for node {node_id!r}")
        return data

    def versions(self, node_id: str) -> list[dict]:
        data = self._get(f"/nodes/{quote(node_id)}/versions")
        if isinstance(data, dict):  # some deployments wrap lists
            data = data.get("versions", [])
        if not isinstance(data, list):
            raise self.bad_answer(f"{type(data).__name__} {str(data)[:40]!r} instead of a list of versions of {node_id!r}")
        return [v for v in data if isinstance(v, dict) and isinstance(v.get("version"), str)]

    def install_info(self, node_id: str, version: str | None) -> dict:
        """The version to install, with its downloadUrl. Counts as an install on the registry side."""
        params = {"version": version} if version else None
        data = self._get(
            f"/nodes/{quote(node_id)}/install",
            params,
            cache=False,
            not_found=lambda: NodeNotFound(
                f"node {node_id!r} has no version {version!r} in the Comfy Registry",
                hint="see the node's versions on its page at https://registry.comfy.org",
            ),
        )
        if not isinstance(data, dict) or not data.get("downloadUrl"):
            raise self.bad_answer(f"no download URL for {node_id} {version or ''}".strip())
        url = data["downloadUrl"]
        if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
            raise self.bad_answer(f"a download URL that is not http(s) for {node_id}: {str(url)[:60]!r}")
        if version is not None and data.get("version") not in (None, version):
            raise self.bad_answer(f"version {str(data.get('version'))[:40]!r} when asked for {node_id} {version}")
        return data

    def search(self, query: str, limit: int = 10) -> list[dict]:
        """The registry's nodes matching `query` (GET /nodes/search), at most `limit`."""
        data = self._get("/nodes/search", {"search": query, "limit": limit})
        nodes = data.get("nodes") if isinstance(data, dict) else None
        if not isinstance(nodes, list):
            raise self.bad_answer(f"a search answer without a list of nodes for {query[:40]!r}")
        return [n for n in nodes if isinstance(n, dict) and isinstance(n.get("id"), str) and n["id"]][:limit]

    def suggest(self, query: str, limit: int = 5) -> list[str]:
        try:
            return [n["id"] for n in self.search(query, limit)]
        except RegistryError:
            return []

    def comfy_nodes(self, node_id: str, version: str, max_pages: int = 20) -> list[str] | None:
        """The node types (ComfyUI class names) the registry lists for one version, or None when it
        lists none (GET /nodes/{id}/versions/{v}/comfy-nodes, paged)."""
        names: list[str] = []
        path = f"/nodes/{quote(node_id)}/versions/{quote(version)}/comfy-nodes"
        for page in range(1, max_pages + 1):
            try:
                data = self._get(path, {"page": page, "limit": 100}, not_found=lambda: NodeNotFound("not listed"))
            except NodeNotFound:
                return names or None  # an unknown version, or a registry without this endpoint
            listed = data.get("comfy_nodes") if isinstance(data, dict) else None
            if not isinstance(listed, list):
                raise self.bad_answer(f"a node-type list that is not a list for {node_id} {version}")
            for item in listed:
                # comfy_node_name in today's API, comfy_node_id in older deployments
                name = item.get("comfy_node_name") or item.get("comfy_node_id") if isinstance(item, dict) else None
                if isinstance(name, str) and name:
                    names.append(name)
            pages = data.get("totalNumberOfPages")
            if not listed or not isinstance(pages, int) or page >= pages:
                break
        return names or None

    def download(self, url: str, dest: Path) -> int:
        """Stream `url` to `dest`, at most max_bytes within `seconds`; a cut-off transfer is an error,
        never a short file (the caller removes `dest` on any error)."""
        import requests

        from comfydock import http

        try:
            with http.bounded_get(
                self.session,
                url,
                timeout=_TIMEOUT,
                max_bytes=self.max_bytes,
                seconds=self.seconds,
                what=f"the node archive at {url}",
                too_large_hint="if you trust it, raise the limit with 'comfydock config archive-max-bytes N'",
            ) as resp:
                if resp.status_code != 200:
                    raise RegistryError(f"download of {url} failed with HTTP {resp.status_code}", hint="try again later")
                expected = resp.headers.get("Content-Length")
                got = resp.save(dest)
        except requests.RequestException as exc:
            raise RegistryError(
                f"download of {url} was interrupted ({type(exc).__name__})", hint="run the command again to retry"
            ) from None
        if expected is not None and got != int(expected):
            raise RegistryError(
                f"download of {url} was cut off ({got} of {expected} bytes)", hint="run the command again to retry"
            )
        return got


def newest_usable_version(versions: list[dict]) -> str | None:
    """The newest version one may move to: not deprecated, not banned or deleted."""
    from comfydock.pep440 import newest

    return newest(
        v["version"]
        for v in versions
        if v.get("deprecated") is not True and not any(word in str(v.get("status") or "") for word in ("Banned", "Deleted"))
    )
