"""Workspace and environment commands: init, create, list, use, delete, run, log, status, build, config, demo."""

from __future__ import annotations

import sys
from pathlib import Path

from comfydock.cli.app import App, count, env_option, json_option, log, log_to, render_events
from comfydock.cli.text import escape
from comfydock.errors import ComfydockError, UsageError


def cmd_init(app: App) -> int:
    from comfydock.workspace import HOME_ENV_VAR, Workspace, resolve_workspace_path

    args = app.args
    path = resolve_workspace_path(args.path or args.workspace)
    models_dir = Path(args.models_dir).expanduser() if args.models_dir else None
    existing = (path / ".metadata" / "workspace.json").exists()
    if existing:
        Workspace.open(path)  # a corrupt file is reported, not overwritten
        app.say(f"Workspace already exists at {escape(str(path))}; nothing changed.")
        return 0
    if models_dir is None and not args.no_interactive and sys.stdin.isatty():
        from rich.prompt import Prompt

        answer = Prompt.ask("Models directory (Enter to skip)", default="", console=app.err)
        models_dir = Path(answer).expanduser() if answer.strip() else None
    if models_dir is not None:
        models_dir.mkdir(parents=True, exist_ok=True)
    ws, _ = Workspace.init(path, models_dir)
    log_to(ws.logs_dir / "workspace" / "workspace.log")
    log.info("initialised workspace %s", path)
    app.say(f"Created workspace at {escape(str(path))}")
    if ws.models_dir:
        app.say(f"Models directory: {escape(str(ws.models_dir))}")
    if resolve_workspace_path(None) != path:
        app.say(f"Use it from any directory with:\n  export {HOME_ENV_VAR}={escape(str(path))}")
    return 0


def cmd_create(app: App) -> int:
    from comfydock import uv_runner
    from comfydock.lifecycle import create_environment

    args = app.args
    ws = app.workspace()
    if args.from_url:
        return _create_from(app, ws)
    with app.status(f"Creating environment {args.name}") as spinner:
        step = app.step_reporter(spinner, f"create {args.name}")

        with uv_runner.reporting(app.uv_reporter(spinner, "Installing dependencies")):
            result = create_environment(
                ws,
                args.name,
                python=args.python,
                comfyui_ref=args.comfyui_version,
                torch_backend=args.torch_backend,
                use=args.use,
                step=step,
                warn=app.warn_text,
                as_of=args.as_of,
            )
    env = result.environment
    from comfydock.cli.undeclared import render_comfyui_fills

    render_comfyui_fills(app, result.comfyui_fills)
    app.say(
        f"Created environment [bold]{escape(env.name)}[/] (ComfyUI {escape(result.comfyui_ref)}, Python {escape(result.python)}, "
        f"torch {escape(result.torch_backend or 'from PyPI')}) at {escape(str(env.root))}"
    )
    render_resolution(app, result.resolution, say=True)
    if ws.active_environment == env.name:
        app.say(f"Active environment: {escape(env.name)}. Start it with: comfydock run")
    else:
        app.say(f"Make it active with: comfydock use {escape(env.name)}")
    return 0


def render_resolution(app: App, info: dict | None, say: bool = False) -> None:
    """The resolution date line (create, status): the date, where it came from, packages allowed newer."""
    if info is None:
        return
    show = app.say if say else app.out.print
    if info["as_of"] is None:
        show("Resolution date: none (packages resolve as of the moment uv runs)")
        return
    source = f" (from {escape(info['source'])})" if info.get("source") else ""
    show(f"Resolution date: {escape(info['as_of'])}{source}")
    for entry in info["packages"]:
        # the reason says how far and why ('up to 2026-08-21 (rgthree-comfy's date)'); else the date
        said = entry["reason"] or (f"up to {entry['until']}" if entry["until"] else "no cutoff")
        show(f"  {escape(entry['name'])} may be newer: {escape(said)}")


