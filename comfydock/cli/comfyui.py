"""ComfyUI itself: comfyui update."""

from __future__ import annotations

from comfydock.cli.app import App, env_option, json_option, log
from comfydock.cli.text import escape


def cmd_comfyui_update(app: App) -> int:
    from comfydock.comfyui_update import update_comfyui

    args = app.args
    env = app.env()
    with app.status(f"Moving ComfyUI to {args.ref or 'the newest release'}") as spinner:
        result = update_comfyui(
            env, args.ref, force=args.force, listener=app.task_listener(spinner), on_wait=app.lock_wait_note, warn=app.warn_text
        )
    log.info("comfyui update %s: %s", env.name, result.to_json())
    if app.json:
        app.print_json(result.to_json())
        return 0
    from comfydock.cli.undeclared import render_comfyui_fills

    render_comfyui_fills(app, result.comfyui_fills)
    if not result.changed:
        app.out.print(f"ComfyUI is already at {escape(result.new_ref)} ({result.new_commit[:10]}).")
        return 0
    if result.requirements_added or result.requirements_removed:
        app.say("ComfyUI's requirements (comfyui-core group):")
    for line in result.requirements_added:
        app.say(f"  + {escape(line)}")
    for line in result.requirements_removed:
        app.say(f"  - {escape(line)}")
    app.out.print(
        f"[green]✓[/] ComfyUI {escape(result.old_ref or '?')} → {escape(result.new_ref)} ({result.new_commit[:10]}); "
        "'comfydock commit' records it"
    )
    if result.resolution and result.resolution["as_of"]:
        app.say(f"Resolution date: {escape(result.resolution['as_of'])} (from {escape(result.resolution['source'] or '?')})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("comfyui", help="the environment's ComfyUI", description="Manage the environment's ComfyUI checkout.")
    csub = p.add_subparsers(dest="comfyui_command", metavar="COMMAND", required=True)
    q = csub.add_parser(
        "update",
        help="move ComfyUI to another release",
        description="Check out REF (default: the newest release) from the cached mirror, re-read ComfyUI's "
        "requirements, lock and sync; all or nothing. The change is left uncommitted.",
    )
    q.add_argument("ref", nargs="?", help="tag, branch or commit (default: the newest release tag)")
    q.add_argument("--force", action="store_true", help="discard your edits to ComfyUI's own files")
    env_option(q)
    json_option(q)
    q.set_defaults(func=cmd_comfyui_update)
