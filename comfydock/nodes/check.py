"""`node check`: import each custom node the way ComfyUI does, in the environment's venv.

ComfyUI (nodes.py, load_custom_node) imports custom_nodes/<dir>/__init__.py as a module named
after the directory, from a process started in ComfyUI's directory (so `import folder_paths`
works). A node that fails there is listed by ComfyUI as "(IMPORT FAILED)" and its nodes are
missing from the UI; this finds it without starting ComfyUI. Each node is imported in its own
process so one that exits or crashes cannot hide the others.
"""

from __future__ import annotations

import re
import subprocess
import time

from comfydock.nodes.spec import node_path

CHECK_TIMEOUT = 300  # seconds per node

_LOADER = r"""
import importlib.util, os, sys, traceback
comfyui, node_dir = sys.argv[1], sys.argv[2]
sys.path[:0] = [comfyui, os.path.join(comfyui, "custom_nodes")]
os.chdir(comfyui)
name = os.path.basename(node_dir)
try:
    spec = importlib.util.spec_from_file_location(name, os.path.join(node_dir, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
except BaseException as exc:
    traceback.print_exc()
    last = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    sys.stderr.write("\ncomfydock-check-error: " + (last[-1] if last else type(exc).__name__) + "\n")
    sys.exit(1)
if not hasattr(module, "NODE_CLASS_MAPPINGS"):
    sys.stderr.write("\ncomfydock-check-note: it defines no NODE_CLASS_MAPPINGS (ComfyUI loads no nodes from it)\n")
"""

_ERROR_RE = re.compile(r"^comfydock-check-(error|note): (.*)$", re.M)


def check_node(env, spec) -> dict:
    path = node_path(env, spec)
    row = {"id": spec.id, "directory": spec.directory, "source": spec.source, "ok": False, "error": None, "note": None}
    if not (path / "__init__.py").is_file():
        row["error"] = (
            f"custom_nodes/{spec.directory}/__init__.py is missing"
            if path.is_dir()
            else f"custom_nodes/{spec.directory} is missing"
        )
        return row
    if not env.python.exists():
        row["error"] = "the environment has no venv (run 'comfydock build')"
        return row
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [str(env.python), "-c", _LOADER, str(env.comfyui_dir), str(path)],
            cwd=env.comfyui_dir,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=CHECK_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        row["error"] = f"importing it took longer than {CHECK_TIMEOUT} s"
        return row
    row["seconds"] = round(time.monotonic() - start, 2)
    found = dict((kind, text) for kind, text in _ERROR_RE.findall(proc.stderr or ""))
    row["note"] = found.get("note")
    if proc.returncode == 0:
        row["ok"] = True
    else:
        lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
        row["error"] = found.get("error") or (lines[-1] if lines else f"exit code {proc.returncode}")
    return row


def check_nodes(env, names: list[str] | None = None) -> list[dict]:
    """One row per tracked node (or per named node): ok, or the error line of its import."""
    from comfydock.nodes.spec import tracked_node, tracked_nodes

    doc = env.manifest_data()
    specs = [tracked_node(doc, n) for n in names] if names else sorted(tracked_nodes(doc).values(), key=lambda s: s.id.lower())
    return [check_node(env, spec) for spec in specs]


IMPORT_FAILED_RE = re.compile(r"\(IMPORT FAILED\):\s*(.+?)\s*$")


def import_failures(lines) -> list[str]:
    """Node directory names from ComfyUI's '... seconds (IMPORT FAILED): <path>' lines."""
    found = []
    for line in lines:
        m = IMPORT_FAILED_RE.search(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if m:
            name = m.group(1).replace("\\", "/").rstrip("/").split("/")[-1]
            if name not in found:
                found.append(name)
    return found
