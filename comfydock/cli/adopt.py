"""`comfydock adopt PATH`: an existing ComfyUI install becomes a new environment (the install is only read)."""

from __future__ import annotations

from comfydock.cli.app import App, human_size, json_option, log

_MARK = {"exact": "[green]exact[/]", "approximate": "[yellow]approximate[/]", "not": "[red]not carried over[/]"}


def cmd_adopt(app: App) -> int:
    from comfydock.adopt import adopt_install
    from comfydock.errors import UsageError

    args = app.args
    if args.here:
        if args.path or args.name or args.use:
            raise UsageError("--here adopts the active environment's own drift: give no PATH, --name or --use")
        return _adopt_here(app)
    if not args.path:
        raise UsageError("adopt needs the PATH of a ComfyUI install (or --here)", hint="comfydock adopt ~/ComfyUI")
    ws = app.workspace()
    with app.status(f"Adopting {args.path}") as spinner:
        step = app.step_reporter(spinner, f"adopt {args.path}")

        result = adopt_install(
            ws,
            args.path,
            name=args.name,
            use=args.use,
            python_from=args.python_from,
            torch_backend=args.torch_backend,
            step=step,
            warn=app.warn,
        )
    if app.json:
        app.print_json(result.report)
        return 0
    render_report(app, result.report)
    return 0


def render_report(app: App, report: dict) -> None:
    from comfydock.cli.text import escape as e

    out = app.out
    out.print(f"Adopted [bold]{e(report['source'])}[/] as environment [bold]{e(report['environment'])}[/] (v1)")
    c = report["comfyui"]
    what = c.get("version") or (c.get("commit") or "")[:12]
    out.print(f"ComfyUI {e(str(what))}: {_MARK[c['carried']]} from {e(c['from'])}")
    for f in c.get("local_edits", []):
        out.print(f"  local edit not carried over: {e(f)}")
    p = report["python"]
    out.print(f"Python {e(p['version'])}: {_MARK[p['carried']]}" + (f" ({e(p['note'])})" if p.get("note") else ""))
    out.print("Custom nodes:")
    if not report["nodes"]:
        out.print("  none")
    for n in report["nodes"]:
        label = n["kind"] + (", disabled" if n.get("disabled") else "")
        line = f"  {e(n['directory'])} [dim]({e(label)})[/]: {_MARK[n['carried']]}, {e(n['evidence'])}"
        if n.get("why"):
            line += f"; {e(n['why'])}"
        out.print(line)
        for skipped in n.get("requirements_skipped", []):
            out.print(f"    requirement line skipped: {e(skipped)}")
    pk = report["packages"]
    out.print(
        f"Python packages: {len(pk['added'])} added as your requirements"
        + (": " + e(", ".join(pk["added"])) if pk["added"] else "")
    )
    for r in pk["already_required"]:
        out.print(f"  {e(r['name'])} {e(r['old'])} -> {e(r['new'])} ({_MARK['approximate']}: as the requirements resolve)")
    for r in pk["torch"]:
        out.print(f"  {e(r['name'])} {e(r['old'])} -> {e(str(r['new'] or 'not installed'))} ({e(r['why'])})")
    for r in pk["not_carried"]:
        out.print(f"  {e(r['name'])} {e(r['version'])}: {_MARK['not']} ({e(r['why'])})")
    m = report["models"]
    if m.get("directory"):
        out.print(
            f"Models: {m['files']} file{'' if m['files'] == 1 else 's'}, {human_size(m['bytes'])} in {e(m['directory'])}, not copied: {e(m['how'])}"
        )
    else:
        out.print("Models: the install has no models/ folder")
    if m.get("extra_paths"):
        out.print(f"  extra model paths: {e(', '.join(m['extra_paths']))}")
    out.print(f"Workflows copied: {len(report['workflows'])}; user settings copied: {len(report['settings'])}")
    if report.get("active"):
        app.say(f"Active environment: {e(report['environment'])}. Start it with: comfydock run")
    else:
        app.say(f"Make it active with: comfydock use {e(report['environment'])}")


