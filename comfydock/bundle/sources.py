"""Where models come from: CivitAI's by-hash lookup, Hugging Face file URLs, and checks on URLs from the network.

A lookup answer is hostile until validated: a download URL must be http(s), without credentials
or tokens, and on the host that was asked (a CivitAI answer cannot point a lock at another site).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
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


def get_json(
    url: str,
    what: str,
    setting: str,
    *,
    session: requests.Session | None = None,
    token: str | None = None,
    token_var: str = "CIVITAI_API_TOKEN",
    params: dict | None = None,
    timeout: float = 30,
    seconds: float = ANSWER_DEADLINE_MAX,
):
    """The JSON answer at `url` (an API of CivitAI or Hugging Face); None on HTTP 404.

    No answer (network, timeout, HTTP 429/5xx) raises LookupUnavailable; a refusal (401/403,
    whose hint names `token_var`), another status or an answer that is not JSON raises
    ComfydockError. `what` names the service in messages, `setting` the setting holding its URL."""
    parts = urlsplit(url)
    shown = f"{what} at {redact_url(f'{parts.scheme}://{parts.netloc}')}"
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    own = session is None
    session = session or make_session()
    unavailable = f"check the network or the {setting} setting; run again to retry"
    try:
        with bounded_get(
            session,
            url,
            params=params,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            max_bytes=MAX_ANSWER,
            seconds=seconds,
            what=f"the answer of {shown}",
            too_large_hint=f"check the {setting} setting",
        ) as resp:
            status = resp.status_code
            body = resp.read() if status == 200 else b""
    except DownloadTooSlow as e:  # no answer in time: like no connection, the next run asks again
        raise LookupUnavailable(e.message, hint=unavailable) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
        raise LookupUnavailable(f"{shown} failed: {_short_reason(e)}", hint=unavailable) from None
    finally:
        if own:
            session.close()
    if status == 404:
        return None
    if status in (401, 403):
        raise ComfydockError(f"{shown} refused: HTTP {status}", hint=f"set {token_var} to an access token of your account")
    if status == 429 or status >= 500:
        raise LookupUnavailable(f"{shown} failed: HTTP {status}", hint="run again later to retry")
    if status != 200:
        raise ComfydockError(f"{shown} failed: HTTP {status}", hint="run again later to retry")
    try:
        return loads_json(body, f"{shown}: its answer", hint=f"check the {setting} setting")
    except NotJson:
        raise ComfydockError(f"{shown} answered something that is not JSON", hint=f"check the {setting} setting") from None


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
    files = civitai_files(
        f"/api/v1/model-versions/by-hash/{sha256}", base_url, session, token=token, timeout=timeout, seconds=seconds
    )
    if files is None:
        return None
    urls = [f.url for f in files if f.sha256 == sha256]
    return list(dict.fromkeys(urls)) or None


@dataclass(frozen=True)
class CivitaiFile:
    """One file of a CivitAI model version, as its API describes it (validated)."""

    name: str
    url: str
    sha256: str | None
    size: int | None  # bytes at most (from sizeKB, rounded up)
    model_type: str | None  # the model's type: Checkpoint, LORA, VAE, ...
    primary: bool


def civitai_files(path: str, base_url: str, session=None, *, params=None, token=None, **kwargs) -> list[CivitaiFile] | None:
    """The files of the model version(s) at `<base>` + `path` (a model version, or a models search
    answer with items[].modelVersions[]); None on 404. Download URLs not on CivitAI's host are dropped."""
    base = base_url.rstrip("/")
    data = get_json(base + path, "CivitAI lookup", "civitai-url", session=session, token=token, params=params, **kwargs)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ComfydockError(f"CivitAI lookup at {redact_url(base)} answered something that is not a model version")
    if "items" in data:  # a search: models, each with its versions
        items = data["items"] if isinstance(data["items"], list) else []
        pairs = [
            (m.get("type"), v)
            for m in items
            if isinstance(m, dict) and isinstance(m.get("modelVersions"), list)
            for v in m["modelVersions"]
        ]
    else:
        pairs = [((data.get("model") or {}).get("type") if isinstance(data.get("model"), dict) else None, data)]
    if any(not isinstance(v, dict) or not isinstance(v.get("files", []), list) for _, v in pairs):
        raise ComfydockError(f"CivitAI lookup at {redact_url(base)} answered something that is not a model version")
    found = []
    for model_type, version in pairs:
        for f in version.get("files", []):
            parsed = _civitai_file(f, model_type, base)
            if parsed is not None:
                found.append(parsed)
    return found


def _civitai_file(f, model_type, base: str) -> CivitaiFile | None:
    if not isinstance(f, dict):
        return None
    url, name = f.get("downloadUrl"), f.get("name")
    if url_problem(url) is not None or not same_host(url, base) or not isinstance(name, str):
        return None
    hashes = f.get("hashes") if isinstance(f.get("hashes"), dict) else {}
    sha = hashes.get("SHA256")
    sha = sha.lower() if isinstance(sha, str) and _SHA256.fullmatch(sha.lower()) else None
    kb = f.get("sizeKB")
    size = math.ceil(kb * 1024) if isinstance(kb, (int, float)) and not isinstance(kb, bool) and 0 <= kb < 2**53 else None
    kind = model_type if isinstance(model_type, str) else None
    return CivitaiFile(name, url, sha, size, kind, f.get("primary") is True)


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
