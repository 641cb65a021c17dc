"""ComfyUI's comfy/options.py: main.py turns argument parsing on before comfy.cli_args is imported."""

args_parsing = False


def enable_args_parsing(enable=True):
    global args_parsing
    args_parsing = enable
