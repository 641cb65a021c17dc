"""`comfydock import`: a bundle (checked whole before anything is written) becomes a new environment.

Steps: check the bundle; extract it to `comfydock_cache/imports/<sha256>/bundle` (kept until the
import succeeds, so a rerun of the same command continues); ComfyUI at the recorded commit, the
bundle's pyproject.toml and uv.lock, the venv; development nodes from dev_nodes/; models (index →
--models-from → download, resumable and verified); registry/git nodes and `uv sync --frozen`
through the task graph (the node cache keeps what was fetched); workflows into ComfyUI; commit v1.

All or nothing like `create`: on any failure (Ctrl-C included) the environment directory is
removed. What survives on purpose: verified model files (in the workspace models directory and
its index), partial downloads (`.part`, continued with Range), fetched nodes (the node cache).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tomllib
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from comfydock import manifest
from comfydock.errors import ComfydockError
from comfydock.torch_backend import adopt_machine_backend, resolve_torch_backend

PROJECT_PREFIX = "comfydock-env-"


@dataclass
class ImportedModel:
    name: str
    path: str
    size: int
    how: str  # indexed | copied | downloaded | substitute | skipped | missing
    location: str | None = None
    resumed_from: int = 0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ImportResult:
    environment: str
    path: str
    bundle: str
    sha256: str
    comfyui_commit: str
    python: str
    torch_backend: str | None
    version: str | None = None
    nodes: list[dict] = field(default_factory=list)
    models: list[ImportedModel] = field(default_factory=list)
    workflows: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    active: bool = False

    def to_json(self) -> dict:
        data = asdict(self)
        data["models"] = [m.to_json() for m in self.models]
        return data


def import_dir(ws, sha256: str) -> Path:
    return ws.cache_dir / "imports" / sha256


def environment_name(pyproject: dict, bundle: Path) -> str:
    """The exporter's environment name (from the project name comfydock wrote), else the file name."""
    project = manifest.project_name(pyproject)
    if project.startswith(PROJECT_PREFIX) and len(project) > len(PROJECT_PREFIX):
        return project[len(PROJECT_PREFIX) :]
    stem = bundle.name.removesuffix(".tar.gz").removesuffix(".tgz")
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).strip("-.") or "imported"


def _indexed_location(db_path: Path, model, base_dir: Path | None = None) -> Path | None:
    """An existing file the index knows for `model` (same quick hash; same SHA256 when known)."""
    if not db_path.exists():
        return None
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute("SELECT sha256_hash FROM models WHERE hash = ?", (model.hash,)).fetchone()
        if row is None or (row[0] and row[0] != model.sha256):
            return None
        query = "SELECT base_dir, relative_path, file_size FROM model_locations WHERE model_hash = ?"
        args: tuple = (model.hash,)
        if base_dir is not None:
            query += " AND base_dir = ?"
            args += (str(base_dir),)
        for base, rel, size in conn.execute(query + " ORDER BY base_dir, relative_path", args):
            path = Path(base) / rel
            if size == model.size and path.is_file():
                return path
    finally:
        conn.close()
    return None


def _substitute(path: Path, dest: Path) -> None:
    """Put the user's substitute file at the recorded path: a hard link when it can, else a copy."""
    import os
    import tempfile

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(path, dest)
        return
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        os.link(tmp, dest)  # never over a file that appeared meanwhile
    finally:
        Path(tmp).unlink(missing_ok=True)