def _create_from(app: App, ws) -> int:
    from comfydock import uv_runner
    from comfydock.cli.remotes import render_clone
    from comfydock.remotes import create_from_remote

    args = app.args
    if args.comfyui_version:
        raise UsageError("--comfyui-version does not go with --from", hint="the remote's manifest records ComfyUI's commit")
    if args.as_of:
        raise UsageError("--as-of does not go with --from", hint="the remote's manifest records its resolution date")
    with app.status(escape(f"Creating environment {args.name} from {args.from_url}")) as spinner:
        step = app.step_reporter(spinner, f"create {args.name}")

        with uv_runner.reporting(app.uv_reporter(spinner, "Installing dependencies")):
            result = create_from_remote(
                ws,
                args.name,
                args.from_url,
                torch_backend=args.torch_backend,  # None: the machine's setting
                use=args.use,
                step=step,
                warn=app.warn_text,
            )
    log.info("create %s --from %s: %s", args.name, args.from_url, result.to_json())
    return render_clone(app, result)


def cmd_list(app: App) -> int:
    from comfydock.environment import Environment

    ws = app.workspace()
    rows = []
    for name, state in ws.environment_states():
        path = ws.environment_path(name)
        info = {}
        if state == "ok":
            try:
                info = Environment.open(ws, name).info()
            except ComfydockError as exc:
                state = "damaged"
                log.warning("list: %s: %s", name, exc.message)
        rows.append(
            {
                "name": name,
                "active": name == ws.active_environment,
                "state": state,
                "comfyui_version": info.get("comfyui_version"),
                "python_version": info.get("python_version"),
                "path": str(path),
            }
        )
    if app.json:
        app.print_json(rows)
        return 0
    if not rows:
        app.say("No environments yet. Create one with: comfydock create NAME")
        return 0
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("", "name", "ComfyUI", "Python", "path"):
        table.add_column(col)
    notes = {
        "half-made": "[red]half-made[/] (an interrupted create: 'comfydock delete {}')",
        "damaged": "[red]damaged[/] (its manifest cannot be read: 'comfydock status -e {}')",
        "history-damaged": "[red]history damaged[/] (.cec/.git holds no readable commit: 'comfydock status -e {}')",
    }
    for r in rows:
        name = escape(r["name"])
        comfyui = escape(r["comfyui_version"] or "?")
        if r["state"] in notes:
            comfyui = notes[r["state"]].format(name)
        table.add_row("*" if r["active"] else "", name, comfyui, escape(r["python_version"] or "?"), escape(r["path"]))
    app.out.print(table)
    return 0


def cmd_use(app: App) -> int:
    from comfydock.environment import Environment

    ws = app.workspace()
    env = Environment.open(ws, app.args.name)
    ws.set_active(env.name)
    app.say(f"Active environment: {escape(env.name)}")
    return 0


def cmd_delete(app: App) -> int:
    from comfydock.environment import Environment
    from comfydock.lifecycle import delete_environment, unrecoverable_work

    ws = app.workspace()
    name = app.args.name
    state = ws.environment_state(name)
    if state not in ("half-made", "history-damaged"):
        Environment.open(ws, name)  # a missing one: the did-you-mean error
    root = ws.environment_path(name)
    work = unrecoverable_work(ws, name)
    lost = "; ".join(
        f"{what} {', '.join(items)}"
        for what, items in (("development nodes", work["nodes"]), ("uncommitted workflows", work["workflows"]))
        if items
    )
    if not app.args.yes:
        if not sys.stdin.isatty():
            if lost:
                raise ComfydockError(
                    f"refusing to delete {name!r}: it holds work no version has ({lost})",
                    hint=f"copy them out of {root} first (or 'comfydock commit' the workflows), or run 'comfydock delete {name} --yes' to delete them too",
                )
            raise ComfydockError(f"refusing to delete {name!r} without confirmation", hint=f"run 'comfydock delete {name} --yes'")
        from rich.prompt import Confirm

        what = {"half-made": "the remains of an interrupted create", "history-damaged": "its venv, nodes and damaged history go"}
        what = what.get(state, "its venv, nodes and history go")
        if lost:
            what += f"; with it {lost}"
        if not Confirm.ask(f"Delete environment {escape(name)} at {escape(str(root))}? ({escape(what)})", console=app.err):
            app.say("Nothing deleted.")
            return 1
    delete_environment(ws, name)
    log.info("deleted environment %s (%s)%s", name, state, f": {lost}" if lost else "")
    app.say(f"Deleted {'half-made ' if state == 'half-made' else ''}environment {escape(name)}" + (f" ({escape(lost)})" if lost else ""))
    return 0


