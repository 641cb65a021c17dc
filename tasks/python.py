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


def release_recorded_exactly(env) -> bool:
    """The manifest's torch release is in the exact form (or there is none): a manifest with
    the older minor-only form ('2.8') is locked again, which records '2.8.0'."""
    from comfydock import torch_family

    return not torch_family.recorded_release(env.manifest_data()) or torch_family.is_exact(
        torch_family.recorded_release(env.manifest_data())
    )


def lock_coherent(env, upgrade=()) -> None:
    """uv lock, keeping torch, torchvision and torchaudio to one PyTorch release.

    First this machine's backend gets its extra in the manifest (a normal change to commit).
    Explicit incoherent pins are refused before uv runs. After uv locked, the release every
    family member has is recorded ([tool.comfydock.torch].release and its exact constraints)
    and uv locks again when that changed what uv may pick (_keep_to_one_release). On any
    failure pyproject.toml and uv.lock are put back as they were."""
    from packaging.utils import canonicalize_name

    from comfydock import manifest, torch_family
    from comfydock.errors import ExternalToolError

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
        _keep_to_one_release(env, doc)


_MAX_RELEASE_STEPS = 8  # each step locks once; a release found unlockable is bounded below, never tried again


def _keep_to_one_release(env, doc) -> None:
    """After a lock: when the locked members are not one exact pairing (torch 2.11.0 with
    torchaudio 2.11.1), record the newest release every locked member has (2.11.0: exact '=='
    lines) and lock again. When uv cannot lock that release (torchaudio 2.11.1 is newer than any
    torch 2.11.1), bound every member to it ('<=') and lock: the members then show the newest
    release below it that all of them have. Each step lowers the release, so this ends."""
    from comfydock import torch_family
    from comfydock.errors import ExternalToolError

    text = env.uv_lock_path.read_text(encoding="utf-8")
    first = torch_family.lock_problems(text)
    for _ in range(_MAX_RELEASE_STEPS):
        release = torch_family.lock_release(text)
        problems = torch_family.lock_problems(text)
        if release is None or (release == torch_family.recorded_release(doc) and not problems):
            return
        torch_family.record_release(doc, release)
        _save_if_changed(env, doc)
        try:
            _uv_lock(env, (), doc)
        except ExternalToolError as exc:
            if not problems:
                raise  # a coherent lock that its own release cannot reproduce: uv's error says why
            torch_family.bound_release(doc, release)
            _save_if_changed(env, doc)
            try:
                _uv_lock(env, (), doc)
            except ExternalToolError:
                raise _no_coherent_family(doc, first or problems, release, exc) from None
        text = env.uv_lock_path.read_text(encoding="utf-8")
    raise _no_coherent_family(doc, first, torch_family.lock_release(text), None)


def _no_coherent_family(doc, found, release, exc):
    from comfydock import torch_family
    from comfydock.errors import ExternalToolError

    pins = torch_family.explicit_pins(doc)
    pinned = f" (pinned: {', '.join(f'{k}=={v}' for k, v in sorted(pins.items()))})" if pins else ""
    refused = torch_family.refused_releases(doc)
    refused_note = f"; refused here: {', '.join(refused)}" if refused else ""
    return ExternalToolError(
        f"no coherent torch family: {'; '.join(found) or 'the locked versions differ'}{pinned}{refused_note}; "
        f"release {release} ({torch_family.describe(torch_family.pairing(release)) if release else '?'}) "
        "is the newest all of them have, and uv cannot lock it",
        hint=(f"change the pins ({', '.join(f'{k}=={v}' for k, v in sorted(pins.items()))}) to " if pins else "pin ")
        + "one PyTorch release that has torch, torchvision and torchaudio (e.g. "
        "'comfydock constraint add torch==2.8.0 torchvision==0.23.0 torchaudio==2.8.0'), or pin torch alone",
        details=exc.details if exc is not None else "",
    )


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


