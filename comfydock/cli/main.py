"""The command line: argument parsing and rich output only; the work is done in the core."""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

from comfydock import __version__
from comfydock.cli import adopt, bundle, comfyui, environments, history, models, nodes, python
from comfydock.cli.app import App, log
from comfydock.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, ComfydockError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfydock",
        description="Reproducible ComfyUI environments: workspaces, custom nodes, models, history, bundles.",
        epilog="Exit codes: 0 ok, 1 error or failed task, 2 usage error, 3 internal error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"comfydock {__version__}")
    parser.add_argument(
        "-w", "--workspace", metavar="PATH", help="workspace directory (default: $COMFYDOCK_HOME, then ~/comfydock_workspace)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and tools' full output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (environments, adopt, history, comfyui, python, nodes, models, bundle):
        module.register(sub)
    return parser


_GLOBAL_WITH_VALUE = {"-w", "--workspace"}
_GLOBAL_FLAGS = {"-v", "--verbose"}


def _split_run(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`comfydock [globals] run [-e NAME] ARGS...`: everything after run's own options goes to ComfyUI."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in _GLOBAL_WITH_VALUE:
            i += 2
        elif a in _GLOBAL_FLAGS or any(a.startswith(g + "=") for g in _GLOBAL_WITH_VALUE):
            i += 1
        else:
            break
    if i >= len(argv) or argv[i] != "run":
        return argv, None
    head, rest = argv[: i + 1], argv[i + 1 :]
    j = 0
    while j < len(rest):
        a = rest[j]
        if a in {"-e", "--env"} and j + 1 < len(rest):
            head += rest[j : j + 2]
            j += 2
        elif a.startswith("--env="):
            head.append(a)
            j += 1
        elif a in {"-h", "--help", "--no-sync"}:
            head.append(a)
            j += 1
        elif a == "--":
            j += 1
            break
        else:
            break
    return head, rest[j:]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    head, passthrough = _split_run(argv)
    try:
        args = parser.parse_args(head)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if passthrough is not None:
        args.comfyui_args = passthrough
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    app = App(args)
    try:
        return args.func(app)
    except ComfydockError as exc:
        log.error("%s: %s", type(exc).__name__, exc.message)
        _print_error(app, exc)
        return exc.exit_code
    except KeyboardInterrupt:
        app.err.print("[red]error:[/] interrupted")
        return EXIT_INTERRUPTED
    except Exception:
        return _internal_error(app)


def _print_error(app: App, exc: ComfydockError) -> None:
    from rich.markup import escape

    if app.json and not app.printed_json:  # scripts get the error as data too
        error = {
            "message": exc.message,
            "hint": exc.hint,
            "exit_code": exc.exit_code,
            "details": getattr(exc, "details", "") or None,
        }
        app.print_json({"error": error})
    app.err.print(f"[bold red]error:[/] {escape(exc.message)}")
    details = getattr(exc, "details", "")
    if details:
        lines = details.splitlines()
        shown = lines if app.args.verbose else lines[-25:]
        app.err.print("\n".join("  " + escape(ln) for ln in shown))
    if exc.hint:
        app.err.print(f"[bold cyan]hint:[/] {escape(exc.hint)}")
    if app.args.verbose:
        app.err.print(escape("".join(traceback.format_exception(exc))))


def _internal_error(app: App) -> int:
    text = traceback.format_exc()
    log.error("internal error\n%s", text)
    crash = Path(tempfile.gettempdir()) / "comfydock-crash.log"
    try:
        with open(crash, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError:
        pass
    if app.args.verbose:
        app.err.print(text, markup=False)
    app.err.print(f"[bold red]error:[/] internal error in comfydock: {sys.exc_info()[1]!r}", markup=True)
    app.err.print(f"[bold cyan]hint:[/] the traceback is in {crash}; please report it", markup=True)
    return EXIT_INTERNAL
