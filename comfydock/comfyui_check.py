"""`comfydock check`: start the environment's ComfyUI as `run` does with `--quick-test-for-ci`
(plus `--cpu` where there is no GPU) and keep what it said: its own import errors and each custom
node it lists as IMPORT FAILED, with the first error line. The result is a record in
`.comfydock/comfyui-check.json`, valid while the inputs it names are unchanged (uv.lock, ComfyUI's
commit, the manifest's node entries and the node directories' code, this machine's torch backend,
the arguments): the `check_comfyui` task is up to date on a passed record whose inputs still match.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json, atomic_write_text, read_json_state

CHECK_TIMEOUT = 900  # seconds: a real ComfyUI imports torch and every node (about a minute on 2 cores)

# ComfyUI's options that choose the device (comfy/cli_args.py; --cpu is one of the VRAM modes,
# which argparse makes mutually exclusive): a user who gave one decided, comfydock adds no --cpu.
DEVICE_OPTIONS = frozenset(
    {
        "--cpu",
        "--gpu-only",
        "--highvram",
        "--normalvram",
        "--lowvram",
        "--novram",
        "--cuda-device",
        "--default-device",
        "--directml",
        "--oneapi-device-selector",
    }
)


def record_file(env) -> Path:
    return env.state_dir / "comfyui-check.json"


def log_file(env) -> Path:
    return env.state_dir / "comfyui-check.log"


def request_file(env) -> Path:
    """The ComfyUI arguments the last `comfydock check` asked for (`build check_comfyui` reuses them)."""
    return env.state_dir / "comfyui-check-request.json"


# --- the device ------------------------------------------------------------------------------
def gives_device(comfyui_args) -> bool:
    return any(a.split("=", 1)[0] in DEVICE_OPTIONS for a in comfyui_args)


def cpu_reason(env, comfyui_args=()) -> str | None:
    """Why ComfyUI must be started with --cpu here (None: it must not, or the user chose a device).

    ComfyUI picks CUDA unless told --cpu, and fails at import ("Found no NVIDIA driver", "Torch
    not compiled with CUDA enabled") on a machine without a GPU or with PyTorch's CPU build."""
    from comfydock.torch_backend import detect_torch_backend

    if gives_device(comfyui_args):
        return None
    try:
        backend = env.torch_backend()
    except ComfydockError:
        backend = None
    if backend == "cpu":
        return "the venv has PyTorch's CPU build"
    if detect_torch_backend() == "cpu":
        return "no GPU found on this machine"
    return None


def with_cpu(env, comfyui_args) -> tuple[list[str], str | None]:
    """`comfyui_args` plus --cpu where needed, and why it was added."""
    reason = cpu_reason(env, comfyui_args)
    return ([*comfyui_args, "--cpu"] if reason else list(comfyui_args)), reason


# --- what a result depends on ----------------------------------------------------------------
_CODE_SUFFIXES = (".py", ".so", ".pyd")
_CODE_NAMES = {"requirements.txt", "pyproject.toml", "install.py"}


def nodes_digest(env) -> str:
    """The manifest's node entries and the code in custom_nodes/ (path, size, mtime of every .py,
    .so, .pyd and requirement file; the names of the other entries). Data files a node writes
    while it loads (a config, a log) are left out so that loading it does not change it."""
    from comfydock import manifest

    h = hashlib.sha256()
    entries = manifest.section(env.manifest_data(), "nodes") or {}
    h.update(json.dumps(entries, sort_keys=True, default=str).encode())
    base = env.custom_nodes_dir
    try:
        names = sorted(os.listdir(base))
    except OSError:
        names = []
    for name in names:
        h.update(f"\n#{name}".encode())
        top = base / name
        if not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in (".git", "__pycache__", "node_modules"))
            for f in sorted(filenames):
                if not (f.endswith(_CODE_SUFFIXES) or f in _CODE_NAMES):
                    continue
                p = os.path.join(dirpath, f)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                h.update(f"{os.path.relpath(p, base)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _comfyui_head(env) -> str | None:
    from comfydock import comfyui

    try:
        return comfyui._git().Repo(env.comfyui_dir).head.commit.hexsha
    except Exception:  # no checkout, not a git repo, a broken HEAD: the record names no commit
        return None


def current_inputs(env, comfyui_args: list[str]) -> dict:
    """What a check result is valid for; compared whole with the record's."""
    from comfydock.hashing import file_digest

    try:
        lock = file_digest(env.uv_lock_path)
    except OSError:
        lock = None
    try:
        backend = env.torch_backend()
    except ComfydockError:
        backend = "unknown"
    return {
        "uv_lock_sha256": lock,
        "comfyui_commit": _comfyui_head(env),
        "nodes": nodes_digest(env),
        "torch_backend": backend or "pypi",
        "comfyui_args": list(comfyui_args),
    }


def requested_args(env) -> list[str]:
    data = read_json_state(request_file(env)) or {}
    args = data.get("comfyui_args")
    return [a for a in args if isinstance(a, str)] if isinstance(args, list) else []


def rerun_requested(env) -> bool:
    return bool((read_json_state(request_file(env)) or {}).get("rerun"))


def request_check(env, comfyui_args: list[str], rerun: bool = False) -> None:
    """Remember the arguments for the check_comfyui task (and whether to run it even when up to date)."""
    env.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(request_file(env), {"comfyui_args": list(comfyui_args), "rerun": rerun})


def _rows_of_strings(value, keys: tuple[str, ...]) -> bool:
    return isinstance(value, list) and all(isinstance(r, dict) and all(isinstance(r.get(k), str) for k in keys) for r in value)


def load_record(env) -> dict | None:
    """The last check's record; None when missing or not of the shape run_check writes (derived
    state: a damaged one is as good as none, and the next check writes it again)."""
    data = read_json_state(record_file(env))
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool) or not isinstance(data.get("inputs"), dict):
        return None
    if not (
        _rows_of_strings(data.get("failed_nodes"), ("directory", "error"))
        and _rows_of_strings(data.get("comfyui_import_failures"), ("module", "error"))
        and isinstance(data.get("comfyui_error"), (str, type(None)))
    ):
        return None
    for key in ("environment_version", "comfyui_version"):
        if not isinstance(data.get(key), (str, type(None))):
            data[key] = None
    if not isinstance(data["inputs"].get("uv_lock_sha256"), (str, type(None))):
        data["inputs"]["uv_lock_sha256"] = None
    return data


