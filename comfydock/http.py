"""One way to talk HTTP: a `requests.Session` whose adapter retries what is safe to retry.

Every HTTP client in comfydock (the registry and its node downloads, the node map, CivitAI
lookups, model downloads) gets its session from `make_session`: dropped connections, read
timeouts and 429/5xx answers to GET/HEAD are retried by urllib3's `Retry` with exponential
backoff (a refused connection is not: nothing listens there, so it fails at once), and a server's Retry-After is honoured (capped, so a hostile server cannot park us).
A model download's resume-from-where-it-stopped logic sits above this (bundle/download.py).

`COMFYDOCK_HTTP_RETRIES` and `COMFYDOCK_HTTP_BACKOFF` (seconds) change the defaults.
"""

from __future__ import annotations

import os

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

RETRIES = 3
BACKOFF = 0.5  # seconds: waits 0, 2*b, 4*b, ... between attempts
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 60.0  # a longer Retry-After is cut to this
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "comfydock"


class _Retry(Retry):
    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, RETRY_AFTER_MAX)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
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
    adapter = HTTPAdapter(max_retries=retry_policy(retries, backoff))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