def cmd_run(app: App) -> int:
    from comfydock import launch

    env = app.env()
    if not app.args.no_sync:
        with app.status("Syncing the environment") as spinner:
            restored = launch.sync_before_run(env, listener=app.task_listener(spinner), on_wait=app.lock_wait_note)
        for note in restored_notes(restored):
            app.say(note)
    log.info("run %s: %s", env.name, launch.comfyui_command(env, app.args.comfyui_args))
    result = launch.run_comfyui(env, app.args.comfyui_args)
    if result.import_failures:
        app.warn(
            escape(f"ComfyUI could not import {len(result.import_failures)} custom node(s): {', '.join(result.import_failures)}")
            + " (see why: 'comfydock node check')"
        )
    return result.exit_code


def restored_notes(restored) -> list[str]:
    """What a sync before 'run' put back on disk, one line each."""
    text = {
        "comfyui": lambda r: "Restored the ComfyUI checkout (it was missing on disk)",
        "node": lambda r: f"Restored custom node {escape(r.name)} (its directory was missing or not the recorded version)",
        "venv": lambda r: "Synced the venv to uv.lock",
    }
    return [text[r.what](r) for r in restored]


def cmd_log(app: App) -> int:
    from comfydock import history

    env = app.env()
    versions = history.versions(history.open_repo(env.cec_dir))
    if app.args.limit:
        versions = versions[: app.args.limit]
    if app.json:
        app.print_json([v.to_json() for v in versions])
        return 0
    if app.args.oneline:
        for v in versions:
            app.out.print(escape(f"{v.version}: {v.message.splitlines()[0] if v.message else ''}"))
        return 0
    app.out.print(f"Version history for environment '{escape(env.name)}':")
    for v in versions:
        app.out.print(f"  [bold]{escape(v.version)}[/]: {escape(v.message)}  [dim]({v.date[:19]}, {v.commit[:8]})[/]")
    app.out.print("Use 'comfydock rollback <version>' to restore to a specific version")
    return 0


