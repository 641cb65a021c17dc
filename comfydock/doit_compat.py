"""The two places comfydock leans on doit internals, kept here and nowhere else.

doit is pinned below 0.38 (pyproject.toml). tests/test_doit_compat.py fails when an upgrade
changes what these rely on: read it before raising the pin.
"""

from __future__ import annotations

import contextlib
import io
import sys

# doit's own entry point reader, once replaced (for tests/test_doit_compat.py)
doit_entry_point_reader = None


def skip_entry_point_plugins() -> None:
    """doit scans every installed distribution for plugins on each run (~70 ms in a big
    site-packages). comfydock embeds doit and uses none: make that scan find nothing.

    Relies on: `doit.plugin.PluginDict._from_entry_points(self, category)` is the one place
    doit reads entry points, called from `PluginDict.add_plugins`."""
    global doit_entry_point_reader
    from doit import plugin

    current = plugin.PluginDict.__dict__.get("_from_entry_points")
    if current is not _no_plugins:
        doit_entry_point_reader = current
        plugin.PluginDict._from_entry_points = _no_plugins


def _no_plugins(self, category) -> dict:
    return {}


def run(loader, argv: list[str]) -> tuple[int, str]:
    """`DoitMain(loader).run(argv)`: (exit code, what doit wrote to stderr).

    doit prints its own internal errors as tracebacks on stderr: they are kept for the report.
    doit swaps sys.stdout/stderr around every python-action to capture its output; with
    threads (`-P thread`) the swaps interleave and can leave a capture buffer in place of the
    real stream. Relies on: nothing else of doit's outlives the run, so putting the streams
    back as they were is safe."""
    from doit.doit_cmd import DoitMain

    captured = io.StringIO()
    saved_out, saved_err = sys.stdout, sys.stderr
    try:
        with contextlib.redirect_stderr(captured):
            code = DoitMain(loader, config_filenames=()).run(argv)
    finally:
        sys.stdout, sys.stderr = saved_out, saved_err
    return code, captured.getvalue()
