"""doit task generators: one module per operation family; each creator yields task dicts.

Installed as `comfydock.tasks`. A creator takes the Environment and yields doit task dicts
with `basename` (and `name` for one task of a family), `file_dep`, `targets`, `uptodate`.
"""

from comfydock.tasks.comfyui import task_checkout_comfyui
from comfydock.tasks.models import task_index_models
from comfydock.tasks.nodes import task_fetch_node, task_install_node, task_scan_requirements
from comfydock.tasks.python import task_lock_deps, task_sync_venv

TASK_CREATORS = [
    task_checkout_comfyui,
    task_fetch_node,
    task_install_node,
    task_scan_requirements,
    task_lock_deps,
    task_sync_venv,
    task_index_models,
]
