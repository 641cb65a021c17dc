"""ComfyUI's comfy/model_management.py picks the torch device when it is imported. Like CUDA
torch on a machine without an NVIDIA driver, it fails unless --cpu was given, when the
environment variable COMFYDOCK_FIXTURE_NO_GPU says this machine has no GPU (tests)."""

import os

from comfy.cli_args import args

if os.environ.get("COMFYDOCK_FIXTURE_NO_GPU") and not args.cpu:
    raise RuntimeError(
        "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed "
        "a driver from http://www.nvidia.com/Download/index.aspx"
    )

device = "cpu" if args.cpu else "cuda:0"
