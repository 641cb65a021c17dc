"""`comfydock check`: does the environment's ComfyUI start and import every node? And its line in `status`."""

from __future__ import annotations

import time

from rich.markup import escape

from comfydock.cli.app import App, env_option, json_option, log


def cmd_check(app: App) -> int:
    from comfydock import comfyui_check, engine, uv_runner
    from comfydock.engine import build_failure

    env = app.env()
    comfyui_check.request_check(env, app.args.comfyui_args, rerun=app.args.rerun)
    started = time.time()
    with app.status("Checking that ComfyUI starts (--quick-test-for-ci)") as spinner, uv_runner.reporting(
        app.uv_reporter(spinner, "Syncing")
    ):
        report = engine.build(env, ["check_comfyui"], listener=app.task_listener(spinner), on_wait=app.lock_wait_note)
    event = next((e for e in report.events if e.task == "check_comfyui"), None)
    record = comfyui_check.load_record(env)
    ran_now = record is not None and isinstance(record.get("checked_at"), (int, float)) and record["checked_at"] >= started
    if not report.ok and (event is None or event.status != "failed" or not ran_now):
        raise build_failure(report)  # the sync before it failed, or ComfyUI could not be started at all
    from_record = event is not None and event.status == "up-to-date"
    log.info("check %s: %s", env.name, "from the record" if from_record else record)
    if app.json:
        app.print_json({**record, "from_record": from_record})
        return 0 if record["ok"] else 1
    render_check(app, env, record, from_record)
    return 0 if record["ok"] else 1


def render_check(app: App, env, record: dict, from_record: bool) -> None:
    out = app.out
    started = " ".join(record.get("command_args") or [])
    if record.get("comfyui_error"):
        out.print(f"[red]✗[/] ComfyUI itself failed to start: {escape(record['comfyui_error'])}")
    for f in record.get("comfyui_import_failures") or []:
        out.print(f"[red]✗[/] ComfyUI's {escape(f['module'])} did not import: {escape(f['error'])}")
    for n in record.get("failed_nodes") or []:
        who = n.get("id") or f"{n['directory']} (not tracked)"
        out.print(f"[red]✗[/] custom node {escape(who)} (custom_nodes/{escape(n['directory'])}): {escape(n['error'])}")
    when = f"from the record of {ago(record.get('checked_at'))}, nothing changed since" if from_record else f"{record.get('seconds')} s"
    if record["ok"]:
        app.say(f"[green]✓[/] ComfyUI starts and imports every custom node ({escape(started)}; {escape(when)})")
    else:
        if record.get("cpu_added"):
            app.say(escape(f"(started with --cpu: {record['cpu_added']})"))
        app.say(
            escape(f"ComfyUI's quick test failed ({started}; {when}); its output: {record.get('log')}")
            + f"\n(per node, with a hint: 'comfydock node check -e {escape(env.name)}')"
        )


def ago(timestamp) -> str:
    if not isinstance(timestamp, (int, float)):
        return "an unknown time ago"
    seconds = max(0, time.time() - timestamp)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "min")):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 and unit != 'min' else ''} ago"
    return "just now"


def render_check_status(app: App, data: dict) -> None:
    """status' line about the last `comfydock check` (data: status()["comfyui_check"])."""
    check = data.get("comfyui_check") or {"state": "not-run"}
    if check["state"] == "not-run":
        app.out.print("Check: not run ('comfydock check' starts ComfyUI's quick test)")
        return
    version = check.get("environment_version") or "an uncommitted state"
    if check.get("uncommitted_changes") and check.get("environment_version"):
        version += " + uncommitted changes"
    lock = (check.get("uv_lock_sha256") or "?")[:12]
    what = f"for {version} (uv.lock {lock}, ComfyUI {check.get('comfyui_version')}) {ago(check.get('checked_at'))}"
    if check["state"] == "passed":
        line = f"Check: [green]passed[/] {escape(what)}"
    else:
        line = f"Check: [red]failed[/] {escape(what)}: {escape(check.get('summary') or '')}"
    if not check.get("current"):
        line += " [yellow](the environment changed since: run 'comfydock check')[/]"
    app.out.print(line)


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="check that ComfyUI starts and imports every node",
        description="Sync like 'run', then start ComfyUI with --quick-test-for-ci (and --cpu where no GPU is found, "
        "unless you pass a device option) and report ComfyUI's own import errors and each custom node it could not "
        "import, with its first error line. Exit 1 if anything failed. The result is kept: a passed check is not "
        "run again until uv.lock, the custom nodes, ComfyUI's commit or the arguments change. Arguments after "
        "'--' go to ComfyUI.",
        usage="comfydock check [-e NAME] [--rerun] [--json] [-- COMFYUI_ARGS ...]",
    )
    env_option(p)
    p.add_argument("--rerun", action="store_true", help="run ComfyUI again even when the last check still holds")
    json_option(p)
    p.set_defaults(func=cmd_check, comfyui_args=[])  # what follows '--' (split off before parsing: cli.main)