def _adopt_here(app: App) -> int:
    from comfydock.adopt import adopt_here
    from comfydock.cli.text import escape as e

    env = app.env()
    with app.status(f"Adopting the drift of {env.name}") as spinner:
        report = adopt_here(
            env, listener=app.task_listener(spinner), on_wait=app.lock_wait_note, step=lambda m: log.info("adopt --here: %s", m)
        )
    if app.json:
        app.print_json(report)
        return 0
    if not report["nodes"] and not report["packages"]["added"] and not report["packages"].get("restored"):
        app.out.print("No drift: every node directory is tracked and the venv matches uv.lock.")
        return 0
    for n in report["nodes"]:
        if n["carried"] == "not":
            app.out.print(f"custom_nodes/{e(n['directory'])}: {_MARK['not']} ({e(n.get('why') or '')})")
        else:
            why = f"; {e(n['why'])}" if n.get("why") else ""
            app.out.print(f"custom_nodes/{e(n['directory'])} tracked as a {e(n['kind'])} node ({e(n['evidence'])}{why})")
    for spec in report["packages"]["added"]:
        app.out.print(f"{e(spec)} added as your requirement")
    if report["packages"].get("restored"):
        app.out.print("Venv synced to uv.lock again: " + e(", ".join(report["packages"]["restored"])))
    app.say("Save it as a version with: comfydock commit")
    return 0


def render_drift(app: App, drift: dict) -> None:
    """status: what changed behind comfydock's back (ComfyUI-Manager installs, pip installs)."""
    from comfydock.cli.text import escape as e

    out = app.out
    for n in drift["nodes"]:
        out.print(f"[yellow]Untracked node directory[/] custom_nodes/{e(n['directory'])}: {e(n['evidence'])}")
    pk = drift["packages"]
    changes = [f"+{p['name']} {p['version']}" for p in pk["added"]] + [f"-{p['name']} {p['version']}" for p in pk["removed"]]
    changes += [f"{p['name']} {p['version']} (uv.lock: {p['locked']})" for p in pk["other_version"]]
    if changes:
        out.print("[yellow]Venv differs from uv.lock:[/] " + e(", ".join(changes)))
    if drift["nodes"] or changes:
        out.print(_drift_hint(drift))


def _drift_hint(drift: dict) -> str:
    """What 'adopt --here' will do about this drift (it tracks nodes and added packages, and
    syncs the venv back to uv.lock for missing packages and other versions)."""
    pk = drift["packages"]
    does = []
    if drift["nodes"]:
        does.append("tracks the node directories")
    if pk["added"]:
        does.append("keeps the added packages as your requirements")
    if pk["removed"] or pk["other_version"]:
        does.append("puts uv.lock's versions back")
    return f"Run 'comfydock adopt --here': it {' and '.join(does)}"


def register(sub) -> None:
    p = sub.add_parser(
        "adopt",
        help="turn an existing ComfyUI install into an environment",
        description="Create an environment that reproduces the ComfyUI install at PATH (ComfyUI at its commit, "
        "custom nodes, Python packages, workflows, settings; models are used in place). PATH is only read.",
    )
    p.add_argument("path", metavar="PATH", nargs="?", help="the ComfyUI folder (the one holding main.py)")
    p.add_argument(
        "--here",
        action="store_true",
        help="instead: track the active environment's untracked node directories and extra venv packages",
    )
    p.add_argument("-e", "--env", metavar="NAME", help="with --here: the environment (default: the active one)")
    p.add_argument("--name", help="environment name (default: from the folder name)")
    p.add_argument("--use", action="store_true", help="make it the active environment")
    p.add_argument(
        "--python-from",
        default="auto",
        metavar="auto|PATH",
        help="the old venv or Python whose packages are carried over (default: auto, a venv beside the install)",
    )
    p.add_argument("--torch-backend", default="auto", metavar="B", help="PyTorch build for the new venv (default: auto)")
    p.add_argument("--no-interactive", action="store_true", help="do not prompt for anything (adopt never asks)")
    json_option(p)
    p.set_defaults(func=cmd_adopt)
