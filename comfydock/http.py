"""One way to talk HTTP: a `requests.Session` whose adapter retries what is safe to retry.

Every HTTP client in comfydock (the registry and its node downloads, the node map, CivitAI
lookups, model downloads) gets its session from `make_session`: dropped connections, read
timeouts and 429/5xx answers to GET/HEAD are retried by urllib3's `Retry` with exponential
backoff (a refused connection is not: nothing listens there, so it fails at once), and a server's Retry-After is honoured (capped, so a hostile server cannot park us).
A model download's resume-from-where-it-stopped logic sits above this (bundle/download.py).

`COMFYDOCK_HTTP_RETRIES` and `COMFYDOCK_HTTP_BACKOFF` (seconds) change the defaults.

`bounded_get` is how a body is read: at most `max_bytes` of it (a node archive: archive-max-bytes;
an answer: ANSWER_MAX_BYTES), and the whole request — connection, headers, body, retries — within
a deadline (setting download-timeout): a watchdog thread shuts the socket under a read that is
still waiting when time is up, so a server sending a byte every few seconds cannot keep a command
alive. Model downloads are capped by the size their lock records instead (bundle/download.py).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate, count
from operator import sub
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from comfydock.errors import ComfydockError

RETRIES = 3
BACKOFF = 0.5  # seconds: waits 0, 2*b, 4*b, ... between attempts
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 60.0  # a longer Retry-After is cut to this
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "comfydock"
ANSWER_DEADLINE_MAX = 60.0  # an API answer (registry, node map, CivitAI) gets at most this much of it
ANSWER_MAX_BYTES = 32 << 20  # an API answer read at most (the node map, the largest, is a few MiB)
JSON_MAX_DEPTH = 64  # arrays/objects inside each other in an answer (real ones: under 10)
_CHUNK = 1 << 16


class _Retry(Retry):
    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, RETRY_AFTER_MAX)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if _expired():  # the deadline passed: asking again would only start another wait
            raise MaxRetryError(_pool, url, error)
        # a refused connection means nothing listens there (an offline machine, a wrong port):
        # waiting and asking again only makes the user wait, so it fails at once
        if error is not None and _refused(error):
            raise MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _refused(error: BaseException) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConnectionRefusedError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _env_number(name: str, default: float, kind=float):
    try:
        value = kind(os.environ[name])
    except (KeyError, ValueError):
        return default
    return value if value >= 0 else default


def retry_policy(retries: int | None = None, backoff: float | None = None) -> Retry:
    if retries is None:
        retries = _env_number("COMFYDOCK_HTTP_RETRIES", RETRIES, int)
    if backoff is None:
        backoff = _env_number("COMFYDOCK_HTTP_BACKOFF", BACKOFF)
    return _Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=None,  # requests follows redirects itself
        backoff_factor=backoff,
        backoff_max=BACKOFF_MAX,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,  # the last 5xx answer comes back: callers say what the server said
        respect_retry_after_header=True,
    )


def make_session(retries: int | None = None, backoff: float | None = None) -> requests.Session:
    """A session retrying connection errors and 429/5xx answers to GET/HEAD (see the module docstring)."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = _Adapter(max_retries=retry_policy(retries, backoff))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --- bounded reads ---------------------------------------------------------------------------
_local = threading.local()  # the calling thread's _Watch while a bounded_get runs


def _expired() -> bool:
    watch = getattr(_local, "watch", None)
    return watch is not None and watch.expired


def _watch_socket(sock) -> None:
    watch = getattr(_local, "watch", None)
    if watch is not None and sock is not None:
        watch.sock = sock


class _WatchedPool:
    """Tells the running bounded_get which socket its request reads (so the watchdog can cut it):
    a pooled connection's at once, a new one's when it connects."""

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        _watch_socket(conn.sock)
        return conn


class _WatchedConnection:
    def connect(self):
        super().connect()
        _watch_socket(self.sock)


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(_WatchedPool, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_WatchedPool, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager


class _Watch:
    """At the deadline: marks itself expired and shuts the socket the request reads (again every
    0.2 s until the request is over, for a connection a retry opens)."""

    def __init__(self, seconds: float):
        self.expired = False
        self.sock = None
        self._over = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(seconds,), daemon=True, name="comfydock-deadline")
        self._thread.start()

    def _run(self, seconds: float) -> None:
        if self._over.wait(seconds):
            return
        self.expired = True
        while True:
            if self.sock is not None:
                try:  # the plain socket's shutdown, also under TLS (SSLSocket's own would drop its state mid-read)
                    socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
                except OSError:
                    pass
            if self._over.wait(0.2):
                return

    def stop(self) -> None:
        self._over.set()


