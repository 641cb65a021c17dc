"""One environment: its paths, its manifest, and creating, inspecting and deleting it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from comfydock import comfyui, history, manifest, python_env
from comfydock.errors import BuildFailed, ComfydockError, EnvironmentNotFound
from comfydock.fsutil import atomic_write_json, read_json_state, remove_tree
from comfydock.hashing import file_digest
from comfydock.locking import environment_lock
from comfydock.torch_backend import (
    detect_torch_backend,
    requested_torch_backend,
    resolve_torch_backend,
    set_environment_torch_backend,
)
from comfydock.workspace import Workspace, validate_name

INITIAL_MESSAGE = "Initial environment setup"


_tracked_cache: dict[Path, tuple[dict, dict]] = {}


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
        if ws.half_made(name):
            raise EnvironmentNotFound(
                f"environment {name!r} is half-made (its 'create' did not finish)",
                hint=f"remove it with 'comfydock delete {name}', then create it again",
            )
        if not path.is_dir():
            known = ", ".join(ws.environment_names()) or "none yet"
            raise EnvironmentNotFound(
                f"no environment named {name!r} in {ws.root}",
                hint=f"existing environments: {known}; create one with 'comfydock create {name}'",
            )
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
    lock_path = property(lambda self: self.cec_dir / "uv.lock")
    venv_marker = property(lambda self: self.state_dir / "venv-synced.json")
    lock_file = property(lambda self: self.state_dir / "lock")
    log_file = property(lambda self: self.workspace.logs_dir / f"{self.name}.log")

    @property
    def python(self) -> Path:
        return python_env.venv_python(self.venv_dir)

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
        return dict(hit[1])

    def marker_environment(self, doc=None) -> dict[str, str]:
        """Marker values of this environment (its venv's Python, this machine's platform)."""
        info = manifest.environment_info(doc if doc is not None else self.manifest_data())
        return python_env.marker_environment(self.venv_dir, info.get("python_version"))

    def lock_text(self) -> str | None:
        """uv.lock as text; None if there is none yet."""
        return self.lock_path.read_text(encoding="utf-8") if self.lock_path.exists() else None

    def locked_versions(self, doc=None, lock_text: str | None = None) -> dict[str, str]:
        """What uv.lock installs into this environment's venv (its fork of the universal lock).
        `doc` and `lock_text`, when the caller has read them already, are used instead of reading again."""
        from comfydock import torch_family
        from comfydock.dependencies import locked_versions

        text = lock_text if lock_text is not None else self.lock_text()
        versions = locked_versions(text, self.marker_environment(doc))
        try:
            backend = self.torch_backend()
        except Exception:  # an unknown backend name: shown by status, not fatal here
            return versions
        # uv.lock holds one torch per backend extra: this machine's is the one it installs
        return versions | torch_family.family_in_lock(text, versions, backend)

    def lock(self, on_wait=None):
        return environment_lock(self.lock_file, on_wait=on_wait)

    # --- undoing a change (see comfydock/transaction.py) --------------------------------
    def transaction(self):
        """A Transaction whose scratch area is this environment's unversioned state directory."""
        from comfydock.transaction import Transaction

        return Transaction(self.state_dir / "undo")

    def guard_manifest(self, tx, resync: bool = True) -> None:
        """If `tx` is undone, pyproject.toml, uv.lock and doit's record of the last build come
        back byte for byte (the failed build never happened), and (`resync`) the venv is synced
        to them again. Call it first in the transaction: undo runs newest first, so the re-sync
        then runs after every other file is back, and finds only the venv to redo."""
        if resync:
            tx.on_undo(self.resync_venv, "the venv (run 'comfydock build')")
        tx.save_file(self.pyproject_path)
        tx.save_file(self.lock_path)
        tx.save_file(self.state_dir / "doit.db")

    def resync_venv(self) -> None:
        """Sync the venv to uv.lock again, even if doit thinks it is (a failed sync may have
        half-changed it). Best effort: on failure 'comfydock build' finishes the job."""
        from comfydock import engine

        self.venv_marker.unlink(missing_ok=True)
        try:
            engine.build(self, ["sync_venv"])
        except Exception:
            pass

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
        clashes = python_env.module_clashes(self.venv_dir)  # read once per sync, shown by status
        atomic_write_json(
            self.venv_marker,
            {"uv_lock_sha256": file_digest(self.lock_path), "module_clashes": clashes, "torch_extra": extra},
        )

    def synced_torch_extra(self) -> str | None:
        return (read_json_state(self.venv_marker) or {}).get("torch_extra")

    def module_clashes(self) -> list[dict]:
        """Modules more than one installed distribution provides (recorded by the last sync)."""
        recorded = (read_json_state(self.venv_marker) or {}).get("module_clashes")  # derived: damaged = absent
        if isinstance(recorded, list) and all(isinstance(c, dict) for c in recorded):
            return recorded
        return python_env.module_clashes(self.venv_dir)

    def venv_in_sync(self) -> bool:
        try:
            if not self.python.exists() or not self.venv_marker.exists() or not self.lock_path.exists():
                return False
        except OSError:  # e.g. the venv's interpreter is behind a directory this user cannot enter
            return False
        recorded = (read_json_state(self.venv_marker) or {}).get("uv_lock_sha256")
        if not (isinstance(recorded, str) and recorded == file_digest(self.lock_path)):
            return False
        # a changed backend ('comfydock config torch-backend') syncs again, with its extra
        return self.synced_torch_extra() == self.torch_extra()


