"""Creating and deleting environments: all or nothing (a failed or interrupted create leaves no
directory behind; an existing environment is never touched)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from comfydock import comfyui, engine, history, manifest, resolution, uv_runner
from comfydock.engine import build_failure
from comfydock.environment import Environment
from comfydock.errors import ComfydockError
from comfydock.fsutil import remove_tree
from comfydock.gitutil import commit_date
from comfydock.process_lock import process_lock
from comfydock.torch_backend import pypi_without_gpu_note, resolve_torch_backend, set_environment_torch_backend
from comfydock.transaction import Transaction
from comfydock.workspace import Workspace, validate_name

INITIAL_MESSAGE = "Initial environment setup"


@dataclass
class CreateResult:
    environment: Environment
    comfyui_ref: str
    comfyui_commit: str
    python: str
    torch_backend: str | None
    resolution: dict | None = None  # resolution.info(): the date, its source, packages allowed newer
    comfyui_fills: list | None = None  # ComfyUI's undeclared imports added to comfyui-core (undeclared.fill_comfyui_gaps)


def create_environment(
    ws: Workspace,
    name: str,
    *,
    python: str = "3.11",
    comfyui_ref: str | None = None,
    torch_backend: str | None = None,
    use: bool = False,
    step=lambda message: None,
    warn=lambda message: None,
    comfyui_source: str | None = None,
    populate=None,
    message: str = INITIAL_MESSAGE,
    as_of: str | None = None,
) -> CreateResult:
    """Clone ComfyUI, make the venv, write and lock the manifest, commit v1.

    `comfyui_source` replaces the workspace's comfyui-source for this checkout (adopt takes
    ComfyUI from the adopted install's origin); `populate(env)`, if given, runs after the first
    build and before v1 is committed (adopt adds nodes, packages and workflows there).
    `as_of` (YYYY-MM-DD, RFC 3339 or 'now'): the resolution date, by default the ComfyUI
    commit's committer date (see comfydock.resolution).
    All or nothing: on any failure (Ctrl-C included) the half-made directory is removed,
    and an existing environment of the same name is never touched.
    """
    from comfydock.requirements_txt import scan_requirements_file

    validate_name(name)
    date = resolution.parse_as_of(as_of) if as_of is not None else None  # a bad value: refused before anything is made
    if torch_backend is not None:
        resolve_torch_backend(torch_backend)  # an unknown name is refused before anything is made
    with creating(ws, name) as (env, tx):  # any failure, Ctrl-C included, removes the half-made directory
        source = comfyui_source or ws.setting("comfyui-source")
        step(f"Fetching ComfyUI from {source}")
        cache = comfyui.update_cache(ws.comfyui_cache_dir, source, warn=warn)
        ref = comfyui.resolve_ref(cache, comfyui_ref)
        step(f"Checking out ComfyUI {ref.name}")
        comfyui.checkout(cache, env.comfyui_dir, ref, source)

        scanned = scan_requirements_file(env.comfyui_dir / "requirements.txt")
        for line, why in scanned.skipped:
            warn(f"ComfyUI requirements.txt: skipped {line!r} ({why})")
        doc = manifest.new_manifest(
            name,
            python,
            scanned.requirements,
            ref.name,
            ref.commit,
        )
        comfyui_date = commit_date(env.comfyui_dir, ref.commit)
        if date is not None:
            resolution.record(doc, date, f"--as-of {as_of.strip()}", comfyui_date)
        elif comfyui_date is not None:
            resolution.record(doc, comfyui_date, f"ComfyUI {ref.name} commit", comfyui_date)
        else:
            warn(f"ComfyUI {ref.name}: its commit date is unreadable; the environment resolves without a date")
        env.cec_dir.mkdir()
        manifest.save(env.pyproject_path, doc)
        (env.cec_dir / ".python-version").write_text(python + "\n")
        (env.cec_dir / "workflows").mkdir()
        (env.cec_dir / "workflows" / ".gitkeep").touch()
        comfyui.write_extra_model_paths(env.comfyui_dir, ws.models_dir)
        if torch_backend is not None:  # this machine's choice for this environment, not shared
            set_environment_torch_backend(env, torch_backend)
        backend = env.torch_backend()
        note = pypi_without_gpu_note(backend)
        if note:
            warn(note)

        step(f"Creating Python {python} venv")
        uv_runner.create_venv(ws, env.venv_dir, python)

        step("Resolving and installing dependencies")
        report = engine.build(env, ["update_manifest", "lock_deps", "sync_venv", "core_node_types"])
        if not report.ok:
            raise build_failure(report)
        fills = _fill_comfyui_gaps(env, step, warn)

        if populate is not None:
            populate(env)

        repo = history.init_repo(env.cec_dir)
        history.commit_version(repo, message)
        if use or not ws.active_environment:
            tx.on_undo(partial(ws.set_active, ws.active_environment), "the active environment")
            ws.set_active(name)
    return CreateResult(env, ref.name, ref.commit, python, backend, resolution.info(env.manifest_data()), fills)


def _fill_comfyui_gaps(env: Environment, step, warn) -> list:
    """What ComfyUI imports but does not declare, into comfyui-core (the scan needs the synced venv)."""
    from comfydock.undeclared import fill_comfyui_gaps

    step("Checking ComfyUI's imports against the venv")
    filled = fill_comfyui_gaps(env)
    if filled["failed"]:
        warn(filled["failed"])
    return filled["added"]


@contextmanager
def creating(ws: Workspace, name: str) -> Iterator[tuple[Environment, Transaction]]:
    """The one way to start making an environment (create, create --from, import):

        with creating(ws, name) as (env, tx):
            ... fill env.root ...

    Under the environment's create lock a half-made or existing environment of that name is
    refused, then its (empty) directory is made inside a Transaction that removes it again on any
    failure, Ctrl-C included: a create that does not finish leaves nothing behind."""
    root = ws.environments_dir / name
    with process_lock(ws.create_process_lock_file(name)):
        if ws.half_made(name):
            raise ComfydockError(
                f"environment {name!r} is half-made at {root} (an earlier 'create' did not finish)",
                hint=f"remove it with 'comfydock delete {name}', then create it again",
            )
        if root.exists() or root.is_symlink():
            raise ComfydockError(
                f"environment {name!r} already exists at {root}",
                hint=f"pick another name, or remove it first with 'comfydock delete {name}'",
            )
        env = Environment(ws, name)
        with env.transaction() as tx:
            # registered before the directory is made (a Ctrl-C right after still removes it);
            # nothing else makes it meanwhile: every creator holds this name's create lock
            tx.created(root)
            ws.environments_dir.mkdir(parents=True, exist_ok=True)
            root.mkdir()
            marker = ws.create_marker(name)  # until it goes, the directory is half-made (and holds nothing of the user's)
            marker.parent.mkdir()
            marker.write_text(f"pid {os.getpid()}\n")
            yield env, tx
            marker.unlink()


def delete_environment(ws: Workspace, name: str) -> None:
    """Delete an environment, or the remains of an interrupted 'create'; a 'create' still running
    holds its lock and is not disturbed. The CLI asks first, naming `unrecoverable_work`."""
    # the create lock first, whatever the state: a create holds it from before its directory
    # appears (and before its marker is written) until it finished
    with process_lock(ws.create_process_lock_file(name), timeout=0):
        state = ws.environment_state(name)
        if state == "half-made":
            remove_tree(ws.environment_path(name))
        elif state is not None:
            env = Environment(ws, name) if state == "history-damaged" else Environment.open(ws, name)
            with env.process_lock():
                remove_tree(env.root)
    if ws.active_environment == name:
        ws.set_active(None)


def unrecoverable_work(ws: Workspace, name: str) -> dict[str, list[str]]:
    """What deleting the environment would lose that no version and no cache holds:
    {"nodes": custom_nodes/ folders that are development nodes or were never installed by
    comfydock, "workflows": workflows new or changed since the last version}. With an unreadable
    manifest every node folder counts; with an unreadable history every workflow does."""
    from comfydock.nodes.spec import tracked_nodes
    from comfydock.workflows import tracking

    env = Environment(ws, name)
    try:
        installed = {s.directory for s in tracked_nodes(manifest.load_data(env.pyproject_path)).values() if s.source != "development"}
    except (ComfydockError, OSError, ValueError):
        installed = set()
    nodes = []
    if env.custom_nodes_dir.is_dir() and not env.custom_nodes_dir.is_symlink():
        for entry in sorted(env.custom_nodes_dir.iterdir()):
            # a linked folder is not deleted with the environment (remove_tree never follows links)
            if entry.is_dir() and not entry.is_symlink() and entry.name != "__pycache__":
                if entry.name.removesuffix(".disabled") not in installed:
                    nodes.append(entry.name)
    try:
        repo = history.open_repo(env.cec_dir) if history.has_commit(env.cec_dir) else None
        states = tracking.workflow_states(env, repo) if repo is not None else None
    except (ComfydockError, OSError, ValueError):
        states = None
    if states is None:
        workflows = sorted(tracking.comfyui_workflows(env))
    else:
        workflows = [s.name for s in states if s.state in ("new", "modified")]
    return {"nodes": nodes, "workflows": workflows}


def checkout_recorded_comfyui(
    ws: Workspace, env: Environment, commit: str, version: str | None, step, warn
) -> comfyui.ResolvedRef:
    """Check out the ComfyUI commit a manifest records (import, create --from), named by the
    version it records, from the workspace's ComfyUI source."""
    source = ws.setting("comfyui-source")
    step(f"Fetching ComfyUI from {source}")
    cache = comfyui.update_cache(ws.comfyui_cache_dir, source, warn=warn)
    resolved = comfyui.resolve_ref(cache, commit)
    ref = comfyui.ResolvedRef(str(version or commit[:12]), resolved.commit)
    step(f"Checking out ComfyUI {ref.name} ({ref.commit[:10]})")
    comfyui.checkout(cache, env.comfyui_dir, ref, source)
    return ref
