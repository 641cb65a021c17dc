"""Sharing commands: export (environment → bundle) and import (bundle → new environment)."""

from __future__ import annotations

import sys
from pathlib import Path

from comfydock.cli.app import App, env_option, human_size, json_option, log, render_events
from comfydock.cli.text import escape


def _ask_url(app: App, spinner):
    def ask(model: dict) -> str | None:
        if spinner is not None:
            spinner.stop()
        try:
            app.err.print(
                f"\nNo download source found for [bold]{escape(model['name'])}[/] ({escape(model['path'])}, {human_size(model['size'])})"
            )
            app.err.print("Download URL (Enter to skip): ", end="")
            answer = sys.stdin.readline()
            return answer.strip() or None
        finally:
            if spinner is not None:
                spinner.start()

    def invalid(url: str) -> None:
        app.warn("not a usable download URL (http(s), no credentials in it); try again or press Enter")

    ask.invalid = invalid
    return ask


MANIFEST_UPDATED = "export updated pyproject.toml with the workflows' current models: 'comfydock commit' records it"


def warn_failed_lookups(app: App, failures: list[dict]) -> None:
    for f in failures:
        app.warn(
            f"{escape(f['error'])}: {escape(f['path'] or f['name'])} is exported without a download URL "
            "(the next export looks it up again)"
        )


def render_export(app: App, result) -> None:
    warn_failed_lookups(app, result.lookup_failures)
    for path in result.skipped_links:
        app.warn(f"{escape(path)} is a symbolic link or special file: not bundled")
    for ref in result.unresolved:
        if ref.get("status") == "ambiguous":
            app.warn(
                f"{escape(ref['workflow'])}: several indexed files match model {escape(str(ref['filename']))}, so it is "
                f"not in the bundle (choose one: 'comfydock models resolve {escape(ref['workflow'])}')"
            )
            continue
        app.warn(
            f"{escape(ref['workflow'])}: model {escape(str(ref['filename']))} is not in the model index, so not in the bundle "
            f"(index it, or resolve it: 'comfydock models resolve {escape(ref['workflow'])}')"
        )
    if result.misplaced:
        from comfydock.cli.history import misplaced_line

        for m in result.misplaced:
            app.warn(
                f"{misplaced_line(m)} (workflow {escape(', '.join(m['workflows']))}); "
                f"the bundle places it at {escape(m['expected_path'])} for whoever imports it"
            )
    if result.without_url:
        app.warn(f"{len(result.without_url)} model(s) have no download URL; an importer needs them locally (--models-from):")
        for m in result.without_url:
            app.say(f"   - {escape(m['path'])} ({human_size(m['size'])})")
    app.say(
        f"{len(result.workflows)} workflow(s), {len(result.models)} model(s), {len(result.nodes)} node(s); "
        f"full hashes computed: {result.full_hashes_computed}"
    )
    app.out.print(f"[green]✓[/] Exported to {escape(result.output)}")
    app.out.print(f"  sha256 {result.sha256}  ({human_size(result.size)})")
    if result.manifest_updated:
        app.say(MANIFEST_UPDATED)


def cmd_export(app: App) -> int:
    from comfydock.bundle.exporting import export_environment

    args = app.args
    env = app.env()
    interactive = args.interactive or (not args.no_interactive and not app.json and sys.stdin.isatty())
    output = Path(args.output).expanduser() if args.output else None
    force = _may_replace(app, env, output, args.force, interactive)
    with app.status("Exporting") as spinner:
        result = export_environment(
            env,
            args.workflows or None,
            output,
            ask_url=_ask_url(app, spinner) if interactive else None,
            listener=app.task_listener(spinner),
            on_wait=app.lock_wait_note,
            force=force,
        )
    log.info("export %s: %s", env.name, {k: v for k, v in result.to_json().items() if k != "tasks"})
    if app.json:
        app.print_json(result.to_json())
        return 0
    render_export(app, result)
    return 0