@dataclass
class CreateResult:
    environment: Environment
    comfyui_ref: str
    comfyui_commit: str
    python: str
    torch_backend: str | None


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
) -> CreateResult:
    """Clone ComfyUI, make the venv, write and lock the manifest, commit v1.

    `comfyui_source` replaces the workspace's comfyui-source for this checkout (adopt takes
    ComfyUI from the adopted install's origin); `populate(env)`, if given, runs after the first
    build and before v1 is committed (adopt adds nodes, packages and workflows there).
    All or nothing: on any failure (Ctrl-C included) the half-made directory is removed,
    and an existing environment of the same name is never touched.
    """
    from comfydock import engine
    from comfydock.requirements import scan_requirements_file

    validate_name(name)
    if torch_backend is not None:
        resolve_torch_backend(torch_backend)  # an unknown name is refused before anything is made
    root = ws.environments_dir / name
    with environment_lock(ws.create_lock_file(name)):
        reserve_directory(ws, name)
        env = Environment(ws, name)
        with env.transaction() as tx:
            tx.created(root)  # any failure, Ctrl-C included, removes the half-made directory
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
            env.cec_dir.mkdir()
            manifest.save(env.pyproject_path, doc)
            (env.cec_dir / ".python-version").write_text(python + "\n")
            (env.cec_dir / "workflows").mkdir()
            (env.cec_dir / "workflows" / ".gitkeep").touch()
            comfyui.write_extra_model_paths(env.comfyui_dir, ws.models_dir)
            if torch_backend is not None:  # this machine's choice for this environment, not shared
                set_environment_torch_backend(env, torch_backend)
            backend = env.torch_backend()

            step(f"Creating Python {python} venv")
            python_env.create_venv(ws, env.venv_dir, python)

            step("Resolving and installing dependencies")
            report = engine.build(env, ["update_manifest", "lock_deps", "sync_venv", "core_node_types"])
            if not report.ok:
                raise build_failure(report)

            if populate is not None:
                populate(env)

            repo = history.init_repo(env.cec_dir)
            history.commit_version(repo, message)
            if use or not ws.active_environment:
                tx.on_undo(partial(ws.set_active, ws.active_environment), "the active environment")
                ws.set_active(name)
    return CreateResult(env, ref.name, ref.commit, python, backend)


def reserve_directory(ws: Workspace, name: str):
    """Under the environment's create lock: refuse a half-made or existing environment of that
    name, then make its (empty) directory. Shared by create, create --from and import."""
    root = ws.environments_dir / name
    if ws.half_made(name):
        raise ComfydockError(
            f"environment {name!r} is half-made at {root} (an earlier 'create' did not finish)",
            hint=f"remove it with 'comfydock delete {name}', then create it again",
        )
    if root.exists():
        raise ComfydockError(
            f"environment {name!r} already exists at {root}",
            hint=f"pick another name, or remove it first with 'comfydock delete {name}'",
        )
    ws.environments_dir.mkdir(parents=True, exist_ok=True)
    root.mkdir()
    return root


def build_failure(report) -> BuildFailed:
    """The user-facing error for a failed build: the first failed task's message and hint,
    and its name as data (`BuildFailed.task`)."""
    failure = report.first_failure()
    if failure is None:
        return BuildFailed("build failed", hint="run 'comfydock build' to see which task fails")
    return BuildFailed(
        f"{failure.task}: {failure.error}",
        hint=failure.hint or "run 'comfydock --verbose build' for details",
        details=failure.details or "",
        task=failure.task,
    )


