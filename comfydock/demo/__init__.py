"""The embedded offline demo: a fixture ComfyUI, tiny wheels, and the end-to-end run."""
