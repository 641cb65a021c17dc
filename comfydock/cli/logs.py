"""`comfydock logs`: ComfyUI's output of the last `run` (or following the current one), and where
the other logs are: check's, comfydock's own, crash logs."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from comfydock.cli.app import App, env_option, json_option

_FOLLOW_POLL = 0.2  # seconds between looks at a followed log


def _crash_logs(ws) -> list[Path]:
    """Crash logs (exit 3) in the workspace's logs/ and in the per-user temporary directory."""
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    found = []
    for folder in (ws.logs_dir, Path(tempfile.gettempdir()) / f"comfydock-{uid}"):
        try:
            found += [p for p in folder.glob("crash-*.log") if p.is_file()]
        except OSError:
            continue
    return sorted(found, key=lambda p: p.name, reverse=True)


def _logs(app: App) -> dict:
    from comfydock.comfyui_check import log_file as check_log_path
    from comfydock.run_log import is_being_written, run_logs

    env = app.env()
    runs = run_logs(env)
    check = check_log_path(env)
    return {
        "environment": env.name,
        "run": str(runs[0]) if runs else None,
        "run_going": bool(runs) and is_being_written(runs[0]),
        "earlier_runs": [str(p) for p in runs[1:]],
        "check": str(check) if check.is_file() else None,
        "comfydock": str(env.log_file),
        "workspace": str(env.workspace.logs_dir / "workspace" / "workspace.log"),
        "crashes": [str(p) for p in _crash_logs(env.workspace)],
    }


def _shown(line: bytes) -> str:
    """A line of ComfyUI's output as it last looked on a terminal (a progress bar's final state,
    after its last carriage return), its control characters made visible."""
    from comfydock.cli.text import printable

    text = line.decode("utf-8", "replace").rstrip("\r")
    return printable(text.rsplit("\r", 1)[-1])


def _write_lines(lines: list[bytes]) -> None:
    sys.stdout.write("".join(_shown(ln) + "\n" for ln in lines))
    sys.stdout.flush()


def _print_log(path: Path, follow: bool) -> None:
    """The log's lines; with `follow`, then what is appended while its run goes on."""
    from comfydock.run_log import is_being_written

    with open(path, "rb") as f:
        pending = b""
        while True:
            going = follow and is_being_written(path)  # asked before reading: the run's last words are read below
            chunk = f.read()
            if chunk:
                *lines, pending = (pending + chunk).split(b"\n")
                _write_lines(lines)
            elif not going:
                break
            else:
                time.sleep(_FOLLOW_POLL)
        if pending:
            _write_lines([pending])


def cmd_logs(app: App) -> int:
    from comfydock.cli.text import escape

    info = _logs(app)
    if app.json:
        app.print_json(info)
        return 0
    run = info["run"]
    if run is None:
        app.say(f"No run of ComfyUI is logged yet for {escape(info['environment'])} (each 'comfydock run' keeps its output).")
    else:
        going = " (still running)" if info["run_going"] else ""
        app.say(f"[dim]ComfyUI's output of the last run{going}: {escape(run)}[/]")
        try:
            _print_log(Path(run), app.args.follow)
        except KeyboardInterrupt:  # the way to stop following
            return 130
    app.say(f"[dim]Check's log: {escape(info['check'] or 'none yet (comfydock check)')}[/]")
    app.say(f"[dim]comfydock's log: {escape(info['comfydock'])} (workspace: {escape(info['workspace'])})[/]")
    if info["crashes"]:
        app.say(f"[dim]Crash logs ({len(info['crashes'])}), newest: {escape(info['crashes'][0])}[/]")
    else:
        app.say("[dim]Crash logs: none[/]")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "logs",
        help="show ComfyUI's log of the last run",
        description="Print ComfyUI's output of the environment's last 'comfydock run' (the last 5 are kept in "
        "the workspace's logs/comfyui/NAME/), then say where check's log, comfydock's own log and crash logs are.",
    )
    env_option(p)
    how = p.add_mutually_exclusive_group()
    how.add_argument("-f", "--follow", action="store_true", help="keep printing the current run's output until it ends")
    json_option(how)
    p.set_defaults(func=cmd_logs)
