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
# ComfyUI's options as main.py would see them (--cpu where there is no GPU)
sys.argv = [os.path.join(comfyui, "main.py"), *sys.argv[3:]]
sys.path[:0] = [comfyui, os.path.join(comfyui, "custom_nodes")]
os.chdir(comfyui)
name = os.path.basename(node_dir)

def fail(kind, exc):
    traceback.print_exc()
    last = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    sys.stderr.write("\ncomfydock-check-" + kind + ": " + (last[-1] if last else type(exc).__name__) + "\n")
    sys.exit(1)

try:  # as main.py does, where this ComfyUI has them: parse its options, then its utils package
    if os.path.isfile(os.path.join(comfyui, "comfy", "options.py")):
        import comfy.options
        comfy.options.enable_args_parsing()
    if os.path.isfile(os.path.join(comfyui, "utils", "extra_config.py")):
        import utils.extra_config  # before comfy/utils.py can shadow ComfyUI's utils package
    if os.path.isfile(os.path.join(comfyui, "server.py")):
        # main.py makes the server before it loads custom nodes, and many nodes register their
        # routes at import time through PromptServer.instance
        import asyncio
        import server
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server.PromptServer(loop)
except BaseException as exc:
    fail("comfyui-error", exc)
try:
    spec = importlib.util.spec_from_file_location(name, os.path.join(node_dir, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
except BaseException as exc:
    fail("error", exc)
if not hasattr(module, "NODE_CLASS_MAPPINGS"):
    sys.stderr.write("\ncomfydock-check-note: it defines no NODE_CLASS_MAPPINGS (ComfyUI loads no nodes from it)\n")
"""

_ERROR_RE = re.compile(r"^comfydock-check-(error|comfyui-error|note): (.*)$", re.M)


def check_node(env, spec, comfyui_args: list[str] | None = None) -> dict:
    """Import one node; `comfyui_args`: ComfyUI's options as given (see comfyui_check.with_cpu)."""
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
            [str(env.python), "-c", _LOADER, str(env.comfyui_dir), str(path), *(comfyui_args or [])],
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
        if found.get("comfyui-error"):  # ComfyUI's own modules failed before the node was reached
            row["error"] = f"ComfyUI itself: {found['comfyui-error']}"
            row["comfyui_error"] = True
        else:
            row["error"] = found.get("error") or (lines[-1] if lines else f"exit code {proc.returncode}")
    return row


def check_nodes(env, names: list[str] | None = None, comfyui_args: list[str] | None = None) -> list[dict]:
    """One row per tracked node (or per named node): ok, or the error line of its import and a
    hint that matches it (failure_hint). ComfyUI's options get --cpu where there is no GPU."""
    from comfydock.comfyui_check import with_cpu
    from comfydock.nodes.spec import tracked_node, tracked_nodes

    doc = env.manifest_data()
    specs = [tracked_node(doc, n) for n in names] if names else sorted(tracked_nodes(doc).values(), key=lambda s: s.id.lower())
    args, cpu_why = with_cpu(env, comfyui_args or [])
    rows = []
    for spec in specs:
        row = check_node(env, spec, args)
        row["comfyui_args"] = args
        row["cpu_added"] = cpu_why
        if not row["ok"]:
            row["hint"] = failure_hint(env, spec, row, cpu_added=cpu_why is not None)
        rows.append(row)
    return rows


# --- a hint that matches the error -----------------------------------------------------------
_MISSING_MODULE = re.compile(r"^(?:ModuleNotFoundError|ImportError): No module named '([^']+)'")
_GPU_ERROR = re.compile(
    r"Found no NVIDIA driver|Torch not compiled with CUDA enabled|no CUDA GPUs are available|CUDA driver|"
    r"NVIDIA driver on your system|libcuda\.so|cudaGetDeviceCount|CUDA_VISIBLE_DEVICES",
    re.I,
)


def package_for_module(module: str) -> str:
    """The distribution that most likely provides import name `module` (import_scan's one table)."""
    from comfydock.import_scan import package_for

    return package_for(module)


def _script_mentions(env, spec, module: str) -> bool:
    """The node's install.py names this module (or its last part), so running it may create or install it."""
    from comfydock.nodes.spec import install_script_of

    script = install_script_of(env, spec)
    if script is None:
        return False
    try:
        text = script.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    parts = {module, module.split(".")[0], module.split(".")[-1]}
    return any(re.search(rf"\b{re.escape(p)}\b", text) for p in parts if p)


def failure_hint(env, spec, row: dict, *, cpu_added: bool) -> str | None:
    """What to do about this node's import error, chosen from the error itself:
    - a GPU/driver error: --cpu or the torch backend;
    - a missing module that its unrun install script names: run the script;
    - another missing module: add the package that provides it;
    - ComfyUI's own modules failing: about ComfyUI, not the node.
    None when nothing specific fits (the error line is all there is)."""
    error = row.get("error") or ""
    if row.get("comfyui_error"):
        return "ComfyUI itself does not import in this venv: run 'comfydock check' to see ComfyUI's own errors"
    if _GPU_ERROR.search(error):
        if cpu_added:
            return (
                "it needs a GPU even with --cpu (it uses CUDA itself): it cannot load on this machine; "
                "check 'comfydock status' for the torch backend"
            )
        return (
            "ComfyUI was imported without --cpu (a device option was given, or a GPU was detected): "
            f"try 'comfydock node check -e {env.name} {spec.id} -- --cpu', and check the torch backend in 'comfydock status'"
        )
    m = _MISSING_MODULE.match(error)
    if m:
        module = m.group(1)
        own = module == spec.directory or module.startswith(spec.directory + ".")
        if (own or _script_mentions(env, spec, module)) and (script_hint := _has_unrun_script(env, spec)):
            return script_hint
        if own:
            return f"{module!r} is part of the node itself and is missing from custom_nodes/{spec.directory}: reinstall it"
        package = package_for_module(module)
        return (
            f"add the package that provides {module.split('.')[0]!r} (the node does not declare it): "
            f"'comfydock py add -e {env.name} {package}'"
        )
    return None


def _has_unrun_script(env, spec) -> str | None:
    """The hint to run the node's install script, when it has one that comfydock does not run."""
    from comfydock.nodes.spec import install_script_of

    if install_script_of(env, spec) is None or spec.run_install_script:
        return None
    if spec.source == "development":
        return f"its install script creates it: run it in the venv ('{env.python} install.py' in custom_nodes/{spec.directory})"
    return f"its install script (install.py) creates it, and comfydock did not run it: 'comfydock node add {spec.typed()} --run-install-script'"


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
