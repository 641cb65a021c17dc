"""comfydock: reproducible ComfyUI environments (workspaces, nodes, models, history, bundles)."""

__version__ = "0.1.0"
