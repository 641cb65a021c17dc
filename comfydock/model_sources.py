"""Where a model file can be downloaded: CivitAI by SHA256 and by file name (its models search), and
Hugging Face by file name inside the repositories a workflow's model URLs point to.

Answers are cached in the workspace's API cache (`model_sources.json`, $COMFYDOCK_API_CACHE_TTL);
a service that gives no answer is reported through `warn` and the others are still asked.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from urllib.parse import quote, urlsplit

from comfydock.bundle.sources import (
    civitai_files,
    get_json,
    host_key,
    huggingface_url,
    parse_huggingface_url,
    same_host,
    url_problem,
)
from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json

CACHE_FILE = "model_sources.json"


@dataclass(frozen=True)
class Source:
    kind: str  # civitai | huggingface
    url: str
    filename: str
    sha256: str | None
    size: int | None  # bytes (CivitAI's: at most)
    found_by: str  # hash | name

    def to_json(self) -> dict:
        return asdict(self)


def find_sources(workspace, filename: str, *, sha256: str | None = None, hint_urls=(), warn=None) -> list[Source]:
    """Download sources for `filename` (a base name; a workflow's sub/path is reduced to it): CivitAI's
    files with this SHA256, then files of that name on CivitAI and in the Hugging Face repositories
    `hint_urls` name. A file whose known SHA256 differs from `sha256` is left out."""
    return SourceFinder(workspace, warn).find(filename, sha256=sha256, hint_urls=hint_urls)


class SourceFinder:
    """find_sources for many files in one command: a service that gave no answer is not asked again
    (offline: one warning, not one wait per model)."""

    def __init__(self, workspace, warn=None, *, strict: bool = False):
        """`strict`: an answer that is not valid (not a lookup without an answer) raises instead of warning."""
        from comfydock.bundle.download import workspace_tokens

        self.civitai, self.hf = workspace.setting("civitai-url"), workspace.setting("huggingface-url")
        tokens = workspace_tokens(workspace)
        self.civitai_token, self.hf_token = tokens.get(host_key(self.civitai)), tokens.get(host_key(self.hf))
        self.cache = _Cache(workspace.api_cache_dir / CACHE_FILE)
        self.warn, self.strict = warn, strict
        self.unavailable: set[str] = set()  # hosts that gave no answer

    def find(self, filename: str, *, sha256: str | None = None, hint_urls=(), by_hash: bool = True) -> list[Source]:
        name = PurePosixPath(filename.replace("\\", "/")).name
        sha256 = sha256.lower() if sha256 else None
        if not name:
            return []
        civitai, hf = self.civitai, self.hf
        asks = []
        if by_hash and sha256 and len(sha256) == 64:
            path = f"/api/v1/model-versions/by-hash/{sha256}"
            asks.append(("hash", civitai, f"civitai {civitai} {path}", lambda: _civitai(path, civitai, self.civitai_token)))
        params = {"query": PurePosixPath(name).stem, "limit": "20"}
        asks.append(
            (
                "name",
                civitai,
                f"civitai {civitai} ?{params['query']}",
                lambda: _civitai("/api/v1/models", civitai, self.civitai_token, params),
            )
        )
        for repo, rev in huggingface_repos(hint_urls, hf):
            asks.append(("name", hf, f"hf {hf} {repo}@{rev}", lambda r=repo, v=rev: _hf_files(r, v, hf, self.hf_token)))
        found: dict[str, Source] = {}
        for how, service, key, ask in asks:
            rows = self._answer(service, key, ask)
            for row in rows:
                source = Source(**row, found_by=how)
                if url_problem(source.url) is not None or (how == "name" and source.filename.lower() != name.lower()):
                    continue
                if (sha256 and source.sha256 and source.sha256 != sha256) or (how == "hash" and source.sha256 != sha256):
                    continue  # another file (of the same model version, or of the same name)
                found.setdefault(source.url, source)
        return list(found.values())

    def _answer(self, service: str, key: str, ask) -> list[dict]:
        from comfydock.bundle.sources import LookupUnavailable

        rows = self.cache.get(key)
        if rows is not None or host_key(service) in self.unavailable:
            return rows or []
        try:
            rows = ask()
        except ComfydockError as e:
            if isinstance(e, LookupUnavailable):
                self.unavailable.add(host_key(service))
            elif self.strict:
                raise
            if self.warn:
                self.warn(e.message)
            return []
        self.cache.put(key, rows)
        return rows


def huggingface_repos(urls, base_url: str) -> list[tuple[str, str]]:
    """(repo, revision) of every Hugging Face URL in `urls`: file URLs and repository pages."""
    repos = []
    for url in urls:
        if not isinstance(url, str) or url_problem(url) is not None or not same_host(url, base_url):
            continue
        parsed = parse_huggingface_url(url, base_url)
        if parsed is not None:
            repo, revision = parsed[0], parsed[1]
        else:
            parts = [p for p in urlsplit(url).path.split("/") if p]
            if len(parts) < 2 or parts[0] in ("api", "datasets", "spaces"):
                continue
            repo = "/".join(parts[:2])
            revision = parts[3] if len(parts) > 3 and parts[2] == "tree" else "main"
        if (repo, revision) not in repos:
            repos.append((repo, revision))
    return repos


def _civitai(path: str, base: str, token: str | None, params: dict | None = None) -> list[dict]:
    files = civitai_files(path, base, params=params, token=token) or []
    return [{"kind": "civitai", "url": f.url, "filename": f.name, "sha256": f.sha256, "size": f.size} for f in files]


def _hf_files(repo: str, revision: str, base: str, token: str | None) -> list[dict]:
    """The files of a Hugging Face model repository at `revision`, from its API (siblings, with blobs)."""
    api = f"{base.rstrip('/')}/api/models/{repo}/revision/{quote(revision, safe='')}"
    data = get_json(api, "Hugging Face lookup", "huggingface-url", token=token, token_var="HF_TOKEN", params={"blobs": "true"})
    if data is None:
        return []
    siblings = data.get("siblings") if isinstance(data, dict) else None
    if not isinstance(siblings, list):
        raise ComfydockError(f"Hugging Face lookup of {repo} answered something that is not a repository")
    rows = []
    for s in siblings:
        path = s.get("rfilename") if isinstance(s, dict) else None
        if not isinstance(path, str):
            continue
        try:
            url = huggingface_url(repo, path, revision, base)
        except ComfydockError:
            continue  # a path that would leave the repository
        lfs = s.get("lfs") if isinstance(s.get("lfs"), dict) else {}
        sha = lfs.get("sha256") if isinstance(lfs.get("sha256"), str) and len(lfs["sha256"]) == 64 else None
        size = s.get("size") if isinstance(s.get("size"), int) and not isinstance(s.get("size"), bool) else None
        rows.append({"kind": "huggingface", "url": url, "filename": PurePosixPath(path).name, "sha256": sha, "size": size})
    return rows


class _Cache:
    """Answers by key, each with the time it came; expired ones are asked again (and dropped on write)."""

    def __init__(self, path):
        from comfydock.limits import seconds_from_env
        from comfydock.registry import DEFAULT_TTL

        self.path, self.ttl = path, seconds_from_env("COMFYDOCK_API_CACHE_TTL", DEFAULT_TTL)

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError, RecursionError):
            return {}  # missing or damaged: only a cache
        now = time.time()
        fresh = {}
        for k, v in data.items() if isinstance(data, dict) else ():
            if isinstance(v, dict) and isinstance(v.get("at"), (int, float)) and now - v["at"] < self.ttl:
                if isinstance(v.get("rows"), list) and all(_valid_row(r) for r in v["rows"]):
                    fresh[k] = v
        return fresh

    def get(self, key: str) -> list[dict] | None:
        entry = self._load().get(key)
        return entry["rows"] if entry else None

    def put(self, key: str, rows: list[dict]) -> None:
        data = self._load()
        data[key] = {"at": time.time(), "rows": rows}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, data)


def _valid_row(row) -> bool:
    """A cached row as _civitai/_hf_files write it (the cache file may be damaged or edited)."""
    if not isinstance(row, dict) or set(row) != {"kind", "url", "filename", "sha256", "size"}:
        return False
    texts = all(isinstance(row[k], str) for k in ("kind", "url", "filename"))
    return texts and isinstance(row["sha256"], (str, type(None))) and isinstance(row["size"], (int, type(None)))
