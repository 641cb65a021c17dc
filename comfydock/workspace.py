"""The workspace: its layout on disk, its configuration, and the environments it holds."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from comfydock.errors import (
    ComfydockError,
    CorruptFile,
    UsageError,
    WorkspaceNotFound,
)
from comfydock.fsutil import atomic_write_json

WORKSPACE_VERSION = 1
DEFAULT_WORKSPACE = Path("~/comfydock_workspace")
HOME_ENV_VAR = "COMFYDOCK_HOME"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Setting:
    """One configurable value: `comfydock config KEY`, an environment variable, a default."""

    key: str
    json_key: str
    env_var: str
    default: str | None
    doc: str
    problem: Callable[[str], str | None] = lambda value: None  # what is wrong with a value (None: fine)
    secret: bool = False  # a token: never shown, only whether it is set


def shown_value(key: str, value: str | None) -> str | None:
    """`value` of setting `key` as a listing may show it (a token as ***)."""
    return "***" if value and SETTINGS[key].secret else value


def _positive_int(value: str) -> str | None:
    # digits only (no spaces, signs or '_'), and no larger than a file size can be
    ok = re.fullmatch(r"[0-9]{1,19}", value) is not None and 0 < int(value) < 2**63
    return None if ok else "it must be a whole number above 0 (digits only, below 2**63)"


def _positive_number(value: str) -> str | None:
    import math

    try:
        number = float(value)
        ok = math.isfinite(number) and number > 0
    except ValueError:
        ok = False
    return None if ok else "it must be a number above 0"


def _http_url(value: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a bad port)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if any(ord(c) <= 32 or ord(c) == 127 for c in value):
        ok = False
    return None if ok else "it must be an http:// or https:// URL"


def _index_url(value: str) -> str | None:
    if value.lower().startswith("file:///") and not any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    return None if _http_url(value) is None else "it must be an http://, https:// or file:/// URL"


def _text(value: str) -> str | None:
    if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "it must be non-empty text without control characters"
    return None


def _git_url(value: str) -> str | None:
    from comfydock.nodes.spec import check_git_url

    try:
        check_git_url(value)
    except ComfydockError:
        return "it must be a git URL (https://, ssh://, git@host: or file://) or a local path"
    return None


def _yes_no(value: str) -> str | None:
    return None if value.lower() in {"1", "true", "yes", "0", "false", "no"} else "it must be true or false"


def _torch_backend(value: str) -> str | None:
    from comfydock.torch_backend import TORCH_BACKENDS

    if value in {"auto", "pypi", *TORCH_BACKENDS}:
        return None
    return "unknown torch backend (use auto, pypi, or one of: " + ", ".join(TORCH_BACKENDS) + ")"


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting(
            "models-dir",
            "global_model_directory",
            "COMFYDOCK_MODELS_DIR",
            None,
            "directory holding model files (indexed, and given to ComfyUI)",
        ),
        Setting(
            "comfyui-source",
            "comfyui_source",
            "COMFYDOCK_COMFYUI_SOURCE",
            "https://github.com/comfyanonymous/ComfyUI.git",
            "git URL that ComfyUI is cloned from",
            _git_url,
        ),
        Setting(
            "registry-url",
            "registry_url",
            "COMFYDOCK_REGISTRY_URL",
            "https://api.comfy.org",
            "Comfy Registry API base URL",
            _http_url,
        ),
        Setting(
            "python-index",
            "python_index",
            "COMFYDOCK_PYTHON_INDEX",
            None,
            "Python package index URL given to uv (default: uv's own, PyPI)",
            _text,
        ),
        Setting(
            "find-links",
            "find_links",
            "COMFYDOCK_FIND_LINKS",
            None,
            "directory or URL of extra wheels given to uv as --find-links",
            _text,
        ),
        Setting(
            "no-index",
            "no_index",
            "COMFYDOCK_NO_INDEX",
            None,
            "'true' to let uv use only find-links (offline set-ups)",
            _yes_no,
        ),
        Setting(
            "torch-index",
            "torch_index_url",
            "COMFYDOCK_TORCH_INDEX_URL",
            "https://download.pytorch.org/whl",
            "base URL of the PyTorch wheel indexes used by --torch-backend",
            _index_url,
        ),
        Setting(
            "torch-backend",
            "torch_backend",
            "COMFYDOCK_TORCH_BACKEND",
            "auto",
            "this machine's PyTorch build: auto, cpu, cu128, rocm6.3, xpu, pypi, ... (never written to .cec/)",
            _torch_backend,
        ),
        Setting(
            "archive-max-bytes",
            "archive_max_bytes",
            "COMFYDOCK_ARCHIVE_MAX_BYTES",
            str(2 << 30),
            "largest total size a node archive or bundle may unpack to, in bytes",
            _positive_int,
        ),
        Setting(
            "archive-max-members",
            "archive_max_members",
            "COMFYDOCK_ARCHIVE_MAX_MEMBERS",
            "100000",
            "most files and directories a node archive or bundle may hold",
            _positive_int,
        ),
        Setting(
            "archive-max-ratio",
            "archive_max_ratio",
            "COMFYDOCK_ARCHIVE_MAX_RATIO",
            "200",
            "largest unpacked:packed size ratio of a node archive or bundle",
            _positive_number,
        ),
        Setting(
            "download-timeout",
            "download_timeout",
            "COMFYDOCK_DOWNLOAD_TIMEOUT",
            "600",
            "seconds a node archive download may take in all (a registry, node map or CivitAI answer: at most 60)",
            _positive_number,
        ),
        Setting(
            "node-map-url",
            "node_map_url",
            "COMFYDOCK_NODE_MAP_URL",
            "https://raw.githubusercontent.com/Comfy-Org/ComfyUI-Manager/main/extension-node-map.json",
            "ComfyUI-Manager's extension-node-map.json: which custom nodes provide which node types",
            _http_url,
        ),
        Setting(
            "civitai-url",
            "civitai_url",
            "COMFYDOCK_CIVITAI_URL",
            "https://civitai.com",
            "CivitAI base URL: model downloads and lookups by SHA256 or name (token: civitai-token)",
            _http_url,
        ),
        Setting(
            "uv-cache",
            "uv_cache",
            "COMFYDOCK_UV_CACHE",
            None,
            "uv's package cache (default: uv's own user cache, shared by every workspace; $UV_CACHE_DIR wins)",
            _text,
        ),
        Setting(
            "huggingface-url",
            "huggingface_url",
            "COMFYDOCK_HUGGINGFACE_URL",
            "https://huggingface.co",
            "Hugging Face base URL for model downloads and file lookups (token: hf-token)",
            _http_url,
        ),
        Setting(
            "hf-token", "hf_token", "HF_TOKEN", None, "Hugging Face access token (sent only to huggingface-url)", _text, True
        ),
        Setting(
            "civitai-token", "civitai_token", "CIVITAI_API_TOKEN", None, "CivitAI API key (sent only to civitai-url)", _text, True
        ),
    )
}


def validate_name(name: str, what: str = "environment") -> str:
    """Names become directory names: refuse anything that could escape or confuse a path."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in {".", ".."} or name.endswith(".disabled"):
        raise UsageError(
            f"invalid {what} name {name!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def _config_problem(config: dict) -> str | None:
    """What is wrong with workspace.json's known entries (unknown keys are left alone), or None."""
    version = config.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return '"version" is missing or not a positive integer'
    active = config.get("active_environment")
    if active is not None and (not isinstance(active, str) or not _NAME_RE.fullmatch(active)):
        return '"active_environment" is not an environment name'
    models = config.get("global_model_directory")
    if models is not None:
        path = models.get("path") if isinstance(models, dict) else models
        if not isinstance(path, str):
            return '"global_model_directory" has no path string'
    for s in SETTINGS.values():
        if s.json_key != "global_model_directory" and config.get(s.json_key) is not None:
            if not isinstance(config[s.json_key], str):
                return f'"{s.json_key}" is not a string'
    return None


def resolve_workspace_path(explicit: str | os.PathLike | None = None) -> Path:
    """--workspace, then $COMFYDOCK_HOME, then ~/comfydock_workspace (where `init` creates one)."""
    if explicit:
        raw = Path(explicit)
    elif os.environ.get(HOME_ENV_VAR):
        raw = Path(os.environ[HOME_ENV_VAR])
    else:
        raw = DEFAULT_WORKSPACE
    return raw.expanduser().absolute()


@dataclass(frozen=True)
class WorkspaceLocation:
    """Which workspace a command uses, why, and the environment the current directory is in."""

    path: Path
    source: str  # '--workspace', 'current directory', '$COMFYDOCK_HOME', 'default'
    env_here: str | None = None  # set when the current directory is inside environments/NAME/


def enclosing_workspace(start: Path) -> WorkspaceLocation | None:
    """The workspace holding `start`, found by walking up as git does (None: not inside one).
    Inside environments/NAME/ that environment is named too."""
    start = start.absolute()
    for root in (start, *start.parents):
        if (root / ".metadata" / "workspace.json").is_file():
            parts = start.relative_to(root).parts
            env = parts[1] if len(parts) > 1 and parts[0] == "environments" else None
            return WorkspaceLocation(root, "current directory", env)
    return None


def locate_workspace(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> WorkspaceLocation:
    """--workspace, then the workspace the current directory is in, then $COMFYDOCK_HOME, then
    ~/comfydock_workspace (a path that is no workspace: Workspace.open says which one holds it)."""
    if explicit:
        return WorkspaceLocation(Path(explicit).expanduser().absolute(), "--workspace")
    try:
        here = enclosing_workspace(cwd or Path.cwd())
    except OSError:  # the current directory was removed
        here = None
    if here is not None:
        return here
    if os.environ.get(HOME_ENV_VAR):
        return WorkspaceLocation(Path(os.environ[HOME_ENV_VAR]).expanduser().absolute(), f"${HOME_ENV_VAR}")
    return WorkspaceLocation(DEFAULT_WORKSPACE.expanduser().absolute(), "default")


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


class Workspace:
    """A directory holding environments, the shared caches and the model index."""

    def __init__(self, root: Path, config: dict):
        self.root = root
        self.config = config

    # --- layout -----------------------------------------------------------------------
    @property
    def metadata_file(self) -> Path:
        return self.root / ".metadata" / "workspace.json"

    @property
    def undo_dir(self) -> Path:
        """The scratch area of workspace-level Transactions (changes not inside one environment)."""
        return self.metadata_file.parent / "undo"

    @property
    def cache_dir(self) -> Path:
        return self.root / "comfydock_cache"

    @property
    def node_cache_dir(self) -> Path:
        return self.cache_dir / "custom_nodes"

    @property
    def api_cache_dir(self) -> Path:
        return self.cache_dir / "api_cache"

    @property
    def comfyui_cache_dir(self) -> Path:
        return self.cache_dir / "comfyui"

    @property
    def models_db(self) -> Path:
        return self.cache_dir / "models.db"

    @property
    def environments_dir(self) -> Path:
        return self.root / "environments"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def uv_cache_dir(self) -> Path | None:
        """The uv cache this workspace asked for ('uv-cache' setting), else None: uv's own user
        cache, which every workspace and uv outside comfydock share (one copy of torch, not one
        per workspace)."""
        value = self.setting("uv-cache")
        return (self.root / Path(value).expanduser()).absolute() if value else None

    @property
    def uv_python_dir(self) -> Path:
        return self.root / "uv" / "python"

    def layout_dirs(self) -> list[Path]:
        return [
            self.metadata_file.parent,
            self.node_cache_dir / "store",
            self.api_cache_dir,
            self.comfyui_cache_dir,
            self.environments_dir,
            self.logs_dir / "workspace",
            self.uv_python_dir,
        ]

    # --- opening and creating ---------------------------------------------------------
    @classmethod
    def open(cls, path: Path) -> "Workspace":
        meta = path / ".metadata" / "workspace.json"
        if not meta.is_file():
            inside = enclosing_workspace(path)
            if inside is not None:
                where = f" (environment {inside.env_here!r})" if inside.env_here else ""
                raise WorkspaceNotFound(
                    f"{path} is not a workspace: it is inside the workspace {inside.path}{where}",
                    hint=f"use '-w {inside.path}', or leave -w out: commands find the workspace from the current directory",
                )
            raise WorkspaceNotFound(
                f"no comfydock workspace at {path}",
                hint=f"run 'comfydock init {path}', or point {HOME_ENV_VAR} / --workspace at one",
            )
        try:
            config = json.loads(meta.read_text(encoding="utf-8"))
            if not isinstance(config, dict):
                raise ValueError("top level is not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptFile(
                f"{meta} is not valid workspace JSON ({exc})",
                hint="fix the file by hand, or move it aside and run 'comfydock init' again",
            ) from None
        version = config.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > WORKSPACE_VERSION:
            raise CorruptFile(
                f"{meta} was written by a newer comfydock (workspace version {version}, this one knows {WORKSPACE_VERSION})",
                hint="upgrade comfydock to use this workspace",
            )
        problem = _config_problem(config)
        if problem:
            raise CorruptFile(
                f"{meta} is not a comfydock workspace file: {problem}",
                hint="fix that entry by hand (see 'comfydock config'), or move the file aside and run 'comfydock init' again",
            )
        return cls(path, config)

    @classmethod
    def init(cls, path: Path, models_dir: Path | None = None) -> tuple["Workspace", bool]:
        """Create the layout; an existing workspace is returned untouched (created=False)."""
        if (path / ".metadata" / "workspace.json").exists():
            return cls.open(path), False
        if path.exists() and not path.is_dir():
            raise ComfydockError(f"{path} exists and is not a directory", hint="pick another path for the workspace")
        config: dict = {
            "version": WORKSPACE_VERSION,
            "active_environment": None,
            "created_at": _now(),
        }
        ws = cls(path, config)
        try:
            for d in ws.layout_dirs():
                d.mkdir(parents=True, exist_ok=True)
        except (FileNotFoundError, NotADirectoryError, FileExistsError) as exc:  # /proc/x, a file on the way
            raise ComfydockError(
                f"cannot make a workspace at {path}: {exc.strerror} ({exc.filename})",
                hint="pick a folder on an ordinary, writable file system (e.g. under your home folder)",
            ) from None
        if models_dir is not None:
            ws.set_models_dir(models_dir, save=False)
        ws.save()
        return ws, True

    def save(self) -> None:
        atomic_write_json(self.metadata_file, self.config)

    # --- settings ---------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        """Environment variable first, then workspace.json, then the built-in default."""
        return self.setting_with_source(key)[0]

    def setting_with_source(self, key: str) -> tuple[str | None, str]:
        """(value, where it comes from: "env", "workspace" or "default")."""
        s = SETTINGS[key]
        if os.environ.get(s.env_var):
            return os.environ[s.env_var], "env"
        value = self.config.get(s.json_key)
        if isinstance(value, dict):  # global_model_directory is an object in the spec
            value = value.get("path")
        if value not in (None, ""):
            return str(value), "workspace"
        return s.default, "default"

    def settings(self) -> list[dict]:
        """Every setting: key, value, source (env, workspace, default), env_var, doc."""
        rows = []
        for key, s in SETTINGS.items():
            value, source = self.setting_with_source(key)
            rows.append({"key": key, "value": shown_value(key, value), "source": source, "env_var": s.env_var, "doc": s.doc})
        return rows

    def set_setting(self, key: str, value: str | None) -> None:
        s = SETTINGS[key]
        if key == "models-dir":
            if value is None:
                self.config.pop(s.json_key, None)
                self.save()
            else:
                self.set_models_dir(Path(value))
            return
        if value is not None:
            problem = s.problem(value)
            if problem:
                raise UsageError(
                    f"invalid value {value[:80]!r} for {key}: {problem}",
                    hint=f"'comfydock config {key} VALUE' with a valid value ({s.doc}); nothing was changed",
                )
        if value is None:
            self.config.pop(s.json_key, None)
        else:
            self.config[s.json_key] = value
        self.save()

    @property
    def models_dir(self) -> Path | None:
        value = self.setting("models-dir")
        return Path(value) if value else None

    def set_models_dir(self, path: Path, save: bool = True) -> None:
        path = path.expanduser().absolute()
        if path.exists() and not path.is_dir():
            raise ComfydockError(f"models directory {path} is a file, not a directory", hint="pass a directory")
        self.config["global_model_directory"] = {"path": str(path), "added_at": _now()}
        if save:
            self.save()

    def record_models_indexed(self) -> None:
        """Remember when the models directory was last indexed (spec: global_model_directory.last_sync)."""
        entry = self.config.get("global_model_directory")
        if isinstance(entry, dict):
            entry["last_sync"] = _now()
            self.save()

    # --- environments -----------------------------------------------------------------
    @property
    def active_environment(self) -> str | None:
        return self.config.get("active_environment")

    def set_active(self, name: str | None) -> None:
        self.config["active_environment"] = name
        self.save()

    def environment_names(self) -> list[str]:
        """Finished environments (a half-made one, from an interrupted 'create', is not one)."""
        return [name for name, state in self.environment_states() if state == "ok"]

    def environment_states(self) -> list[tuple[str, str]]:
        """(name, state) for every environment directory; see `environment_state`."""
        if not self.environments_dir.is_dir():
            return []
        found = []
        for p in sorted(self.environments_dir.iterdir()):
            if not p.is_dir() or not _NAME_RE.fullmatch(p.name):
                continue
            found.append((p.name, _state_of(p)))
        return found

    def environment_state(self, name: str) -> str | None:
        """None (no such directory), "half-made" (its create marker is there: a 'create' that did
        not finish), "history-damaged" (finished, but `.cec/.git` holds no readable commit) or "ok"."""
        return _state_of(self.environment_path(name))

    def half_made(self, name: str) -> bool:
        return self.environment_state(name) == "half-made"

    def create_marker(self, name: str) -> Path:
        """Written by `lifecycle.creating` when it makes the directory, removed when the create
        finished: only its presence makes an environment half-made (what `delete` may remove
        as holding nothing of the user's)."""
        return self.environment_path(name) / CREATE_MARKER

    def create_process_lock_file(self, name: str) -> Path:
        return self.metadata_file.parent / "locks" / f"{name}.lock"

    def transaction(self):
        """A Transaction whose scratch area is the workspace's undo_dir (see comfydock/transaction.py)."""
        from comfydock.transaction import Transaction

        return Transaction(self.undo_dir)

    def environment_path(self, name: str) -> Path:
        return self.environments_dir / validate_name(name)


CREATE_MARKER = ".comfydock/creating"


def _state_of(path: Path) -> str | None:
    from comfydock.history import has_commit

    if not path.is_dir():
        return None
    committed = has_commit(path / ".cec")
    if (path / CREATE_MARKER).exists() and not committed:
        return "half-made"
    # a marker beside a committed history is stale (a create killed after its first version):
    # the environment holds versions and maybe the user's work, never something to delete
    return "ok" if committed else "history-damaged"
