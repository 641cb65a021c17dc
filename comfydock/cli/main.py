"""The command line: argument parsing and rich output only; the work is done in the core."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from comfydock import __version__
from comfydock.cli import adopt, bundle, check, comfyui, completion, environments, history, logs, models, nodes, python, remotes
from comfydock.cli.app import App, log
from comfydock.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, EXIT_USER_ERROR, ComfydockError, disk_full

# OS errors that are the machine's state, not a bug: one line naming the path, exit 1
_ENVIRONMENTAL_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EMFILE, errno.ENFILE}


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
    for module in (environments, adopt, history, remotes, comfyui, python, nodes, models, bundle, check, logs, completion):
        module.register(sub)
    _accept_globals_anywhere(parser)
    return parser


def _accept_globals_anywhere(parser: argparse.ArgumentParser) -> None:
    """`-v` and `-w PATH` after the command too (`comfydock node add X -v`), as git and uv take
    them; the subcommands' copies leave the value alone unless given (SUPPRESS). `-v` not after
    `run`: what follows it is ComfyUI's (which has a --verbose of its own)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if name != "run" and "--verbose" not in child._option_string_actions:
                    child.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                if "--workspace" not in child._option_string_actions:
                    child.add_argument("-w", "--workspace", metavar="PATH", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                _accept_globals_anywhere(child)


def _options(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """(options that take a value, options that do not) of `parser`, as argparse declares them."""
    with_value, flags = set(), set()
    for action in parser._actions:
        if action.option_strings:
            (flags if action.nargs == 0 else with_value).update(action.option_strings)
    return with_value, flags


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _skip_options(argv: list[str], parser: argparse.ArgumentParser) -> int:
    """How many leading words of `argv` are `parser`'s own options (with their values); stops at '--'."""
    with_value, flags = _options(parser)
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in with_value and i + 1 < len(argv):
            i += 2
        elif a in flags or any(a.startswith(o + "=") for o in with_value):
            i += 1
        else:
            break
    return i


def _split_run(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`comfydock [globals] run [run's options] ARGS...`: everything after run's own options (or
    after '--') goes to ComfyUI. The options are the ones the parser declares."""
    i = _skip_options(argv, parser)
    if i >= len(argv) or argv[i] != "run":
        return argv, None
    head, rest = argv[: i + 1], argv[i + 1 :]
    j = _skip_options(rest, _subparser(parser, "run"))
    head += rest[:j]
    if j < len(rest) and rest[j] == "--":
        j += 1
    return head, rest[j:]


# commands that pass what follows '--' to ComfyUI (as comfyui_args)
_COMFYUI_ARGS_AFTER_DASHES = (["check"], ["node", "check"])


def _split_comfyui_args(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`comfydock [globals] check ... -- ARGS` and `node check ... -- ARGS`: ARGS are ComfyUI's."""
    i = _skip_options(argv, parser)
    if "--" in argv and any(argv[i : i + len(words)] == words for words in _COMFYUI_ARGS_AFTER_DASHES):
        j = argv.index("--")
        return argv[:j], argv[j + 1 :]
    return argv, None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (see cli/completion.py); exits
        completion.complete(parser)
    head, passthrough = _split_run(parser, argv)
    if passthrough is None:
        head, passthrough = _split_comfyui_args(parser, argv)
    try:
        args = parser.parse_args(head)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if passthrough is not None:
        args.comfyui_args = passthrough
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    app = App(args, run_command=main)
    if "comfydock.transaction" in sys.modules:  # a command run before in this process (tests, demo)
        sys.modules["comfydock.transaction"].last_outcome = None
    try:
        code = args.func(app)
        app.say_resolution_moves()
        return code
    except ComfydockError as exc:
        exc = _as_disk_full(app, exc) or exc
        log.error("%s: %s", type(exc).__name__, exc.message)
        _print_error(app, exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        from comfydock.cli.text import escape

        if _after_the_change(exc):
            app.err.print("[red]error:[/] interrupted after the change was made: it is kept")
            app.err.print("[bold cyan]hint:[/] see it with 'comfydock status'")
            return EXIT_INTERRUPTED
        app.err.print("[red]error:[/] interrupted")
        for note in getattr(exc, "__notes__", []):  # what an undo could not put back
            app.err.print(f"[bold cyan]hint:[/] {escape(note)}")
        return EXIT_INTERRUPTED
    except RecursionError:  # a file or an answer nested beyond what a parser can read: hostile or damaged
        log.error("RecursionError", exc_info=True)
        error = ComfydockError(
            "refused: a file or an answer is nested too deeply to read (damaged or hostile input)",
            hint="run the command again with --verbose to see which file; replace it with a good copy",
        )
        _print_error(app, error)
        return EXIT_USER_ERROR
    except Exception as exc:  # a full disk reads differently in each tool (git, uv, SQLite, shutil): one line
        full = _as_disk_full(app, exc)
        if full is not None:
            log.error("%s", full.message)
            _print_error(app, full)
            return EXIT_USER_ERROR
        if not isinstance(exc, OSError) or exc.errno not in _ENVIRONMENTAL_ERRNOS:
            return _internal_error(app)
        error = os_error(exc)
        log.error("%s", error.message)
        _print_error(app, error)
        return EXIT_USER_ERROR


def _as_disk_full(app: App, exc: BaseException) -> ComfydockError | None:
    """`exc` as 'disk is full at PATH' when a full disk caused it, keeping what an undo could not
    put back (the Transaction's note in the hint, or the exception's notes)."""
    ws = app.opened_workspace
    full = disk_full(exc, str(ws.root) if ws is not None else os.getcwd())
    if full is None:
        return None
    notes = [n for n in getattr(exc, "__notes__", [])]
    hint = getattr(exc, "hint", None) or ""
    if "could not restore" in hint:
        notes.append(hint[hint.index("could not restore") :])
    error = ComfydockError(full.message, hint="; ".join([full.hint, *notes]))
    error.__cause__ = exc  # --verbose shows what the tool said
    return error


def _after_the_change(exc: KeyboardInterrupt) -> bool:
    """Whether a Ctrl-C came after the command's change was made and kept: the last Transaction
    was kept and the interrupt landed in the CLI's own code (saying what was done), not in the core
    (where it undoes what it interrupts, or is another step, as check's run of ComfyUI after a sync)."""
    transaction = sys.modules.get("comfydock.transaction")
    if transaction is None or transaction.last_outcome != "kept":
        return False
    package = Path(__file__).resolve().parent.parent
    deepest = None
    tb = exc.__traceback__
    while tb is not None:
        path = Path(tb.tb_frame.f_code.co_filename)
        if path.is_relative_to(package):
            deepest = path
        tb = tb.tb_next
    return deepest is not None and deepest.is_relative_to(package / "cli")


def os_error(exc: OSError) -> ComfydockError:
    """A read-only disk, a full disk, a permission: say which path and what to check."""
    where = f": {exc.filename}" if exc.filename else ""
    reason = exc.strerror or str(exc)
    hints = {
        errno.EROFS: "the file system is read-only; reading commands still work, writing ones need a writable workspace",
    }
    hint = hints.get(exc.errno, "check the permissions of that path (and who owns the workspace), then run again")
    return ComfydockError(f"{reason}{where}", hint=hint)


def _bare(line: str) -> str:
    return line.strip().removeprefix("stderr: ").strip("'").strip()


def _print_error(app: App, exc: ComfydockError) -> None:
    from comfydock.cli.text import escape

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
        # a tool's output minus the line the message already quotes (git's 'fatal: ...')
        lines = [ln for ln in details.splitlines() if ln.strip() and _bare(ln) not in exc.message]
        shown = lines if app.args.verbose else lines[-25:]
        app.err.print("\n".join("  " + escape(ln) for ln in shown))
    if exc.hint:
        app.err.print(f"[bold cyan]hint:[/] {escape(exc.hint)}")
    if app.args.verbose:
        app.err.print(escape("".join(traceback.format_exception(exc))))


def crash_log_path(app: App) -> Path:
    """The workspace's logs/ when there is a workspace, else a per-user temporary directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"crash-{stamp}-{os.getpid()}.log"
    ws = app.opened_workspace
    if ws is not None:
        return ws.logs_dir / name
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"comfydock-{uid}" / name


def _write_crash_log(app: App, text: str) -> Path | None:
    candidates = [crash_log_path(app)]
    if app.opened_workspace is not None:  # a read-only workspace: fall back to the temp directory
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        candidates.append(Path(tempfile.gettempdir()) / f"comfydock-{uid}" / candidates[0].name)
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if hasattr(os, "getuid") and path.parent.lstat().st_uid != os.getuid():
                continue  # a shared temp directory: never write into someone else's (or a planted link)
            with open(path, "a", encoding="utf-8") as f:
                f.write(text + "\n")
            return path
        except OSError:
            continue
    return None


def _internal_error(app: App) -> int:
    from comfydock.cli.text import escape

    text = traceback.format_exc()
    log.error("internal error\n%s", text)
    crash = _write_crash_log(app, text)
    if app.args.verbose:
        app.err.print(text, markup=False)
    app.err.print(f"[bold red]error:[/] internal error in comfydock: {escape(repr(sys.exc_info()[1]))}")
    where = f"the traceback is in {escape(str(crash))}" if crash else "run again with --verbose to see the traceback"
    app.err.print(f"[bold cyan]hint:[/] {where}; please report it")
    for note in getattr(sys.exc_info()[1], "__notes__", []):  # what an undo could not put back
        app.err.print(f"[bold cyan]hint:[/] {escape(note)}")
    return EXIT_INTERNAL
