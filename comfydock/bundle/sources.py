"""Where models come from: CivitAI's by-hash lookup, Hugging Face file URLs, and checks on URLs from the network.

A lookup answer is hostile until validated: a download URL must be http(s), without credentials
or tokens, and on the host that was asked (a CivitAI answer cannot point a lock at another site).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import requests
import urllib3.exceptions

from comfydock.errors import ComfydockError
from comfydock.http import ANSWER_DEADLINE_MAX, DownloadTooSlow, NotJson, bounded_get, loads_json, make_session

DEFAULT_CIVITAI_URL = "https://civitai.com"
DEFAULT_HUGGINGFACE_URL = "https://huggingface.co"
MAX_URL_LENGTH = 4096
MAX_ANSWER = 8 << 20  # bytes of a lookup answer read at most (a real one is a few KiB)
# Query parameters that carry credentials: never written into a lock, never shown in a message.
SECRET_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "auth", "password", "secret"})
_HF_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_HF_REPO = re.compile(rf"(?:{_HF_PART}/)?{_HF_PART}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class LookupUnavailable(ComfydockError):
    """A lookup that could not get an answer: no connection, a timeout, a dropped transfer, or
    the service failing (HTTP 429/5xx). Not a verdict on the model: export goes on without a
    URL and the next export asks again. (An answer that came but is not valid is refused.)"""


def url_problem(url: object, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """Why `url` is not acceptable as a model or node source (None: it is)."""
    if not isinstance(url, str) or not url:
        return "is not a URL"
    if len(url) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return "holds spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        return f"has scheme {scheme or 'none'!r} (allowed: {', '.join(schemes)})"
    if parts.username is not None or parts.password is not None:
        return "holds credentials (user:password@)"
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            return "is not a local file:///absolute/path URL"
    elif not parts.hostname:
        return "has no host"
    secret = sorted({k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)} & SECRET_PARAMS)
    if secret:
        return f"holds a credential in its query ({secret[0]}=…); set the token in the environment instead"
    return None


def redact_url(url: str) -> str:
    """`url` fit for a message or a log: no user:password, no token query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def host_key(url: str) -> str:
    """host[:port] of `url`, lower case: which token (if any) a request to it carries."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def same_host(url: str, base_url: str) -> bool:
    return host_key(url) == host_key(base_url)


# --- CivitAI ---------------------------------------------------------------------------------


def civitai_lookup(
    sha256: str,
    base_url: str = DEFAULT_CIVITAI_URL,
    session: requests.Session | None = None,
    *,
    token: str | None = None,
    timeout: float = 30,
    seconds: float = ANSWER_DEADLINE_MAX,
) -> list[str] | None:
    """Download URLs CivitAI has for the file with this SHA256; None when CivitAI does not know it.

    Asks `<base>/api/v1/model-versions/by-hash/<sha256>` and keeps the `downloadUrl` of each file
    whose `hashes.SHA256` is ours. No answer (network, HTTP 429/5xx) raises LookupUnavailable;
    a refusal (401/403) or an answer that is not a model version raises ComfydockError.
    """
    sha256 = sha256.lower()
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a SHA256: {sha256!r}")
    base = base_url.rstrip("/")
    url = f"{base}/api/v1/model-versions/by-hash/{sha256}"
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    own = session is None
    session = session or make_session()
    unavailable = "check the network or the civitai-url setting; run again to retry"
    try:
        try:
            with bounded_get(
                session,
                url,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                max_bytes=MAX_ANSWER,
                seconds=seconds,
                what=f"CivitAI's answer at {redact_url(base)}",
                too_large_hint="check the civitai-url setting",
            ) as resp:
                status = resp.status_code
                body = resp.read() if status == 200 else b""
        except DownloadTooSlow as e:  # no answer in time: like no connection, the next export asks again
            raise LookupUnavailable(e.message, hint=unavailable) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
            raise LookupUnavailable(
                f"CivitAI lookup at {redact_url(base)} failed: {_short_reason(e)}", hint=unavailable
            ) from None
        if status == 404:
            return None
        if status in (401, 403):
            raise ComfydockError(
                f"CivitAI lookup at {redact_url(base)} refused: HTTP {status}",
                hint="set CIVITAI_API_TOKEN to an API key from your CivitAI account settings",
            )
        if status == 429 or status >= 500:
            raise LookupUnavailable(
                f"CivitAI lookup at {redact_url(base)} failed: HTTP {status}", hint="run again later to retry"
            )
        if status != 200:
            raise ComfydockError(f"CivitAI lookup at {redact_url(base)} failed: HTTP {status}", hint="run again later to retry")
        try:
            data = loads_json(body, f"CivitAI lookup at {redact_url(base)}: its answer", hint="check the civitai-url setting")
        except NotJson:
            data = None  # refused below, as any answer that is not a model version
    finally:
        if own:
            session.close()
    if not isinstance(data, dict) or not isinstance(data.get("files", []), list):
        raise ComfydockError(f"CivitAI lookup at {redact_url(base)} answered something that is not a model version")
    urls: list[str] = []
    for f in data.get("files", []):
        if not isinstance(f, dict) or not isinstance(f.get("hashes"), dict):
            continue
        file_sha = f["hashes"].get("SHA256")
        if not isinstance(file_sha, str) or file_sha.lower() != sha256:
            continue
        candidate = f.get("downloadUrl")
        if url_problem(candidate) is None and same_host(candidate, base) and candidate not in urls:
            urls.append(candidate)
    return urls or None


# --- Hugging Face ----------------------------------------------------------------------------


def huggingface_url(repo: str, path: str, revision: str = "main", base_url: str = DEFAULT_HUGGINGFACE_URL) -> str:
    """The download URL of `path` in model repository `repo` (`owner/name`) at `revision`."""
    if not _HF_REPO.fullmatch(repo or ""):
        raise ComfydockError(f"not a Hugging Face repository: {repo!r}", hint="write it as owner/name")
    segments = (path or "").split("/")
    if not path or any(s in ("", ".", "..") or "\\" in s for s in segments):
        raise ComfydockError(f"not a file path inside a repository: {path!r}")
    if not revision or any(ord(c) <= 32 for c in revision) or ".." in revision:
        raise ComfydockError(f"not a revision: {revision!r}")
    quoted = "/".join(quote(s, safe="") for s in segments)
    return f"{base_url.rstrip('/')}/{repo}/resolve/{quote(revision, safe='')}/{quoted}"


def parse_huggingface_url(url: str, base_url: str = DEFAULT_HUGGINGFACE_URL) -> tuple[str, str, str] | None:
    """(repo, revision, path) of a Hugging Face file URL (`resolve` or `blob`), or None."""
    if url_problem(url) is not None or not same_host(url, base_url):
        return None
    base_path = urlsplit(base_url).path.rstrip("/")
    path = urlsplit(url).path
    if not path.startswith(base_path + "/"):
        return None
    parts = path[len(base_path) + 1 :].split("/")
    for i in (1, 2):
        if len(parts) > i + 2 and parts[i] in ("resolve", "blob"):
            repo = "/".join(parts[:i])
            file_parts = [unquote(p) for p in parts[i + 2 :]]
            if _HF_REPO.fullmatch(repo) and all(p not in ("", ".", "..") for p in file_parts):
                return repo, unquote(parts[i + 1]), "/".join(file_parts)
    return None


def _short_reason(exc: BaseException) -> str:
    """A one-line reason for a requests failure that names no URL (URLs can carry secrets)."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, SSLError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    cause = exc.args[0] if isinstance(exc, requests.RequestException) and exc.args else exc
    if isinstance(cause, MaxRetryError):  # requests wraps urllib3's last error in a ConnectionError
        cause = cause.reason
    if isinstance(cause, NewConnectionError):  # a subclass of urllib3's ConnectTimeoutError
        return "could not connect"
    if isinstance(exc, requests.Timeout) or isinstance(cause, Urllib3Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or isinstance(cause, ProtocolError):
        return "the connection dropped mid-transfer"
    if isinstance(exc, requests.exceptions.SSLError) or isinstance(cause, SSLError):
        return "TLS failure"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect"
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return "too many redirects"
    return type(exc).__name__