def _sync(env):
    """uv sync, then the family proven to import (torch_probe: once per changed family). A
    family that does not import is refused and the next coherent one chosen (_refuse_family);
    what happened is returned as notes for the output."""
    from comfydock import torch_probe

    extra = env.torch_extra()
    uv_runner.uv_sync(env.workspace, env.cec_dir, env.venv_dir, extra)
    env.record_venv_synced(extra)
    record = torch_probe.after_sync(env)
    if not record.get("import_error"):
        return None  # a build of another backend is not the release's fault: run and status name it
    # pyproject.toml and uv.lock changed after lock_deps ran: lock_deps runs again (a no-op
    # lock) so that doit's record of them is current
    return {"notes": _refuse_family(env, record), "rerun": ["lock_deps"]}


_MAX_REFUSALS = 3  # each costs a lock, a sync and an import of torch


def _refuse_family(env, record) -> list[str]:
    """Record the release that failed to import as refused ([tool.comfydock.torch].refused,
    '!=' constraints), lock and sync the next coherent one, and check it; repeated up to
    _MAX_REFUSALS times. If none imports, pyproject.toml, uv.lock and the venv are put back."""
    import functools

    from comfydock import manifest, torch_family, torch_probe
    from comfydock.errors import ComfydockError, ExternalToolError

    notes: list[str] = []
    with env.transaction() as tx:
        tx.on_undo(functools.partial(_sync_again, env), "the venv (run 'comfydock build')")
        tx.save_file(env.pyproject_path)
        tx.save_file(env.uv_lock_path)
        for _ in range(_MAX_REFUSALS):
            versions, error = record["versions"], record["import_error"]
            release = torch_family.family_release(versions)
            doc = manifest.load(env.pyproject_path)
            if release is None:  # not one release (a lock made before exact pairing): lock again, which pairs them
                notes.append(f"{torch_family.describe(versions)} do not import ({error}): not one PyTorch release, locked again")
                torch_family.clear_release(doc)
            else:
                notes.append(f"refused torch release {release}: {torch_family.describe(versions)} do not import here ({error})")
                torch_family.refuse_release(doc, release)
            _save_if_changed(env, doc)
            try:
                lock_coherent(env)
            except ComfydockError as exc:
                raise ExternalToolError(
                    f"no importable torch family: {torch_family.describe(versions)} do not import ({error}), "
                    f"and no other release can be locked: {exc.message}",
                    hint=_no_family_hint(env),
                    details=getattr(exc, "details", ""),
                ) from None
            extra = env.torch_extra()
            uv_runner.uv_sync(env.workspace, env.cec_dir, env.venv_dir, extra)
            env.record_venv_synced(extra)
            record = torch_probe.after_sync(env)
            if not record.get("import_error"):
                notes.append(f"chose {torch_family.describe(record['versions'])} instead (it imports)")
                return notes
            if record["import_error"] == error:  # the same failure with another release: this machine, not the release
                break
        raise ComfydockError(
            f"no importable torch family: {torch_family.describe(record['versions'])} do not import "
            f"({record['import_error']}) after refusing {len(notes)} release(s)"
            + (
                ": the same error as the release before, so it is likely this machine's"
                if record["import_error"] == error
                else ""
            ),
            hint=_no_family_hint(env),
        )


def _no_family_hint(env) -> str:
    return (
        "pin a PyTorch release that imports on this machine ('comfydock constraint add torch==X.Y.Z'), "
        f"or use another torch backend ('comfydock config torch-backend ...'; now {env.torch_backend() or 'pypi'})"
    )


def _sync_again(env) -> None:
    """Undo step: the venv back to the restored uv.lock, and its import result recorded."""
    from comfydock import torch_probe

    extra = env.torch_extra()
    uv_runner.uv_sync(env.workspace, env.cec_dir, env.venv_dir, extra)
    env.record_venv_synced(extra)
    torch_probe.after_sync(env)


def _venv_synced(env) -> bool:
    # the venv exists, its marker names this lock and this machine's torch extra, and its torch
    # family (if any) was seen to import with this lock (else: sync again, which checks it)
    from comfydock import torch_probe

    return env.venv_in_sync() and torch_probe.synced_and_checked(env)


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
        "uptodate": [_no_upgrade_asked, (machine_backend_in_manifest, [env]), (release_recorded_exactly, [env])],
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
