"""Python dependency commands: py add/remove/list, constraint add/remove/list."""

from __future__ import annotations

from pathlib import Path

from comfydock.cli.app import App, env_option, json_option, log


def _apply_change(app: App, env, mutate, describe, upgrade=None) -> int:
    """Run a manifest edit with lock + sync, then say what happened."""
    from comfydock.manifest_change import change_manifest

    with app.status("Resolving and syncing") as spinner:
        change = change_manifest(env, mutate, upgrade=upgrade, listener=app.task_listener(spinner), on_wait=app.lock_wait_note)
    log.info("%s: %s", env.name, describe(change))
    clashes = env.module_clashes()
    if app.json:
        app.print_json(
            {
                "changed": change.changed,
                "result": change.result,
                "build": change.report.to_json(),
                "module_clashes": clashes,
                "comfyui_fills": change.comfyui_fills,
            }
        )
    else:
        from comfydock.cli.text import escape

        app.say(escape(describe(change)))
        from comfydock.cli.undeclared import render_fills_after_change

        render_fills_after_change(app, change.comfyui_fills)
    warn_module_clashes(app, clashes)
    return 0


def warn_module_clashes(app: App, clashes: list[dict]) -> None:
    """One warning per module that several installed distributions provide, with the fix."""
    from comfydock.cli.text import escape
    from comfydock.uv_runner import clash_warning

    for clash in clashes:
        message, fix = clash_warning(clash)
        app.warn(escape(message))
        app.err.print(f"  fix: {escape(fix)}")


def _removed_names(removed: list[str]) -> list[str]:
    from comfydock.requirements_txt import parse_requirement

    return [parse_requirement(r).name for r in removed]


def _locked(env, names) -> str:
    from packaging.utils import canonicalize_name

    versions = env.locked_versions()
    return ", ".join(f"{n} {versions.get(canonicalize_name(n)) or '(no longer installed)'}" for n in names)


def cmd_py_add(app: App) -> int:
    from comfydock import pydeps
    from comfydock.errors import UsageError
    from comfydock.requirements_txt import RequirementsFile, parse_requirement, read_requirements_file

    specs, group = list(app.args.packages), app.args.group
    wanted = RequirementsFile(requirements=specs)
    for path in app.args.requirement_files:
        read = read_requirements_file(Path(path))
        wanted.requirements += read.requirements
        wanted.constraints += read.constraints
        wanted.notes += read.notes
    if not wanted.requirements:
        raise UsageError(
            "no requirements to add" + (" (the requirements files list none)" if app.args.requirement_files else ""),
            hint="comfydock py add PKG[SPEC]… or py add -r requirements.txt",
        )
    for note in wanted.notes:
        app.warn_text(note)
    env = app.env()
    specs = wanted.requirements
    names = [parse_requirement(s).name for s in specs]

    def mutate(doc):
        pydeps.add_requirements(doc, specs, group)
        if wanted.constraints:
            pydeps.add_constraints(doc, wanted.constraints)

    def describe(change):
        if not change.changed:
            return f"Already required: {', '.join(specs)} (nothing to do)"
        where = f"group {group}" if group else "the environment"
        also = f" and constraints {', '.join(wanted.constraints)}" if wanted.constraints else ""
        return f"Added {', '.join(specs)}{also} to {where}; locked: {_locked(env, names)}"

    return _apply_change(app, env, mutate, describe)


def cmd_py_remove(app: App) -> int:
    from comfydock import pydeps

    env = app.env()
    group = app.args.group
    return _apply_change(
        app,
        env,
        lambda doc: pydeps.remove_requirements(doc, app.args.packages, group),
        lambda change: f"Removed {', '.join(change.result)}; locked now: {_locked(env, _removed_names(change.result))}",
        upgrade=_removed_names,  # what the removed pin held back moves to the newest allowed version
    )


def cmd_py_list(app: App) -> int:
    from comfydock.pydeps import CORE_GROUP
    from comfydock.status import python_requirements

    env = app.env()
    listing = python_requirements(env)
    rows = listing.rows
    if app.json:
        app.print_json([r.to_json() for r in rows])
    else:
        from rich.table import Table

        from comfydock.cli.text import escape

        table = Table(box=None, pad_edge=False)
        for col in ("group", "requirement", "locked"):
            table.add_column(col)
        for r in sorted(rows, key=lambda r: (r.group != CORE_GROUP, r.group != "user", r.group, r.name)):
            table.add_row(escape(r.group), escape(r.requirement), escape(r.locked or "-"))
        app.out.print(table)
        family = listing.torch_family
        if family["versions"]:
            unchecked = not family["problem"] and family["imports"] is None
            colour = "green" if family["coherent"] else "yellow" if unchecked else "red"
            release = f", kept to release {family['release']}" if family["release"] else ""
            app.out.print(f"Torch family: [{colour}]{escape(family['summary'])}[/]{escape(release)}")
    warn_module_clashes(app, listing.module_clashes)
    return 0


