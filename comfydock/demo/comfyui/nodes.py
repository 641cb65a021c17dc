"""A stand-in for ComfyUI's nodes.py: a few core node classes and the hooks comfydock probes.

Like the real one it needs the venv's packages (cdfix_alpha stands in for torch), so asking it
for its node types fails until the environment is synced.
"""

import importlib.util
import os

import cdfix_alpha  # noqa: F401  (the real nodes.py imports torch here)
import comfy.model_management  # noqa: F401  (the device, as the real nodes.py picks it)


class CheckpointLoaderSimple:
    pass


class SaveImage:
    pass


NODE_CLASS_MAPPINGS = {
    "CheckpointLoaderSimple": CheckpointLoaderSimple,
    "SaveImage": SaveImage,
}


def load_custom_node(module_path, ignore=set(), module_parent="custom_nodes"):
    name = os.path.basename(module_path.rstrip("/\\")).removesuffix(".py")
    init = os.path.join(module_path, "__init__.py") if os.path.isdir(module_path) else module_path
    spec = importlib.util.spec_from_file_location(name, init)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception:
        return False
    NODE_CLASS_MAPPINGS.update(getattr(module, "NODE_CLASS_MAPPINGS", {}))
    return True


async def init_extra_nodes(init_custom_nodes=True, init_api_nodes=True):
    extras = os.path.join(os.path.dirname(os.path.realpath(__file__)), "comfy_extras")
    for name in sorted(os.listdir(extras)):
        if name.endswith(".py"):
            load_custom_node(os.path.join(extras, name))