def record_is_current(env, record: dict | None) -> bool:
    if record is None:
        return False
    args, _ = with_cpu(env, requested_args(env))
    return record["inputs"] == current_inputs(env, args)


def check_uptodate(env) -> bool:
    """The task's up-to-date test: a passed record for exactly these inputs. A failed check runs
    again every time: what fixes it may be outside what the record tracks (a system library, a driver)."""
    record = load_record(env)
    return bool(record and record["ok"] and not rerun_requested(env) and record_is_current(env, record))


# --- reading ComfyUI's output ----------------------------------------------------------------
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure))(: .*)?$")
_CANNOT_IMPORT = re.compile(r"Cannot import (.+?) module for custom nodes: ?(.*)$")
_NODE_FAILED = re.compile(r"\(IMPORT FAILED\):\s*(.+?)\s*$")
_CORE_FAILED = re.compile(r"^IMPORT FAILED: (.+?)\s*$")  # comfy_extras/ and comfy_api_nodes/ modules


def _printable(text: str, limit: int = 400) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text.strip())
    return text[:limit]


def parse_output(text: str, exit_code: int) -> dict:
    """ComfyUI's own import errors and its failed custom nodes, from its (merged) output."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).rstrip("\r") for ln in text.splitlines()]
    last_exc: str | None = None
    errors_by_path: dict[str, str] = {}
    failed_dirs: list[str] = []
    core_failed: list[str] = []
    for line in lines:
        if line.startswith("Traceback (most recent call last):"):
            last_exc = None
            continue
        if _EXC_LINE.match(line):
            last_exc = line
        m = _CANNOT_IMPORT.search(line)
        if m:
            path = m.group(1).replace("\\", "/").rstrip("/")
            errors_by_path[path] = last_exc or m.group(2) or "import failed"
            last_exc = None
            continue
        m = _NODE_FAILED.search(line)
        if m:
            path = m.group(1).replace("\\", "/").rstrip("/")
            if path not in failed_dirs:
                failed_dirs.append(path)
            continue
        m = _CORE_FAILED.match(line)
        if m and m.group(1) not in core_failed:
            core_failed.append(m.group(1))
    failed_nodes = [
        {"directory": path.split("/")[-1], "error": _printable(errors_by_path.get(path) or "import failed")}
        for path in failed_dirs
    ]
    core_import_failures = []
    for name in core_failed:
        path = next((p for p in errors_by_path if p.split("/")[-1] == name), None)
        where = "/".join(path.split("/")[-2:]) if path else name
        core_import_failures.append({"module": _printable(where), "error": _printable(errors_by_path.get(path) or "import failed")})
    comfyui_error = None
    if exit_code != 0:
        tail = [ln for ln in lines if ln.strip()]
        exc = next((ln for ln in reversed(tail) if _EXC_LINE.match(ln)), None)
        comfyui_error = _printable(exc or (f"ComfyUI exited with code {exit_code}" + (f": {tail[-1]}" if tail else "")))
    return {"comfyui_error": comfyui_error, "comfyui_import_failures": core_import_failures, "failed_nodes": failed_nodes}


# --- running it --------------------------------------------------------------------------------
def _environment_version(env) -> tuple[str | None, bool]:
    """The version tag at .cec's HEAD (newest vN) and whether pyproject.toml/uv.lock differ from it."""
    from comfydock import history

    try:
        repo = history.open_repo(env.cec_dir)
        tags = [t for t in repo.git.tag("--points-at", "HEAD").split() if re.fullmatch(r"v\d+", t)]
        dirty = bool(repo.git.status("--porcelain", "--", "pyproject.toml", "uv.lock").strip())
    except Exception:  # no history yet, a broken repo: the record just names no version
        return None, False
    return (max(tags, key=lambda t: int(t[1:])) if tags else None), dirty