def cmd_status(app: App) -> int:
    from comfydock.cli.text import escape
    from comfydock.status import status

    env = app.env()
    data = status(env)
    data["workspace"] = {"path": str(app.location.path), "found_by": app.location.source}
    if app.json:
        app.print_json(data)
        return 0
    out = app.out
    out.print(f"Workspace: {escape(data['workspace']['path'])} [dim](from {escape(app.location.source)})[/]")
    out.print(f"Environment: [bold]{escape(data['environment'])}[/] ({escape(data['path'])})")
    if data["comfyui_missing"]:
        ref_note = "  [red](missing on disk: 'comfydock build' restores it)[/]"
    else:
        ref_note = "" if data["comfyui_checkout_matches"] else "  [yellow](checkout differs from the manifest)[/]"
    out.print(f"ComfyUI: {escape(str(data['comfyui_version']))} ({escape((data['comfyui_commit'] or '?')[:12])}){ref_note}")
    edits = data.get("comfyui_local_edits") or []
    if edits:
        shown = ", ".join(edits[:5]) + (f" and {len(edits) - 5} more" if len(edits) > 5 else "")
        out.print(
            f"  [yellow]local edits to ComfyUI's files:[/] {escape(shown)} "
            "(not versioned: an export or a colleague will not have them; 'comfyui update' refuses over them)"
        )
    requested = data["torch_backend_requested"]
    detected = f", detected {data['torch_backend_detected']}" if data.get("torch_backend_detected") else ""
    out.print(
        f"Python: {escape(str(data['python_version']))}   torch backend: {escape(str(data['torch_backend']))} "
        f"[dim](requested {escape(requested)}{escape(detected)}; from {escape(data['torch_backend_source'])})[/]"
    )
    family = data["torch_family"]
    if family["versions"]:
        out.print(torch_family_line(family, data["environment"]))
    for node in data["missing_node_dirs"]:
        out.print(f"Custom node {escape(node)} [yellow]missing on disk[/] (comfydock build restores it)")
    for node in data["missing_dev_nodes"]:
        out.print(
            f"Development node {escape(node['id'])} [yellow]missing on disk[/] (not in git, 'comfydock build' cannot "
            f"restore it: put its directory back at {escape(node['path'])}, or 'comfydock node remove {escape(node['id'])}')"
        )
    node_tasks = {
        f"{kind}:{n}" for n in data["missing_node_dirs"] for kind in ("fetch_node", "install_node", "scan_requirements")
    } | {f"scan_requirements:{node['id']}" for node in data["missing_dev_nodes"]}
    pending = [t for t in data["pending_tasks"] if t not in node_tasks and t != "checkout_comfyui"]
    if data["venv_in_sync"]:
        out.print("Venv: [green]in sync[/] with uv.lock")
    elif pending or not (data["missing_node_dirs"] or data["missing_dev_nodes"] or data["comfyui_missing"]):
        out.print(f"Venv: [yellow]out of sync[/] (pending: {escape(', '.join(pending) or 'sync_venv')}); run 'comfydock build'")
    nodes = data["node_changes"]
    for kind in ("added", "removed", "changed"):
        if nodes[kind]:
            out.print(f"Custom nodes {kind} since the last commit: {escape(', '.join(nodes[kind]))}")
    groups = ", ".join(f"{name} {count}" for name, count in data["requirement_groups"].items())
    out.print(f"Requirements: {escape(groups)}  (see 'comfydock py list')")
    from comfydock.cli.python import warn_module_clashes

    warn_module_clashes(app, data["module_clashes"])
    render_resolution(app, data["resolution"])
    deps = data["dependency_changes"]
    if deps["added"] or deps["removed"]:
        out.print("Dependencies changed since the last commit:")
        for line in [f"+{d}" for d in deps["added"]] + [f"-{d}" for d in deps["removed"]]:
            out.print(f"  {escape(line)}")
    from comfydock.cli.history import render_status_workflows

    render_status_workflows(app, data)
    from comfydock.cli.adopt import render_drift

    render_drift(app, data["drift"])
    from comfydock.cli.check import render_check_status

    render_check_status(app, data)
    from comfydock.cli.undeclared import render_undeclared_imports

    render_undeclared_imports(app, data["undeclared_imports"])
    up = data.get("upstream")
    if up and up["ahead"] is not None:
        where = f"{up['remote']}/{up['branch']}"
        if up["ahead"] or up["behind"]:
            out.print(
                f"Remote: {up['ahead']} commit(s) ahead of {escape(where)}, {up['behind']} behind (as of the last "
                "fetch; 'comfydock push' / 'comfydock pull')"
            )
        else:
            out.print(f"Remote: up to date with {escape(where)} (as of the last fetch)")
    changed_workflows = [w for w in data.get("workflows", []) if w["state"] != "committed"]
    if data["uncommitted_changes"]:
        out.print("Uncommitted changes in .cec: " + escape(", ".join(data["uncommitted_changes"])))
    if data["uncommitted_changes"] or changed_workflows:
        out.print("Run 'comfydock commit' to save the current state as a new version.")
    else:
        out.print("No uncommitted changes.")
    return 0


def _short(path: str, env) -> str:
    """Paths inside the environment relative to it (the table stays readable), others whole."""
    try:
        return str(Path(path).relative_to(env.root))
    except ValueError:
        return path


