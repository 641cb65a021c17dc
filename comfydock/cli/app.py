"""What every command gets: parsed arguments, rich consoles on stdout/stderr, lazy workspace access."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("comfydock")
log.addHandler(logging.NullHandler())  # before a log file is set up, nothing goes to stderr (errors print once)


def _console_class():
    """rich's Console, printing every string through `printable` (newlines kept): our markup holds
    no control characters, so an ESC that reaches the console came from data somebody forgot to
    escape; it is shown, never sent to the terminal."""
    from rich.console import Console

    from comfydock.cli.text import printable

    class PrintableConsole(Console):
        def render_str(self, text: str, **kwargs):
            return super().render_str(printable(text, keep_newlines=True), **kwargs)

    return PrintableConsole


class App:
    """What every command gets: parsed arguments, consoles, and lazy workspace access."""

    def __init__(self, args, run_command=None):
        Console = _console_class()

        self.args = args
        self.run_command = run_command  # the CLI's entry point, for commands that run others (demo)
        # bound to the streams of now: doit swaps sys.stdout/err while a task runs, and what is
        # said then (uv's progress) must still reach the user
        self.err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        self.out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        if not self.out.is_terminal:
            # piped or captured: never truncate table cells (paths) to an assumed 80 columns
            self.out = Console(file=sys.stdout, highlight=False, soft_wrap=True, width=250)
        self._workspace = None
        self.location = None  # where the workspace was found (WorkspaceLocation), once opened
        self.printed_json = False
        self._resolution_before = None  # (env, packages allowed newer) when the command opened an environment

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def opened_workspace(self):
        """The workspace if a command has opened one (for the crash log), else None."""
        return self._workspace

    def workspace(self):
        from comfydock.workspace import Workspace, locate_workspace

        if self._workspace is None:
            self.location = locate_workspace(self.args.workspace)
            self._workspace = Workspace.open(self.location.path)
            log_to(self._workspace.logs_dir / "workspace" / "workspace.log")
        return self._workspace

    def env(self):
        from comfydock import engine
        from comfydock.environment import Environment

        ws = self.workspace()
        # -e, then the environment the current directory is in, then $COMFYDOCK_ENV / the active one
        name = getattr(self.args, "env", None) or self.location.env_here
        env = Environment.open(ws, name)
        log_to(env.log_file)
        self._resolution_before = (env, _allowed_newer(env))
        for note in engine.repair_state(env):
            log.warning("%s", note)
            self.warn_text(note)
        return env

    def say_resolution_moves(self) -> None:
        """After a command: name each package it allowed to be newer than the resolution date, and why
        (the lock step moves them; see comfydock.resolution)."""
        from rich.markup import escape

        if self._resolution_before is None:
            return
        from comfydock.resolution import new_moves

        env, before = self._resolution_before
        after = _allowed_newer(env)
        if before is None or after is None:
            return
        for line in new_moves(before, after):
            self.say(f"[yellow]note:[/] {escape(line)}")

    def say(self, message: str) -> None:
        """Progress and notes go to stderr, so stdout stays clean for data and --json."""
        self.err.print(message)

    def warn(self, message: str) -> None:
        """A warning in rich markup: escape the data in it (or use warn_text)."""
        self.err.print(f"[yellow]warning:[/] {message}")

    def warn_text(self, message: str) -> None:
        """A warning that is plain text (from the core: paths, names, tool output), never markup."""
        from comfydock.cli.text import escape

        self.warn(escape(message))

    def task_listener(self, spinner, plain: bool = False):
        """Names each task as it starts: on the spinner, or as a plain line when asked to."""

        from comfydock.cli.text import escape

        def listener(kind, task):
            if kind == "note":  # a task's message to the user (here `task` is its text)
                self.warn_text(task)
            if kind != "start":
                return
            if spinner is not None:
                spinner.update(f"Running {escape(task)}")
            elif plain:
                self.say(f"Running {escape(task)}")

        return listener

    def uv_reporter(self, spinner, label: str = ""):
        """uv's own progress lines: on the spinner as they come; without a terminal, only the
        lines worth a log (downloads with their size, the install summary)."""
        from comfydock.cli.text import escape

        def report(line: str) -> None:
            text = line.strip()
            if spinner is not None:
                spinner.update(escape(f"{label}{': ' if label else ''}{text}"))
            elif text.startswith(("Downloading ", "Installed ", "Uninstalled ")):
                self.say(f"  uv: {escape(text)}")

        return report

    def lock_wait_note(self, holder: str) -> None:
        from comfydock.cli.text import escape

        self.say(f"Waiting for the environment lock ({escape(holder)})")

    def print_json(self, data) -> None:
        self.printed_json = True
        self.out.file.write(json.dumps(data, indent=2) + "\n")

    def step_reporter(self, spinner, what: str):
        """A core `step(message)` callback: logged, shown on the spinner (or as a line when there
        is none), silent on stdout under --json."""
        from comfydock.cli.text import escape

        def step(message):
            log.info("%s: %s", what, message)
            if spinner is not None:
                spinner.update(escape(message))
            elif not self.json:
                self.say(escape(message))

        return step

    def status(self, message: str):
        """A spinner on a terminal, a plain line otherwise."""
        if self.err.is_terminal:
            return self.err.status(message)
        from contextlib import nullcontext

        return nullcontext()


def _allowed_newer(env) -> dict | None:
    """Packages the environment allows newer than its resolution date (None: manifest unreadable)."""
    from comfydock.errors import ComfydockError
    from comfydock.resolution import allowed_newer

    try:
        return allowed_newer(env.manifest_data())
    except (ComfydockError, OSError):
        return None


_log_handlers: set[str] = set()


def log_to(path: Path) -> None:
    key = str(path)
    if key in _log_handlers:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    _log_handlers.add(key)


def env_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-e", "--env", metavar="NAME", help="environment to act on (default: the active one, or $COMFYDOCK_ENV)")


def json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def count(text: str) -> int:
    """argparse type: a count, 0 or more (a malformed one is a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def render_events(app: App, events) -> None:
    from rich.table import Table

    from comfydock.cli.text import escape

    styles = {"ran": "green", "up-to-date": "dim", "failed": "red", "not-run": "yellow", "run": "cyan", "after-upstream": "cyan"}
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("task")
    table.add_column("status")
    table.add_column("time", justify="right")
    for e in events:
        secs = f"{e.seconds:.2f}s" if e.status in {"ran", "failed"} and e.seconds else ""
        table.add_row(escape(e.task), f"[{styles.get(e.status, '')}]{e.status}[/]", secs)
    app.out.print(table)