@dataclass
class ManifestChange:
    changed: bool  # did pyproject.toml change at all
    report: object  # the engine's BuildReport
    result: object = None  # what the mutation returned


def comfyui_requirements(env: Environment) -> list[str]:
    """ComfyUI's requirements.txt as checked out in the environment (empty if it is missing)."""
    from comfydock.requirements import scan_requirements_file

    path = env.comfyui_dir / "requirements.txt"
    return scan_requirements_file(path).requirements if path.is_file() else []


def change_manifest(env: Environment, mutate, *, upgrade=None, listener=None, on_wait=None) -> ManifestChange:
    """Edit pyproject.toml, then lock and sync; on any failure put everything back as it was.

    `mutate(doc)` edits the tomlkit document in place (raising to abort). A manifest from
    before the comfyui-core group is migrated first (dependencies.migrate_layout). `upgrade`,
    if given, maps mutate's result to package names uv should move to the newest versions the
    requirements allow (a removed pin no longer holds them back). On a failed lock or sync, or
    Ctrl-C anywhere, pyproject.toml and uv.lock are restored byte for byte and the venv
    re-synced to them.
    """
    from comfydock import engine
    from comfydock.dependencies import is_legacy_layout, migrate_layout
    from comfydock.tasks.python import upgrade_options

    with env.lock(on_wait):
        doc = env.manifest()
        if is_legacy_layout(doc):
            migrate_layout(doc, comfyui_requirements(env))
        result = mutate(doc)
        changed = manifest.dumps(doc).encode() != env.pyproject_path.read_bytes()
        with env.transaction() as tx:  # any exception, Ctrl-C included, undoes it all
            env.guard_manifest(tx)
            if changed:
                manifest.save(env.pyproject_path, doc)
            options = upgrade_options(upgrade(result)) if upgrade and changed else None
            report = engine.build(env, ["lock_deps", "sync_venv"], listener=listener, task_options=options)
            if not report.ok:
                raise build_failure(report)
    return ManifestChange(changed, report, result)


def delete_environment(ws: Workspace, name: str) -> None:
    """Delete an environment, or the remains of an interrupted 'create' (which hold nothing of
    the user's); a 'create' still running holds its lock and is not disturbed."""
    if ws.half_made(name):
        with environment_lock(ws.create_lock_file(name), timeout=0):
            if ws.half_made(name):
                remove_tree(ws.environment_path(name))
    else:
        env = Environment.open(ws, name)
        with env.lock():
            remove_tree(env.root)
    if ws.active_environment == name:
        ws.set_active(None)


def status(env: Environment) -> dict:
    from comfydock import engine
    from comfydock.adopt import drift
    from comfydock.dependencies import group_counts

    info = env.info()
    from comfydock.tasks import WORKSPACE_TASKS

    planned = engine.plan(env, skip=WORKSPACE_TASKS)  # the environment's own tasks only
    pending = [e.task for e in planned if e.status != "up-to-date"]
    # 'after-upstream' only: the venv matches the lock; what is missing upstream is named on its own
    venv_pending = [e.task for e in planned if e.task in {"lock_deps", "sync_venv"} and e.status == "run"]
    repo = history.open_repo(env.cec_dir)
    changes = [line[3:] for line in repo.git.status("--porcelain").splitlines() if not history.is_temp_file(line[3:])]
    manifest_diff = manifest_changes(env, repo)
    dep_changes, node_changes = manifest_diff["dependencies"], manifest_diff["nodes"]
    from comfydock.remotes import upstream_status
    from comfydock.workflows.report import workflows_status

    workflows = workflows_status(env, repo)

    missing_node_dirs = sorted(
        spec.id
        for spec in env.tracked_nodes().values()
        if spec.source != "development" and not (env.custom_nodes_dir / spec.directory).is_dir()
    )
    head = None
    try:
        head = comfyui._git().Repo(env.comfyui_dir).head.commit.hexsha
    except Exception:
        pass
    return {
        "environment": env.name,
        "path": str(env.root),
        "comfyui_version": info.get("comfyui_version"),
        "comfyui_commit": info.get("comfyui_commit"),
        "comfyui_checkout_matches": head == info.get("comfyui_commit") if head else False,
        "comfyui_missing": not (env.comfyui_dir / "main.py").is_file(),
        "python_version": info.get("python_version"),
        **torch_status(env),
        "venv_in_sync": env.venv_in_sync() and not venv_pending,
        "missing_node_dirs": missing_node_dirs,  # tracked nodes whose directory is gone ('build' restores them)
        "pending_tasks": pending,
        "uncommitted_changes": changes,
        "dependency_changes": dep_changes,
        "node_changes": node_changes,
        "requirement_groups": group_counts(env.manifest_data()),
        "module_clashes": env.module_clashes(),
        "upstream": upstream_status(env),  # ahead/behind as of the last fetch (no network)
        "drift": drift(env),
        **workflows,
    }


