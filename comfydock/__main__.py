"""`python -m comfydock` and the `comfydock` command."""

import sys


def entry() -> int:
    """The command's entry point: a Ctrl-C while Python is still loading comfydock (before the
    command's own handling starts) ends quietly with 130, like one later on."""
    try:
        from comfydock.cli.main import EXIT_INTERRUPTED, main
    except KeyboardInterrupt:
        return 130
    try:
        return main()
    except KeyboardInterrupt:  # between loading and the command's own try (parsing the arguments)
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(entry())
