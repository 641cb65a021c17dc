"""A small stand-in for ComfyUI's folder_paths: where models, nodes and user files live."""

import os

base_path = os.path.dirname(os.path.realpath(__file__))
models_dir = os.path.join(base_path, "models")
folder_names_and_paths = {
    name: ([os.path.join(models_dir, name)], {".safetensors", ".ckpt", ".pt", ".pth", ".bin"})
    for name in ("checkpoints", "loras", "vae", "controlnet", "upscale_models", "embeddings", "clip_vision")
}
custom_nodes_dir = os.path.join(base_path, "custom_nodes")
user_directory = os.path.join(base_path, "user")
