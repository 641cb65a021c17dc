"""A change to the manifest (py add/remove, constraint add/remove, adopt's packages), applied all
or nothing: edit pyproject.toml, lock, sync; on any failure everything is put back."""

from __future__ import annotations

from dataclasses import dataclass

from comfydock import engine, manifest
from comfydock.environment import Environment


@dataclass
class ManifestChange:
    changed: bool  # did pyproject.toml change at all
    report: object  # the engine's BuildReport
    result: object = None  # what the mutation returned
    comfyui_fills: dict | None = None  # undeclared.fill_comfyui_gaps after the sync


def comfyui_requirements(env: Environment) -> list[str]:
    """ComfyUI's requirements.txt as checked out in the environment (empty if it is missing)."""
    from comfydock.requirements_txt import scan_requirements_file

    path = env.comfyui_dir / "requirements.txt"
    return scan_requirements_file(path).requirements if path.is_file() else []


def change_manifest(env: Environment, mutate, *, upgrade=None, listener=None, on_wait=None) -> ManifestChange:
    """Edit pyproject.toml, then lock and sync; on any failure put everything back as it was.

    `mutate(doc)` edits the tomlkit document in place (raising to abort). A manifest from
    before the comfyui-core group is migrated first (pydeps.migrate_layout). `upgrade`,
    if given, maps mutate's result to package names uv should move to the newest versions the
    requirements allow (a removed pin no longer holds them back). On a failed lock or sync, or
    Ctrl-C anywhere, pyproject.toml and uv.lock are restored byte for byte and the venv
    re-synced to them.
    """
    from comfydock.pydeps import is_legacy_layout, migrate_layout
    from comfydock.tasks.python import upgrade_options

    with env.process_lock(on_wait):
        doc = env.manifest()
        if is_legacy_layout(doc):
            migrate_layout(doc, comfyui_requirements(env))
        result = mutate(doc)
        changed = manifest.dumps(doc).encode() != env.pyproject_path.read_bytes()
        with env.transaction() as tx:  # any exception, Ctrl-C included, undoes it all
            engine.guard_manifest(env, tx)
            if changed:
                manifest.save(env.pyproject_path, doc)
            options = upgrade_options(upgrade(result)) if upgrade and changed else None
            report = engine.build(env, ["lock_deps", "sync_venv"], listener=listener, task_options=options)
            if not report.ok:
                raise engine.build_failure(report)
            fills = fill_after_sync(env, listener)
    return ManifestChange(changed, report, result, fills)


def fill_after_sync(env: Environment, listener=None) -> dict | None:
    """After a lock and sync that may have moved packages (a node, a requirement, a constraint): what
    ComfyUI imports and the venv no longer provides (requests once huggingface-hub 1.x stopped
    bringing it) goes into comfyui-core, so the environment still starts. Inside the caller's
    Transaction. None when nothing was missing."""
    from comfydock.undeclared import fill_comfyui_gaps

    filled = fill_comfyui_gaps(env, listener=listener)
    return filled if filled["added"] or filled["failed"] else None