def _may_replace(app: App, env, output: Path | None, force: bool, interactive: bool) -> bool:
    """--force, or on a terminal the user's yes to replacing a file at `output` that is not a bundle."""
    from comfydock.bundle.exporting import WouldReplace, check_output
    from comfydock.errors import ComfydockError

    if output is None or force:
        return force
    try:
        check_output(env, output)
    except WouldReplace:
        if not interactive:
            raise
        from rich.prompt import Confirm

        if not Confirm.ask(f"{escape(str(output))} is not a comfydock bundle. Replace it?", console=app.err, default=False):
            raise ComfydockError("nothing exported", hint="give another --output path") from None
        return True
    return False


def build_export(app: App, env) -> int:
    """`comfydock build export [--output PATH] [--json]`: the export graph through build's report."""
    from comfydock.bundle import exporting
    from comfydock.engine import build_failure
    from comfydock.hashing import file_digest

    args = app.args
    manifest_before = exporting.manifest_bytes(env)
    with app.status("Building") as spinner:
        report = exporting.build_export(
            env, listener=app.task_listener(spinner, plain=True), on_wait=app.lock_wait_note, keep_going=args.keep_going
        )
    log.info("build %s export: %s", env.name, report.to_json())
    data = report.to_json()
    data["lookup_failures"] = exporting.failed_lookups(env) if report.ok else []  # else: may be an older run's
    data["manifest_updated"] = exporting.manifest_bytes(env) != manifest_before
    if report.ok:
        bundle = exporting.bundle_file(env)
        data["bundle"] = str(bundle)
        data["sha256"] = file_digest(bundle)
        if args.output:
            dest = Path(args.output).expanduser()
            exporting.check_output(env, dest)  # not a bundle there: 'comfydock export --force' replaces it
            exporting.copy_out(bundle, dest)
            data["output"] = str(dest.absolute())
    if app.json:
        app.print_json(data)
    else:
        render_events(app, report.events)
        warn_failed_lookups(app, data["lookup_failures"])
    if not report.ok:
        raise build_failure(report)
    if not app.json:
        app.out.print(f"Bundle: {escape(data.get('output') or data['bundle'])}  sha256 {data['sha256']}")
        if data["manifest_updated"]:
            app.say(MANIFEST_UPDATED)
    return 0


def _download_progress(app: App):
    """One rich progress bar per model download (stderr); nothing when not on a terminal."""
    if app.json or not app.err.is_terminal:
        return lambda model: None, None
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=app.err,
    )

    def for_model(model):
        task = bars.add_task(escape(model.name), total=model.size)

        def update(done: int, total: int | None) -> None:
            bars.update(task, completed=done, total=total or model.size)

        return update

    return for_model, bars


def _ask_model(app: App, bars):
    """The spec's prompt for a model not found locally: download / local substitute / skip."""

    def ask(model: dict):
        if bars is not None:
            bars.stop()
        try:
            app.err.print(
                f"\n[bold]{escape(model['name'])}[/] ({escape(model['path'])}, {human_size(model['size'])}) is not here"
            )
            choices = (["download"] if model["has_url"] else []) + ["substitute", "skip"]
            labels = {
                "download": "Download from its URL",
                "substitute": "Select local substitute",
                "skip": "Skip (workflow may not function)",
            }
            for i, c in enumerate(choices, 1):
                app.err.print(f"  {i}. {labels[c]}")
            while True:
                app.err.print(f"Choice [1-{len(choices)}]: ", end="")
                answer = sys.stdin.readline()
                if not answer:  # end of input: skip
                    return "skip"
                answer = answer.strip()
                if answer.isdigit() and 1 <= int(answer) <= len(choices):
                    choice = choices[int(answer) - 1]
                    break
            if choice != "substitute":
                return choice
            while True:
                app.err.print("Path of the local file (Enter to skip): ", end="")
                path = sys.stdin.readline().strip()
                if not path:
                    return "skip"
                if Path(path).expanduser().is_file():
                    return path
                app.warn(f"{escape(path)} is not a file")
        finally:
            if bars is not None:
                bars.start()

    return ask


