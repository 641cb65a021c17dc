"""Custom node commands: node add/remove/update/list/check, and cache prune."""

from __future__ import annotations

from comfydock.cli.app import App, env_option, json_option, log
from comfydock.cli.text import escape


def _print_node_change(app: App, change, verb: str) -> None:
    for note in change.notes:
        app.say(escape(note))
    for info in change.added if verb != "removed" else change.removed:
        what = info.get("version") or (info.get("commit") or "")[:10] or ""
        line = escape(f"{verb} {info['id']} {what + ' ' if what else ''}({info['source']}) → custom_nodes/{info['directory']}")
        line = f"[green]✓[/] {line}"
        if verb == "removed":
            where = info.get("disabled_as") or info.get("deleted")
            line = "[green]✓[/] " + escape(
                f"removed {info['id']} ({info['source']}): "
                + (f"kept as {where}" if info.get("disabled_as") else f"deleted {where}")
            )
        app.say(line)
        reqs = info.get("requirements")
        if reqs:
            app.say(f"    requirements: {escape(', '.join(reqs))}")
        for skipped_line, why in info.get("skipped") or []:
            app.warn(escape(f"{info['id']}: skipped {skipped_line!r} ({why})"))
        if info.get("install_script") and info.get("install_script_ran"):
            app.say(f"    ran its install script ({escape(info['install_script'])})")
        elif info.get("install_script") and info.get("run_install_script_with"):
            app.warn(
                escape(
                    f"{info['id']} has an install script ({info['install_script']}) that comfydock did not run; "
                    f"the node may fail to import until it runs. Run it (and on every rebuild) with: "
                    f"'{info['run_install_script_with']}'"
                )
            )
        elif info.get("install_script"):
            app.warn(escape(f"{info['id']}'s install script ({info['install_script']}) runs at the next 'comfydock build'"))


def cmd_node_add(app: App) -> int:
    from comfydock.nodes.operations import add_nodes

    args = app.args
    env = app.env()
    with app.status("Adding nodes") as spinner:
        change = add_nodes(
            env,
            args.identifiers,
            dev=args.dev,
            force=args.force,
            no_test=args.no_test,
            name=args.name,
            run_install_script=args.run_install_script,
            listener=app.task_listener(spinner),
            on_wait=app.lock_wait_note,
        )
    log.info("node add %s: %s", args.identifiers, change.to_json())
    if app.json:
        app.print_json(change.to_json())
    else:
        _print_node_change(app, change, "added")
        from comfydock.cli.undeclared import render_fills_after_change

        render_fills_after_change(app, change.comfyui_fills)
        if args.no_test and change.added:
            app.warn("dependencies were not resolved (--no-test): run 'comfydock build' to lock and sync")
    if change.added and not args.no_test:
        from comfydock.cli.python import warn_module_clashes

        warn_module_clashes(app, env.module_clashes())
    return 0


def cmd_node_remove(app: App) -> int:
    from comfydock.nodes.operations import remove_nodes

    env = app.env()
    with app.status("Removing nodes") as spinner:
        change = remove_nodes(
            env, app.args.names, force=app.args.force, listener=app.task_listener(spinner), on_wait=app.lock_wait_note
        )
    log.info("node remove %s: %s", app.args.names, change.to_json())
    if app.json:
        app.print_json(change.to_json())
    else:
        _print_node_change(app, change, "removed")
    return 0


def cmd_node_update(app: App) -> int:
    from comfydock.nodes.operations import update_node

    env = app.env()
    with app.status("Updating node") as spinner:
        change = update_node(
            env,
            app.args.name,
            app.args.version,
            force=app.args.force,
            listener=app.task_listener(spinner),
            on_wait=app.lock_wait_note,
        )
    if app.json:
        app.print_json(change.to_json())
    else:
        old, new = change.removed[0], change.added[0]
        before = old.get("version") or (old.get("commit") or "")[:10]
        after = new.get("version") or (new.get("commit") or "")[:10]
        app.say(
            "[green]✓[/] "
            + escape(f"{new['id']}: {before} → {after}" if before != after else f"{new['id']}: requirements rescanned")
        )
    return 0


