"""`python -m comfydock` and the `comfydock` command."""

import sys


def entry() -> int:
    """The command's entry point: a Ctrl-C while Python is still loading comfydock (before the
    command's own handling starts) ends quietly with 130, like one later on; one after the command
    finished ends with 130 too, saying that what it did is kept (see `_end`)."""
    try:
        from comfydock.cli.main import EXIT_INTERRUPTED, main
    except KeyboardInterrupt:
        return 130
    try:
        code = main()
    except KeyboardInterrupt:  # between loading and the command's own try (parsing the arguments)
        print("error: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    _end(code)


def _end(code: int) -> None:
    """Leave without the interpreter's teardown. That teardown (tens of milliseconds with rich, doit
    and git loaded) runs with SIGINT back at the system's default action, so a Ctrl-C landing just
    after a change finished and was printed killed the process (-2), as if nothing had finished.
    Here a Ctrl-C is only noted while what the teardown would do is done (other threads joined,
    exit handlers run: log files closed, output flushed); then the process exits at once."""
    import atexit
    import os
    import signal

    late = []
    try:
        signal.signal(signal.SIGINT, lambda *_: late.append(True))
    except (ValueError, OSError):  # not the main thread: leave as Python would
        sys.exit(code)
    if "threading" in sys.modules:
        import threading

        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if late and code != 130:
        _flush()
        print("error: interrupted after the command finished: what it did is kept", file=sys.stderr)
        code = 130
    _flush()
    os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass


if __name__ == "__main__":
    sys.exit(entry())