def cmd_import(app: App) -> int:
    from contextlib import nullcontext

    from comfydock.bundle.importing import import_bundle

    args = app.args
    ws = app.workspace()
    progress, bars = _download_progress(app)
    interactive = args.interactive or (not args.no_interactive and not app.json and sys.stdin.isatty())

    def step(message):
        log.info("import %s: %s", args.bundle, message)
        if not app.json:
            app.say(escape(message))

    from comfydock import uv_runner

    # uv's downloads and installs as they happen (minutes for torch), like create shows them
    uv_lines = nullcontext() if app.json else uv_runner.reporting(app.uv_reporter(None))
    with bars if bars is not None else nullcontext(), uv_lines:
        result = import_bundle(
            ws,
            Path(args.bundle),
            name=args.env,
            use=args.use,
            skip_models=args.skip_models,
            skip_nodes=args.skip_nodes,
            models_from=Path(args.models_from) if args.models_from else None,
            torch_backend=args.torch_backend,
            choose=_ask_model(app, bars) if interactive else None,
            step=step,
            warn=(lambda m: None) if app.json else (lambda m: app.warn(escape(m))),
            progress=progress,
        )
    log.info("import %s: %s", args.bundle, result.to_json())
    if app.json:
        app.print_json(result.to_json())
        return 0
    counts: dict[str, int] = {}
    for m in result.models:
        counts[m.how] = counts.get(m.how, 0) + 1
    if result.models:
        app.say("Models: " + ", ".join(f"{n} {how}" for how, n in sorted(counts.items())))
    app.out.print(
        f"[green]✓[/] Imported environment [bold]{escape(result.environment)}[/] ({result.version}) at {escape(result.path)}"
    )
    if result.active:
        app.say("Active environment: start it with 'comfydock run'")
    else:
        app.say(f"Make it active with: comfydock use {escape(result.environment)}")
    return 0


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "export",
        help="export the environment as a bundle",
        description="Copy, analyse and resolve workflows, compute full model hashes, look up download sources, "
        "write comfydock.lock and a deterministic .tar.gz bundle (pyproject.toml, uv.lock, comfydock.lock, workflows/, "
        "dev_nodes/). Unchanged steps are skipped.",
    )
    p.add_argument("workflows", nargs="*", metavar="WORKFLOW", help="workflows to export (default: all tracked ones)")
    p.add_argument("-o", "--output", metavar="PATH", help="bundle file (default: ./<env>-<sha256[:12]>.tar.gz)")
    p.add_argument("--no-interactive", action="store_true", help="never ask for URLs; list the models that have none")
    p.add_argument("--interactive", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--force", action="store_true", help="replace a file at --output that is not a comfydock bundle (never one inside the environment)"
    )
    env_option(p)
    json_option(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import",
        help="create an environment from a bundle",
        description="Check the whole bundle, then create an environment from it: ComfyUI at the recorded commit, nodes, "
        "models (index, --models-from, or download), 'uv sync --frozen', workflows, commit v1. "
        "An interrupted import continues when run again.",
    )
    p.add_argument("bundle", help="the .tar.gz made by 'comfydock export'")
    p.add_argument("-e", "--env", metavar="NAME", help="environment name (default: the exporter's)")
    p.add_argument("--use", action="store_true", help="make it the active environment")
    p.add_argument("--skip-models", action="store_true", help="do not fetch models")
    p.add_argument("--skip-nodes", action="store_true", help="do not install registry/git nodes")
    p.add_argument("--models-from", metavar="DIR", help="a directory (disk, mirror) to copy models from, indexed on the fly")
    p.add_argument(
        "--torch-backend",
        default=None,
        metavar="B",
        help="PyTorch build for this machine: auto (detect the GPU), cpu, cu128, ... or pypi (default: the "
        "torch-backend setting); a backend the bundle has no variant for is added and uv.lock re-resolved",
    )
    p.add_argument("--no-interactive", action="store_true", help="never ask: download what has a URL, list what has none")
    p.add_argument("--interactive", action="store_true", help=argparse.SUPPRESS)
    json_option(p)
    p.set_defaults(func=cmd_import)