def cmd_node_list(app: App) -> int:
    from comfydock.nodes.operations import list_nodes, untracked_directories

    env = app.env()
    rows = list_nodes(env)
    if app.args.dev:
        rows = [r for r in rows if r["source"] == "development"]
    if app.json:
        app.print_json(rows)
        return 0
    if not rows:
        app.say("No custom nodes. Add one with: comfydock node add ID|GIT_URL|DIR --dev")
    else:
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for col in ("node", "source", "version", "directory", "requirements"):
            table.add_column(col)
        for r in rows:
            commit = (r.get("commit") or "")[:10]
            version = r.get("version") or (f"{r['ref']}@{commit}" if r.get("ref") else commit) or "-"
            state = "" if r["present"] else (" [yellow](disabled)[/]" if r["disabled"] else " [red](missing)[/]")
            reqs = "?" if r["requirements"] is None else str(len(r["requirements"]))
            table.add_row(escape(r["id"]), escape(r["source"]), escape(version), escape(r["directory"]) + state, reqs)
        app.out.print(table)
    untracked = untracked_directories(env)
    if untracked and not app.args.dev:
        app.say(f"Not tracked: {escape(', '.join(untracked))} (track with 'comfydock node add NAME --dev')")
    return 0


def cmd_node_check(app: App) -> int:
    from comfydock.nodes.check import check_nodes

    env = app.env()
    with app.status("Importing custom nodes as ComfyUI does"):
        rows = check_nodes(env, app.args.names or None, app.args.comfyui_args)
        from comfydock.undeclared import add_undeclared_imports

        add_undeclared_imports(env, rows)
    failed = [r for r in rows if not r["ok"]]
    if app.json:
        app.print_json(rows)
        return 1 if failed else 0
    if not rows:
        app.say("No custom nodes to check.")
        return 0
    from comfydock.cli.undeclared import render_node_undeclared

    for r in rows:
        if r["ok"]:
            note = f" [yellow]({escape(r['note'])})[/]" if r.get("note") else ""
            app.out.print(f"[green]✓[/] {escape(r['id'])} (custom_nodes/{escape(r['directory'])}){note}")
        else:
            app.out.print(f"[red]✗[/] {escape(r['id'])} (custom_nodes/{escape(r['directory'])}): {escape(r['error'] or '')}")
            if r.get("hint"):
                app.out.print(f"    [dim]hint:[/] {escape(r['hint'])}")
        render_node_undeclared(app, r)
    render_node_check_device(app, rows)
    if failed:
        app.say(f"{len(failed)} of {len(rows)} custom nodes fail to import; ComfyUI will list them as IMPORT FAILED")
        return 1
    app.say(f"All {len(rows)} custom nodes import.")
    return 0


def render_node_check_device(app: App, rows: list[dict]) -> None:
    """How ComfyUI's options were set for the import (--cpu added, and why)."""
    why = rows[0].get("cpu_added") if rows else None
    if why:
        app.say(escape(f"(imported as ComfyUI started with --cpu: {why})"))


def cmd_cache_prune(app: App) -> int:
    from comfydock.nodes.operations import prune_cache

    ws = app.workspace()
    removed = prune_cache(ws)
    uv = None
    if app.args.uv:
        from comfydock.uv_runner import prune_cache as prune_uv_cache

        uv = prune_uv_cache(ws)
    if app.json:
        app.print_json({"removed": removed, "bytes": sum(r["bytes"] for r in removed), "uv": uv})
        return 0
    if uv is not None:
        app.say(f"uv cache {escape(uv['cache'])}: {escape(uv['said'])}")
    if not removed:
        app.say("Nothing to prune: every node-cache entry is used by an environment.")
        return 0
    for r in removed:
        app.say(f"removed {escape(r['identity'] or r['key'])} ({r['bytes']} bytes)")
    app.say(f"[green]✓[/] pruned {len(removed)} node-cache entries, {sum(r['bytes'] for r in removed)} bytes")
    return 0


