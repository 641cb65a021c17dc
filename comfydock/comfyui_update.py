"""`comfydock comfyui update [REF]`: move an environment's ComfyUI to another release as one step.

Checkout from the workspace's cached mirror → ComfyUI's requirements.txt re-read into the
`comfyui-core` group → lock → sync → the core node types listed again. Any failure (Ctrl-C
included) puts the old checkout, manifest and lock back and re-syncs the venv. The change is
left uncommitted, like any other: `comfydock commit` records it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import tomlkit

from comfydock import comfyui, manifest, pydeps, resolution


@dataclass
class ComfyUIUpdate:
    old_ref: str | None
    old_commit: str | None
    new_ref: str
    new_commit: str
    changed: bool
    requirements_added: list[str]
    requirements_removed: list[str]
    build: dict | None = None
    resolution: dict | None = None  # resolution.info() after the update (as_of None: no cutoff)
    comfyui_fills: list | None = None  # ComfyUI's undeclared imports added to comfyui-core (with reasons)

    def to_json(self) -> dict:
        return asdict(self)


def _set_core_requirements(doc, requirements: list[str]) -> tuple[list[str], list[str]]:
    """Replace ComfyUI's own requirements (the comfyui-core group); returns (added, removed).
    The previous version's undeclared-import fills go too (filled again after the sync if needed)."""
    from comfydock.undeclared import drop_comfyui_fills

    pydeps.migrate_layout(doc, requirements)
    drop_comfyui_fills(doc)
    groups = manifest.dependency_groups(doc)
    key = next(k for k in groups if k == pydeps.CORE_GROUP or k.lower() == pydeps.CORE_GROUP)
    before = [str(x) for x in groups[key]]
    arr = tomlkit.array()
    arr.extend(requirements)
    arr.multiline(len(requirements) > 0)
    groups[key] = arr
    return sorted(set(requirements) - set(before)), sorted(set(before) - set(requirements))


def update_comfyui(env, ref: str | None = None, *, force: bool = False, listener=None, on_wait=None, warn=lambda m: None):
    """Move the environment's ComfyUI checkout to `ref` (default: the newest release)."""
    from comfydock import engine
    from comfydock.engine import build_failure
    from comfydock.requirements_txt import scan_requirements_file

    ws = env.workspace
    with env.process_lock(on_wait):
        info = env.info()
        mirror = comfyui.update_cache(ws.comfyui_cache_dir, ws.setting("comfyui-source"), warn=warn)
        target = comfyui.resolve_ref(mirror, ref)
        current = comfyui.head_commit(env.comfyui_dir)
        result = ComfyUIUpdate(info.get("comfyui_version"), current, target.name, target.commit, current != target.commit, [], [])
        if not result.changed and info.get("comfyui_commit") == target.commit:
            return _fill_only(env, result, listener, warn)
        with env.transaction() as tx:
            engine.guard_manifest(env, tx)  # the venv is re-synced last, after the files are back
            if current != target.commit:
                # registered first (a Ctrl-C during the checkout still puts it back); a no-op
                # unless HEAD moved, so a refused checkout leaves the user's ComfyUI edits alone
                tx.on_undo(comfyui.undo_checkout(mirror, env.comfyui_dir, current), "ComfyUI's checkout")
                comfyui.checkout_commit(mirror, env.comfyui_dir, target.commit, force=force)
            scanned = scan_requirements_file(env.comfyui_dir / "requirements.txt")
            for line, why in scanned.skipped:
                warn(f"ComfyUI requirements.txt: skipped {line!r} ({why})")
            doc = env.manifest()
            result.requirements_added, result.requirements_removed = _set_core_requirements(doc, scanned.requirements)
            section = manifest.section(doc, "environment")
            section["comfyui_version"] = target.name
            section["comfyui_commit"] = target.commit
            _move_resolution_date(env, doc, target)
            manifest.save(env.pyproject_path, doc)
            report = engine.build(env, ["lock_deps", "sync_venv", "core_node_types"], listener=listener)
            if not report.ok:
                raise build_failure(report)
            result.build = report.to_json()
            result.comfyui_fills = _fill(env, listener, warn)
            result.resolution = resolution.info(env.manifest_data())
        return result


def _move_resolution_date(env, doc, target) -> None:
    """An environment with a resolution date moves to the new commit's date; per-package moves
    the new date makes unnecessary are dropped (resolution.record). One without keeps none."""
    from comfydock.gitutil import commit_date

    if resolution.as_of(doc) is None:
        return
    date = commit_date(env.comfyui_dir, target.commit)
    if date is not None:
        resolution.record(doc, date, f"ComfyUI {target.name} commit", date)


def _fill(env, listener, warn) -> list:
    from comfydock.undeclared import fill_comfyui_gaps

    filled = fill_comfyui_gaps(env, listener=listener)
    if filled["failed"]:
        warn(filled["failed"])
    return filled["added"]


def _fill_only(env, result: ComfyUIUpdate, listener, warn) -> ComfyUIUpdate:
    """Already at `ref`: only ComfyUI's undeclared imports are filled in (what 'status' hints)."""
    from comfydock import engine
    from comfydock.undeclared import find_undeclared

    found = find_undeclared(env, [], comfyui=True)
    if not (found and found["comfyui"]):
        return result
    with env.transaction() as tx:
        engine.guard_manifest(env, tx)
        result.comfyui_fills = _fill(env, listener, warn)
    return result
