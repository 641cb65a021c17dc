"""Custom node commands: node add/remove/update/list/check, and cache prune."""

from __future__ import annotations

from comfydock.cli.app import App, count, env_option, json_option, log
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
    from comfydock.errors import UsageError
    from comfydock.nodes.operations import update_nodes

    args = app.args
    if bool(args.all) == bool(args.name):
        raise UsageError("name one node, or give --all", hint="comfydock node update ID [--version V] | node update --all")
    env = app.env()
    with app.status("Updating nodes" if args.all else "Updating node") as spinner:
        change = update_nodes(
            env,
            None if args.all else [args.name],
            args.version,
            dry_run=args.dry_run,
            force=args.force,
            listener=app.task_listener(spinner),
            on_wait=app.lock_wait_note,
        )
    log.info("node update %s: %s", args.name or "--all", change.to_json())
    if app.json:
        app.print_json(change.to_json())
        return 0
    for skipped in change.skipped:
        app.say(escape(f"skipped {skipped['id']}: {skipped['why']}"))
    if change.unchanged:
        app.say(escape(f"already at their newest: {', '.join(change.unchanged)}"))
    mark = "[cyan]would update[/]" if change.dry_run else "[green]✓[/]"
    for old, new in zip(change.removed, change.added):
        before = old.get("version") or (old.get("commit") or "")[:10]
        after = new.get("version") or (new.get("commit") or "")[:10]
        app.say(f"{mark} " + escape(f"{new['id']}: {before} → {after}" if before != after else f"{new['id']}: requirements rescanned"))
    if args.all and not change.added:
        app.say("Nothing to update: every registry and git node is at its newest version.")
    elif change.dry_run:
        app.say("(dry run: nothing changed)")
    return 0


def _one_line(text, width: int) -> str:
    """Untrusted text for one table cell: printable, on one line, at most `width` characters."""
    from comfydock.cli.text import printable

    text = printable(" ".join(str(text or "").split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_node_search(app: App) -> int:
    from comfydock.nodes.lookup import search_nodes

    args = app.args
    with app.status("Searching the Comfy Registry"):
        rows = search_nodes(app.workspace(), args.query, args.limit, args.refresh)
    if app.json:
        app.print_json(rows)
        return 0
    if not rows:
        app.say(f"No registry node matches {escape(repr(args.query))}.")
        return 0
    from rich.markup import escape as markup
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("node", "latest", "downloads", "description", "add with"):
        table.add_column(col, justify="right" if col == "downloads" else "left")
    for r in rows:
        downloads = "-" if r["downloads"] is None else f"{r['downloads']:,}"
        add = r["add"] or "(not a valid id)"
        cells = (_one_line(r["id"], 40), _one_line(r["latest_version"] or "-", 16), downloads, _one_line(r["description"], 60), add)
        table.add_row(*(markup(c) for c in cells))
    app.out.print(table)
    return 0


def cmd_node_info(app: App) -> int:
    from comfydock.errors import ComfydockError
    from comfydock.nodes.lookup import node_info

    args = app.args
    try:
        env = app.env()
    except ComfydockError:
        if args.env:
            raise  # the environment asked for by name must exist
        env = None  # no environment (yet): the registry's answer alone
    with app.status("Asking the Comfy Registry"):
        info = node_info(app.workspace(), env, args.id, args.refresh)
    if app.json:
        app.print_json(info)
        return 0
    _print_node_info(app, info, env)
    return 0


def _print_node_info(app: App, info: dict, env) -> None:
    from comfydock.cli.text import printable

    licence = info["license"]
    if isinstance(licence, dict):
        licence = ", ".join(f"{k}: {v}" for k, v in licence.items())
    out = app.out.print
    out(f"[bold]{escape(info['id'])}[/]" + (f" ({escape(info['name'])})" if info["name"] else ""))
    if info["description"]:
        out(escape(info["description"].strip()))
    for label, value in (
        ("repository", info["repository"]),
        ("author", info["author"]),
        ("license", licence),
        ("downloads", None if info["downloads"] is None else f"{info['downloads']:,}"),
        ("latest", info["latest_version"]),
    ):
        out(f"  {label + ':':<12}{escape(printable(value or '-'))}")
    installed = info["installed"]
    if installed:
        where = f"{installed['version']} in environment {installed['environment']} (custom_nodes/{installed['directory']})"
    elif env is not None:
        where = f"not in environment {env.name}: {info['add']}"
    else:
        where = f"no environment to look in; add with: {info['add']}"
    out(f"  {'installed:':<12}{escape(where)}")
    types = info["node_types"]
    out(f"  {'node types:':<12}" + (escape(printable(", ".join(types))) if types else "[dim]not listed by the registry[/]"))
    out(f"  versions ({len(info['versions'])}):")
    for v in info["versions"][:15]:
        flag = " [yellow]deprecated[/]" if v["deprecated"] else ""
        out(f"    {escape(printable(v['version'])):<16} {escape(printable(v['date'] or '-'))}{flag}")
    if len(info["versions"]) > 15:
        out(f"    … and {len(info['versions']) - 15} older (all with --json)")


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
        description="Move a registry/git node to another version (default: latest / the ref's newest commit); rescan a "
        "development node's requirements. --all moves every registry node to its newest non-deprecated version and every "
        "git node to its remote's default branch head, in one change (all or nothing); development nodes are skipped.",
    )
    env_option(p)
    p.add_argument("name", metavar="ID", nargs="?")
    p.add_argument("--version", metavar="V", help="registry version or git ref")
    p.add_argument("--all", action="store_true", help="every registry and git node to its newest version")
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    p.add_argument("--force", action="store_true", help="replace the node's directory even if its files were changed")
    json_option(p)
    p.set_defaults(func=cmd_node_update)
    p = node_sub.add_parser(
        "search",
        help="search the Comfy Registry",
        description="Search the Comfy Registry (registry-url) for nodes; answers are cached (api-cache TTL).",
    )
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--limit", type=count, default=10, metavar="N", help="at most N nodes (1-100, default 10)")
    p.add_argument("--refresh", action="store_true", help="ask the registry again instead of the cache")
    json_option(p)
    p.set_defaults(func=cmd_node_search)
    p = node_sub.add_parser(
        "info",
        help="one registry node's details",
        description="A registry node's description, repository, license, versions (dates, deprecated), the node types it "
        "provides (when the registry lists them) and whether the environment has it.",
    )
    env_option(p)
    p.add_argument("id", metavar="ID")
    p.add_argument("--refresh", action="store_true", help="ask the registry again instead of the cache")
    json_option(p)
    p.set_defaults(func=cmd_node_info)
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
