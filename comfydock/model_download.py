"""`comfydock models download URL`: one model file from Hugging Face, CivitAI or any http(s) URL into
the workspace's models directory, resumable and verified (bundle/download.py), then indexed with its
source recorded.

What a URL tells before the download: a Hugging Face `…/<repo>/resolve/<rev>/<path>` URL names the
file and often its folder, and the server's `X-Linked-Etag`/`X-Linked-Size` give an LFS file's
SHA256 and size; a CivitAI `/api/download/models/<version id>` URL has its model version's metadata
(file name, SHA256, size, type → folder) at `/api/v1/model-versions/<id>`. Anything else is named
by its Content-Disposition or its path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from comfydock.bundle.download import Progress, download, workspace_tokens
from comfydock.bundle.sources import (
    LookupUnavailable,
    civitai_files,
    host_key,
    parse_huggingface_url,
    redact_url,
    same_host,
    url_problem,
)
from comfydock.errors import ComfydockError, UsageError
from comfydock.fsutil import relative_path_problem
from comfydock.model_index import MODEL_EXTENSIONS

# CivitAI's model types (lower case) -> ComfyUI's models folder
CIVITAI_CATEGORIES = {
    "checkpoint": "checkpoints",
    "lora": "loras",
    "locon": "loras",
    "dora": "loras",
    "vae": "vae",
    "textualinversion": "embeddings",
    "controlnet": "controlnet",
    "upscaler": "upscale_models",
}
# ComfyUI's model folders, as a Hugging Face path may hold them (split_files/vae/ae.safetensors)
FOLDERS = frozenset(
    {
        "checkpoints", "loras", "vae", "embeddings", "controlnet", "upscale_models", "text_encoders", "clip",
        "clip_vision", "diffusion_models", "unet", "style_models", "gligen", "hypernetworks", "photomaker",
        "vae_approx", "diffusers", "model_patches", "audio_encoders",
    }
)  # fmt: skip
# words in a file name that say its folder, tried in order
_NAME_HINTS = (("lora", "loras"), ("vae", "vae"), ("controlnet", "controlnet"), ("esrgan", "upscale_models"))
_CIVITAI_DOWNLOAD = re.compile(r"/api/download/models/([0-9]{1,12})")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_AUTH_HINTS = {
    "civitai": "the file needs a CivitAI API key: set CIVITAI_API_TOKEN, or 'comfydock config civitai-token KEY'",
    "huggingface": "the repository is gated or private: set HF_TOKEN, or 'comfydock config hf-token TOKEN'",
}


@dataclass
class Plan:
    """What is known about a URL's file before downloading it."""

    kind: str  # civitai, huggingface or url
    name: str | None = None
    category: str | None = None
    sha256: str | None = None
    size: int | None = None  # exact
    max_size: int | None = None  # at most (CivitAI's sizeKB)


def download_model(
    workspace, url: str, *, category: str | None = None, name: str | None = None, sha256: str | None = None,
    progress: Progress | None = None,
) -> Path:  # fmt: skip
    """Download `url` to `<models-dir>/<category>/<name>`, verify it, index it, record its source.

    `category`, `name` and `sha256` default to what the source says (see the module docstring);
    a hash from the caller and one from the source must agree. Nothing is ever left under the
    final name unless verified; a cut download continues on the next call (`<name>.part`)."""
    from comfydock.http import make_session
    from comfydock.model_index import index_file

    problem = url_problem(url)
    if problem:
        raise UsageError(f"cannot download {redact_url(url)}: the URL {problem}", hint="pass an http(s) download URL")
    models_dir = workspace.models_dir
    if models_dir is None:
        raise ComfydockError("no models directory configured", hint="set one: 'comfydock config models-dir DIR'")
    if sha256 is not None and not _SHA256.fullmatch(sha256.lower()):
        raise UsageError(f"not a SHA256: {sha256!r}", hint="give the 64 hex digits")
    tokens = workspace_tokens(workspace)
    with make_session() as session:
        plan = plan_download(workspace, url, session, tokens, need_name=name is None)
        name = check_name(name or plan.name or "", url)
        category = check_category(category or plan.category or guess_category(name))
        if sha256 and plan.sha256 and sha256.lower() != plan.sha256:
            raise ComfydockError(
                f"{name}: --sha256 {sha256.lower()} differs from the source's own {plan.sha256}",
                hint="check the hash; nothing was downloaded",
            )
        dest = models_dir.expanduser().absolute() / category / name
        if dest.exists() or dest.is_symlink():
            raise ComfydockError(f"{dest} already exists", hint="index it: 'comfydock models index'")
        result = download(
            url, dest, sha256=(sha256 or plan.sha256 or None), blake3=None, size=plan.size, max_size=plan.max_size,
            progress=progress, session=session, tokens=tokens, auth_hint=_AUTH_HINTS.get(plan.kind), with_blake3=False,
        )  # fmt: skip
    # Blake3 is left to 'models index --full' (or an export): one digest keeps up with a fast link on a busy CPU
    index_file(workspace.models_db, models_dir, dest, sha256=result.sha256, blake3=None, source_url=url, kind=plan.kind)
    return dest


