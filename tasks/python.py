"""Python dependency tasks: pyproject.toml -> uv.lock -> the venv."""

from __future__ import annotations

from comfydock import manifest, uv_runner

# lock_deps' one parameter: packages to move to the newest versions the requirements allow
# ('uv lock --upgrade-package'), asked by 'py remove', 'constraint remove' and 'node update'.
# A doit task parameter, so the request is part of the run that needs it and never outlives it:
# `build(env, [...], task_options=upgrade_options(names))`, or from a dodo.py:
# `doit -f dodo.py lock_deps --upgrade-package numba`.
UPGRADE_PARAM = {
    "name": "upgrade_package",
    "long": "upgrade-package",
    "type": list,
    "default": [],
    "help": "move this package to the newest version the requirements allow (repeatable)",
}


def upgrade_options(names) -> dict[str, list[str]]:
    """doit command-line options for lock_deps asking uv to upgrade `names` (validated names only)."""
    from packaging.utils import canonicalize_name

    from comfydock.requirements_txt import parse_requirement

    args: list[str] = []
    for name in names:
        canonical = canonicalize_name(parse_requirement(name).name)  # letters, digits, '-': safe in argv
        if canonical not in args:
            args += ["--upgrade-package", canonical]
    return {"lock_deps": args} if args else {}


def _lock(env, upgrade_package) -> None:
    lock_coherent(env, upgrade_package)


def machine_backend_in_manifest(env) -> bool:
    """The manifest already has this machine's torch backend (its extra, or a legacy manifest's
    own index for the same backend; or nothing needs torch): nothing to add before locking."""
    from comfydock import torch_family

    return torch_family.backend_ready(env.manifest_data(), env.torch_backend())


def lock_coherent(env, upgrade=()) -> None:
    """uv lock, keeping torch, torchvision and torchaudio to one PyTorch release.

    First this machine's backend gets its extra in the manifest (a normal change to commit).
    Explicit incoherent pins are refused before uv runs. After uv locked, the release every
    family member has is recorded ([tool.comfydock.torch].release and its constraints) and uv
    locks again when that changed what uv may pick. On any failure pyproject.toml and uv.lock
    are put back as they were."""
    from packaging.utils import canonicalize_name

    from comfydock import manifest, torch_family
    from comfydock.errors import ComfydockError, ExternalToolError

    ws = env.workspace
    with env.transaction() as tx:  # any failure, Ctrl-C included, puts both files back
        tx.save_file(env.pyproject_path)
        tx.save_file(env.uv_lock_path)
        doc = manifest.load(env.pyproject_path)
        if not torch_family.backend_ready(doc, env.torch_backend()):
            torch_family.ensure_backend(doc, env.torch_backend(), ws.setting("torch-index"))
        torch_family.check_pins(doc)
        if any(canonicalize_name(n) in torch_family.FAMILY for n in upgrade):
            torch_family.clear_release(doc)  # an upgrade of torch may move to a newer release
        _save_if_changed(env, doc)
        try:
            _uv_lock(env, upgrade, doc)
        except ExternalToolError:
            if not torch_family.clear_release(doc):
                raise
            _save_if_changed(env, doc)  # a requirement moved past the recorded release: derive it anew
            _uv_lock(env, upgrade, doc)
        text = env.uv_lock_path.read_text(encoding="utf-8")
        release = torch_family.lock_release(text)
        if release is None or (release == torch_family.recorded_release(doc) and not torch_family.lock_problems(text)):
            return
        found = torch_family.lock_problems(text)
        torch_family.record_release(doc, release)
        _save_if_changed(env, doc)
        try:
            _uv_lock(env, (), doc)
        except ExternalToolError as exc:
            pins = torch_family.explicit_pins(doc)
            pinned = f" (pinned: {', '.join(f'{k}=={v}' for k, v in sorted(pins.items()))})" if pins else ""
            raise ComfydockError(
                f"no coherent torch family: {'; '.join(found) or 'the locked versions differ'}{pinned}; "
                f"release {torch_family.release_text(release)} is the newest all of them have, and uv cannot lock it",
                hint="pin a PyTorch release that has torch, torchvision and torchaudio (or pin torch alone), "
                "then run 'comfydock build'",
                details=exc.details,
            ) from None
        left = torch_family.lock_problems(env.uv_lock_path.read_text(encoding="utf-8"))
        if left:
            raise ComfydockError(f"no coherent torch family: {'; '.join(left)}", hint="pin one PyTorch release of torch")


def _save_if_changed(env, doc) -> None:
    from comfydock import manifest

    text = manifest.dumps(doc)
    if text.encode() != env.pyproject_path.read_bytes():
        manifest.save(env.pyproject_path, doc)