def cmd_build(app: App) -> int:
    from comfydock import engine, uv_runner
    from comfydock.engine import build_failure

    args = app.args
    env = app.env()
    if args.list:
        tasks = engine.describe(env)
        if app.json:
            app.print_json(tasks)
        else:
            for t in tasks:
                app.out.print(f"[bold]{escape(t['name'])}[/]  {escape(t['doc'])}")
                for label, key in (("after", "task_dep"), ("inputs", "file_dep"), ("outputs", "targets")):
                    for item in t[key]:
                        app.out.print(f"    {label}: {escape(_short(item, env))}")
        return 0
    if args.dry_run:
        events = engine.plan(env, args.targets)
        if app.json:
            app.print_json([{"task": e.task, "status": e.status} for e in events])
        else:
            render_events(app, events)
        return 0
    if args.targets and "export" in args.targets:
        if args.targets != ["export"]:
            raise UsageError("build export runs alone", hint="run 'comfydock build export', then the other targets")
        from comfydock.cli.bundle import build_export

        return build_export(app, env)
    if args.output:
        raise UsageError("--output goes with the export target", hint="comfydock build export --output PATH")
    if not env.venv_in_sync() and (not args.targets or "sync_venv" in args.targets):
        from comfydock.adopt import unlocked_packages

        extra = unlocked_packages(env)
        if extra:  # installed behind comfydock's back (pip, ComfyUI-Manager): say so before uv removes them
            app.warn(f"syncing the venv to uv.lock removes what it does not list: {', '.join(extra)}")
            app.say("(keep them as requirements first with 'comfydock adopt --here')")
    with app.status("Building") as spinner, uv_runner.reporting(app.uv_reporter(spinner, "Building")):
        report = engine.build(
            env,
            args.targets,
            keep_going=args.keep_going,
            listener=app.task_listener(spinner, plain=True),
            on_wait=app.lock_wait_note,
        )
    log.info("build %s %s: %s", env.name, args.targets, report.to_json())
    if app.json:
        app.print_json(report.to_json())
    else:
        render_events(app, report.events)
    if not report.ok:
        raise build_failure(report)
    return 0


def torch_family_line(family: dict, env_name: str) -> str:
    """status' torch line: coherent only when the last sync's import record says it imports."""
    summary, build = escape(family["summary"]), escape(f"comfydock build -e {env_name}")
    if family["coherent"]:
        return f"Torch family: [green]{summary}[/]"
    if not family["problem"] and family["imports"] is None:
        return f"Torch family: [yellow]{summary}[/]: run '{build}' to import them once"
    return f"Torch family: [red]{summary}[/] (run '{build}': it refuses a release that does not import)"


def cmd_config(app: App) -> int:
    from comfydock.workspace import SETTINGS, shown_value

    args = app.args
    if args.unset and (args.key is None or args.value is not None):
        raise UsageError(
            "--unset takes one setting name and no value",
            hint="'comfydock config KEY --unset' (see 'comfydock config' for the keys)",
        )
    ws = app.workspace()
    if args.key is None:
        rows = ws.settings()
        if app.json:
            app.print_json(rows)
        else:
            for r in rows:
                value = escape(r["value"]) if r["value"] is not None else "(unset)"
                app.out.print(f"{r['key']} = {value}  [dim]({r['source']}; ${r['env_var']})[/]")
        return 0
    if args.key not in SETTINGS:
        raise UsageError(f"unknown setting {args.key!r}", hint="known settings: " + ", ".join(SETTINGS))
    if args.unset:
        ws.set_setting(args.key, None)
        app.say(f"Unset {args.key}")
    elif args.value is not None:
        ws.set_setting(args.key, args.value)
        app.say(f"{args.key} = {escape(shown_value(args.key, ws.setting(args.key)) or '')}")
        if ws.setting_with_source(args.key)[1] == "env":
            app.warn(f"${SETTINGS[args.key].env_var} is set and takes precedence over the workspace setting")
    else:
        value = shown_value(args.key, ws.setting(args.key))
        if app.json:
            app.print_json({"key": args.key, "value": value})
        else:
            app.out.print(value if value is not None else "", markup=False)
    return 0


def cmd_demo(app: App) -> int:
    from comfydock.demo.run import run_demo

    return run_demo(app, Path(app.args.dir) if app.args.dir else None)


