"""Shell completion: `comfydock completion SHELL` prints the script; the shell then runs comfydock
with _ARGCOMPLETE set and argcomplete answers from the real parser, with environment names, node
ids, workflow names and vN tags read from the workspace (cheaply, and silent on any failure)."""

from __future__ import annotations

import os
import re
from pathlib import Path

SHELLS = ("bash", "zsh", "fish")
# patterns as strings: compiling them at import would cost every command's start (re caches them)
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_VERSION_TAG = r"v(\d+)"


def complete(parser) -> None:
    """Answer the shell's completion request and exit (argcomplete writes the candidates to fd 8
    or $_ARGCOMPLETE_STDOUT_FILENAME). Called only when $_ARGCOMPLETE is set."""
    import argcomplete

    _attach(parser)
    argcomplete.autocomplete(parser, always_complete_options=False)  # options once '-' is typed, as git does


def _quiet(completer):
    """A completer that never fails loudly: a broken workspace completes nothing."""

    def wrapped(prefix, parsed_args, **_):
        try:
            return [c for c in completer(parsed_args) if c.startswith(prefix)]
        except Exception:
            return []

    return wrapped


def _attach(parser, path: tuple[str, ...] = ()) -> None:
    """Give each argument that names something in the workspace its completer."""
    import argparse

    by_place = {
        ("use", "name"): environment_names,
        ("delete", "name"): environment_names,
        ("node", "remove", "names"): node_ids,
        ("node", "update", "name"): node_ids,
        ("node", "check", "names"): node_ids,
        ("workflow", "show", "name"): workflow_names,
        ("models", "resolve", "workflow"): workflow_names,
        ("export", "workflows"): workflow_names,
        ("rollback", "target"): version_tags,
    }
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                _attach(child, (*path, name))
        elif action.dest == "env" and path != ("import",):  # import's -e names a new environment
            action.completer = _quiet(environment_names)
        elif (*path, action.dest) in by_place:
            action.completer = _quiet(by_place[(*path, action.dest)])


def _workspace_root(parsed_args) -> Path:
    from comfydock.workspace import locate_workspace

    return locate_workspace(getattr(parsed_args, "workspace", None)).path


def environment_names(parsed_args) -> list[str]:
    """The workspace's environment directories that hold a history (.cec/)."""
    root = _workspace_root(parsed_args) / "environments"
    return sorted(p.name for p in root.iterdir() if re.fullmatch(_NAME, p.name) and (p / ".cec").is_dir())


def _environment_dir(parsed_args) -> Path:
    """-e, then the environment the current directory is in, then $COMFYDOCK_ENV, then the active one."""
    import json

    from comfydock.workspace import locate_workspace

    location = locate_workspace(getattr(parsed_args, "workspace", None))
    name = getattr(parsed_args, "env", None) or location.env_here or os.environ.get("COMFYDOCK_ENV")
    if not name:
        config = json.loads((location.path / ".metadata" / "workspace.json").read_text(encoding="utf-8"))
        name = config.get("active_environment")
    name = Path(str(name)).name
    if not re.fullmatch(_NAME, name):
        return Path("/nonexistent")
    return location.path / "environments" / name


def node_ids(parsed_args) -> list[str]:
    """The ids in the environment's manifest ([tool.comfydock.nodes])."""
    import tomllib

    with open(_environment_dir(parsed_args) / ".cec" / "pyproject.toml", "rb") as f:
        data = tomllib.load(f)
    nodes = data.get("tool", {}).get("comfydock", {}).get("nodes", {})
    return sorted(k for k in nodes if isinstance(k, str))


def workflow_names(parsed_args) -> list[str]:
    """Workflows in ComfyUI's folder and their versioned copies (names without .json)."""
    from comfydock.workflows.tracking import _walk_json, workflow_name

    env_dir = _environment_dir(parsed_args)
    names = set()
    for folder in (env_dir / "ComfyUI" / "user" / "default" / "workflows", env_dir / ".cec" / "workflows"):
        names.update(workflow_name(rel) for rel in _walk_json(folder))
    return sorted(names)


def version_tags(parsed_args) -> list[str]:
    """vN tags of the environment's history, newest first, read from .git without running git."""
    git_dir = _environment_dir(parsed_args) / ".cec" / ".git"
    tags = set()
    tags_dir = git_dir / "refs" / "tags"
    if tags_dir.is_dir():
        tags.update(p.name for p in tags_dir.iterdir())
    try:
        packed = (git_dir / "packed-refs").read_text(encoding="utf-8", errors="replace")
    except OSError:
        packed = ""
    for line in packed.splitlines():
        ref = line.partition(" ")[2]
        if ref.startswith("refs/tags/"):
            tags.add(ref.removeprefix("refs/tags/"))
    found = [(int(m.group(1)), t) for t in tags if (m := re.fullmatch(_VERSION_TAG, t))]
    return [t for _, t in sorted(found, reverse=True)]


def cmd_completion(app) -> int:
    import argcomplete

    app.out.file.write(argcomplete.shellcode(["comfydock"], shell=app.args.shell))
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "completion",
        help="print the shell completion script",
        description="Print the completion script for SHELL (environment names, node ids, workflow names and vN "
        'targets complete too). bash: eval "$(comfydock completion bash)" in ~/.bashrc; zsh: the same with zsh '
        "in ~/.zshrc (after compinit); fish: comfydock completion fish > ~/.config/fish/completions/comfydock.fish",
    )
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    p.set_defaults(func=cmd_completion)
