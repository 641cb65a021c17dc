"""A stand-in for ComfyUI's main.py, used by comfydock's demo and tests.

It parses a few of ComfyUI's real options (comfy/cli_args.py, read once main.py enabled parsing),
picks the device like comfy/model_management.py (failing without --cpu where a test says there is
no GPU), imports the packages its requirements name (so a
broken venv shows), loads custom_nodes/ the way ComfyUI's nodes.py does (printing its
"Cannot import ... module for custom nodes" and "(IMPORT FAILED)" lines), records how it was
started in user/fixture_last_run.json, and exits with --exit-code (default 0).
"""

import comfy.options

comfy.options.enable_args_parsing()

import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import cdfix_alpha  # noqa: E402  (a requirement: fails if the venv is not synced)
import comfy.model_management  # noqa: E402,F401  (as in ComfyUI: fails without --cpu where there is no GPU)
import folder_paths  # noqa: E402
import server  # noqa: E402  (the v0.2.1-undeclared fixture's imports a module requirements.txt does not name)
from comfy.cli_args import args  # noqa: E402


def load_custom_nodes():
    """ComfyUI's nodes.py: import each custom_nodes/<dir>/__init__.py as a module named <dir>."""
    base = os.path.join(folder_paths.base_path, "custom_nodes")
    times = []
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        path = os.path.join(base, name)
        if not os.path.isdir(path) or name.endswith(".disabled") or name == "__pycache__":
            continue
        start = time.perf_counter()
        ok = True
        try:
            spec = importlib.util.spec_from_file_location(name, os.path.join(path, "__init__.py"))
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception as e:
            traceback.print_exc()
            print(f"Cannot import {path} module for custom nodes: {e}", file=sys.stderr)
            ok = False
        times.append((time.perf_counter() - start, path, ok))
    if times:
        print("\nImport times for custom nodes:")
        for seconds, path, ok in sorted(times):
            print("{:6.1f} seconds{}: {}".format(seconds, "" if ok else " (IMPORT FAILED)", path))
        print()


server.PromptServer(None)  # as ComfyUI's main.py: the server exists before custom nodes load
load_custom_nodes()

record = {
    "argv": sys.argv[1:],
    "python": sys.executable,
    "cdfix_alpha": cdfix_alpha.__version__,
    "models_dir": folder_paths.models_dir,
    "cwd": os.getcwd(),
    "output_unbuffered": bool(os.environ.get("PYTHONUNBUFFERED")),  # shown live when comfydock pipes it
}
os.makedirs(os.path.join(folder_paths.base_path, "user"), exist_ok=True)
with open(os.path.join(folder_paths.base_path, "user", "fixture_last_run.json"), "w") as f:
    json.dump(record, f, indent=2)
print(f"Fixture ComfyUI started with {sys.argv[1:]} (cdfix-alpha {cdfix_alpha.__version__})")
sys.exit(args.exit_code)
