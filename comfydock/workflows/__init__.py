"""Workflows: reading ComfyUI workflow files (analysis.py) and telling where their node types come from (node_types.py)."""