def torch_status(env: Environment, doc=None, lock_text: str | None = None, versions: dict[str, str] | None = None) -> dict:
    """This machine's backend (requested, where from, detected) and the torch family the venv gets.
    `doc`, `lock_text` and `versions` (env.locked_versions), if already read, are not read again."""
    from comfydock import torch_family

    requested, where = env.torch_backend_requested()
    try:
        backend = resolve_torch_backend(requested)
        backend_error = None
    except Exception as exc:  # an unknown name in $COMFYDOCK_TORCH_BACKEND: shown, not fatal
        backend, backend_error = None, str(exc)
    doc = env.manifest_data() if doc is None else doc
    text = env.lock_text() if lock_text is None else lock_text
    versions = torch_family.family_in_lock(text, env.locked_versions(doc, text) if versions is None else versions, backend)
    release = torch_family.recorded_release(doc)
    report = torch_family.FamilyReport(
        versions,
        torch_family.release_text(release) if release else None,
        torch_family.problem(versions),
    )
    return {
        "torch_backend": backend or "pypi",
        "torch_backend_requested": requested,
        "torch_backend_source": where,
        "torch_backend_detected": detect_torch_backend() if requested == "auto" else None,
        "torch_backend_error": backend_error,
        "torch_backends_in_manifest": [e.removeprefix("torch-") for e in torch_family.backend_extras(doc)],
        "torch_family": report.to_json() | {"summary": report.summary()},
    }


@dataclass
class PythonRequirements:
    """'py list': direct requirements with their locked versions, the torch family, module clashes."""

    rows: list  # dependencies.RequirementRow
    torch_family: dict  # torch_status(env)["torch_family"]
    module_clashes: list[dict]


def python_requirements(env: Environment) -> PythonRequirements:
    """What 'py list' shows, reading pyproject.toml and uv.lock once each."""
    from comfydock.dependencies import requirement_rows

    doc = env.manifest_data()
    text = env.lock_text()
    versions = env.locked_versions(doc, text)
    family = torch_status(env, doc, text, versions)["torch_family"]
    return PythonRequirements(requirement_rows(doc, versions), family, env.module_clashes())


def constraint_rows(env: Environment) -> list[dict]:
    """'constraint list': each constraint with the version uv.lock installs of its package."""
    from packaging.utils import canonicalize_name

    from comfydock.dependencies import constraints
    from comfydock.requirements import parse_requirement

    doc = env.manifest_data()
    versions = env.locked_versions(doc)
    return [{"constraint": c, "locked": versions.get(canonicalize_name(parse_requirement(c).name))} for c in constraints(doc)]


def manifest_changes(env: Environment, repo) -> dict:
    """Python requirements and custom nodes changed since the last version (HEAD)."""
    dep_changes = {"added": [], "removed": []}
    node_changes = {"added": [], "removed": [], "changed": []}
    try:
        import tomllib

        committed = tomllib.loads(repo.git.show("HEAD:pyproject.toml"))
    except Exception:  # no commit yet, or an unreadable committed file: nothing to compare
        committed = None
    if committed is not None:
        from comfydock.dependencies import dependency_snapshot
        from comfydock.nodes.spec import tracked_nodes

        current = env.manifest_data()
        before, after = dependency_snapshot(committed), dependency_snapshot(current)
        dep_changes = {"added": sorted(after - before), "removed": sorted(before - after)}
        old_nodes, new_nodes = tracked_nodes(committed), tracked_nodes(current)
        node_changes = {
            "added": sorted(set(new_nodes) - set(old_nodes)),
            "removed": sorted(set(old_nodes) - set(new_nodes)),
            "changed": sorted(n for n in set(old_nodes) & set(new_nodes) if old_nodes[n] != new_nodes[n]),
        }
    return {"dependencies": dep_changes, "nodes": node_changes}
