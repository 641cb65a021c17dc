"""Workflow and history commands: workflow list/show, commit, rollback, models resolve."""

from __future__ import annotations

import argparse
import sys

from comfydock.cli.app import App, env_option, human_size, json_option, log
from comfydock.cli.text import escape

_STATE_MARK = {"committed": "[green]✓[/]", "modified": "[yellow]⚠[/]", "new": "[cyan]○[/]", "deleted": "[red]✗[/]"}
_STATE_TEXT = {"committed": "committed", "modified": "modified since commit", "new": "not committed", "deleted": "deleted"}


def cmd_workflow_list(app: App) -> int:
    from comfydock.workflows.tracking import workflow_states

    env = app.env()
    states = workflow_states(env)
    if app.json:
        app.print_json([s.to_json() for s in states])
        return 0
    if not states:
        app.out.print(f"No workflows yet (save one in ComfyUI: it lands in {escape(str(env.workflows_dir))})")
        return 0
    app.out.print("Workflows:")
    width = max(len(s.name) for s in states)
    for s in states:
        app.out.print(f"  {_STATE_MARK[s.state]} {escape(s.name.ljust(width))}  ({_STATE_TEXT[s.state]})")
    return 0


def render_status_workflows(app: App, data: dict) -> None:
    """The workflow part of `comfydock status` (the spec's output)."""
    out = app.out
    changed = [w for w in data.get("workflows", []) if w["state"] != "committed"]
    if changed:
        out.print("Workflows:")
        for w in changed:
            out.print(f"  {w['state'].capitalize()}: {escape(w['name'])}.json")
            if w.get("error"):
                out.print(f"    - cannot analyse: {escape(w['error'])}")
            m = w.get("models")
            if m:
                parts = [f"{m[k]} {k}" for k in ("resolved", "unresolved", "ambiguous", "changed", "misplaced") if m.get(k)]
                if parts:
                    out.print("    - Models: " + ", ".join(parts))
            if w["state"] == "new":
                out.print("    - new: 'comfydock commit' versions it")
    for name, version in sorted((data.get("needs_comfyui") or {}).items()):
        out.print(
            f"Workflow {escape(name)} needs ComfyUI {escape(str(version) + ' or newer' if version else 'newer than this one')}: "
            "it uses core nodes this ComfyUI lacks (see 'comfydock comfyui update')"
        )
    render_misplaced(app, data.get("misplaced_models") or [])
    render_core_types_origin(app, data.get("core_types_method"), data.get("core_types_static_reason"))
    missing = data.get("missing_nodes") or []
    if missing:
        out.print("Missing custom nodes:")
        for m in missing:
            where = ", ".join(m["workflows"])
            if m.get("command"):
                out.print(
                    f"  {escape(m['type'])} ({escape(where)}): {escape(m['command'])}  [dim]# {escape(m.get('reason') or '')}[/]"
                )
            else:
                out.print(f"  {escape(m['type'])} ({escape(where)}): {escape(m.get('reason') or 'no known package')}")


def misplaced_line(m: dict) -> str:
    """'loras/vae.safetensors is outside the folder VAELoader reads (vae/): ...' (rich markup, escaped)."""
    folder = m["expected_path"].split("/", 1)[0]
    return (
        f"{escape(m['relative_path'])} is outside the folder {escape(m['node_type'])} reads ({escape(folder)}/): "
        f"ComfyUI will not find it there; move it to {escape(m['expected_path'])} in the models directory"
    )


def render_misplaced(app: App, misplaced: list[dict]) -> None:
    """Models a workflow resolves to files in folders their loader does not search."""
    for m in misplaced:
        app.out.print(f"[yellow]Misplaced model:[/] {misplaced_line(m)} (workflow {escape(', '.join(m['workflows']))})")


def render_core_types_origin(app: App, method: str | None, reason: str | None) -> None:
    """Say so when ComfyUI's core node types were read from its source instead of asked of it."""
    if method == "static":
        app.out.print(
            "[yellow]Core node types: read from ComfyUI's source (static scan), not asked of ComfyUI[/]"
            + (f": {escape(reason)}" if reason else "")
        )