def plan_download(workspace, url: str, session, tokens: dict, *, need_name: bool = True) -> Plan:
    """What the source says about `url`'s file (nothing certain for a plain URL)."""
    hf = parse_huggingface_url(url, workspace.setting("huggingface-url"))
    if hf is not None:
        plan = Plan("huggingface", name=PurePosixPath(hf[2]).name, category=_folder_in(hf[2]))
        _huggingface_headers(plan, url, session, tokens)
        return plan
    civitai = workspace.setting("civitai-url")
    match = _CIVITAI_DOWNLOAD.fullmatch(urlsplit(url).path) if same_host(url, civitai) else None
    plan = Plan("civitai" if match else "url")
    if match:
        _civitai_version(plan, url, match.group(1), civitai, session, tokens)
    if need_name and not plan.name:
        plan.name = unquote(PurePosixPath(urlsplit(url).path).name)
        if match or PurePosixPath(plan.name).suffix.lower() not in MODEL_EXTENSIONS:  # ask the server
            plan.name = _disposition_name(url, session, tokens, plan.kind) or plan.name
    return plan


def _huggingface_headers(plan: Plan, url: str, session, tokens: dict) -> None:
    """An LFS file's SHA256 and size from the answer to HEAD (a redirect, not followed: the CDN
    does not need to be asked). No answer is no information: the download reports the failure."""
    import requests

    headers = {"Authorization": f"Bearer {tokens[host_key(url)]}"} if host_key(url) in tokens else {}
    try:
        with session.head(url, headers=headers, allow_redirects=False, timeout=30) as resp:
            etag = resp.headers.get("X-Linked-Etag", "").strip().strip('"').removeprefix("W/").strip('"').lower()
            size = resp.headers.get("X-Linked-Size", "")
    except requests.RequestException:
        return
    if _SHA256.fullmatch(etag):
        plan.sha256 = etag
    if size.isdigit() and len(size) < 19:
        plan.size = int(size)


def _civitai_version(plan: Plan, url: str, version: str, base: str, session, tokens: dict) -> None:
    """File name, SHA256, size and folder from the model version's metadata; none when CivitAI has no
    answer (the download then names the file by its Content-Disposition)."""
    try:
        files = civitai_files(f"/api/v1/model-versions/{version}", base, session, token=tokens.get(host_key(base)))
    except LookupUnavailable:
        return
    if not files:
        return
    chosen = next((f for f in files if f.url == url), None) or next((f for f in files if f.primary), files[0])
    plan.name, plan.sha256, plan.max_size = chosen.name, chosen.sha256, chosen.size
    plan.category = CIVITAI_CATEGORIES.get((chosen.model_type or "").lower())


def _disposition_name(url: str, session, tokens: dict, kind: str) -> str | None:
    """The file name a server gives in Content-Disposition (a GET whose body is not read)."""
    from email.message import Message

    import requests

    from comfydock.bundle.download import _status_hint

    headers = {"Authorization": f"Bearer {tokens[host_key(url)]}"} if host_key(url) in tokens else {}
    try:
        with session.get(url, headers=headers, stream=True, timeout=30) as resp:
            if resp.status_code >= 400:
                raise ComfydockError(
                    f"download from {redact_url(url)} failed: HTTP {resp.status_code}",
                    hint=(resp.status_code in (401, 403) and _AUTH_HINTS.get(kind)) or _status_hint(resp.status_code),
                )
            value = resp.headers.get("Content-Disposition")
    except requests.RequestException:
        return None  # the download itself says what is wrong
    if not value:
        return None
    message = Message()
    message["Content-Disposition"] = value
    return message.get_filename()


def check_name(name: str, url: str) -> str:
    """A model file name from a user or a server: one plain path part with a model extension."""
    problem = relative_path_problem(name, "the models folder")
    if problem is None and "/" in name:
        problem = "holds a '/'"
    if problem is None and PurePosixPath(name).suffix.lower() not in MODEL_EXTENSIONS:
        problem = "is not a model file name (" + ", ".join(sorted(MODEL_EXTENSIONS)) + ")"
    if problem:
        raise ComfydockError(
            f"cannot download {redact_url(url)}: the file name {name[:120]!r} {problem}",
            hint="give a plain file name: --name NAME.safetensors",
        )
    return name


def check_category(category: str) -> str:
    problem = relative_path_problem(category, "the models folder")
    if problem:
        raise UsageError(f"category {category[:120]!r} {problem}", hint="a models folder: checkpoints, loras, vae, …")
    return category


def guess_category(name: str) -> str:
    lowered = name.lower()
    for word, folder in _NAME_HINTS:
        if word in lowered:
            return folder
    raise ComfydockError(f"cannot tell which models folder {name} belongs in", hint="pass --category checkpoints|loras|vae|…")


def _folder_in(path: str) -> str | None:
    """The innermost ComfyUI model folder named in a repository path, if any."""
    folders = [p for p in PurePosixPath(path).parts[:-1] if p in FOLDERS]
    return folders[-1] if folders else None
