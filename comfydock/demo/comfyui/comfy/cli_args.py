"""A few of ComfyUI's real options (comfy/cli_args.py): sys.argv is read only when main.py (or
whoever imports ComfyUI like it) enabled argument parsing first; otherwise every option is default."""

import argparse

import comfy.options

parser = argparse.ArgumentParser(prog="main.py", description="Fixture ComfyUI (comfydock demo)")
parser.add_argument("--listen", nargs="?", const="0.0.0.0", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8188)
parser.add_argument("--cuda-device", type=int, default=None)
parser.add_argument("--quick-test-for-ci", action="store_true")
parser.add_argument("--exit-code", type=int, default=0, help="exit with this code (tests)")
vram_group = parser.add_mutually_exclusive_group()  # as in ComfyUI: --cpu is one of the VRAM modes
vram_group.add_argument("--gpu-only", action="store_true")
vram_group.add_argument("--highvram", action="store_true")
vram_group.add_argument("--normalvram", action="store_true")
vram_group.add_argument("--lowvram", action="store_true")
vram_group.add_argument("--novram", action="store_true")
vram_group.add_argument("--cpu", action="store_true")

args = parser.parse_args() if comfy.options.args_parsing else parser.parse_args([])