def register(sub) -> None:
    node = sub.add_parser(
        "node", help="custom nodes", description="Add, remove, update and list custom nodes (registry, git, development)."
    )
    node_sub = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    p = node_sub.add_parser(
        "add",
        help="add custom nodes",
        description="Add nodes now: conflict check, resolve, fetch (cached), scan requirements, add to pyproject.toml, "
        "test the resolution with uv lock, sync the venv. If any step fails, nothing changes.",
    )
    env_option(p)
    p.add_argument(
        "identifiers",
        nargs="+",
        metavar="ID[@VERSION]|GIT_URL[@REF]|DIR",
        help="registry id, git URL, or (with --dev) a directory in custom_nodes/",
    )
    p.add_argument("--dev", action="store_true", help="track an existing directory as a development node")
    p.add_argument("--no-test", action="store_true", help="skip dependency resolution (uv lock) and sync")
    p.add_argument("--force", action="store_true", help="replace an existing directory (it is kept under .comfydock/trash)")
    p.add_argument(
        "--name", metavar="DIR", help="directory in custom_nodes/ (default: the repository's name); one node at a time"
    )
    p.add_argument(
        "--run-install-script",
        action="store_true",
        help="run the node's install.py with the environment's Python after installing it (recorded: every rebuild runs it)",
    )
    json_option(p)
    p.set_defaults(func=cmd_node_add)
    p = node_sub.add_parser(
        "remove",
        help="remove custom nodes",
        description="Remove nodes: registry/git nodes are deleted (they stay in the cache), development nodes are renamed NAME.disabled.",
    )
    env_option(p)
    p.add_argument("names", nargs="+", metavar="ID")
    p.add_argument("--force", action="store_true", help="delete a registry/git node even if its files were changed")
    json_option(p)
    p.set_defaults(func=cmd_node_remove)
    p = node_sub.add_parser(
        "update",
        help="change a node's version or rescan it",
        description="Move a registry/git node to another version (default: latest / the ref's newest commit); rescan a development node's requirements.",
    )
    env_option(p)
    p.add_argument("name", metavar="ID")
    p.add_argument("--version", metavar="V", help="registry version or git ref")
    p.add_argument("--force", action="store_true", help="replace the node's directory even if its files were changed")
    json_option(p)
    p.set_defaults(func=cmd_node_update)
    p = node_sub.add_parser("list", help="list custom nodes", description="List tracked custom nodes.")
    env_option(p)
    p.add_argument("--dev", action="store_true", help="only development nodes")
    json_option(p)
    p.set_defaults(func=cmd_node_list)
    p = node_sub.add_parser(
        "check",
        help="import custom nodes as ComfyUI does",
        description="Import each custom node (or the ones named) the way ComfyUI does, in the environment's venv from "
        "ComfyUI's directory with ComfyUI's options parsed as main.py does (--cpu added where no GPU is found, unless "
        "a device option is given after '--'), and report the ones that fail with their error line and a hint that "
        "matches it. Exit 1 if any fails.",
        usage="comfydock node check [-e NAME] [--json] [ID ...] [-- COMFYUI_ARGS ...]",
    )
    env_option(p)
    p.add_argument("names", nargs="*", metavar="ID")
    p.set_defaults(comfyui_args=[])  # what follows '--' (split off before parsing: cli.main)
    json_option(p)
    p.set_defaults(func=cmd_node_check)

    cache = sub.add_parser("cache", help="the workspace's node cache", description="Manage the workspace's node cache.")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    p = cache_sub.add_parser(
        "prune",
        help="remove node-cache entries no environment uses",
        description="Remove the cached node downloads and clones that no environment's manifest references "
        "(node remove keeps them, so a re-add needs no download).",
    )
    p.add_argument("--uv", action="store_true", help="also run 'uv cache prune' on the uv cache the environments use")
    json_option(p)
    p.set_defaults(func=cmd_cache_prune)
