"""Model index commands: models index/list/find/info/add-source."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from comfydock.cli.app import App, env_option, human_size, json_option, log
from comfydock.cli.history import _prompt_choice
from comfydock.cli.text import escape
from comfydock.errors import ComfydockError


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
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
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
        raise ComfydockError("no models directory configured", hint="pass DIR, or set one: 'comfydock config models-dir DIR'")
    if args.rebuild:
        aside = model_index.rebuild_index(ws.models_db)
        if aside:
            app.say(f"Moved the old index aside to {escape(str(aside))}")
    with _index_progress(app) as progress:
        result = model_index.index_directory(
            ws.models_db,
            directory,
            full=args.full,
            progress=progress,
            warn=app.warn_text,
            on_wait=lambda holder: app.say(f"Waiting for another model index run to finish ({escape(holder)})"),
        )
    log.info("models index %s: %s", directory, result.to_json())
    if ws.models_dir and directory.absolute() == ws.models_dir:
        ws.record_models_indexed()
    if app.json:
        app.print_json(result.to_json())
        return 0
    app.say(
        f"Indexed {result.files_seen} model file(s) in {escape(result.directory)}: {result.files_hashed} hashed, "
        f"{result.files_unchanged} unchanged, {result.files_moved} moved, {result.locations_removed} gone"
        + (f", {result.full_hashed} full-hashed" if args.full else "")
        + f"; {result.models} distinct model(s) ({result.seconds:.2f}s)"
    )
    return 0


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
            table.add_row(
                r.hash if i == 0 else "",
                human_size(r.file_size) if i == 0 else "",
                escape(loc["relative_path"]),
                f"[red]{escape(note)}[/]" if note else "",
            )
    app.out.print(table)
    return 1 if problems else 0


def _print_record(app: App, r) -> None:
    app.out.print(f"[bold]{escape(r.hash)}[/]  {human_size(r.file_size)}")
    app.out.print(f"  sha256: {r.sha256 or '(not computed: comfydock models index --full)'}")
    app.out.print(f"  blake3: {r.blake3 or '(not computed)'}")
    for loc in r.locations:
        app.out.print(f"  at {escape(loc['path'])}")
    for src in r.sources:
        app.out.print(f"  source ({escape(src['type'])}): {escape(src['url'])}")


def cmd_models_find(app: App) -> int:
    from comfydock import model_index

    records = model_index.find_models(_models_db(app), app.args.query)
    if app.json:
        app.print_json([r.to_json() for r in records])
    elif not records:
        app.say(f"No indexed model matches {escape(repr(app.args.query))}")
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
        app.say(f"{record.hash}: {len(record.sources)} source(s); added {escape(app.args.url)}")
    return 0


def _download_progress(app: App, name: str):
    """A rich bar with bytes and rate on a terminal; nothing otherwise."""
    from contextlib import contextmanager

    @contextmanager
    def bar():
        if not app.err.is_terminal:
            yield None
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=app.err, transient=True) as progress:
            task = progress.add_task(escape(name), total=None)
            yield lambda done, total: progress.update(task, completed=done, total=total)

    return bar()


def cmd_models_download(app: App) -> int:
    import time

    from comfydock import model_index
    from comfydock.bundle.sources import redact_url
    from comfydock.model_download import download_model

    args = app.args
    ws = app.workspace()
    started = time.perf_counter()
    with _download_progress(app, args.name or redact_url(args.url).rsplit("/", 1)[-1]) as progress:
        path = download_model(ws, args.url, category=args.category, name=args.name, sha256=args.sha256, progress=progress)
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    records = model_index.find_models(ws.models_db, path.relative_to(ws.models_dir.expanduser().absolute()).as_posix())
    sha256 = records[0].sha256 if records else None
    log.info("models download %s -> %s (%d bytes, %.1fs)", redact_url(args.url), path, size, seconds)
    if app.json:
        app.print_json(
            {"path": str(path), "size": size, "sha256": sha256, "seconds": round(seconds, 3), "url": redact_url(args.url)}
        )
        return 0
    rate = size / seconds / 2**20 if seconds > 0 else 0
    app.say(f"Downloaded {escape(str(path))}: {human_size(size)} in {seconds:.1f}s ({rate:.1f} MiB/s), sha256 {sha256}")
    return 0


def register(sub) -> None:
    models = sub.add_parser(
        "models",
        help="the workspace model index",
        description="Index model files by quick hash, list and find them, record download URLs.",
    )
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    _register_resolve(models_sub)
    p = models_sub.add_parser(
        "index",
        help="index a directory of model files",
        description="Walk DIR (default: the workspace's models directory) and record every model file. Unchanged files "
        "(same size and mtime) are not read again; moved files keep their hash; vanished ones are dropped.",
    )
    p.add_argument("directory", nargs="?", metavar="DIR")
    p.add_argument("--full", action="store_true", help="also compute full SHA256 and Blake3 (read whole files; cached)")
    p.add_argument("--rebuild", action="store_true", help="move the current index aside and start a new one")
    json_option(p)
    p.set_defaults(func=cmd_models_index)
    p = models_sub.add_parser("list", help="list indexed models", description="List indexed models with their locations.")
    p.add_argument("--filter", metavar="PATTERN", help="only paths matching PATTERN (substring, or * and ? wildcards)")
    p.add_argument("--verify", action="store_true", help="check each location still exists unchanged (exit 1 if not)")
    json_option(p)
    p.set_defaults(func=cmd_models_list)
    p = models_sub.add_parser(
        "find",
        help="find models by hash prefix or file name",
        description="Find models by a prefix of their quick, SHA256 or Blake3 hash, or by file name.",
    )
    p.add_argument("query", metavar="HASH-PREFIX|NAME")
    json_option(p)
    p.set_defaults(func=cmd_models_find)
    p = models_sub.add_parser("info", help="show one model", description="Show one model: size, hashes, locations, sources.")
    p.add_argument("hash", metavar="HASH")
    json_option(p)
    p.set_defaults(func=cmd_models_info)
    p = models_sub.add_parser(
        "download",
        help="download a model file into the models directory",
        description="Download a model (Hugging Face …/resolve/REV/PATH, CivitAI /api/download/models/ID, or any URL) into "
        "the models directory: resumable, verified when a hash is known, indexed, its source recorded. Tokens: $HF_TOKEN, "
        "$CIVITAI_API_TOKEN or 'comfydock config hf-token|civitai-token'.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("--category", metavar="FOLDER", help="models folder: checkpoints, loras, vae, … (default: from the source)")
    p.add_argument("--name", metavar="FILE", help="file name to save as (default: from the source)")
    p.add_argument("--sha256", metavar="HEX", help="refuse the file unless its SHA256 is this")
    json_option(p)
    p.set_defaults(func=cmd_models_download)
    p = models_sub.add_parser(
        "add-source",
        help="record a download URL for a model",
        description="Record where a model can be downloaded (CivitAI, Hugging Face, any URL).",
    )
    p.add_argument("hash", metavar="HASH")
    p.add_argument("url", metavar="URL")
    p.add_argument("--type", choices=["civitai", "huggingface", "url"], help="source type (default: from the URL's host)")
    json_option(p)
    p.set_defaults(func=cmd_models_add_source)


def cmd_models_resolve(app: App) -> int:
    from comfydock.versioning import resolve_workflow_models

    args = app.args
    env = app.env()
    interactive = args.interactive or (not args.no_interactive and not app.json and sys.stdin.isatty())
    rows = resolve_workflow_models(env, args.workflow, choose=_prompt_choice(app) if interactive else None)
    if not args.no_lookup:
        _add_sources(app, env.workspace, rows)
    if app.json:
        app.print_json(rows)
        return 0
    for m in rows:
        where = escape(m["path"]) if m.get("path") else m["status"] + (" (skipped)" if m.get("skipped") else "")
        folder = escape(f"[{m.get('directory') or '?'}]")
        app.out.print(f"{escape(m['filename'])} {folder} → {where}")
        for source in m.get("sources", [])[:3]:
            category = f" --category {escape(m['directory'])}" if m.get("directory") else ""
            app.out.print(f"    found on {source['kind']}: comfydock models download {escape(source['url'])}{category}")
    return 0


def _add_sources(app: App, workspace, rows: list[dict]) -> None:
    """Download sources of the unresolved models (CivitAI by name, Hugging Face repositories the
    workflow's model URLs point to), as each row's "sources"."""
    from comfydock.model_sources import SourceFinder

    said = set()

    def warn(message):
        if message not in said:
            said.add(message)
            app.warn_text(message)

    finder = SourceFinder(workspace, warn)
    hints = [m["url"] for m in rows if m.get("url")]
    for m in rows:
        if m["status"] == "unresolved":
            m["sources"] = [s.to_json() for s in finder.find(m["filename"], hint_urls=hints)]


def _register_resolve(models_sub) -> None:
    """`comfydock models resolve WORKFLOW`, under the models command."""
    q = models_sub.add_parser(
        "resolve",
        help="resolve a workflow's models by hand",
        description="Resolve a workflow's model references, asking where unclear.",
    )
    q.add_argument("workflow")
    q.add_argument("--no-interactive", action="store_true", help="never ask")
    q.add_argument("--interactive", action="store_true", help=argparse.SUPPRESS)
    q.add_argument("--no-lookup", action="store_true", help="do not ask CivitAI / Hugging Face where missing models are")
    env_option(q)
    json_option(q)
    q.set_defaults(func=cmd_models_resolve)
