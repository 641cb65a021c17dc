"""doit task generators: one module per operation family; each creator yields task dicts.

Installed as `comfydock.tasks`. A creator takes the Environment and yields doit task dicts
with `basename` (and `name` for one task of a family), `file_dep`, `targets`, `uptodate`.
"""

from comfydock.tasks.bundle import task_bundle, task_full_hash, task_lookup_source, task_write_lock
from comfydock.tasks.check import task_check_comfyui
from comfydock.tasks.comfyui import task_checkout_comfyui
from comfydock.tasks.models import task_index_models
from comfydock.tasks.node_types import task_core_node_types
from comfydock.tasks.nodes import task_fetch_node, task_install_node, task_install_script, task_scan_requirements
from comfydock.tasks.python import task_lock_deps, task_sync_venv
from comfydock.tasks.workflows import task_analyze_workflow, task_copy_workflow, task_resolve_models, task_update_manifest

TASK_CREATORS = [
    task_checkout_comfyui,
    task_fetch_node,
    task_install_node,
    task_scan_requirements,
    task_lock_deps,
    task_sync_venv,
    task_install_script,
    task_index_models,
    task_core_node_types,
    task_copy_workflow,
    task_analyze_workflow,
    task_resolve_models,
    task_update_manifest,
    task_full_hash,
    task_lookup_source,
    task_write_lock,
    task_bundle,
    task_check_comfyui,
]

# Run only when named (by `commit`, `export`, `status`, or `comfydock build TARGET`): a plain
# `comfydock build` makes the environment match its manifest and never rewrites the manifest.
ON_REQUEST = frozenset(
    {
        "core_node_types",
        "copy_workflow",
        "analyze_workflow",
        "resolve_models",
        "update_manifest",
        "full_hash",
        "lookup_source",
        "write_lock",
        "bundle",
        "export",
        "check_comfyui",  # starts ComfyUI (a minute on a real one): `comfydock check`
    }
)

# The workspace's, not an environment's: their state lives with the workspace (the model index
# keeps its own up-to-date record in models.db), and `status`, which reports on an environment,
# never plans them.
WORKSPACE_TASKS = frozenset({"index_models"})
