"""The command line: argument parsing and rich output only; the work is done in the core."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

from comfydock import __version__
from comfydock.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ComfydockError,
    UsageError,
)

log = logging.getLogger("comfydock")


class App:
    """What every command gets: parsed arguments, consoles, and lazy workspace access."""

    def __init__(self, args):
        from rich.console import Console

        self.args = args
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True)
        self._workspace = None

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def workspace(self):
        from comfydock.workspace import Workspace, resolve_workspace_path

        if self._workspace is None:
            self._workspace = Workspace.open(resolve_workspace_path(self.args.workspace))
            _log_to(self._workspace.logs_dir / "workspace" / "workspace.log")
        return self._workspace

    def env(self):
        env = self.workspace().environment(getattr(self.args, "env", None))
        _log_to(env.log_file)
        return env

    def say(self, message: str) -> None:
        """Progress and notes go to stderr, so stdout stays clean for data and --json."""
        self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {message}")

    def print_json(self, data) -> None:
        self.out.file.write(json.dumps(data, indent=2) + "\n")

    def status(self, message: str):
        """A spinner on a terminal, a plain line otherwise."""
        if self.err.is_terminal:
            return self.err.status(message)
        from contextlib import nullcontext

        return nullcontext()


_log_handlers: set[str] = set()


def _log_to(path: Path) -> None:
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


# --- commands ------------------------------------------------------------------------------


def cmd_init(app: App) -> int:
    from comfydock.workspace import HOME_ENV_VAR, Workspace, resolve_workspace_path

    args = app.args
    path = resolve_workspace_path(args.path or args.workspace)
    models_dir = Path(args.models_dir).expanduser() if args.models_dir else None
    existing = (path / ".metadata" / "workspace.json").exists()
    if existing:
        Workspace.open(path)  # a corrupt file is reported, not overwritten
        app.say(f"Workspace already exists at {path}; nothing changed.")
        return 0
    if models_dir is None and not args.no_interactive and sys.stdin.isatty():
        from rich.prompt import Prompt

        answer = Prompt.ask("Models directory (Enter to skip)", default="", console=app.err)
        models_dir = Path(answer).expanduser() if answer.strip() else None
    if models_dir is not None:
        models_dir.mkdir(parents=True, exist_ok=True)
    ws, _ = Workspace.init(path, models_dir)
    _log_to(ws.logs_dir / "workspace" / "workspace.log")
    log.info("initialised workspace %s", path)
    app.say(f"Created workspace at {path}")
    if ws.models_dir:
        app.say(f"Models directory: {ws.models_dir}")
    if resolve_workspace_path(None) != path:
        app.say(f"Use it from any directory with:\n  export {HOME_ENV_VAR}={path}")
    return 0


def cmd_create(app: App) -> int:
    from comfydock.environment import create_environment

    args = app.args
    ws = app.workspace()
    with app.status(f"Creating environment {args.name}") as spinner:

        def step(message):
            log.info("create %s: %s", args.name, message)
            if spinner is not None:
                spinner.update(message)
            else:
                app.say(message)

        result = create_environment(
            ws,
            args.name,
            python=args.python,
            comfyui_ref=args.comfyui_version,
            torch_backend=args.torch_backend,
            use=args.use,
            step=step,
            warn=app.warn,
        )
    env = result.environment
    app.say(
        f"Created environment [bold]{env.name}[/] (ComfyUI {result.comfyui_ref}, Python {result.python}, "
        f"torch {result.torch_backend or 'from PyPI'}) at {env.root}"
    )
    if ws.active_environment == env.name:
        app.say(f"Active environment: {env.name}. Start it with: comfydock run")
    else:
        app.say(f"Make it active with: comfydock use {env.name}")
    return 0


def cmd_list(app: App) -> int:
    ws = app.workspace()
    rows = []
    for name in ws.environment_names():
        env = ws.environment(name)
        try:
            info = env.info()
        except ComfydockError:
            info = {}
        rows.append(
            {
                "name": name,
                "active": name == ws.active_environment,
                "comfyui_version": info.get("comfyui_version"),
                "python_version": info.get("python_version"),
                "path": str(env.root),
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
    for r in rows:
        table.add_row("*" if r["active"] else "", r["name"], r["comfyui_version"] or "?", r["python_version"] or "?", r["path"])
    app.out.print(table)
    return 0


def cmd_use(app: App) -> int:
    ws = app.workspace()
    env = ws.environment(app.args.name)
    ws.set_active(env.name)
    app.say(f"Active environment: {env.name}")
    return 0


def cmd_delete(app: App) -> int:
    from comfydock.environment import delete_environment

    ws = app.workspace()
    env = ws.environment(app.args.name)
    if not app.args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {env.name!r} without confirmation", hint=f"run 'comfydock delete {env.name} --yes'")
        from rich.prompt import Confirm

        if not Confirm.ask(f"Delete environment {env.name} at {env.root}? Its venv, nodes and history go", console=app.err):
            app.say("Nothing deleted.")
            return 1
    delete_environment(ws, env.name)
    log.info("deleted environment %s", env.name)
    app.say(f"Deleted environment {env.name}")
    return 0


def cmd_run(app: App) -> int:
    import subprocess

    env = app.env()
    if not env.python.exists():
        raise ComfydockError(f"environment {env.name!r} has no venv", hint=f"run 'comfydock build -e {env.name}' to create it")
    cmd = [str(env.python), str(env.comfyui_dir / "main.py"), *app.args.comfyui_args]
    log.info("run %s: %s", env.name, cmd)
    proc = subprocess.Popen(cmd, cwd=env.comfyui_dir)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # ComfyUI got the same Ctrl-C; give it time to shut down cleanly.
        return proc.wait()


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
            app.out.print(f"{v.version}: {v.message.splitlines()[0] if v.message else ''}")
        return 0
    app.out.print(f"Version history for environment '{env.name}':")
    for v in versions:
        app.out.print(f"  [bold]{v.version}[/]: {v.message}  [dim]({v.date[:19]}, {v.commit[:8]})[/]")
    app.out.print("Use 'comfydock rollback <version>' to restore to a specific version")
    return 0


def cmd_status(app: App) -> int:
    from comfydock.environment import status

    env = app.env()
    data = status(env)
    if app.json:
        app.print_json(data)
        return 0
    out = app.out
    out.print(f"Environment: [bold]{data['environment']}[/] ({data['path']})")
    ref_note = "" if data["comfyui_checkout_matches"] else "  [yellow](checkout differs from the manifest)[/]"
    out.print(f"ComfyUI: {data['comfyui_version']} ({(data['comfyui_commit'] or '?')[:12]}){ref_note}")
    out.print(f"Python: {data['python_version']}   torch backend: {data['torch_backend']}")
    if data["venv_in_sync"]:
        out.print("Venv: [green]in sync[/] with uv.lock")
    else:
        pending = ", ".join(data["pending_tasks"]) or "sync_venv"
        out.print(f"Venv: [yellow]out of sync[/] (pending: {pending}); run 'comfydock build'")
    if data["uncommitted_changes"]:
        out.print("Uncommitted changes in .cec: " + ", ".join(data["uncommitted_changes"]))
    else:
        out.print("No uncommitted changes.")
    return 0


def _render_events(app: App, events, title_status=None) -> None:
    from rich.table import Table

    styles = {"ran": "green", "up-to-date": "dim", "failed": "red", "not-run": "yellow", "run": "cyan", "after-upstream": "cyan"}
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("task")
    table.add_column("status")
    table.add_column("time", justify="right")
    for e in events:
        secs = f"{e.seconds:.2f}s" if e.status in {"ran", "failed"} and e.seconds else ""
        table.add_row(e.task, f"[{styles.get(e.status, '')}]{e.status}[/]", secs)
    app.out.print(table)


def cmd_build(app: App) -> int:
    from comfydock import engine
    from comfydock.environment import build_failure

    args = app.args
    env = app.env()
    if args.list:
        tasks = engine.describe(env)
        if app.json:
            app.print_json(tasks)
        else:
            for t in tasks:
                app.out.print(f"[bold]{t['name']}[/]  {t['doc']}")
        return 0
    if args.dry_run:
        events = engine.plan(env, args.targets)
        if app.json:
            app.print_json([{"task": e.task, "status": e.status} for e in events])
        else:
            _render_events(app, events)
        return 0
    with app.status("Building") as spinner:

        def listener(kind, task):
            if kind == "start":
                if spinner is not None:
                    spinner.update(f"Running {task}")
                else:
                    app.say(f"Running {task}")

        report = engine.build(
            env,
            args.targets,
            keep_going=args.keep_going,
            listener=listener,
            on_wait=lambda holder: app.say(f"Waiting for the environment lock ({holder})"),
        )
    log.info("build %s %s: %s", env.name, args.targets, report.to_json())
    if app.json:
        app.print_json(report.to_json())
    else:
        _render_events(app, report.events)
    if not report.ok:
        raise build_failure(report)
    return 0


def cmd_config(app: App) -> int:
    from comfydock.workspace import SETTINGS

    args = app.args
    ws = app.workspace()
    if args.key is None:
        rows = []
        for key, s in SETTINGS.items():
            source = "env" if os.environ.get(s.env_var) else ("workspace" if ws.config.get(s.json_key) not in (None, "") else "default")
            rows.append({"key": key, "value": ws.setting(key), "source": source, "env_var": s.env_var, "doc": s.doc})
        if app.json:
            app.print_json(rows)
        else:
            for r in rows:
                app.out.print(f"{r['key']} = {r['value'] if r['value'] is not None else '(unset)'}  [dim]({r['source']}; ${r['env_var']})[/]")
        return 0
    if args.key not in SETTINGS:
        raise UsageError(f"unknown setting {args.key!r}", hint="known settings: " + ", ".join(SETTINGS))
    if args.unset:
        ws.set_setting(args.key, None)
        app.say(f"Unset {args.key}")
    elif args.value is not None:
        ws.set_setting(args.key, args.value)
        app.say(f"{args.key} = {ws.setting(args.key)}")
        env_var = SETTINGS[args.key].env_var
        if os.environ.get(env_var):
            app.warn(f"${env_var} is set and takes precedence over the workspace setting")
    else:
        value = ws.setting(args.key)
        if app.json:
            app.print_json({"key": args.key, "value": value})
        else:
            app.out.print(value if value is not None else "")
    return 0


def _apply_change(app: App, env, mutate, describe) -> int:
    """Run a manifest edit with lock + sync, then say what happened."""
    from comfydock.environment import change_manifest

    with app.status("Resolving and syncing") as spinner:

        def listener(kind, task):
            if kind == "start" and spinner is not None:
                spinner.update(f"Running {task}")

        change = change_manifest(
            env, mutate, listener=listener, on_wait=lambda holder: app.say(f"Waiting for the environment lock ({holder})")
        )
    log.info("%s: %s", env.name, describe(change))
    if app.json:
        app.print_json({"changed": change.changed, "result": change.result, "build": change.report.to_json()})
    else:
        app.say(describe(change))
    return 0


def _locked(env, names) -> str:
    from comfydock.dependencies import locked_versions

    versions = locked_versions(env.lock_path.read_text() if env.lock_path.exists() else None)
    from packaging.utils import canonicalize_name

    return ", ".join(f"{n} {versions.get(canonicalize_name(n), '?')}" for n in names)


def cmd_py_add(app: App) -> int:
    from comfydock import dependencies
    from comfydock.requirements import parse_requirement

    env = app.env()
    specs, group = app.args.packages, app.args.group
    names = [parse_requirement(s).name for s in specs]

    def describe(change):
        if not change.changed:
            return f"Already required: {', '.join(specs)} (nothing to do)"
        where = f"group {group}" if group else "the environment"
        return f"Added {', '.join(specs)} to {where}; locked: {_locked(env, names)}"

    return _apply_change(app, env, lambda doc: dependencies.add_requirements(doc, specs, group), describe)


def cmd_py_remove(app: App) -> int:
    from comfydock import dependencies

    env = app.env()
    group = app.args.group
    return _apply_change(
        app,
        env,
        lambda doc: dependencies.remove_requirements(doc, app.args.packages, group),
        lambda change: f"Removed {', '.join(change.result)}",
    )


def cmd_py_list(app: App) -> int:
    from comfydock.dependencies import requirement_rows

    env = app.env()
    rows = requirement_rows(env.manifest(), env.lock_path.read_text() if env.lock_path.exists() else None)
    if app.json:
        app.print_json([r.to_json() for r in rows])
        return 0
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("group", "requirement", "locked"):
        table.add_column(col)
    for r in sorted(rows, key=lambda r: (r.group != "core", r.group != "user", r.group, r.name)):
        table.add_row(r.group, r.requirement, r.locked or "-")
    app.out.print(table)
    return 0


def cmd_constraint_add(app: App) -> int:
    from comfydock import dependencies
    from comfydock.requirements import parse_requirement

    env = app.env()
    specs = app.args.specs
    names = [parse_requirement(s).name for s in specs]

    def describe(change):
        if not change.changed:
            return f"Already constrained: {', '.join(specs)} (nothing to do)"
        return f"Constrained {', '.join(specs)}; locked: {_locked(env, names)}"

    return _apply_change(app, env, lambda doc: dependencies.add_constraints(doc, specs), describe)


def cmd_constraint_remove(app: App) -> int:
    from comfydock import dependencies

    env = app.env()
    return _apply_change(
        app,
        env,
        lambda doc: dependencies.remove_constraints(doc, app.args.packages),
        lambda change: f"Removed constraint {', '.join(change.result)}",
    )


def cmd_constraint_list(app: App) -> int:
    from comfydock.dependencies import constraints, locked_versions
    from comfydock.requirements import parse_requirement

    env = app.env()
    versions = locked_versions(env.lock_path.read_text() if env.lock_path.exists() else None)
    from packaging.utils import canonicalize_name

    rows = [
        {"constraint": c, "locked": versions.get(canonicalize_name(parse_requirement(c).name))}
        for c in constraints(env.manifest())
    ]
    if app.json:
        app.print_json(rows)
    elif not rows:
        app.say("No constraints. Add one with: comfydock constraint add 'numpy<2'")
    else:
        for r in rows:
            app.out.print(f"{r['constraint']}  [dim](locked {r['locked'] or '-'})[/]")
    return 0


def _models_db(app: App):
    return app.workspace().models_db


def _index_progress(app: App):
    """A rich progress bar (files, bytes, rate, ETA) on a terminal; plain lines otherwise."""
    from contextlib import contextmanager

    @contextmanager
    def bar():
        if not app.err.is_terminal:
            said = set()

            def plain(kind, done, total, done_bytes, total_bytes):
                if kind not in said and total:
                    said.add(kind)
                    what = "Hashing samples of" if kind == "hash" else "Full hashes of"
                    app.say(f"{what} {total} file(s), {total_bytes / 2**20:.0f} MiB")

            yield plain
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=app.err, transient=True) as progress:
            tasks = {}

            def update(kind, done, total, done_bytes, total_bytes):
                if kind not in tasks:
                    label = "quick hashes" if kind == "hash" else "full hashes"
                    tasks[kind] = progress.add_task(label, total=total_bytes or 1)
                progress.update(tasks[kind], completed=done_bytes, description=f"{done}/{total} files")

            yield update

    return bar()


def cmd_models_index(app: App) -> int:
    from comfydock import model_index

    args = app.args
    ws = app.workspace()
    directory = Path(args.directory).expanduser() if args.directory else ws.models_dir
    if directory is None:
        raise UsageError("no models directory configured", hint="pass DIR, or set one: 'comfydock config models-dir DIR'")
    if args.rebuild:
        aside = model_index.rebuild_index(ws.models_db)
        if aside:
            app.say(f"Moved the old index aside to {aside}")
    with _index_progress(app) as progress:
        result = model_index.index_directory(ws.models_db, directory, full=args.full, progress=progress, warn=app.warn)
    log.info("models index %s: %s", directory, result.to_json())
    if app.json:
        app.print_json(result.to_json())
        return 0
    app.say(
        f"Indexed {result.files_seen} model file(s) in {result.directory}: {result.files_hashed} hashed, "
        f"{result.files_unchanged} unchanged, {result.files_moved} moved, {result.locations_removed} gone"
        + (f", {result.full_hashed} full-hashed" if args.full else "")
        + f"; {result.models} distinct model(s) ({result.seconds:.2f}s)"
    )
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def cmd_models_list(app: App) -> int:
    from comfydock import model_index

    db = _models_db(app)
    records = model_index.list_models(db, app.args.filter)
    problems = {}
    if app.args.verify:
        for p in model_index.verify(db):
            problems[p["path"]] = p["problem"]
    if app.json:
        rows = [r.to_json() for r in records]
        if app.args.verify:
            for row in rows:
                for loc in row["locations"]:
                    loc["problem"] = problems.get(loc["path"])
        app.print_json(rows)
        return 0
    if not records:
        app.say("No models indexed. Run: comfydock models index [DIR]")
        return 0
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("hash", "size", "path", ""):
        table.add_column(col)
    for r in records:
        for i, loc in enumerate(r.locations):
            note = problems.get(loc["path"], "")
            table.add_row(r.hash if i == 0 else "", _size(r.file_size) if i == 0 else "", loc["relative_path"], f"[red]{note}[/]" if note else "")
    app.out.print(table)
    return 1 if problems else 0


def _print_record(app: App, r) -> None:
    app.out.print(f"[bold]{r.hash}[/]  {_size(r.file_size)}")
    app.out.print(f"  sha256: {r.sha256 or '(not computed: comfydock models index --full)'}")
    app.out.print(f"  blake3: {r.blake3 or '(not computed)'}")
    for loc in r.locations:
        app.out.print(f"  at {loc['path']}")
    for src in r.sources:
        app.out.print(f"  source ({src['type']}): {src['url']}")


def cmd_models_find(app: App) -> int:
    from comfydock import model_index

    records = model_index.find_models(_models_db(app), app.args.query)
    if app.json:
        app.print_json([r.to_json() for r in records])
    elif not records:
        app.say(f"No indexed model matches {app.args.query!r}")
    else:
        for r in records:
            _print_record(app, r)
    return 0 if records else 1


def cmd_models_info(app: App) -> int:
    from comfydock import model_index

    record = model_index.model_info(_models_db(app), app.args.hash)
    if app.json:
        app.print_json(record.to_json())
    else:
        _print_record(app, record)
    return 0


def cmd_models_add_source(app: App) -> int:
    from comfydock import model_index

    record = model_index.add_source(_models_db(app), app.args.hash, app.args.url, app.args.type)
    if app.json:
        app.print_json(record.to_json())
    else:
        app.say(f"{record.hash}: {len(record.sources)} source(s); added {app.args.url}")
    return 0


def _node_listener(app: App, spinner):
    def listener(kind, task):
        if kind == "start" and spinner is not None:
            spinner.update(f"Running {task}")

    return listener


def _print_node_change(app: App, change, verb: str) -> None:
    for note in change.notes:
        app.say(note)
    for info in change.added if verb != "removed" else change.removed:
        what = info.get("version") or (info.get("commit") or "")[:10] or ""
        line = f"[green]✓[/] {verb} {info['id']} {what} ({info['source']}) → custom_nodes/{info['directory']}"
        if verb == "removed":
            where = info.get("disabled_as") or info.get("deleted")
            line = f"[green]✓[/] removed {info['id']} ({info['source']}): " + (
                f"kept as {where}" if info.get("disabled_as") else f"deleted {where}"
            )
        app.say(line)
        reqs = info.get("requirements")
        if reqs:
            app.say(f"    requirements: {', '.join(reqs)}")
        for skipped_line, why in info.get("skipped") or []:
            app.warn(f"{info['id']}: skipped {skipped_line!r} ({why})")


def cmd_node_add(app: App) -> int:
    from comfydock.nodes import add_nodes

    args = app.args
    env = app.env()
    with app.status("Adding nodes") as spinner:
        change = add_nodes(
            env,
            args.identifiers,
            dev=args.dev,
            force=args.force,
            no_test=args.no_test,
            listener=_node_listener(app, spinner),
            note=lambda m: None,
        )
    log.info("node add %s: %s", args.identifiers, change.to_json())
    if app.json:
        app.print_json(change.to_json())
    else:
        _print_node_change(app, change, "added")
        if args.no_test and change.added:
            app.warn("dependencies were not resolved (--no-test): run 'comfydock build' to lock and sync")
    return 0


def cmd_node_remove(app: App) -> int:
    from comfydock.nodes import remove_nodes

    env = app.env()
    with app.status("Removing nodes") as spinner:
        change = remove_nodes(env, app.args.names, force=app.args.force, listener=_node_listener(app, spinner))
    log.info("node remove %s: %s", app.args.names, change.to_json())
    if app.json:
        app.print_json(change.to_json())
    else:
        _print_node_change(app, change, "removed")
    return 0


def cmd_node_update(app: App) -> int:
    from comfydock.nodes import update_node

    env = app.env()
    with app.status("Updating node") as spinner:
        change = update_node(env, app.args.name, app.args.version, force=app.args.force, listener=_node_listener(app, spinner))
    if app.json:
        app.print_json(change.to_json())
    else:
        old, new = change.removed[0], change.added[0]
        before = old.get("version") or (old.get("commit") or "")[:10]
        after = new.get("version") or (new.get("commit") or "")[:10]
        app.say(f"[green]✓[/] {new['id']}: {before} → {after}" if before != after else f"[green]✓[/] {new['id']}: requirements rescanned")
    return 0


def cmd_node_list(app: App) -> int:
    from comfydock.nodes import list_nodes, untracked_directories

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
            version = r.get("version") or (r.get("commit") or "")[:10] or "-"
            state = "" if r["present"] else (" [yellow](disabled)[/]" if r["disabled"] else " [red](missing)[/]")
            reqs = "?" if r["requirements"] is None else str(len(r["requirements"]))
            table.add_row(r["id"], r["source"], version, r["directory"] + state, reqs)
        app.out.print(table)
    untracked = untracked_directories(env)
    if untracked and not app.args.dev:
        app.say(f"Not tracked: {', '.join(untracked)} (track with 'comfydock node add NAME --dev')")
    return 0


def cmd_demo(app: App) -> int:
    from comfydock.demo.run import run_demo

    return run_demo(app, Path(app.args.dir) if app.args.dir else None)


# --- parser --------------------------------------------------------------------------------


def _env_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-e", "--env", metavar="NAME", help="environment to act on (default: the active one, or $COMFYDOCK_ENV)")


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfydock",
        description="Reproducible ComfyUI environments: workspaces, custom nodes, models, history, bundles.",
        epilog="Exit codes: 0 ok, 1 error or failed task, 2 usage error, 3 internal error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"comfydock {__version__}")
    parser.add_argument("-w", "--workspace", metavar="PATH", help="workspace directory (default: $COMFYDOCK_HOME, then ~/comfydock_workspace)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and tools' full output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="create a workspace", description="Create a workspace: config, caches, model index, environments folder.")
    p.add_argument("path", nargs="?", help="where (default: --workspace, $COMFYDOCK_HOME, ~/comfydock_workspace)")
    p.add_argument("--models-dir", metavar="DIR", help="directory holding your model files")
    p.add_argument("--no-interactive", action="store_true", help="do not prompt for anything")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("create", help="create an environment", description="Clone ComfyUI, create its venv with uv, lock and install its dependencies, commit v1.")
    p.add_argument("name", help="environment name (letters, digits, . _ -)")
    p.add_argument("--python", default="3.11", metavar="VERSION", help="Python version (default: 3.11)")
    p.add_argument("--comfyui-version", metavar="REF", help="ComfyUI tag, branch or commit (default: newest release tag)")
    p.add_argument(
        "--torch-backend",
        default="auto",
        metavar="B",
        help="PyTorch build: auto (detect the GPU), cpu, cu126, cu128, rocm6.3, xpu, ... or pypi (default: auto)",
    )
    p.add_argument("--use", action="store_true", help="make it the active environment")
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("list", help="list environments", description="List the workspace's environments (* marks the active one).")
    _json_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("use", help="set the active environment", description="Make NAME the environment commands act on by default.")
    p.add_argument("name")
    p.set_defaults(func=cmd_use)

    p = sub.add_parser("delete", help="delete an environment", description="Delete an environment: its ComfyUI checkout, venv and history.")
    p.add_argument("name")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser(
        "run",
        help="run ComfyUI",
        description="Run the environment's ComfyUI main.py with its venv; every argument after the options goes to ComfyUI "
        "(use '--' to pass one that comfydock would take, e.g. 'comfydock run -- --help').",
    )
    _env_option(p)
    p.add_argument("comfyui_args", nargs="*", metavar="ARGS", help="arguments for ComfyUI")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("log", help="show version history", description="List the environment's versions (vN: message), newest first.")
    _env_option(p)
    p.add_argument("--limit", type=int, metavar="N", help="show at most N versions")
    p.add_argument("--oneline", action="store_true", help="one line per version")
    _json_option(p)
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("status", help="show the environment's state", description="Show ComfyUI ref, Python, whether the venv matches uv.lock, and uncommitted changes.")
    _env_option(p)
    _json_option(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "build",
        help="run the task graph",
        description="Run the environment's task graph (lock_deps, sync_venv, ...): unchanged steps are skipped, "
        "a rerun after a failure continues where it stopped.",
    )
    _env_option(p)
    p.add_argument("targets", nargs="*", metavar="TARGET", help="task names or target files (default: everything)")
    p.add_argument("--list", action="store_true", help="list the tasks with their inputs and outputs")
    p.add_argument("--dry-run", action="store_true", help="say what would run, run nothing")
    p.add_argument("--continue", dest="keep_going", action="store_true", help="keep going after a task fails")
    _json_option(p)
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
    _json_option(p)
    p.set_defaults(func=cmd_config)

    py = sub.add_parser("py", help="direct Python requirements", description="Add, remove and list the environment's direct Python requirements.")
    py_sub = py.add_subparsers(dest="py_command", metavar="ACTION", required=True)
    p = py_sub.add_parser("add", help="add requirements, then lock and sync", description="Add requirements (PEP 508, e.g. 'requests>=2'), lock with uv and sync the venv. If uv cannot resolve, nothing changes.")
    _env_option(p)
    p.add_argument("packages", nargs="+", metavar="PKG[SPEC]")
    p.add_argument("--group", metavar="NAME", help="add to this dependency group instead of the main requirements")
    _json_option(p)
    p.set_defaults(func=cmd_py_add)
    p = py_sub.add_parser("remove", help="remove requirements, then lock and sync", description="Remove direct requirements by package name.")
    _env_option(p)
    p.add_argument("packages", nargs="+", metavar="PKG")
    p.add_argument("--group", metavar="NAME", help="remove from this dependency group")
    _json_option(p)
    p.set_defaults(func=cmd_py_remove)
    p = py_sub.add_parser("list", help="list direct requirements", description="Direct requirements with their locked versions: core (ComfyUI), user-added, node groups.")
    _env_option(p)
    _json_option(p)
    p.set_defaults(func=cmd_py_list)

    cons = sub.add_parser("constraint", help="version constraints for every group", description="uv constraint-dependencies: bounds applied to every package and group, e.g. 'numpy<2'.")
    cons_sub = cons.add_subparsers(dest="constraint_command", metavar="ACTION", required=True)
    p = cons_sub.add_parser("add", help="add constraints, then lock and sync", description="Add constraints (e.g. 'numpy<2'), lock and sync. If uv cannot resolve, nothing changes.")
    _env_option(p)
    p.add_argument("specs", nargs="+", metavar="SPEC")
    _json_option(p)
    p.set_defaults(func=cmd_constraint_add)
    p = cons_sub.add_parser("remove", help="remove constraints by package name", description="Remove constraints by package name, then lock and sync.")
    _env_option(p)
    p.add_argument("packages", nargs="+", metavar="PKG")
    _json_option(p)
    p.set_defaults(func=cmd_constraint_remove)
    p = cons_sub.add_parser("list", help="list constraints", description="List constraints with the versions locked under them.")
    _env_option(p)
    _json_option(p)
    p.set_defaults(func=cmd_constraint_list)

    node = sub.add_parser("node", help="custom nodes", description="Add, remove, update and list custom nodes (registry, git, development).")
    node_sub = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    p = node_sub.add_parser(
        "add",
        help="add custom nodes",
        description="Add nodes now: conflict check, resolve, fetch (cached), scan requirements, add to pyproject.toml, "
        "test the resolution with uv lock, sync the venv. If any step fails, nothing changes.",
    )
    _env_option(p)
    p.add_argument("identifiers", nargs="+", metavar="ID[@VERSION]|GIT_URL[@REF]|DIR", help="registry id, git URL, or (with --dev) a directory in custom_nodes/")
    p.add_argument("--dev", action="store_true", help="track an existing directory as a development node")
    p.add_argument("--no-test", action="store_true", help="skip dependency resolution (uv lock) and sync")
    p.add_argument("--force", action="store_true", help="replace an existing directory (it is kept under .comfydock/trash)")
    _json_option(p)
    p.set_defaults(func=cmd_node_add)
    p = node_sub.add_parser(
        "remove",
        help="remove custom nodes",
        description="Remove nodes: registry/git nodes are deleted (they stay in the cache), development nodes are renamed NAME.disabled.",
    )
    _env_option(p)
    p.add_argument("names", nargs="+", metavar="ID")
    p.add_argument("--force", action="store_true", help="delete a registry/git node even if its files were changed")
    _json_option(p)
    p.set_defaults(func=cmd_node_remove)
    p = node_sub.add_parser("update", help="change a node's version or rescan it", description="Move a registry/git node to another version (default: latest / the ref's newest commit); rescan a development node's requirements.")
    _env_option(p)
    p.add_argument("name", metavar="ID")
    p.add_argument("--version", metavar="V", help="registry version or git ref")
    p.add_argument("--force", action="store_true", help="replace the node's directory even if its files were changed")
    _json_option(p)
    p.set_defaults(func=cmd_node_update)
    p = node_sub.add_parser("list", help="list custom nodes", description="List tracked custom nodes.")
    _env_option(p)
    p.add_argument("--dev", action="store_true", help="only development nodes")
    _json_option(p)
    p.set_defaults(func=cmd_node_list)

    models = sub.add_parser("models", help="the workspace model index", description="Index model files by quick hash, list and find them, record download URLs.")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = models_sub.add_parser(
        "index",
        help="index a directory of model files",
        description="Walk DIR (default: the workspace's models directory) and record every model file. Unchanged files "
        "(same size and mtime) are not read again; moved files keep their hash; vanished ones are dropped.",
    )
    p.add_argument("directory", nargs="?", metavar="DIR")
    p.add_argument("--full", action="store_true", help="also compute full SHA256 and Blake3 (read whole files; cached)")
    p.add_argument("--rebuild", action="store_true", help="move the current index aside and start a new one")
    _json_option(p)
    p.set_defaults(func=cmd_models_index)
    p = models_sub.add_parser("list", help="list indexed models", description="List indexed models with their locations.")
    p.add_argument("--filter", metavar="PATTERN", help="only paths matching PATTERN (substring, or * and ? wildcards)")
    p.add_argument("--verify", action="store_true", help="check each location still exists unchanged (exit 1 if not)")
    _json_option(p)
    p.set_defaults(func=cmd_models_list)
    p = models_sub.add_parser("find", help="find models by hash prefix or file name", description="Find models by a prefix of their quick, SHA256 or Blake3 hash, or by file name.")
    p.add_argument("query", metavar="HASH-PREFIX|NAME")
    _json_option(p)
    p.set_defaults(func=cmd_models_find)
    p = models_sub.add_parser("info", help="show one model", description="Show one model: size, hashes, locations, sources.")
    p.add_argument("hash", metavar="HASH")
    _json_option(p)
    p.set_defaults(func=cmd_models_info)
    p = models_sub.add_parser("add-source", help="record a download URL for a model", description="Record where a model can be downloaded (CivitAI, Hugging Face, any URL).")
    p.add_argument("hash", metavar="HASH")
    p.add_argument("url", metavar="URL")
    p.add_argument("--type", choices=["civitai", "huggingface", "url"], help="source type (default: from the URL's host)")
    _json_option(p)
    p.set_defaults(func=cmd_models_add_source)

    p = sub.add_parser(
        "demo",
        help="run the offline end-to-end demo",
        description="Build a fixture ComfyUI and tiny wheels locally, then run the main job end to end in a throw-away workspace.",
    )
    p.add_argument("--dir", metavar="DIR", help="where to put the demo (default: a new temporary directory)")
    p.set_defaults(func=cmd_demo)
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
        elif a in {"-h", "--help"}:
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


if __name__ == "__main__":
    sys.exit(main())
