"""`comfydock export` and `build export`: the workflow chain, then the export steps
(`export_steps.py`, run as tasks of the graph), then the bundle copied out."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from comfydock import manifest
from comfydock.bundle.export_steps import (
    EXPORT_TARGET,
    bundle_file,
    comfydock_lock_path,
    export_dir,
    failed_lookups,
    full_hashes_computed,
    record_sources,
    selected_workflows,
    set_selection,
)
from comfydock.errors import ComfydockError
from comfydock.fsutil import temp_beside
from comfydock.hashing import file_digest
from comfydock.workflows import tracking

# --- the whole export ----------------------------------------------------------------------


@dataclass
class ExportResult:
    bundle: str  # the bundle in the environment's state directory
    output: str | None  # where it was copied
    sha256: str
    size: int
    workflows: list[str] = field(default_factory=list)
    models: list[dict] = field(default_factory=list)  # name, path, size, url
    without_url: list[dict] = field(default_factory=list)
    unresolved: list[dict] = field(default_factory=list)  # references no indexed file matched: not in the bundle
    # resolved to a file outside its loader's folders: bundled at expected_path, where ComfyUI looks
    misplaced: list[dict] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)
    skipped_links: list[str] = field(default_factory=list)
    lookup_failures: list[dict] = field(default_factory=list)  # hash, name, path, error: no answer, retried next time
    manifest_updated: bool = False  # the workflow chain rewrote pyproject.toml (uncommitted until 'comfydock commit')
    full_hashes_computed: int = 0
    tasks: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _merge(reports):
    from comfydock.engine import BuildReport

    merged = BuildReport()
    seen: dict[str, int] = {}
    for report in reports:
        for e in report.events:
            # a task that ran in one round and was up to date in the next ran
            if e.task in seen:
                if e.status != "up-to-date":
                    merged.events[seen[e.task]] = e
                continue
            seen[e.task] = len(merged.events)
            merged.events.append(e)
        merged.exit_code = merged.exit_code or report.exit_code
    return merged


def build_export(env, workflows: list[str] | None = None, *, listener=None, on_wait=None, keep_going=False):
    """The workflow chain (copy, analyse, resolve, manifest, lock), then full_hash → lookup_source →
    write_lock → bundle. Returns the engine's BuildReport (both phases merged).

    Task creation reads the manifest, so the export tasks are loaded after the chain has updated
    it. A lookup records sources in the model index, which the model resolution watches: when
    that happened, both phases run once more, so the next export runs nothing."""
    from comfydock import engine
    from comfydock.tasks.workflows import index_fingerprint

    if workflows:
        known = tracking.comfyui_workflows(env)
        unknown = [w for w in workflows if w not in known]
        if unknown:
            raise ComfydockError(
                f"no workflow named {unknown[0]!r} in this environment",
                hint="see 'comfydock workflow list' (names are paths below user/default/workflows/, without .json)",
            )
    set_selection(env, workflows)
    reports = []
    for _ in range(2):
        before = index_fingerprint(env.workspace.models_db)
        reports.append(
            engine.build(env, ["update_manifest", "lock_deps"], listener=listener, on_wait=on_wait, keep_going=keep_going)
        )
        if not reports[-1].ok:
            break
        reports.append(engine.build(env, [EXPORT_TARGET], listener=listener, on_wait=on_wait, keep_going=keep_going))
        if not reports[-1].ok or index_fingerprint(env.workspace.models_db) == before:
            break
    return _merge(reports)


def manifest_bytes(env) -> bytes | None:
    """pyproject.toml as it is now (compared before and after an export: did the chain change it?)."""
    try:
        return env.pyproject_path.read_bytes()
    except OSError:
        return None


def unresolved_references(env) -> list[dict]:
    """Required model references of the exported workflows that no indexed file matched."""
    entries = manifest.workflow_entries(env.manifest_data())
    out = []
    for name in sorted(selected_workflows(env)):
        for ref in (entries.get(name) or {}).get("unresolved") or []:
            out.append(
                {
                    "workflow": name,
                    "filename": ref.get("filename"),
                    "directory": ref.get("directory"),
                    "status": ref.get("status") or "unresolved",  # 'ambiguous': several indexed files match
                }
            )
    return out


def misplaced_references(env) -> list[dict]:
    """Required models of the exported workflows found outside the folders their loader searches
    (from the resolution files the export's chain just brought up to date)."""
    from comfydock.tasks.workflows import resolved_file
    from comfydock.workflows.resolution import expected_path

    found: dict[tuple, dict] = {}
    for name in sorted(selected_workflows(env)):
        try:
            data = json.loads(resolved_file(env, name).read_text())
        except (OSError, ValueError):
            continue
        for m in data.get("models") or []:
            if m.get("status") != "resolved" or m.get("optional"):
                continue
            where = expected_path(m.get("directory"), m["filename"], m.get("relative_path"))
            if where is not None:
                found.setdefault(
                    (m["relative_path"], where),
                    {
                        "filename": m["filename"],
                        "node_type": m.get("node_type"),
                        "relative_path": m["relative_path"],
                        "path": m.get("path"),
                        "expected_path": where,
                        "workflows": [],
                    },
                )["workflows"].append(name)
    return list(found.values())


def default_output(env, sha256: str) -> Path:
    """`<env>-<first 12 hex of the bundle's sha256>.tar.gz` in the current directory: the same
    environment always exports to the same name, and a changed one never overwrites it."""
    return Path.cwd() / f"{env.name}-{sha256[:12]}.tar.gz"


class WouldReplace(ComfydockError):
    """The output path holds a file that is not a comfydock bundle (the CLI may ask, or --force)."""


def check_output(env, dest: Path, force: bool = False) -> None:
    """Refuse an output path inside the environment (a bundle written there would replace the
    environment's own files, `.cec/pyproject.toml` included, or be committed with them), a
    directory, and, unless `force`, anything there that is not a comfydock bundle."""
    dest = Path(dest).expanduser().absolute()
    where = Path(os.path.realpath(dest.parent)) / dest.name  # through linked folders, not the file's own link
    root = Path(os.path.realpath(env.root))
    if where == root or root in where.parents:
        raise ComfydockError(
            f"{dest} is inside environment {env.name!r} ({env.root}); a bundle is never written there",
            hint=f"give a path outside it, e.g. --output {Path.home() / (env.name + '.tar.gz')}",
        )
    ws = env.workspace
    for state in (ws.metadata_file.parent, ws.cache_dir, ws.environments_dir):  # the workspace's own files
        state = Path(os.path.realpath(state))
        if where == state or state in where.parents:
            raise ComfydockError(
                f"{dest} is among the workspace's own files ({state}); a bundle is never written there",
                hint=f"give a path outside them, e.g. --output {Path.home() / (env.name + '.tar.gz')}",
            )
    if dest.is_dir() and not dest.is_symlink():
        raise ComfydockError(f"{dest} is a directory", hint="give a file name, e.g. --output my-env.tar.gz")
    if (dest.exists() or dest.is_symlink()) and not force and not is_bundle(dest):
        raise WouldReplace(
            f"{dest} exists and is not a comfydock bundle; export does not replace it",
            hint="give another --output path, or add --force to replace it",
        )


def is_bundle(path: Path) -> bool:
    """A regular file (not a link) that is a gzipped tar whose first member is comfydock.lock, as
    every bundle is (members are sorted): read no further than that member's header."""
    import tarfile

    if path.is_symlink() or not path.is_file():
        return False
    try:
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return False
    return first is not None and first.name == "comfydock.lock"


def copy_out(src: Path, dest: Path) -> None:
    """Copy the bundle to `dest` (temp file beside it, then rename: never a half-written bundle);
    the caller checked `dest` (check_output)."""
    dest = Path(dest)
    if dest.is_dir():
        raise ComfydockError(f"{dest} is a directory", hint="give a file name, e.g. --output my-env.tar.gz")
    if dest.is_file() and dest.stat().st_size == src.stat().st_size and file_digest(dest) == file_digest(src):
        return  # the same bundle is already there: rewrite nothing (CI caches key on it)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(dest)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_url(env, model_hash: str, url: str) -> None:
    """A URL the user gave for a model with none: validated, then kept in the index as its source."""
    from comfydock.bundle.sources import url_problem
    from comfydock.errors import UsageError
    from comfydock.model_index import source_type

    problem = url_problem(url)
    if problem:
        raise UsageError(f"that URL {problem}", hint="give an http(s) download URL, or press Enter to skip")
    record_sources(env, model_hash, [(source_type(url), url)])


def export_environment(
    env,
    workflows: list[str] | None = None,
    output: Path | None = None,
    *,
    ask_url=None,
    listener=None,
    on_wait=None,
    force: bool = False,
) -> ExportResult:
    """Run the export graph and copy the bundle to `output` (default: see default_output), which
    `check_output` allows (`force`: replace a file that is not a bundle).

    `ask_url(model: dict) -> str | None` is asked for each model no source was found for (None
    or '' skips it); without it nothing is asked and those models are listed in the result."""
    from comfydock.bundle import lockfile
    from comfydock.engine import build_failure

    if output is not None:
        check_output(env, output, force)  # before the work, not only after it
    start = full_hashes_computed()
    manifest_before = manifest_bytes(env)
    report = build_export(env, workflows, listener=listener, on_wait=on_wait)
    if not report.ok:
        raise build_failure(report)
    lock = lockfile.read_lock(comfydock_lock_path(env))
    missing = [m for m in lock.models if not m.urls]
    if missing and ask_url is not None:
        answered = False
        for m in missing:
            while True:
                url = ask_url({"name": m.name, "path": m.path, "size": m.size, "sha256": m.sha256})
                if not url:
                    break
                try:
                    record_url(env, m.hash, url.strip())
                    answered = True
                    break
                except ComfydockError:
                    if not callable(getattr(ask_url, "invalid", None)):
                        raise
                    ask_url.invalid(url)
        if answered:
            again = build_export(env, workflows, listener=listener, on_wait=on_wait)
            report = _merge([report, again])
            if not again.ok:
                raise build_failure(again)
            lock = lockfile.read_lock(comfydock_lock_path(env))
    bundle = bundle_file(env)
    sha = file_digest(bundle)
    dest = Path(output) if output else default_output(env, sha)
    check_output(env, dest, force)
    copy_out(bundle, dest)
    try:
        skipped = json.loads((export_dir(env) / "skipped.json").read_text())
    except (OSError, ValueError):
        skipped = []
    return ExportResult(
        bundle=str(bundle),
        output=str(dest.absolute()),
        sha256=sha,
        size=bundle.stat().st_size,
        workflows=sorted(selected_workflows(env)),
        models=[{"name": m.name, "path": m.path, "size": m.size, "url": m.url} for m in lock.models],
        without_url=[{"name": m.name, "path": m.path, "size": m.size} for m in lock.models if not m.urls],
        unresolved=unresolved_references(env),
        misplaced=misplaced_references(env),
        nodes=[{"id": n.id, "method": n.method} for n in lock.nodes],
        skipped_links=skipped + [f"user/default/workflows/{rel}" for rel in tracking.linked_workflows(env.workflows_dir)],
        lookup_failures=failed_lookups(env),
        manifest_updated=manifest_bytes(env) != manifest_before,
        full_hashes_computed=full_hashes_computed() - start,
        tasks=[asdict(e) for e in report.events],
    )