def cmd_workflow_show(app: App) -> int:
    from comfydock.workflows.report import describe_workflow

    env = app.env()
    info = describe_workflow(env, app.args.name)
    if app.json:
        app.print_json(info)
        return 0
    app.out.print(f"[bold]{escape(info['name'])}[/] ({info['state']}) {escape(info['path'] or '')}")
    if info.get("error"):
        app.out.print(f"  [red]cannot analyse:[/] {escape(info['error'])}")
        return 0
    if info.get("comfyui_version"):
        app.out.print(f"  saved by ComfyUI {escape(info['comfyui_version'])}")
    origin = info.get("core_types") or {}
    render_core_types_origin(app, origin.get("method"), origin.get("reason"))
    app.out.print("  Node types:")
    for t in info["node_types"]:
        extra = f" ({escape(t['package'])})" if t.get("package") else ""
        app.out.print(f"    {escape(t['type'])}: {t['provider']}{extra}")
    app.out.print("  Models:")
    if not info["models"]:
        app.out.print("    none")
    for m in info["models"]:
        opt = " [dim](optional: node bypassed)[/]" if m["optional"] else ""
        where = escape(m["path"]) if m.get("path") else m["status"]
        if m.get("skipped"):
            where += f" (skipped; 'comfydock models resolve {escape(info['name'])}' picks a file)"
        if m.get("misplaced"):
            where += f" [yellow](misplaced: ComfyUI looks in {escape(m['expected_path'].split('/', 1)[0])}/, not here)[/]"
        folder = escape(f"[{m.get('directory') or '?'}]")
        app.out.print(f"    {escape(m['filename'])} {folder} → {where}{opt}")
    return 0


def _prompt_choice(app: App):
    """Ask on the terminal which file a reference means: numbered candidates, s to skip."""

    def choose(workflow: str, ref: dict):
        cands = ref.get("candidates") or []
        app.err.print(
            f"\nResolving model: [bold]{escape(ref['filename'])}[/] in {escape(workflow)} (node {escape(str(ref['node_id']))})"
        )
        if ref.get("skipped"):
            app.err.print("  skipped before: pick a file now, or skip again")
        if not cands:
            app.err.print("  not found in the model index; (s)kip")
        else:
            app.err.print("Multiple matches found:" if len(cands) > 1 else "One candidate:")
            for i, c in enumerate(cands, 1):
                app.err.print(f"  {i}. {escape(c['relative_path'])} ({human_size(c.get('size'))})")
        while True:
            app.err.print(f"Select [1-{len(cands)}] or (s)kip: " if cands else "(s)kip: ", end="")
            answer = sys.stdin.readline()
            if not answer:  # end of input: skip the rest
                return None
            answer = answer.strip().lower()
            if answer in {"s", "skip", ""}:
                return None
            if answer.isdigit() and 1 <= int(answer) <= len(cands):
                return cands[int(answer) - 1]

    return choose


def _paused(spinner, ask):
    """Stop the spinner while a question waits for an answer."""

    def wrapped(*args):
        if spinner is not None:
            spinner.stop()
        try:
            return ask(*args)
        finally:
            if spinner is not None:
                spinner.start()

    return wrapped


def _prompt_package(app: App):
    def choose(node_type: str, packages: list[str], reason: str | None):
        app.err.print(f"\nNode type [bold]{escape(node_type)}[/] is provided by several packages ({escape(reason or '')}):")
        for i, p in enumerate(packages, 1):
            app.err.print(f"  {i}. {escape(p)}")
        while True:
            app.err.print(f"Select [1-{len(packages)}] or (s)kip: ", end="")
            answer = sys.stdin.readline()
            if not answer or answer.strip().lower() in {"s", "skip", ""}:
                return None
            if answer.strip().isdigit() and 1 <= int(answer) <= len(packages):
                return packages[int(answer) - 1]

    return choose


