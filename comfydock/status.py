"""What `status` and `py list` / `constraint list` report about an environment (read only)."""

from __future__ import annotations

from dataclasses import dataclass

from comfydock import engine, history
from comfydock.environment import Environment
from comfydock.errors import ComfydockError
from comfydock.resolution import info as resolution_info
from comfydock.torch_backend import detect_torch_backend, resolve_torch_backend


def status(env: Environment) -> dict:
    from comfydock.adopt import drift
    from comfydock.pydeps import group_counts
    from comfydock.undeclared import undeclared_imports_status
    from comfydock.versioning import manifest_changes  # commit's module: only this function of it

    info = env.info()
    from comfydock.tasks import WORKSPACE_TASKS

    planned = engine.plan(env, skip=WORKSPACE_TASKS)  # the environment's own tasks only
    pending = [e.task for e in planned if e.status != "up-to-date"]
    # 'after-upstream' only: the venv matches the lock; what is missing upstream is named on its own
    venv_pending = [e.task for e in planned if e.task in {"lock_deps", "sync_venv"} and e.status == "run"]
    if venv_pending == ["sync_venv"] and env.venv_in_sync():
        venv_pending = []  # the venv is synced; only its torch import is unchecked (the torch family line says so)
    repo = history.open_repo(env.cec_dir)
    changes = [line[3:] for line in repo.git.status("--porcelain").splitlines() if not history.is_temp_file(line[3:])]
    manifest_diff = manifest_changes(env, repo)
    dep_changes, node_changes = manifest_diff["dependencies"], manifest_diff["nodes"]
    from comfydock.remotes import upstream_status
    from comfydock.workflows.report import workflows_status

    workflows = workflows_status(env, repo)

    tracked = env.tracked_nodes()
    missing_node_dirs = sorted(
        spec.id
        for spec in tracked.values()
        if spec.source != "development" and not (env.custom_nodes_dir / spec.directory).is_dir()
    )
    # a development node's source is the user's directory: 'build' cannot bring it back, and one
    # renamed NAME.disabled (node remove, rollback) is kept on purpose, not missing
    missing_dev_nodes = [
        {"id": spec.id, "path": (env.custom_nodes_dir / spec.directory).relative_to(env.root).as_posix()}
        for _, spec in sorted(tracked.items())
        if spec.source == "development"
        and not (env.custom_nodes_dir / spec.directory).is_dir()
        and not (env.custom_nodes_dir / f"{spec.directory}.disabled").is_dir()
    ]
    from comfydock.gitutil import git as _git

    git = _git()
    head, edited = None, []
    try:
        repo = git.Repo(env.comfyui_dir)
        head = repo.head.commit.hexsha
        # ComfyUI's own tracked files changed by hand (untracked ones, like custom_nodes/, are not ComfyUI's)
        edited = [line[3:] for line in repo.git.status("--porcelain", "--untracked-files=no").splitlines()]
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError, ValueError, OSError):
        pass  # ComfyUI's checkout is gone or broken: status says so (comfyui_missing / not matching)
    return {
        "environment": env.name,
        "path": str(env.root),
        "comfyui_version": info.get("comfyui_version"),
        "comfyui_commit": info.get("comfyui_commit"),
        "comfyui_checkout_matches": head == info.get("comfyui_commit") if head else False,
        "comfyui_missing": not (env.comfyui_dir / "main.py").is_file(),
        "comfyui_local_edits": edited,  # ComfyUI files changed by hand: not versioned, kept by run
        "python_version": info.get("python_version"),
        "resolution": resolution_info(env.manifest_data()),  # the date uv resolves as of (None: no cutoff)
        **torch_status(env),
        "venv_in_sync": env.venv_in_sync() and not venv_pending,
        "missing_node_dirs": missing_node_dirs,  # tracked nodes whose directory is gone ('build' restores them)
        "missing_dev_nodes": missing_dev_nodes,  # development nodes whose directory is gone ({id, path})
        "pending_tasks": pending,
        "uncommitted_changes": changes,
        "dependency_changes": dep_changes,
        "node_changes": node_changes,
        "requirement_groups": group_counts(env.manifest_data()),
        "module_clashes": env.module_clashes(),
        "upstream": upstream_status(env),  # ahead/behind as of the last fetch (no network)
        "drift": drift(env),
        "undeclared_imports": undeclared_imports_status(env),  # comfydock.undeclared
        **workflows,
        **comfyui_check_status(env),
    }


def comfyui_check_status(env: Environment) -> dict:
    """The last `comfydock check` (comfyui_check.check_status) under its own key."""
    from comfydock.comfyui_check import check_status

    return {"comfyui_check": check_status(env)}


def torch_status(env: Environment, doc=None, uv_lock_text: str | None = None, versions: dict[str, str] | None = None) -> dict:
    """This machine's backend (requested, where from, detected) and the torch family the venv gets.
    `doc`, `uv_lock_text` and `versions` (env.locked_versions), if already read, are not read again."""
    from comfydock import torch_family

    requested, where = env.torch_backend_requested()
    try:
        backend = resolve_torch_backend(requested)
        backend_error = None
    except ComfydockError as exc:  # an unknown name in $COMFYDOCK_TORCH_BACKEND: shown, not fatal
        backend, backend_error = None, str(exc)
    doc = env.manifest_data() if doc is None else doc
    text = env.uv_lock_text() if uv_lock_text is None else uv_lock_text
    versions = torch_family.family_in_lock(text, env.locked_versions(doc, text) if versions is None else versions, backend)
    from comfydock import torch_probe

    imports, import_problem = torch_probe.family_state(env)  # the record of the last sync's import, never an import
    report = torch_family.FamilyReport(
        versions, torch_family.recorded_release(doc), torch_family.problem(versions), imports, import_problem
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

    rows: list  # pydeps.RequirementRow
    torch_family: dict  # torch_status(env)["torch_family"]
    module_clashes: list[dict]


def python_requirements(env: Environment) -> PythonRequirements:
    """What 'py list' shows, reading pyproject.toml and uv.lock once each."""
    from comfydock.manifest import check_uv_lock
    from comfydock.pydeps import requirement_rows

    doc = env.manifest_data()
    check_uv_lock(env.uv_lock_path)  # a damaged lock is an error here too, never a column of '-'
    text = env.uv_lock_text()
    versions = env.locked_versions(doc, text)
    family = torch_status(env, doc, text, versions)["torch_family"]
    return PythonRequirements(requirement_rows(doc, versions), family, env.module_clashes())


def constraint_rows(env: Environment) -> list[dict]:
    """'constraint list': each constraint with the version uv.lock installs of its package."""
    from packaging.utils import canonicalize_name

    from comfydock.manifest import check_uv_lock
    from comfydock.pydeps import constraints
    from comfydock.requirements_txt import parse_requirement

    doc = env.manifest_data()
    check_uv_lock(env.uv_lock_path)
    versions = env.locked_versions(doc)
    return [{"constraint": c, "locked": versions.get(canonicalize_name(parse_requirement(c).name))} for c in constraints(doc)]