def run_check(env, comfyui_args: list[str]) -> dict:
    """Start ComfyUI with --quick-test-for-ci (+ --cpu where needed), write and return the record."""
    from comfydock.comfyui_process import comfyui_command, comfyui_environ, require_startable
    from comfydock.nodes.spec import tracked_nodes

    # no torch pre-check of its own: a family that does not import is ComfyUI's own import error here
    require_startable(env)
    args, cpu_why = with_cpu(env, comfyui_args)
    command = comfyui_command(env, ["--quick-test-for-ci", *args])
    started = time.time()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            command,
            cwd=env.comfyui_dir,
            env=comfyui_environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream keeps each traceback next to its "Cannot import" line
            stdin=subprocess.DEVNULL,
            timeout=CHECK_TIMEOUT,
        )
        output, code = proc.stdout.decode("utf-8", "replace"), proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = (exc.output or b"").decode("utf-8", "replace")
        output += f"\nTimeoutError: ComfyUI did not finish its quick test within {CHECK_TIMEOUT} s\n"
        code = -1
    seconds = round(time.monotonic() - t0, 2)
    env.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(log_file(env), output)
    found = parse_output(output, code)
    by_dir = {spec.directory: spec.id for spec in tracked_nodes(env.manifest_data()).values()}
    for node in found["failed_nodes"]:
        node["id"] = by_dir.get(node["directory"])  # None: a directory the manifest does not track
    version, dirty = _environment_version(env)
    info = env.info()
    record = {
        "ok": code == 0 and not found["failed_nodes"] and not found["comfyui_import_failures"],
        "exit_code": code,
        **found,
        "command_args": ["--quick-test-for-ci", *args],
        "cpu_added": cpu_why,
        "environment_version": version,
        "uncommitted_changes": dirty,
        "comfyui_version": info.get("comfyui_version"),
        "checked_at": started,
        "seconds": seconds,
        "log": str(log_file(env)),
        # after the run: files a node wrote while loading are then part of what the next check compares
        "inputs": current_inputs(env, args),
    }
    atomic_write_json(record_file(env), record)
    if rerun_requested(env):
        request_check(env, comfyui_args, rerun=False)
    return record


def failure_summary(record: dict) -> str:
    parts = []
    if record.get("comfyui_error"):
        parts.append(f"ComfyUI itself failed: {record['comfyui_error']}")
    for f in record.get("comfyui_import_failures") or []:
        parts.append(f"ComfyUI's {f['module']}: {f['error']}")
    for n in record.get("failed_nodes") or []:
        parts.append(f"{n.get('id') or n['directory']}: {n['error']}")
    return "; ".join(parts) or f"ComfyUI exited with code {record.get('exit_code')}"


def check_task_action(env) -> None:
    """The check_comfyui task: run the check; a failed check fails the task (its record stays)."""
    record = run_check(env, requested_args(env))
    if not record["ok"]:
        raise ComfydockError(
            f"ComfyUI's quick test failed: {failure_summary(record)}",
            hint=f"see 'comfydock check -e {env.name}' and ComfyUI's output in {log_file(env)}",
        )


# --- what status shows ------------------------------------------------------------------------
def check_status(env) -> dict:
    """The last check's result for `status` (state passed / failed / not-run) and whether the
    environment is still the one it was made for (`current`)."""
    record = load_record(env)
    if record is None:
        return {"state": "not-run"}
    return {
        "state": "passed" if record["ok"] else "failed",
        "current": record_is_current(env, record),
        "environment_version": record.get("environment_version"),
        "uncommitted_changes": record.get("uncommitted_changes"),
        "comfyui_version": record.get("comfyui_version"),
        "uv_lock_sha256": record["inputs"].get("uv_lock_sha256"),
        "checked_at": record.get("checked_at"),
        "seconds": record.get("seconds"),
        "summary": None if record["ok"] else failure_summary(record),
    }
