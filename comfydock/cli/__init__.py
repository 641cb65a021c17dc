"""The command line (argument parsing and output); `main` is the `comfydock` entry point."""

from comfydock.cli.main import main

__all__ = ["main"]
