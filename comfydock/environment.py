"""One environment: its paths, its manifest and lock, its venv's state, this machine's torch backend for it
(read and bookkeeping only: creating is lifecycle.py, changing the manifest manifest_change.py,
reporting status.py)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from comfydock import manifest, uv_runner
from comfydock.errors import EnvironmentNotFound
from comfydock.fsutil import atomic_write_json, read_json_state
from comfydock.hashing import file_digest
from comfydock.torch_backend import (
    requested_torch_backend,
    resolve_torch_backend,
)
from comfydock.workspace import Workspace

_tracked_cache: dict[Path, tuple[dict, dict]] = {}


def closest_name(name: str, names) -> str | None:
    """The one of `names` the user most likely meant by `name` (case aside, a typo, a prefix)."""
    import difflib

    lowered = {n.lower(): n for n in names}
    if name.lower() in lowered:
        return lowered[name.lower()]
    prefixed = [n for n in names if n.lower().startswith(name.lower())]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


class Environment:
    """A ComfyUI checkout, its venv, and the versioned `.cec/` directory describing both."""

    def __init__(self, workspace: Workspace, name: str):
        self.workspace = workspace
        self.name = name
        self.root = workspace.environments_dir / name

    @classmethod
    def open(cls, ws: Workspace, name: str | None = None) -> "Environment":
        """The workspace's environment `name`, or the active one ($COMFYDOCK_ENV, 'comfydock use')."""
        if name is None:
            name = os.environ.get("COMFYDOCK_ENV") or ws.active_environment
            if name and os.sep in name and Path(name).absolute().parent == ws.environments_dir:
                name = Path(name).name  # $COMFYDOCK_ENV may name the directory, as dodo.py allows
            if not name:
                raise EnvironmentNotFound(
                    "no environment selected",
                    hint="pass -e NAME, or run 'comfydock use NAME' (see 'comfydock list')",
                )
        path = ws.environment_path(name)
        state = ws.environment_state(name)
        if state == "half-made":
            raise EnvironmentNotFound(
                f"environment {name!r} is half-made (its 'create' did not finish)",
                hint=f"remove it with 'comfydock delete {name}', then create it again",
            )
        if state == "history-damaged":
            from comfydock.history import damaged_history

            raise damaged_history(path / ".cec", name)
        if not path.is_dir():
            names = ws.environment_names()
            close = closest_name(name, names)
            if close is not None:
                hint = f"did you mean {close!r}? (environments: {', '.join(names)})"
            else:
                hint = f"existing environments: {', '.join(names) or 'none yet'}; create one with 'comfydock create {name}'"
            raise EnvironmentNotFound(f"no environment named {name!r} in {ws.root}", hint=hint)
        return cls(ws, name)

    def __repr__(self) -> str:
        return f"Environment({self.name!r})"

    comfyui_dir = property(lambda self: self.root / "ComfyUI")
    custom_nodes_dir = property(lambda self: self.comfyui_dir / "custom_nodes")
    workflows_dir = property(lambda self: self.comfyui_dir / "user" / "default" / "workflows")
    venv_dir = property(lambda self: self.root / ".venv")
    cec_dir = property(lambda self: self.root / ".cec")
    state_dir = property(lambda self: self.root / ".comfydock")  # never versioned
    pyproject_path = property(lambda self: self.cec_dir / "pyproject.toml")
    uv_lock_path = property(lambda self: self.cec_dir / "uv.lock")
    venv_marker = property(lambda self: self.state_dir / "venv-synced.json")
    process_lock_file = property(lambda self: self.state_dir / "lock")
    log_file = property(lambda self: self.workspace.logs_dir / f"{self.name}.log")

    @property
    def python(self) -> Path:
        return uv_runner.venv_python(self.venv_dir)

    def manifest(self):
        return manifest.load(self.pyproject_path)

    def manifest_data(self) -> dict:
        """The manifest as plain data, read-only (fast; cached per file version)."""
        return manifest.load_data(self.pyproject_path)

    def info(self) -> dict:
        return manifest.environment_info(self.manifest_data())

    def tracked_nodes(self) -> dict:
        """The manifest's nodes by id (NodeSpec), parsed once per version of pyproject.toml."""
        from comfydock.nodes.spec import tracked_nodes

        data = self.manifest_data()  # the same object while the file is unchanged
        hit = _tracked_cache.get(self.pyproject_path)
        if hit is None or hit[0] is not data:
            hit = _tracked_cache[self.pyproject_path] = (data, tracked_nodes(data))
        return {k: copy.copy(v) for k, v in hit[1].items()}  # callers may change a spec; the cache stays

    def marker_environment(self, doc=None) -> dict[str, str]:
        """Marker values of this environment (its venv's Python, this machine's platform)."""
        info = manifest.environment_info(doc if doc is not None else self.manifest_data())
        return uv_runner.marker_environment(self.venv_dir, info.get("python_version"))

    def uv_lock_text(self) -> str | None:
        """uv.lock as text; None if there is none yet."""
        return manifest.read_versioned(self.uv_lock_path) if self.uv_lock_path.exists() else None

    def locked_versions(self, doc=None, uv_lock_text: str | None = None) -> dict[str, str]:
        """What uv.lock installs into this environment's venv (its fork of the universal lock).
        `doc` and `uv_lock_text`, when the caller has read them already, are used instead of reading again."""
        from comfydock import torch_family
        from comfydock.pydeps import locked_versions

        text = uv_lock_text if uv_lock_text is not None else self.uv_lock_text()
        versions = locked_versions(text, self.marker_environment(doc))
        try:
            backend = self.torch_backend()
        except Exception:  # an unknown backend name: shown by status, not fatal here
            return versions
        # uv.lock holds one torch per backend extra: this machine's is the one it installs
        return versions | torch_family.family_in_lock(text, versions, backend)

    def process_lock(self, on_wait=None):
        """One comfydock process at a time changes this environment (readers never take it)."""
        from comfydock.process_lock import process_lock  # filelock: loaded by the commands that change things

        return process_lock(self.process_lock_file, on_wait=on_wait)

    # --- undoing a change (see comfydock/transaction.py) --------------------------------
    def transaction(self):
        """A Transaction whose scratch area is this environment's unversioned state directory."""
        from comfydock.transaction import Transaction

        return Transaction(self.state_dir / "undo")

    # --- this machine's torch backend (never in the shared manifest) ---------------------
    def torch_backend_requested(self) -> tuple[str, str]:
        """(requested backend, where it was set); see requested_torch_backend."""
        return requested_torch_backend(self)

    def torch_backend(self) -> str | None:
        """The concrete backend this machine installs ('cpu', 'cu128'...; None: PyPI builds)."""
        return resolve_torch_backend(self.torch_backend_requested()[0])

    def torch_extra(self, doc=None) -> str | None:
        """The manifest extra this machine syncs with (None: a legacy manifest, synced as it is)."""
        from comfydock import torch_family

        doc = doc if doc is not None else self.manifest_data()
        extra = torch_family.extra_name(self.torch_backend())
        return extra if extra in torch_family.backend_extras(doc) else None

    # --- venv bookkeeping (used by the sync_venv task and by status) ------------------
    def record_venv_synced(self, extra: str | None = None) -> None:
        clashes = uv_runner.module_clashes(self.venv_dir)  # read once per sync, shown by status
        atomic_write_json(
            self.venv_marker,
            {"uv_lock_sha256": file_digest(self.uv_lock_path), "module_clashes": clashes, "torch_extra": extra},
        )

    def synced_torch_extra(self) -> str | None:
        return (read_json_state(self.venv_marker) or {}).get("torch_extra")

    def module_clashes(self) -> list[dict]:
        """Modules more than one installed distribution provides (recorded by the last sync)."""
        recorded = (read_json_state(self.venv_marker) or {}).get("module_clashes")  # derived: damaged = absent
        if isinstance(recorded, list) and all(isinstance(c, dict) for c in recorded):
            return recorded
        return uv_runner.module_clashes(self.venv_dir)

    def venv_in_sync(self) -> bool:
        try:
            if not self.python.exists() or not self.venv_marker.exists() or not self.uv_lock_path.is_file():
                return False
        except OSError:  # e.g. the venv's interpreter is behind a directory this user cannot enter
            return False
        recorded = (read_json_state(self.venv_marker) or {}).get("uv_lock_sha256")
        if not (isinstance(recorded, str) and recorded == file_digest(self.uv_lock_path)):
            return False
        # a changed backend ('comfydock config torch-backend') syncs again, with its extra
        return self.synced_torch_extra() == self.torch_extra()
