"""Export tasks: full_hash:<model> → lookup_source:<model> → write_lock → bundle (alias: export).

Run only when named (`comfydock export`, `comfydock build export`); `export_environment` in
comfydock.bundle.exporting runs the workflow chain first, so these tasks see a current manifest.
"""

from __future__ import annotations

from comfydock.bundle import export_steps as ex


def task_full_hash(env):
    """SHA256 + Blake3 of a required model (read once per file version; kept in the model index)."""
    for h in ex.selected_hashes(env):
        target = ex.full_hash_file(env, h)
        yield {
            "basename": "full_hash",
            "name": h,
            "targets": [target],
            # no file_dep on the model: doit's checker would read the whole file again
            "uptodate": [(ex.full_hash_uptodate, [env, h, target])],
            "actions": [(ex.full_hash, [env, h, target])],
        }


def task_lookup_source(env):
    """Where a required model can be downloaded: index, workflow URLs, CivitAI by SHA256, Hugging Face."""
    for h in ex.selected_hashes(env):
        full = ex.full_hash_file(env, h)
        target = ex.source_file(env, h)
        yield {
            "basename": "lookup_source",
            "name": h,
            "task_dep": [f"full_hash:{h}"],
            "file_dep": [full],
            "targets": [target],
            "uptodate": [(ex.lookup_uptodate, [env, h])],
            "actions": [(ex.lookup_source, [env, h, full, target])],
        }


def task_write_lock(env):
    """Write comfydock.lock: models (hashes, sizes, URLs), nodes (registry/git/development), ComfyUI, Python."""
    hashes = list(ex.selected_hashes(env))
    target = ex.comfydock_lock_path(env)
    yield {
        "basename": "write_lock",
        "task_dep": [f"lookup_source:{h}" for h in hashes],
        "file_dep": [env.pyproject_path, *(ex.full_hash_file(env, h) for h in hashes), *(ex.source_file(env, h) for h in hashes)],
        "targets": [target],
        "uptodate": [(ex.selection_uptodate, [env])],
        "actions": [(ex.write_lock, [env, target])],
    }


def task_bundle(env):
    """Write the deterministic bundle: pyproject.toml, uv.lock, comfydock.lock, workflows/, dev_nodes/."""
    target = ex.bundle_file(env)
    workflows = [p for _, p in sorted(ex.selected_workflows(env).items())]
    yield {
        "basename": "bundle",
        "task_dep": ["write_lock"],
        "file_dep": [env.pyproject_path, env.uv_lock_path, ex.comfydock_lock_path(env), *workflows],
        "targets": [target],
        "uptodate": [(ex.bundle_uptodate, [env])],
        "actions": [(ex.write_bundle_task, [env, target])],
    }
    yield {"basename": ex.EXPORT_TARGET, "task_dep": ["bundle"], "actions": None, "doc": "Export the environment as a bundle."}