class DownloadTooLarge(ComfydockError):
    pass


class DownloadTooSlow(ComfydockError):
    pass


class Bounded:
    """An answer being read under bounded_get's limits: `status_code`, `headers`, and the body
    through `chunks()`, `read()` or `save(path)`."""

    def __init__(self, response, max_bytes: int, end: float, watch: _Watch, what: str, too_large_hint: str):
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.max_bytes, self._end, self._watch = max_bytes, end, watch
        self._what, self._too_large_hint = what, too_large_hint

    def too_large(self) -> DownloadTooLarge:
        return DownloadTooLarge(f"{self._what} is larger than {self.max_bytes} bytes", hint=self._too_large_hint)

    def chunks(self) -> Iterator[bytes]:
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise self.too_large()  # said up front: not a byte is read
        got = 0
        for chunk in self.response.iter_content(_CHUNK):
            got += len(chunk)
            if got > self.max_bytes:
                raise self.too_large()
            if self._watch.expired or time.monotonic() > self._end:
                self._watch.expired = True
                break
            yield chunk
        if self._watch.expired:  # a cut connection may end the body early rather than raise
            raise DownloadTooSlow("")

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def save(self, path: Path) -> int:
        """Write the body to `path`; the bytes written. On any failure the caller removes `path`."""
        written = 0
        with open(path, "wb") as f:
            for chunk in self.chunks():
                f.write(chunk)
                written += len(chunk)
        return written


@contextmanager
def bounded_get(
    session: requests.Session,
    url: str,
    *,
    max_bytes: int,
    seconds: float,
    what: str,
    too_large_hint: str = "the server may be misconfigured or hostile; nothing was kept",
    **kwargs,
) -> Iterator[Bounded]:
    """GET `url` streamed, its body read at most `max_bytes`, the whole request done within `seconds`
    (see the module docstring). Raises DownloadTooLarge / DownloadTooSlow (ComfydockError, one line
    naming `what`), or requests' own exceptions for the network's failures."""
    watch = _Watch(seconds)
    _local.watch = watch
    end = time.monotonic() + seconds
    slow = DownloadTooSlow(
        f"{what} took longer than {seconds:g} s (setting download-timeout); stopped, nothing was kept",
        hint="the server is stalling or very slow: try again later, or raise 'comfydock config download-timeout SECONDS'",
    )
    try:
        try:
            response = session.get(url, stream=True, **kwargs)
        except requests.RequestException:
            if watch.expired:
                raise slow from None
            raise
        with response:
            try:
                yield Bounded(response, max_bytes, end, watch, what, too_large_hint)
            except DownloadTooSlow:
                raise slow from None
            except requests.RequestException:
                if watch.expired:
                    raise slow from None
                raise
    finally:
        watch.stop()
        _local.watch = None


# --- JSON from the network ---------------------------------------------------------------------
# a string, or an unterminated one to the end: it always matches from its quote, so the scan is linear
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.S)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class BadAnswer(ComfydockError):
    pass


class NotJson(BadAnswer):
    pass


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in `data` (brackets inside strings do not count), in C-level passes."""
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", data)).translate(_STEP)
    # running depth after each bracket = 2 * opened so far - brackets so far
    return max(map(sub, accumulate(brackets), count(1)), default=0)


def loads_json(data: bytes, what: str, hint: str, max_depth: int = JSON_MAX_DEPTH):
    """`data` (an answer from the network) decoded; BadAnswer naming `what` when it is not JSON or nests
    deeper than `max_depth` (checked before decoding: Python's decoder, and every walk of the result,
    would hit the recursion limit: exit 3)."""
    if json_depth(data) > max_depth:
        raise BadAnswer(f"{what} nests arrays or objects more than {max_depth} deep; it was not read", hint=hint)
    import json

    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise NotJson(f"{what} is not JSON", hint=hint) from None