def cmd_commit(app: App) -> int:
    from comfydock.versioning import commit_environment

    args = app.args
    env = app.env()
    interactive = args.interactive or (not args.no_interactive and not app.json and sys.stdin.isatty())
    with app.status("Committing") as spinner:
        result = commit_environment(
            env,
            args.message,
            choose=_paused(spinner, _prompt_choice(app)) if interactive else None,
            choose_package=_paused(spinner, _prompt_package(app)) if interactive else None,
            listener=app.task_listener(spinner),
            on_wait=app.lock_wait_note,
        )
    log.info("commit %s: %s", env.name, result.to_json())
    if app.json:
        app.print_json(result.to_json())
        return 0
    for path in result.skipped_links:
        app.warn(f"{escape(path)} is a symbolic link: skipped, not versioned (comfydock never follows a link)")
    for name in result.unreadable:
        app.warn(
            f"workflow {escape(name)} could not be analysed (its copy is still versioned); see 'comfydock workflow show {escape(name)}'"
        )
    if result.version is None:  # the warnings were given when this version was made: a summary
        app.out.print(f"Nothing to commit: {escape(result.message)}")
        left = len({(m["workflow"], m["filename"]) for m in result.unresolved})
        if left or result.missing_nodes:
            parts = [f"{left} unresolved model reference{'s' if left != 1 else ''}"] if left else []
            parts += [f"{len(result.missing_nodes)} node type(s) no installed package provides"] if result.missing_nodes else []
            app.say(f"Still open: {', '.join(parts)} (see 'comfydock status')")
        return 0
    if result.node_map_error:
        app.warn(
            f"committed without the node map ({escape(result.node_map_error)}): missing node types are listed "
            "without the package that provides them; the next commit asks again after an hour"
        )
    _warn_unresolved(app, result.unresolved)
    _warn_missing_nodes(app, result.missing_nodes)
    app.out.print(f"[green]✓[/] {result.version}: {escape(result.message)}")
    return 0


def _warn_unresolved(app: App, unresolved: list[dict], limit: int = 10) -> None:
    """One line per workflow and file (a subgraph repeats a loader many times), at most `limit`."""
    seen: dict[tuple, dict] = {}
    skipped: dict[str, list[str]] = {}  # the user's own answer: a note, not a warning
    for m in unresolved:
        if m.get("skipped"):
            if m["filename"] not in skipped.setdefault(m["workflow"], []):
                skipped[m["workflow"]].append(m["filename"])
            continue
        seen.setdefault((m["workflow"], m["filename"], m["status"]), m)
    for workflow, filenames in skipped.items():
        app.say(
            f"{escape(workflow)}: model {escape(', '.join(filenames))} skipped (your answer, kept): "
            f"'comfydock models resolve {escape(workflow)}' picks a file"
        )
    for i, (workflow, filename, status) in enumerate(seen):
        if i == limit:
            app.warn(f"... and {len(seen) - limit} more model references: see 'comfydock status' or 'comfydock workflow show'")
            break
        if status == "ambiguous":
            app.warn(
                f"{escape(workflow)}: several indexed files match model {escape(filename)}: "
                f"choose one with 'comfydock models resolve {escape(workflow)}'"
            )
        else:
            app.warn(
                f"{escape(workflow)}: model {escape(filename)} is not in the model index: index it "
                f"('comfydock models index') or resolve it ('comfydock models resolve {escape(workflow)}')"
            )


def _warn_missing_nodes(app: App, missing: list[dict], limit: int = 8) -> None:
    """One line per package to add; types nobody provides summed up in one line."""
    by_command: dict[str, list[str]] = {}
    unknown: list[str] = []
    for m in missing:
        if m.get("command"):
            by_command.setdefault(m["command"], []).append(m["type"])
        else:
            unknown.append(m["type"])
    for i, (command, types) in enumerate(sorted(by_command.items())):
        if i == limit:
            app.warn(f"... and {len(by_command) - limit} more packages: see 'comfydock status'")
            break
        app.warn(f"missing node types {escape(', '.join(types[:4]))}{' ...' if len(types) > 4 else ''}: {escape(command)}")
    if unknown:
        shown = ", ".join(unknown[:6]) + (f" and {len(unknown) - 6} more" if len(unknown) > 6 else "")
        app.warn(f"{len(unknown)} node types no known package provides: {escape(shown)} (see 'comfydock status')")