def _models(ws, lock, *, models_from, progress, warn, step, choose=None) -> list[ImportedModel]:
    from comfydock import model_index
    from comfydock.bundle.download import download, download_model, workspace_tokens

    models_dir = ws.models_dir
    if lock.models and models_dir is None:
        raise ComfydockError(
            "this workspace has no models directory to put the bundle's models in",
            hint="set one with 'comfydock config models-dir DIR', or import with --skip-models",
        )
    if not lock.models:
        return []
    models_dir.mkdir(parents=True, exist_ok=True)
    step("Looking for the bundle's models in the model index")
    model_index.index_directory(ws.models_db, models_dir)
    from_dir = None
    if models_from is not None:
        from_dir = Path(models_from).expanduser().absolute()
        step(f"Indexing {from_dir}")
        model_index.index_directory(ws.models_db, from_dir)
    tokens = workspace_tokens(ws)
    out: list[ImportedModel] = []
    failed: list[str] = []
    base = models_dir.expanduser().absolute()
    for m in lock.models:
        found = _indexed_location(ws.models_db, m, base)  # in the models directory: used where it is
        if found is not None:
            out.append(ImportedModel(m.name, m.path, m.size, "indexed", str(found)))
            continue
        dest = m.destination(models_dir)
        source = _indexed_location(ws.models_db, m, from_dir) if from_dir is not None else None
        if source is None:  # another directory the index knows (ComfyUI only sees the models directory)
            source = _indexed_location(ws.models_db, m)
        if source is not None:
            step(f"Copying {m.name} from {source.parent}")
            download(
                source.as_uri(), dest, sha256=m.sha256, blake3=m.blake3, size=m.size, progress=progress(m), schemes=("file",)
            )
            out.append(ImportedModel(m.name, m.path, m.size, "copied", str(dest)))
            continue
        answer = "download" if m.urls else None
        if choose is not None:
            answer = choose({"name": m.name, "path": m.path, "size": m.size, "has_url": bool(m.urls)})
        if isinstance(answer, (str, os.PathLike)) and answer not in ("download", "skip"):
            source = Path(answer).expanduser()
            if not source.is_file():
                raise ComfydockError(f"substitute for {m.name}: {source} is not a file", hint="give the path of the model file")
            if dest.exists():
                raise ComfydockError(f"cannot put the substitute for {m.name} at {dest}: a file is already there")
            _substitute(source, dest)
            warn(f"model {m.name}: using {source} as a substitute (not the exporter's file; not verified)")
            out.append(ImportedModel(m.name, m.path, m.size, "substitute", str(dest)))
            continue
        if answer == "skip":
            out.append(ImportedModel(m.name, m.path, m.size, "skipped"))
            continue
        if not m.urls:
            warn(f"model {m.name} has no download URL in the bundle and was not found locally (pass --models-from DIR)")
            out.append(ImportedModel(m.name, m.path, m.size, "missing"))
            continue
        step(f"Downloading {m.name}")
        try:
            result = download_model(m, models_dir, tokens=tokens, progress=progress(m))
        except ComfydockError as e:  # the other models still come: a rerun then has less to do
            failed.append(e.message)
            continue
        out.append(ImportedModel(m.name, m.path, m.size, "downloaded", str(result.path), result.resumed_from))
    if any(m.how in ("copied", "downloaded", "substitute") for m in out):
        model_index.index_directory(ws.models_db, models_dir)
    if failed:
        raise ComfydockError(
            f"{len(failed)} model(s) could not be downloaded: " + "; ".join(failed),
            hint="run the same command again: finished and partial downloads are kept (or pass --models-from DIR)",
        )
    return out


def _set_widget(data, node_id: str, idx: str, old: str, new: str) -> bool:
    """Set the widget value naming model file `old` to `new`, in a UI (top-level nodes) or API workflow."""
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        for node in data["nodes"]:
            if not isinstance(node, dict) or str(node.get("id")) != node_id:
                continue
            values = node.get("widgets_values")
            if isinstance(values, list) and idx.isdigit() and int(idx) < len(values) and values[int(idx)] == old:
                values[int(idx)] = new
                return True
            if isinstance(values, dict) and values.get(idx) == old:
                values[idx] = new
                return True
        return False
    node = data.get(node_id) if isinstance(data, dict) else None
    inputs = node.get("inputs") if isinstance(node, dict) else None
    if isinstance(inputs, dict) and inputs.get(idx) == old:
        inputs[idx] = new
        return True
    return False