def _uv_lock(env, upgrade, doc=None) -> None:
    """uv lock under the environment's resolution date (comfydock.resolution; none: as before).

    When uv refuses because the date filtered out what a requirement needs, the packages it
    names may be newer (`plan_moves`: up to the newest part's date, then now; no cutoff for files
    without an upload time), recorded in `doc` (lock_coherent's, saved to pyproject.toml), and uv
    locks again: at most resolution.MAX_ROUNDS rounds, since uv names a transitive package only
    once the one above it moved."""
    from datetime import datetime, timezone

    from comfydock import resolution
    from comfydock.errors import ExternalToolError

    if doc is None:
        doc = manifest.load(env.pyproject_path)
    dated = resolution.as_of(doc) is not None
    if dated and record_part_dates(env, doc):
        _save_if_changed(env, doc)
    spent: set[str] = set()  # moved to now in this run: not again
    for round_ in range(1, resolution.MAX_ROUNDS + 1):
        try:
            uv_runner.uv_lock(env.workspace, env.cec_dir, list(upgrade))
            return
        except ExternalToolError as exc:
            now = datetime.now(timezone.utc)
            moves = resolution.plan_moves(doc, exc.details or "", now, spent) if dated else []
            if not moves or round_ == resolution.MAX_ROUNDS:
                raise torch_index_error(env, exc) or exc from None
        resolution.apply_moves(doc, moves)
        spent.update(m.name for m in moves if m.final)
        _save_if_changed(env, doc)


def record_part_dates(env, doc) -> bool:
    """Record each tracked node's own date in the resolution section (the rule moves a package
    up to the newest part's date): a git or development node's HEAD committer date, a registry
    version's publication date; a development node outside git counts from now. Only nodes
    whose recorded date is of another commit/version are looked at; True if anything changed."""
    from datetime import datetime, timezone

    from comfydock import resolution
    from comfydock.dates import utc_text
    from comfydock.gitutil import commit_date
    from comfydock.nodes.spec import tracked_nodes

    tracked = tracked_nodes(doc)
    known = resolution.node_dates(doc)
    changed = False
    for node_id in set(known) - set(tracked):
        resolution.drop_node_date(doc, node_id)
        changed = True
    for node_id, spec in sorted(tracked.items()):
        of = spec.commit or spec.version or spec.source
        path = env.custom_nodes_dir / spec.directory
        if spec.source == "development":
            head = commit_date(path) if (path / ".git").exists() else None
            of = "HEAD" if head else "working tree"
        if (known.get(node_id) or {}).get("of") == of:
            continue
        if spec.source == "registry":
            date = _registry_version_date(env, spec)
        elif spec.source == "development":
            date = head or utc_text(datetime.now(timezone.utc))
        else:
            date = commit_date(path, spec.commit or "HEAD") if (path / ".git").exists() else None
        if date:
            resolution.set_node_date(doc, node_id, date, of)
            changed = True
    return changed


def _registry_version_date(env, spec) -> str | None:
    """When the registry published this node version (its answers are cached), None if unknown."""
    from comfydock.dates import parse_date, utc_text
    from comfydock.errors import ComfydockError
    from comfydock.nodes.resolve import registry_client

    try:
        versions = registry_client(env.workspace).versions(spec.registry_id or spec.id)
    except ComfydockError:
        return None
    moment = next((parse_date(v.get("createdAt")) for v in versions if v.get("version") == spec.version), None)
    return utc_text(moment) if moment else None


def torch_index_error(env, exc):
    """A clearer error when uv could not reach a PyTorch index (None: something else failed)."""
    from comfydock.errors import ExternalToolError

    details = exc.details or ""
    urls = [
        str(i.get("url"))
        for i in ((manifest.section(env.manifest_data(), "uv") or {}).get("index") or [])
        if str(i.get("name", "")).startswith("pytorch-")
    ]
    unreachable = (
        "Failed to fetch",
        "error sending request",
        "dns error",
        "Connection refused",
        "Could not connect",
        "not found",
        "No such file",
    )
    if not any(u and u.rstrip("/") in details for u in urls) or not any(w in details for w in unreachable):
        return None
    return ExternalToolError(
        "the PyTorch index is unreachable: " + ", ".join(u for u in urls if u.rstrip("/") in details),
        hint="check the network, or install PyPI's torch build with '--torch-backend pypi' "
        "('comfydock config torch-backend pypi'), or point the 'torch-index' setting at a mirror",
        details=details,
    )


def _no_upgrade_asked(task) -> bool:
    # doit passes the task first; its options are None until a run parses them (dry-run, status)
    return not (task.options or {}).get("upgrade_package")


def _sync(env) -> None:
    extra = env.torch_extra()
    uv_runner.uv_sync(env.workspace, env.cec_dir, env.venv_dir, extra)
    env.record_venv_synced(extra)


def _venv_synced(env) -> bool:
    # the venv exists, its marker names this lock and this machine's torch extra (else: sync again)
    return env.venv_in_sync()


def task_lock_deps(env):
    """Resolve .cec/pyproject.toml into .cec/uv.lock with uv."""
    from comfydock.tasks.nodes import scan_task_names

    yield {
        "basename": "lock_deps",
        "task_dep": scan_task_names(env),  # node dependency groups are written before locking
        "file_dep": [env.pyproject_path],
        "targets": [env.uv_lock_path],
        "params": [UPGRADE_PARAM],
        # an upgrade request always runs uv lock, and so does a backend new to the manifest
        "uptodate": [_no_upgrade_asked, (machine_backend_in_manifest, [env])],
        "actions": [(_lock, [env])],
    }


def task_sync_venv(env):
    """Install exactly what .cec/uv.lock says into the environment's .venv."""
    yield {
        "basename": "sync_venv",
        "file_dep": [env.uv_lock_path],
        "targets": [env.venv_marker],
        "uptodate": [(_venv_synced, [env])],
        "actions": [(_sync, [env])],
    }