def cmd_constraint_add(app: App) -> int:
    from comfydock import pydeps
    from comfydock.requirements_txt import parse_requirement

    env = app.env()
    specs = app.args.specs
    names = [parse_requirement(s).name for s in specs]

    def describe(change):
        if not change.changed:
            return f"Already constrained: {', '.join(specs)} (nothing to do)"
        return f"Constrained {', '.join(specs)}; locked: {_locked(env, names)}"

    return _apply_change(app, env, lambda doc: pydeps.add_constraints(doc, specs), describe)


def cmd_constraint_remove(app: App) -> int:
    from comfydock import pydeps

    env = app.env()
    return _apply_change(
        app,
        env,
        lambda doc: pydeps.remove_constraints(doc, app.args.packages),
        lambda change: (
            f"Removed constraint {', '.join(change.result)}; locked now: {_locked(env, _removed_names(change.result))}"
        ),
        upgrade=_removed_names,
    )


def cmd_constraint_list(app: App) -> int:
    from comfydock.status import constraint_rows

    rows = constraint_rows(app.env())
    if app.json:
        app.print_json(rows)
    elif not rows:
        app.say("No constraints. Add one with: comfydock constraint add 'numpy<2'")
    else:
        from comfydock.cli.text import escape

        for r in rows:
            app.out.print(f"{escape(r['constraint'])}  [dim](locked {escape(r['locked'] or '-')})[/]")
    return 0


def register(sub) -> None:
    py = sub.add_parser(
        "py", help="direct Python requirements", description="Add, remove and list the environment's direct Python requirements."
    )
    py_sub = py.add_subparsers(dest="py_command", metavar="ACTION", required=True)
    p = py_sub.add_parser(
        "add",
        help="add requirements, then lock and sync",
        description="Add requirements (PEP 508, e.g. 'requests>=2'), or those of requirements files (-r; their -r "
        "includes followed, -c constraint files added as constraints), lock with uv and sync the venv. If uv cannot "
        "resolve, nothing changes.",
    )
    env_option(p)
    p.add_argument("packages", nargs="*", metavar="PKG[SPEC]")
    p.add_argument(
        "-r",
        "--requirement",
        dest="requirement_files",
        action="append",
        default=[],
        metavar="FILE",
        help="add the requirements a requirements.txt lists (repeatable)",
    )
    p.add_argument("--group", metavar="NAME", help="add to this dependency group instead of the main requirements")
    json_option(p)
    p.set_defaults(func=cmd_py_add)
    p = py_sub.add_parser(
        "remove",
        help="remove requirements, then lock and sync",
        description=(
            "Remove direct requirements by package name ('tabulate'), or by name and spec ('tabulate>=0.9', which must "
            "match the recorded one). The removed packages then move to the newest versions the remaining requirements allow."
        ),
    )
    env_option(p)
    p.add_argument("packages", nargs="+", metavar="PKG[SPEC]")
    p.add_argument("--group", metavar="NAME", help="remove from this dependency group")
    json_option(p)
    p.set_defaults(func=cmd_py_remove)
    p = py_sub.add_parser(
        "list",
        help="list direct requirements",
        description=(
            "Direct requirements with the versions uv.lock installs in this environment: comfyui-core (ComfyUI's own), "
            "user (added with 'py add'), node:<id> (each node's group), other groups."
        ),
    )
    env_option(p)
    json_option(p)
    p.set_defaults(func=cmd_py_list)

    cons = sub.add_parser(
        "constraint",
        help="version constraints for every group",
        description="uv constraint-dependencies: bounds applied to every package and group, e.g. 'numpy<2'.",
    )
    cons_sub = cons.add_subparsers(dest="constraint_command", metavar="ACTION", required=True)
    p = cons_sub.add_parser(
        "add",
        help="add constraints, then lock and sync",
        description="Add constraints (e.g. 'numpy<2'), lock and sync. If uv cannot resolve, nothing changes.",
    )
    env_option(p)
    p.add_argument("specs", nargs="+", metavar="SPEC")
    json_option(p)
    p.set_defaults(func=cmd_constraint_add)
    p = cons_sub.add_parser(
        "remove",
        help="remove constraints by package name",
        description="Remove constraints by package name, then lock and sync; the package moves to the newest allowed version.",
    )
    env_option(p)
    p.add_argument("packages", nargs="+", metavar="PKG[SPEC]")
    json_option(p)
    p.set_defaults(func=cmd_constraint_remove)
    p = cons_sub.add_parser("list", help="list constraints", description="List constraints with the versions locked under them.")
    env_option(p)
    json_option(p)
    p.set_defaults(func=cmd_constraint_list)