def rewrite_model_paths(workflows: list[str], entries: dict, moved: dict[str, tuple[str, str]], *dirs: Path) -> list[str]:
    """Point workflow widgets at the local copies of models that sit elsewhere in this models directory.

    `moved`: model hash -> (recorded relative path, local relative path). A widget names a file
    relative to its model folder (`checkpoints/`), so only a move inside the same folder can be
    expressed; `entries` (the bundle's [tool.comfydock.workflows.*]) say which node and widget
    name each model. Returns one note per rewritten reference."""
    import json

    notes = []
    for name in workflows:
        refs = [
            (node, moved[h])
            for h, info in ((entries.get(name) or {}).get("models") or {}).items()
            if h in moved and isinstance(info, dict)
            for node in info.get("nodes") or []
            if isinstance(node, dict)
        ]
        if not refs:
            continue
        for directory in dirs:
            path = directory / f"{name}.json"
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            changed = False
            for node, (old_rel, new_rel) in refs:
                old_folder, new_folder = old_rel.split("/", 1)[0], new_rel.split("/", 1)[0]
                if old_folder != new_folder or "/" not in new_rel:
                    continue
                new_value = new_rel.split("/", 1)[1]
                old_value = str(node.get("filename"))
                if _set_widget(data, str(node.get("node_id")), str(node.get("widget_idx")), old_value, new_value):
                    changed = True
                    if directory == dirs[0]:
                        notes.append(f"{name}: node {node.get('node_id')} now loads {new_value} (was {old_value})")
            if changed:
                path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return notes


def _copy_workflows(src: Path, *dests: Path) -> list[str]:
    names = []
    if not src.is_dir():
        return names
    for path in sorted(src.rglob("*.json")):
        rel = path.relative_to(src)
        names.append(rel.with_suffix("").as_posix())
        for dest in dests:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return names


def _refuse_existing(ws, name: str) -> None:
    root = ws.environments_dir / name
    if root.exists():
        raise ComfydockError(
            f"environment {name!r} already exists at {root}",
            hint=f"import under another name with --env NAME, or remove it first with 'comfydock delete {name}'",
        )


def check_nodes_agree(bundle: Path, pyproject: dict, lock) -> None:
    """The bundle's pyproject.toml installs nodes; comfydock.lock is what was validated field by field.
    Both come from the same export, so they must name the same nodes the same way."""
    from comfydock.nodes.spec import tracked_nodes

    locked = {n.id: n for n in lock.nodes}
    try:
        specs = tracked_nodes(pyproject)
    except ComfydockError as exc:  # an invalid name or directory, two nodes in one directory
        raise ComfydockError(
            f"bundle {bundle.name} refused: {exc.message}",
            hint="the bundle may be damaged or hostile; ask its author for a fresh export (nothing was written)",
        ) from None
    except Exception:
        specs = None
    if specs is None or set(specs) != set(locked):
        raise ComfydockError(
            f"bundle {bundle.name} refused: pyproject.toml and comfydock.lock list different custom nodes",
            hint="the bundle may be damaged or hostile; ask its author for a fresh export (nothing was written)",
        )
    for node_id, spec in specs.items():
        n = locked[node_id]
        want = (n.method, n.directory, n.version if n.method == "registry" else None, n.commit if n.method == "git" else None)
        have = (
            spec.source,
            spec.directory,
            spec.version if spec.source == "registry" else None,
            spec.commit if spec.source == "git" else None,
        )
        if want != have:
            raise ComfydockError(
                f"bundle {bundle.name} refused: pyproject.toml and comfydock.lock disagree about node {node_id}",
                hint="the bundle may be damaged or hostile; ask its author for a fresh export (nothing was written)",
            )


def check_lock_agrees(bundle: Path, pyproject: dict, uv_lock: Path) -> None:
    """The bundle's uv.lock installs what its pyproject.toml asks for, nothing else, in the
    versions it allows (manifest.lock_contradiction): uv itself trusts a lock whose recorded
    requirements match, whatever versions it locks."""
    problem = manifest.lock_contradiction(pyproject, manifest.uv_lock_packages(uv_lock.read_text(encoding="utf-8")))
    if problem:
        raise ComfydockError(
            f"bundle {bundle.name} refused: its uv.lock contradicts its pyproject.toml: {problem}",
            hint="the bundle may be damaged or hostile; ask its author for a fresh export (nothing was written)",
        )