def cmd_rollback(app: App) -> int:
    from comfydock.errors import ComfydockError
    from comfydock.versioning import rollback_environment, uncommitted

    args = app.args
    env = app.env()
    pending = [] if args.yes else uncommitted(env, include_new=False)
    if pending:
        shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
        if not sys.stdin.isatty():
            raise ComfydockError(
                f"rollback would discard uncommitted changes: {shown}",
                hint=f"keep them with 'comfydock commit' first, or discard them with 'comfydock rollback {args.target + ' ' if args.target else ''}--yes'",
            )
        from rich.prompt import Confirm

        app.err.print(f"Uncommitted changes will be discarded: {escape(shown)}")
        if not Confirm.ask("Roll back anyway?", default=False, console=app.err):
            app.say("Nothing changed.")
            return 1
    with app.status(f"Rolling back to {args.target or 'the last version'}") as spinner:
        result = rollback_environment(env, args.target, listener=app.task_listener(spinner), on_wait=app.lock_wait_note)
    log.info("rollback %s: %s", env.name, result.to_json())
    if app.json:
        app.print_json(result.to_json())
        return 0
    for label, items in (
        ("removed node", result.nodes_removed),
        ("disabled development node (its directory kept with a .disabled suffix)", result.nodes_disabled),
        ("installed node", result.nodes_installed),
        ("re-enabled development node", result.nodes_enabled),
        ("restored workflow", result.workflows_restored),
        ("removed workflow", result.workflows_removed),
    ):
        for item in items:
            app.say(f"[green]✓[/] {label}: {escape(item)}")
    for note in result.notes:
        app.say(escape(note))
    for name in result.workflows_kept:
        app.say(f"kept workflow {escape(name)}: it is not in the last version, and rollback never deletes uncommitted work")
    if result.dev_nodes_missing:
        app.warn(
            f"development node(s) {escape(', '.join(result.dev_nodes_missing))} are not on this machine (not in git): "
            "put each directory back into ComfyUI/custom_nodes/, then 'comfydock build'"
        )
    present_dev_nodes = [n for n in result.dev_nodes if n not in result.dev_nodes_missing]
    if present_dev_nodes:
        app.warn("development nodes are not version controlled:")
        for node in present_dev_nodes:
            app.say(f"   - {escape(node)} (dependencies may have changed): comfydock node update {escape(node)}")
    if result.comfyui:
        app.say(f"[green]✓[/] ComfyUI checkout moved {result.comfyui['from'][:10]} → {result.comfyui['to'][:10]}")
    left = uncommitted(env)
    tail = (
        "the changes are uncommitted: 'comfydock commit' keeps them as a new version"
        if left
        else "it matches the last version: nothing to commit"
    )
    app.out.print(f"Rolled back to {escape(result.target)} ({result.commit[:10]}); {tail}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("workflow", help="list and inspect workflows", description="Workflows tracked in the environment.")
    wsub = p.add_subparsers(dest="workflow_command", metavar="COMMAND", required=True)
    q = wsub.add_parser(
        "list", help="list workflows and their state", description="Every workflow and its state against the last version."
    )
    env_option(q)
    json_option(q)
    q.set_defaults(func=cmd_workflow_list)
    q = wsub.add_parser(
        "show", help="a workflow's node types and models", description="Node types and model references of a workflow."
    )
    q.add_argument("name", help="workflow name (its path below user/default/workflows/, without .json)")
    env_option(q)
    json_option(q)
    q.set_defaults(func=cmd_workflow_show)

    p = sub.add_parser(
        "commit",
        help="save the environment as a new version",
        description="Copy workflows into .cec/, resolve their models, update the manifest, lock, and commit as vN.",
    )
    p.add_argument("-m", "--message", help="version message (default: a summary of the changes)")
    p.add_argument("--no-interactive", action="store_true", help="never ask; leave unclear models unresolved")
    p.add_argument("--interactive", action="store_true", help=argparse.SUPPRESS)
    env_option(p)
    json_option(p)
    p.set_defaults(func=cmd_commit)

    p = sub.add_parser(
        "rollback",
        help="apply an earlier version",
        description="Apply version TARGET (vN, a commit, HEAD~1; none: discard uncommitted changes) to the manifest, "
        "nodes, venv and workflows as one step; the result is uncommitted and can be committed.",
    )
    p.add_argument("target", nargs="?", help="vN, a commit id or HEAD~N (default: the last version)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    env_option(p)
    json_option(p)
    p.set_defaults(func=cmd_rollback)
