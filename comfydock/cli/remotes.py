"""Team commands: remote add/remove/list, push, pull (and the output of create --from)."""

from __future__ import annotations

from comfydock.cli.app import App, env_option, json_option, log
from comfydock.cli.text import escape


def cmd_remote_add(app: App) -> int:
    from comfydock.remotes import add_remote

    env = app.env()
    row = add_remote(env, app.args.name, app.args.url)
    log.info("remote add %s: %s", env.name, row)
    app.say(f"Added remote {escape(row['name'])}: {escape(row['url'])}. Publish with: comfydock push {escape(row['name'])}")
    return 0


def cmd_remote_remove(app: App) -> int:
    from comfydock.remotes import remove_remote

    env = app.env()
    remove_remote(env, app.args.name)
    log.info("remote remove %s: %s", env.name, app.args.name)
    app.say(f"Removed remote {escape(app.args.name)}")
    return 0


def cmd_remote_list(app: App) -> int:
    from comfydock.remotes import list_remotes

    rows = list_remotes(app.env())
    if app.json:
        app.print_json(rows)
        return 0
    if not rows:
        app.say("No remotes. Add one with: comfydock remote add origin URL")
        return 0
    for r in rows:
        mark = "  [dim](upstream)[/]" if r["upstream"] else ""
        app.out.print(f"{escape(r['name'])}  {escape(r['url'] or '?')}{mark}")
    return 0


def cmd_push(app: App) -> int:
    from comfydock.remotes import push

    env = app.env()
    with app.status("Pushing"):
        result = push(env, app.args.remote, on_wait=app.lock_wait_note)
    log.info("push %s: %s", env.name, result.to_json())
    if app.json:
        app.print_json(result.to_json())
        return 0
    if result.up_to_date:
        app.out.print(f"{escape(result.remote)} is up to date ({result.commit[:10]})")
    else:
        tags = f" with {', '.join(result.tags)}" if result.tags else ""
        app.out.print(f"[green]✓[/] pushed {escape(result.branch)} ({result.commit[:10]}){tags} to {escape(result.remote)}")
    return 0


def cmd_pull(app: App) -> int:
    from comfydock.remotes import pull

    env = app.env()
    with app.status("Pulling") as spinner:
        result = pull(env, app.args.remote, listener=app.task_listener(spinner), on_wait=app.lock_wait_note)
    log.info("pull %s: %s", env.name, result.to_json())
    if app.json:
        app.print_json(result.to_json())
        return 0
    if result.how == "up-to-date":
        app.out.print(f"Already up to date with {escape(result.remote)}/{escape(result.branch)}")
    else:
        applied = result.applied or {}
        for label, key in (
            ("installed node", "nodes_installed"),
            ("removed node", "nodes_removed"),
            ("disabled development node (kept as NAME.disabled)", "nodes_disabled"),
            ("re-enabled development node", "nodes_enabled"),
            ("updated workflow", "workflows_restored"),
            ("removed workflow", "workflows_removed"),
        ):
            for item in applied.get(key) or []:
                app.say(f"[green]✓[/] {label}: {escape(item)}")
        if applied.get("comfyui"):
            app.say(f"[green]✓[/] ComfyUI moved to {applied['comfyui']['to'][:10]}")
        what = "merged" if result.how == "merge" else "fast-forwarded"
        app.out.print(
            f"[green]✓[/] {what} {escape(result.remote)}/{escape(result.branch)}: {result.old[:10]} → {result.new[:10]}"
        )
    if result.dev_nodes_missing:
        app.warn(
            f"development node(s) {escape(', '.join(result.dev_nodes_missing))} are not on this machine "
            f"(not in git): {escape(result.dev_nodes_hint or '')}"
        )
    for old, new in sorted(result.renamed.items()):
        app.warn(f"your unpushed version {old} is now {new} ({escape(result.remote)} has another {old})")
    if result.versions:
        app.say("new versions: " + ", ".join(result.versions))
    if result.how == "merge":
        app.say(f"publish the merge with: comfydock push {escape(result.remote)}")
    return 0


def render_clone(app: App, result) -> int:
    """`comfydock create NAME --from URL`'s output."""
    if app.json:
        app.print_json(result.to_json())
        return 0
    app.say(
        f"Created environment [bold]{escape(result.environment)}[/] from {escape(result.url)} at "
        f"{result.version or result.commit[:10]} (ComfyUI {result.comfyui_commit[:10]}, Python {result.python}, "
        f"torch {result.torch_backend}) at {escape(result.path)}"
    )
    if result.workflows:
        app.say(f"workflows: {escape(', '.join(result.workflows))}")
    app.say("Later changes: comfydock pull · your own: comfydock commit, then comfydock push")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "remote",
        help="the git remotes that share this environment's history",
        description="Name the git remotes of the environment's .cec/ history (any URL git accepts, file:// included).",
    )
    rsub = p.add_subparsers(dest="remote_command", metavar="COMMAND", required=True)
    q = rsub.add_parser("add", help="add a remote", description="Add a git remote NAME at URL.")
    q.add_argument("name", help="remote name, e.g. origin")
    q.add_argument("url", help="any URL git accepts: https://…, ssh://…, git@host:path, file://…, a path")
    env_option(q)
    q.set_defaults(func=cmd_remote_add)
    q = rsub.add_parser("remove", help="remove a remote", description="Forget remote NAME (nothing on the remote changes).")
    q.add_argument("name")
    env_option(q)
    q.set_defaults(func=cmd_remote_remove)
    q = rsub.add_parser("list", help="list remotes", description="The remotes, their URLs, and which one is the upstream.")
    env_option(q)
    json_option(q)
    q.set_defaults(func=cmd_remote_list)

    p = sub.add_parser(
        "push",
        help="publish the versions to a remote",
        description="Push the branch and its vN tags to REMOTE (default: the upstream, else origin). Refused with "
        "uncommitted changes, when the remote has changes this environment lacks (pull first), or when a vN "
        "on the remote names another commit; never forced.",
    )
    p.add_argument("remote", nargs="?", help="remote name (default: the upstream, else origin)")
    env_option(p)
    json_option(p)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "pull",
        help="bring a remote's versions in and apply them",
        description="Fetch REMOTE, fast-forward or merge (uv.lock re-resolved, never text-merged), then apply the "
        "result to nodes, venv, workflows and ComfyUI as one step. Refused with uncommitted changes or files "
        "both sides changed; any failure restores the environment.",
    )
    p.add_argument("remote", nargs="?", help="remote name (default: the upstream, else origin)")
    env_option(p)
    json_option(p)
    p.set_defaults(func=cmd_pull)