def import_bundle(
    ws,
    bundle: Path,
    *,
    name: str | None = None,
    use: bool = False,
    skip_models: bool = False,
    skip_nodes: bool = False,
    models_from: Path | None = None,
    torch_backend: str | None = None,
    choose=None,
    step=lambda message: None,
    warn=lambda message: None,
    progress=lambda model: None,
) -> ImportResult:
    """Create environment `name` (default: the exporter's) from `bundle`; see the module docstring.

    `choose(model: dict) -> "download" | "skip" | path` is asked for each model found neither in
    the index nor in `models_from` (a path: a local substitute put at the recorded place, not
    verified). Without it: download when the bundle has a URL, else the model is listed missing.
    `progress(model)` returns a download progress callback (or None)."""
    from comfydock import comfyui, engine, history, uv_runner
    from comfydock.bundle import lockfile
    from comfydock.bundle.archive import ArchiveLimits, check_bundle, extract_bundle
    from comfydock.engine import build_failure
    from comfydock.fsutil import remove_tree
    from comfydock.hashing import file_digest
    from comfydock.lifecycle import checkout_recorded_comfyui, creating
    from comfydock.workspace import validate_name

    bundle = Path(bundle).expanduser()
    if not bundle.is_file():
        raise ComfydockError(f"no bundle at {bundle}", hint="give the path of a .tar.gz made by 'comfydock export'")
    if models_from is not None and not Path(models_from).expanduser().is_dir():
        raise ComfydockError(f"--models-from {models_from} is not a directory", hint="give a directory of model files")
    warnings: list[str] = []

    def _warn(msg):
        warnings.append(msg)
        warn(msg)

    if name is not None:
        validate_name(name)
        _refuse_existing(ws, name)
    limits = ArchiveLimits.from_settings(ws.setting)
    step(f"Checking {bundle.name}")
    check_bundle(bundle, limits)  # the whole archive, before anything is written
    sha = file_digest(bundle)
    work = import_dir(ws, sha)
    extracted = work / "bundle"
    fresh = not extracted.is_dir()
    with ws.transaction() as tx:  # refused before anything was made: leave nothing behind
        if fresh:  # a rerun of an interrupted import reuses the earlier extraction
            tx.created(work)
            extract_bundle(bundle, extracted, limits)
        lock = lockfile.read_lock(extracted / "comfydock.lock")
        pyproject_bytes = (extracted / "pyproject.toml").read_bytes()
        data = tomllib.loads(pyproject_bytes.decode("utf-8"))
        check_nodes_agree(bundle, data, lock)
        info = manifest.environment_info(data)
        name = validate_name(name or environment_name(data, bundle))
        _refuse_existing(ws, name)
        python = manifest.check_python_version(lock.python_version or info.get("python_version") or "3.11", bundle.name)
        commit = lock.comfyui.commit if lock.comfyui else str(info.get("comfyui_commit") or "")
        if not commit:
            raise ComfydockError(
                f"bundle {bundle.name} does not say which ComfyUI commit it needs", hint="ask for a fresh export"
            )
        if lock.models and not skip_models and ws.models_dir is None:
            raise ComfydockError(
                "this workspace has no models directory to put the bundle's models in",
                hint="set one with 'comfydock config models-dir DIR', or import with --skip-models",
            )
        if torch_backend is not None:
            resolve_torch_backend(torch_backend)  # an unknown name is refused before anything is made
        check_lock_agrees(bundle, data, extracted / "uv.lock")

    root = ws.environments_dir / name
    with creating(ws, name) as (env, tx):  # any failure, Ctrl-C included, removes the half-made environment
        ref = checkout_recorded_comfyui(ws, env, commit, info.get("comfyui_version"), step, _warn)

        env.cec_dir.mkdir()
        (env.pyproject_path).write_bytes(pyproject_bytes)
        shutil.copyfile(extracted / "uv.lock", env.uv_lock_path)
        note = adopt_machine_backend(env, torch_backend, "bundle")
        recorded, backend = note is None, env.torch_backend()
        if note:
            _warn(note)
        (env.cec_dir / ".python-version").write_text(python + "\n")
        (env.cec_dir / "workflows").mkdir()
        (env.cec_dir / "workflows" / ".gitkeep").touch()
        workflows = _copy_workflows(extracted / "workflows", env.cec_dir / "workflows", env.workflows_dir)
        comfyui.write_extra_model_paths(env.comfyui_dir, ws.models_dir)

        node_rows = []
        for node in lock.nodes:
            row = {"id": node.id, "method": node.method, "directory": node.directory}
            if node.method == "development":
                src = extracted / "dev_nodes" / node.directory
                dest = env.custom_nodes_dir / node.directory
                if src.is_dir():
                    shutil.copytree(src, dest)
                    row["installed"] = True
                else:
                    dest.mkdir(parents=True)
                    _warn(f"development node {node.id}: the bundle has no files for it (an empty directory was made)")
                    row["installed"] = False
            else:
                row["installed"] = not skip_nodes
                row["version"] = node.version or (node.commit or "")[:10]
            node_rows.append(row)

        step(f"Creating Python {python} venv")
        uv_runner.create_venv(ws, env.venv_dir, python)

        if not skip_nodes:  # nodes first: fetched into the node cache, a rerun does not fetch them again
            from comfydock.tasks.nodes import scan_task_names

            step("Installing nodes")
            report = engine.build(env, scan_task_names(env))
            if not report.ok:
                raise build_failure(report)

        models: list[ImportedModel] = []
        if skip_models:
            models = [ImportedModel(m.name, m.path, m.size, "skipped") for m in lock.models]
        else:
            models = _models(ws, lock, models_from=models_from, progress=progress, warn=_warn, step=step, choose=choose)

        moved = {}
        for m, done in zip(lock.models, models):
            if done.how == "indexed" and done.location:
                local = Path(done.location).relative_to(ws.models_dir.expanduser().absolute()).as_posix()
                if local != m.path:
                    moved[m.hash] = (m.path, local)
        if moved:
            entries = manifest.workflow_entries(data)
            for note in rewrite_model_paths(workflows, entries, moved, env.cec_dir / "workflows", env.workflows_dir):
                _warn(f"model path rewritten: {note}")

        if skip_nodes:
            step("Installing dependencies from uv.lock (nodes skipped)")
            if not recorded:
                from comfydock.tasks.python import lock_coherent

                lock_coherent(env)
            uv_runner.uv_sync(ws, env.cec_dir, env.venv_dir, env.torch_extra())
            env.record_venv_synced(env.torch_extra())
            from comfydock import torch_probe

            torch_probe.after_sync(env)  # the family's import result, as sync_venv records it
            if any(n.method != "development" for n in lock.nodes):
                _warn("registry and git nodes were not installed (--skip-nodes): 'comfydock build' installs them")
        else:
            step("Installing dependencies (uv sync --frozen)")
            report = engine.build(env, ["lock_deps", "sync_venv", "core_node_types"])
            if not report.ok:
                raise build_failure(report)
            if recorded and env.uv_lock_path.read_bytes() != (extracted / "uv.lock").read_bytes():
                _warn("uv.lock was re-resolved on this machine: it differs from the bundle's")

        repo = history.init_repo(env.cec_dir)
        version = history.commit_version(repo, f"Imported from {bundle.name}")
        if use or not ws.active_environment:
            tx.on_undo(partial(ws.set_active, ws.active_environment), "the active environment")
            ws.set_active(name)
    remove_tree(work)
    return ImportResult(
        environment=name,
        path=str(root),
        bundle=str(bundle.absolute()),
        sha256=sha,
        comfyui_commit=ref.commit,
        python=python,
        torch_backend=backend or "pypi",
        version=version.version,
        nodes=node_rows,
        models=models,
        workflows=workflows,
        warnings=warnings,
        active=ws.active_environment == name,
    )
