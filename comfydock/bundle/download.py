"""Model downloads: streamed to `<file>.part`, resumed with HTTP Range, verified (SHA256 and Blake3) before
they are moved into place.

A rerun after a network cut or Ctrl-C continues the partial file (its bytes are hashed first); a server
that ignores Range restarts it. A file whose digests do not match is deleted, never moved into place.
Tokens (CIVITAI_API_TOKEN, HF_TOKEN) go only to their own host as `Authorization: Bearer`, are dropped
on a redirect to another host, and never appear in a message: URLs are shown redacted.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests
import urllib3.exceptions
from filelock import lock_descriptor

from comfydock.bundle.sources import (
    DEFAULT_CIVITAI_URL,
    DEFAULT_HUGGINGFACE_URL,
    _short_reason,
    host_key,
    redact_url,
    url_problem,
)
from comfydock.errors import ComfydockError
from comfydock.http import make_session

CHUNK = 1 << 20
PART_SUFFIX = ".part"
Progress = Callable[[int, int | None], None]  # (bytes on disk, expected total)


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    resumed_from: int  # bytes of an earlier partial file this download continued (0: fresh)
    requests: int  # HTTP requests made (1 when nothing went wrong)
    sha256: str = ""
    blake3: str = ""


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + PART_SUFFIX)


def workspace_tokens(workspace) -> dict[str, str]:
    """host -> token from the settings civitai-token ($CIVITAI_API_TOKEN) and hf-token ($HF_TOKEN)."""
    tokens = {}
    for url_key, token_key in (("civitai-url", "civitai-token"), ("huggingface-url", "hf-token")):
        token, base = (workspace.setting(token_key) or "").strip(), workspace.setting(url_key)
        if token and base:
            tokens[host_key(base)] = token
    return tokens


def tokens_from_env(
    civitai_url: str = DEFAULT_CIVITAI_URL,
    huggingface_url: str = DEFAULT_HUGGINGFACE_URL,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """host -> token: CIVITAI_API_TOKEN for the CivitAI host, HF_TOKEN for the Hugging Face host."""
    environ = os.environ if environ is None else environ
    tokens = {}
    for base, var in ((civitai_url, "CIVITAI_API_TOKEN"), (huggingface_url, "HF_TOKEN")):
        token = (environ.get(var) or "").strip()
        if token and base:
            tokens[host_key(base)] = token
    return tokens


# Failures worth another try (continuing with Range): requests' own, and urllib3's from raw reads.
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.TimeoutError,
)


class _Mismatch(Exception):
    pass


class _Restart(Exception):
    """The partial file cannot be continued: start over from byte 0 (does not count as a failure)."""


class _Digests:
    """SHA256 and Blake3 of what is written, each on its own worker thread (both release the GIL),
    so the two digests and the socket run in parallel instead of one after the other."""

    def __init__(self, with_blake3: bool = True):
        from blake3 import blake3

        self._hashes = (hashlib.sha256(), blake3()) if with_blake3 else (hashlib.sha256(),)
        self._queues = tuple(queue.Queue(maxsize=16) for _ in self._hashes)
        self._threads = tuple(
            threading.Thread(target=self._run, args=(h, q), daemon=True) for h, q in zip(self._hashes, self._queues)
        )
        for t in self._threads:
            t.start()

    @staticmethod
    def _run(h, q: queue.Queue) -> None:
        while (chunk := q.get()) is not None:
            h.update(chunk)

    def update(self, chunk: bytes) -> None:
        for q in self._queues:
            q.put(chunk)

    def _stop(self) -> None:
        for q, t in zip(self._queues, self._threads):
            if t.is_alive():
                q.put(None)
        for t in self._threads:
            t.join()

    def finish(self) -> tuple[str, str]:
        self._stop()
        return self._hashes[0].hexdigest(), (self._hashes[1].hexdigest() if len(self._hashes) > 1 else "")

    def abandon(self) -> None:
        self._stop()


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None,
    blake3: str | None,
    size: int | None,
    max_size: int | None = None,
    auth_hint: str | None = None,
    with_blake3: bool = True,
    progress: Progress | None = None,
    session: requests.Session | None = None,
    headers: Mapping[str, str] | None = None,
    tokens: Mapping[str, str] | None = None,
    attempts: int = 5,
    backoff: float = 0.5,
    timeout: tuple[float, float] = (15, 60),
    schemes: tuple[str, ...] = ("http", "https"),
) -> DownloadResult:
    """Download `url` to `dest`, verified; continue `<dest>.part` if an earlier run left one.

    Without a sha256 or blake3 the file is taken as the server sends it (the result carries its
    digests); without `size` the server's announced length is the size, and `max_size` (or that
    length) caps what is accepted; `with_blake3=False` skips that digest when none is expected.
    A web page (text/html) is refused, never saved as a model. `auth_hint`: the hint to HTTP 401/403.
    `schemes`: what `url` may be; a bundle's URLs are http(s) only, file:// is for --models-from.
    `tokens` maps host[:port] to a bearer token (see tokens_from_env). A dropped connection or
    timeout mid-transfer is retried up to `attempts` times in a row without progress, continuing
    with Range. `dest` must not exist. Raises ComfydockError naming the file on any failure; the
    partial file stays for the next run, except after a digest mismatch (deleted).
    """
    dest = Path(dest)
    problem = url_problem(url, schemes)
    if problem:
        raise ComfydockError(f"cannot download {dest.name}: its URL {problem}")
    if dest.exists() or dest.is_symlink():
        raise ComfydockError(f"cannot download {dest.name}: {dest} already exists", hint="move it away, or index it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    if part.is_symlink():
        raise ComfydockError(f"cannot download {dest.name}: {part} is a symbolic link", hint="remove it")
    fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o644)
    f = os.fdopen(fd, "r+b", buffering=0)
    own_session = session is None
    try:
        if not lock_descriptor(fd, blocking=False):
            raise ComfydockError(f"{dest.name} is being downloaded by another process", hint="wait for it to finish")
        job = _Job(url, dest, f, sha256, blake3, size, progress, headers, tokens, timeout)
        job.max_size, job.auth_hint = max_size, auth_hint
        job.with_blake3 = with_blake3 or blake3 is not None
        if urlsplit(url).scheme.lower() != "file":
            session = session or make_session()
        try:
            resumed_from, requests_made, digests = job.run(session, attempts, backoff)
        except BaseException as e:
            if not isinstance(e, _Mismatch):
                if os.fstat(fd).st_size == 0:  # nothing to continue: leave no empty .part behind
                    f.close()
                    part.unlink(missing_ok=True)
                raise
            f.close()
            part.unlink(missing_ok=True)
            raise ComfydockError(
                f"{dest.name}: {e} (the partial file was deleted)",
                hint="the source serves a different file than expected; find another source",
            ) from None
        if os.name == "nt":
            f.close()
        _move_into_place(part, dest)
        return DownloadResult(dest, job.have, resumed_from, requests_made, *digests)
    finally:
        f.close()
        if own_session and session is not None:
            session.close()


def download_model(model, models_dir: Path, **kwargs) -> DownloadResult:
    """Download a LockedModel to its path under `models_dir`, trying its URLs in order.

    A URL that fails (HTTP error, transfer failure, digest mismatch) passes to the next; the
    error names the model and every URL's reason (URLs redacted). kwargs go to download().
    """
    if not model.urls:
        raise ComfydockError(f"model {model.name} has no download URL in the bundle", hint="pass --models-from DIR, or skip it")
    dest = model.destination(models_dir)
    reasons = []
    for url in model.urls:
        try:
            return download(url, dest, sha256=model.sha256, blake3=model.blake3, size=model.size, **kwargs)
        except ComfydockError as e:
            if dest.exists():  # "already exists": no other URL will change that
                raise
            reasons.append(e.message)
    if len(reasons) == 1:
        raise ComfydockError(reasons[0], hint="run the same command again to retry, or pass --models-from DIR")
    raise ComfydockError(
        f"model {model.name}: all {len(reasons)} sources failed ({'; '.join(reasons)})",
        hint="run the same command again to retry, or pass --models-from DIR",
    )


def _move_into_place(part: Path, dest: Path) -> None:
    try:
        os.link(part, dest)  # fails if dest appeared meanwhile: never overwrites someone's file
    except FileExistsError:
        raise ComfydockError(
            f"{dest} appeared while downloading it", hint="the verified download is kept as " + part.name
        ) from None
    except OSError:
        if dest.exists():
            raise ComfydockError(f"{dest} appeared while downloading it") from None
        os.replace(part, dest)  # a file system without hard links
        return
    part.unlink()


class _Job:
    def __init__(self, url, dest, f, sha256, blake3, size, progress, headers, tokens, timeout):
        self.url, self.dest, self.f = url, dest, f
        self.sha256 = sha256.lower() if sha256 else None
        self.blake3 = blake3.lower() if blake3 else None
        self.size, self.progress, self.timeout = size, progress, timeout
        self.headers = dict(headers or {})
        token = (tokens or {}).get(host_key(url)) if urlsplit(url).scheme.lower() != "file" else None
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.headers["Accept-Encoding"] = "identity"  # the bytes as stored: no transparent gzip
        self.have = 0
        self.max_size: int | None = None
        self.with_blake3 = True  # False: only SHA256 is computed (the result's blake3 is "")
        self.auth_hint: str | None = None  # the hint to an HTTP 401/403 (default: both token variables)
        self.digests: _Digests | None = None

    @property
    def name(self) -> str:
        return self.dest.name

    def run(self, session, attempts: int, backoff: float) -> tuple[int, int, tuple[str, str]]:
        self.have = os.fstat(self.f.fileno()).st_size
        if self.size is not None and self.have > self.size:
            self._reset()
        resumed_from = self.have
        self.digests = _Digests(self.with_blake3)
        try:
            self._hash_existing()
            failures = 0
            made = 0
            while self.size is None or self.have < self.size:
                before = self.have
                made += 1
                try:
                    if self.fetch(session):
                        break
                except _Restart:
                    self._reset()
                    self.digests.abandon()
                    self.digests = _Digests(self.with_blake3)
                    continue
                except _TRANSIENT as e:
                    failures = 0 if self.have > before else failures + 1
                    if failures >= attempts:
                        raise ComfydockError(
                            f"download of {self.name} from {redact_url(self.url)} failed: {_short_reason(e)}",
                            hint="run the same command again: it continues where it stopped",
                        ) from None
                    time.sleep(min(backoff * 2 ** max(failures - 1, 0), 30))
                except (requests.RequestException, urllib3.exceptions.HTTPError) as e:  # a bad redirect, TLS, …
                    raise ComfydockError(
                        f"download of {self.name} from {redact_url(self.url)} failed: {_short_reason(e)}", hint="check the URL"
                    ) from None
            if self.size is not None and self.have != self.size:
                raise _Mismatch(f"the server sent {self.have} bytes, {self.size} were expected")
            sha, b3 = self.digests.finish()
        finally:
            self.digests.abandon()
        if self.sha256 and sha != self.sha256:
            raise _Mismatch("SHA256 does not match the expected one")
        if self.blake3 and b3 != self.blake3:
            raise _Mismatch("Blake3 does not match the expected one")
        return resumed_from, made, (sha, b3)

    def _reset(self) -> None:
        self.f.truncate(0)
        self.f.seek(0)
        self.have = 0

    def _hash_existing(self) -> None:
        self.f.seek(0)
        left = self.have
        while left:
            chunk = self.f.read(min(CHUNK, left))
            if not chunk:
                break
            self.digests.update(chunk)
            left -= len(chunk)
        self.f.seek(self.have)
        if self.progress and self.have:
            self.progress(self.have, self.size)

    def _take(self, chunk: bytes) -> None:
        cap = self.size if self.size is not None else self.max_size
        if cap is not None and self.have + len(chunk) > cap:
            raise _Mismatch(f"the server sent more than the {cap} bytes announced")
        view = memoryview(chunk)
        while view:  # an unbuffered write may write less than asked
            view = view[self.f.write(view) :]
        self.digests.update(chunk)
        self.have += len(chunk)
        if self.progress:
            self.progress(self.have, self.size)

    def fetch(self, session) -> bool:
        """One request, from byte self.have on. True when the server says the file is complete."""
        if urlsplit(self.url).scheme.lower() == "file":
            return self._copy_local()
        headers = dict(self.headers)
        if self.have:
            headers["Range"] = f"bytes={self.have}-"
        resp = session.get(self.url, headers=headers, stream=True, timeout=self.timeout)
        with resp:
            status = resp.status_code
            if self.have and status == 416:
                raise _Restart()  # our partial file is not a prefix of what the server has
            if status >= 400:
                raise ComfydockError(
                    f"download of {self.name} from {redact_url(self.url)} failed: HTTP {status}",
                    hint=(status in (401, 403) and self.auth_hint) or _status_hint(status),
                )
            if status == 206 and self.have:
                start, total = _content_range(resp.headers.get("Content-Range", ""))
                if start != self.have:
                    raise _Restart()
                if total is not None and self.size is not None and total != self.size:
                    raise _Mismatch(f"the server has {total} bytes, {self.size} were expected")
                self._announce(total)
            elif status == 200:
                if self.have:  # the server ignored Range: take the whole file again
                    self._reset()
                    self.digests.abandon()
                    self.digests = _Digests(self.with_blake3)
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and self.size is not None and int(length) != self.size:
                    raise _Mismatch(f"the server offers {length} bytes, {self.size} were expected")
                self._announce(int(length) if length and length.isdigit() else None)
            else:
                raise ComfydockError(f"download of {self.name} from {redact_url(self.url)} failed: unexpected HTTP {status}")
            if resp.headers.get("Content-Type", "").lower().startswith("text/html"):
                raise ComfydockError(
                    f"download of {self.name} from {redact_url(self.url)} failed: the server sent a web page, not a model file",
                    hint="the file may need a login or a token (CIVITAI_API_TOKEN, HF_TOKEN), or the URL is a page, "
                    "not a download link",
                )
            # Raw reads: a short read at a dropped connection still returns what arrived (iter_content
            # would discard it), and no decoding layer copies the bytes again.
            while chunk := resp.raw.read(CHUNK, decode_content=False):
                self._take(chunk)
        return True

    def _announce(self, total: int | None) -> None:
        """The server's length becomes the size to reach when none was known (capped by max_size)."""
        if self.size is None and total is not None:
            if self.max_size is not None and total > self.max_size:
                raise _Mismatch(f"the server offers {total} bytes, more than the {self.max_size} announced")
            self.size = total

    def _copy_local(self) -> bool:
        source = Path(unquote(urlsplit(self.url).path))
        try:
            with open(source, "rb") as src:
                src.seek(self.have)
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    self._take(chunk)
        except OSError as e:
            raise ComfydockError(f"cannot copy {self.name} from {source}: {e.strerror}") from None
        return True


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, total) of `bytes first-last/total`."""
    try:
        unit, _, rest = value.strip().partition(" ")
        span, _, total = rest.partition("/")
        first = int(span.partition("-")[0])
        return (first if unit == "bytes" else None), (int(total) if total.isdigit() else None)
    except ValueError:
        return None, None


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return "the source needs a token: set CIVITAI_API_TOKEN or HF_TOKEN for that site"
    if status == 404:
        return "the file is no longer at that address; find another source"
    if status == 429 or status >= 500:
        return "the server is failing or busy; run the same command again later (it continues)"
    return "check the URL"
