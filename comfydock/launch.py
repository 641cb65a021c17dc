"""Starting ComfyUI in an environment (`comfydock run`): sync first like `uv run`, check what it
needs, run it with the venv's Python, and note which custom nodes it could not import.

ComfyUI's own output is the user's to see: it is passed through unchanged (progress bars
included) to the streams the caller gives, each chunk as it comes; a copy of it (stdout and stderr
as one stream) goes to the run's log (`run_log`, read by `comfydock logs`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from comfydock.comfyui_process import comfyui_command, comfyui_environ, require_startable  # noqa: F401  (also launch's API)
from comfydock.errors import ComfydockError

SYNC_TASKS = ("checkout_comfyui", "sync_venv")  # plus each node's install_node/install_script tasks


@dataclass
class Restored:
    """Something a sync before 'run' put back on disk."""

    what: str  # "comfyui" | "node" | "venv"
    name: str | None = None  # the node, for "node"


@dataclass
class RunResult:
    exit_code: int  # ComfyUI's
    import_failures: list[str] = field(default_factory=list)  # custom_nodes/ directories ComfyUI could not import


def sync_before_run(env, *, listener=None, on_wait=None) -> list[Restored]:
    """Make ComfyUI, the venv and custom nodes match the manifest (a no-op when they do); what was
    put back. A failed build raises its ComfydockError."""
    from comfydock import engine
    from comfydock.engine import build_failure
    from comfydock.tasks.nodes import install_script_task_names

    report = engine.build(env, [*SYNC_TASKS, *install_script_task_names(env)], listener=listener, on_wait=on_wait)
    if not report.ok:
        raise build_failure(report)
    return restored_by(report)


def restored_by(report) -> list[Restored]:
    restored = []
    for e in report.events:
        if e.status != "ran":
            continue
        if e.task == "checkout_comfyui":
            restored.append(Restored("comfyui"))
        elif e.task.startswith("install_node:"):
            restored.append(Restored("node", e.task.split(":", 1)[1]))
        elif e.task == "sync_venv":
            restored.append(Restored("venv"))
    return restored


def check_runnable(env) -> None:
    """Refuse to start a ComfyUI that cannot start: no checkout, no venv, a broken torch family.
    The family's import result is the one recorded after the last sync (torch_probe), so an
    unchanged environment imports nothing here; without a record it is checked now, once."""
    from comfydock import torch_probe

    require_startable(env)
    wrong = torch_probe.ensure(env).get("problem")
    if wrong:
        raise ComfydockError(
            f"the torch family in {env.name}'s venv is broken: {wrong}",
            hint=f"run 'comfydock build -e {env.name}': it installs the locked torch, torchvision and torchaudio "
            "and refuses a release that does not import",
        )


def run_comfyui(env, comfyui_args: list[str], *, stdout=None, stderr=None) -> RunResult:
    """check_runnable, then ComfyUI in the foreground until it exits (Ctrl-C reaches it too),
    its output copied to a new run log."""
    from comfydock.run_log import start_run_log

    check_runnable(env)
    log = start_run_log(env)
    try:
        code, failed = run_watching_imports(
            comfyui_command(env, comfyui_args), env.comfyui_dir, stdout=stdout, stderr=stderr, log=log
        )
    finally:
        if log is not None:
            log.close()
    return RunResult(code, failed)


def run_watching_imports(cmd: list[str], cwd, *, stdout=None, stderr=None, log=None) -> tuple[int, list[str]]:
    """Run `cmd` with its output passed through unchanged to `stdout`/`stderr` (default: this
    process's), and copied to `log` (a binary file) when given, noting the custom nodes its
    '(IMPORT FAILED)' lines name; (exit code, those node directories)."""
    from comfydock.nodes.check import import_failures

    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=comfyui_environ())
    failed: list[str] = []
    guard = threading.Lock()
    logging = [log is not None]  # off after a failed write (disk full): the run goes on

    def pump(src, dest):
        out = getattr(dest, "buffer", None)
        pending = b""
        while chunk := os.read(src.fileno(), 65536):
            dest.flush()
            if out is not None:
                out.write(chunk)
            else:
                dest.write(chunk.decode("utf-8", "replace"))
            dest.flush()
            if logging[0]:  # after the user saw it: the copy never delays the live output
                with guard:
                    try:
                        log.write(chunk)
                    except (OSError, ValueError):
                        logging[0] = False
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines:
                names = import_failures(ln.decode("utf-8", "replace") for ln in lines)
                with guard:
                    failed.extend(n for n in names if n not in failed)
            pending = pending[-65536:]
        src.close()

    threads = [
        threading.Thread(target=pump, args=(proc.stdout, stdout or sys.stdout), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, stderr or sys.stderr), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        # ComfyUI got the same Ctrl-C; give it time to shut down cleanly.
        code = proc.wait()
    for t in threads:
        t.join(timeout=5)
    return code, failed
