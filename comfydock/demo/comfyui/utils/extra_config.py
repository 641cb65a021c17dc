"""ComfyUI's utils/extra_config.py (extra_model_paths.yaml); main.py imports it before comfy/ shadows `utils`."""


def load_extra_path_config(yaml_path):
    pass
