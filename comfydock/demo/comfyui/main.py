"""A stand-in for ComfyUI's main.py, used by comfydock's demo and tests.

It parses a few of ComfyUI's real options, imports the packages its requirements name (so a
broken venv shows), records how it was started in user/fixture_last_run.json, and exits with
--exit-code (default 0).
"""

import argparse
import json
import os
import sys

import folder_paths

parser = argparse.ArgumentParser(prog="main.py", description="Fixture ComfyUI (comfydock demo)")
parser.add_argument("--listen", nargs="?", const="0.0.0.0", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8188)
parser.add_argument("--cpu", action="store_true")
parser.add_argument("--quick-test-for-ci", action="store_true")
parser.add_argument("--exit-code", type=int, default=0, help="exit with this code (tests)")
args = parser.parse_args()

import cdfix_alpha  # noqa: E402  (a requirement: fails if the venv is not synced)

record = {
    "argv": sys.argv[1:],
    "python": sys.executable,
    "cdfix_alpha": cdfix_alpha.__version__,
    "models_dir": folder_paths.models_dir,
    "cwd": os.getcwd(),
}
os.makedirs(os.path.join(folder_paths.base_path, "user"), exist_ok=True)
with open(os.path.join(folder_paths.base_path, "user", "fixture_last_run.json"), "w") as f:
    json.dump(record, f, indent=2)
print(f"Fixture ComfyUI started with {sys.argv[1:]} (cdfix-alpha {cdfix_alpha.__version__})")
sys.exit(args.exit_code)