def register(sub) -> None:

    p = sub.add_parser(
        "init", help="create a workspace", description="Create a workspace: config, caches, model index, environments folder."
    )
    p.add_argument("path", nargs="?", help="where (default: --workspace, $COMFYDOCK_HOME, ~/comfydock_workspace)")
    p.add_argument("--models-dir", metavar="DIR", help="directory holding your model files")
    p.add_argument("--no-interactive", action="store_true", help="do not prompt for anything")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "create",
        help="create an environment",
        description="Clone ComfyUI, create its venv with uv, lock and install its dependencies, commit v1.",
    )
    p.add_argument("name", help="environment name (letters, digits, . _ -)")
    p.add_argument("--python", default="3.11", metavar="VERSION", help="Python version (default: 3.11)")
    p.add_argument("--comfyui-version", metavar="REF", help="ComfyUI tag, branch or commit (default: newest release tag)")
    p.add_argument(
        "--torch-backend",
        default=None,
        metavar="B",
        help="this machine's PyTorch build for it: auto (detect the GPU), cpu, cu126, cu128, rocm6.3, xpu, ... "
        "or pypi (default: the torch-backend setting, auto); kept outside .cec/ (with --from too)",
    )
    p.add_argument("--use", action="store_true", help="make it the active environment")
    p.add_argument(
        "--as-of",
        metavar="DATE",
        help="resolve packages as uploaded up to DATE (YYYY-MM-DD, RFC 3339, or 'now' for this moment, recorded); "
        "default: the date of the ComfyUI commit checked out",
    )
    p.add_argument(
        "--from",
        dest="from_url",
        metavar="URL",
        help="clone the environment's history from a git remote (see 'comfydock push') and build it "
        "at its newest version: recorded ComfyUI commit, Python, nodes, uv.lock, workflows",
    )
    p.set_defaults(func=cmd_create)

    p = sub.add_parser(
        "list", help="list environments", description="List the workspace's environments (* marks the active one)."
    )
    json_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "use", help="set the active environment", description="Make NAME the environment commands act on by default."
    )
    p.add_argument("name")
    p.set_defaults(func=cmd_use)

    p = sub.add_parser(
        "delete", help="delete an environment", description="Delete an environment: its ComfyUI checkout, venv and history."
    )
    p.add_argument("name")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser(
        "run",
        help="run ComfyUI",
        description="Run the environment's ComfyUI main.py with its venv; every argument after the options goes to ComfyUI "
        "(use '--' to pass one that comfydock would take, e.g. 'comfydock run -- --help'). "
        "First the venv and custom nodes are synced to the manifest, like 'uv run' does.",
    )
    env_option(p)
    p.add_argument("--no-sync", action="store_true", help="start as things are, without syncing first")
    p.add_argument("comfyui_args", nargs="*", metavar="ARGS", help="arguments for ComfyUI")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "log", help="show version history", description="List the environment's versions (vN: message), newest first."
    )
    env_option(p)
    p.add_argument("--limit", type=count, metavar="N", help="show at most N versions (0: all)")
    p.add_argument("--oneline", action="store_true", help="one line per version")
    json_option(p)
    p.set_defaults(func=cmd_log)

    p = sub.add_parser(
        "status",
        help="show the environment's state",
        description="Show ComfyUI ref, Python, whether the venv matches uv.lock, and uncommitted changes.",
    )
    env_option(p)
    json_option(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "build",
        help="run the task graph",
        description="Run the environment's task graph (lock_deps, sync_venv, ...): unchanged steps are skipped, "
        "a rerun after a failure continues where it stopped.",
    )
    env_option(p)
    p.add_argument("targets", nargs="*", metavar="TARGET", help="task names or target files (default: everything)")
    p.add_argument("--list", action="store_true", help="list the tasks with their inputs and outputs")
    p.add_argument("--dry-run", action="store_true", help="say what would run, run nothing")
    p.add_argument("--continue", dest="keep_going", action="store_true", help="keep going after a task fails")
    p.add_argument("-o", "--output", metavar="PATH", help="with the export target: also copy the bundle to PATH")
    json_option(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "config",
        help="show or change workspace settings",
        description="Without KEY: list settings and where each value comes from. KEY: print it. KEY VALUE: set it. "
        "Environment variables (shown per setting) take precedence over the workspace file.",
    )
    p.add_argument("key", nargs="?", help="setting name, e.g. models-dir, comfyui-source, registry-url")
    p.add_argument("value", nargs="?")
    p.add_argument("--unset", action="store_true", help="remove the setting from the workspace file")
    json_option(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "demo",
        help="run the offline end-to-end demo",
        description="Build a fixture ComfyUI and tiny wheels locally, then run the main job end to end in a throw-away workspace.",
    )
    p.add_argument("--dir", metavar="DIR", help="where to put the demo (default: a new temporary directory)")
    p.set_defaults(func=cmd_demo)
