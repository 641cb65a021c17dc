"""Export's steps, as the tasks in `tasks/bundle.py` run them: full hashes, source lookups,
comfydock.lock, the bundle; their actions and "up to date" checks. (`exporting.py` runs them.)

State, under the environment's `.comfydock/export/` (never versioned):
  full/<hash>.json      a required model's SHA256, Blake3 and size (also kept in the model index)
  sources/<hash>.json   where it can be downloaded (also recorded in the index's model_sources)
  selection.json        which workflows the last export asked for (absent or null: all)
  comfydock.lock        the lock
  bundle.tar.gz         the bundle (deterministic: same inputs, same bytes)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
from pathlib import Path

from comfydock import manifest
from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json, atomic_write_text

_QUICK_HASH = re.compile(r"[0-9a-f]{16}")
EXPORT_TARGET = "export"

# Full hashes computed (whole files read) by this process: the bench and `export --json` show it.
_counter_lock = threading.Lock()
_full_hashed = [0]


def full_hashes_computed() -> int:
    return _full_hashed[0]


# --- paths ---------------------------------------------------------------------------------


def export_dir(env) -> Path:
    return env.state_dir / "export"


def full_hash_file(env, model_hash: str) -> Path:
    return export_dir(env) / "full" / f"{model_hash}.json"


def source_file(env, model_hash: str) -> Path:
    return export_dir(env) / "sources" / f"{model_hash}.json"


def comfydock_lock_path(env) -> Path:
    return export_dir(env) / "comfydock.lock"


def bundle_file(env) -> Path:
    return export_dir(env) / "bundle.tar.gz"


def selection_file(env) -> Path:
    return export_dir(env) / "selection.json"


# --- what is exported --------------------------------------------------------------------


def required_hashes(env) -> dict[str, dict]:
    """[tool.comfydock.models.required] entries whose key is a quick hash (the manifest is user-editable)."""
    required = manifest.required_models(env.manifest_data())
    return {h: info for h, info in sorted(required.items()) if _QUICK_HASH.fullmatch(h)}


def selection(env) -> list[str] | None:
    try:
        value = json.loads(selection_file(env).read_text())
    except (OSError, ValueError):
        return None
    return sorted(str(v) for v in value) if isinstance(value, list) else None


def set_selection(env, workflows: list[str] | None) -> None:
    """Remember which workflows to export (None: all); rewritten only when it changes."""
    value = sorted(set(workflows)) if workflows else None
    path = selection_file(env)
    if path.exists() and selection(env) == value:
        return
    atomic_write_json(path, value)


def selected_workflows(env) -> dict[str, Path]:
    """The versioned workflow copies the export bundles (all, or the selection)."""
    from comfydock.workflows import tracking

    current = tracking.comfyui_workflows(env)  # a copy whose workflow is gone is not exported
    copies = {name: path for name, path in tracking.versioned_copies(env).items() if name in current}
    chosen = selection(env)
    if chosen is None:
        return copies
    return {name: path for name, path in copies.items() if name in chosen}


def selected_hashes(env) -> dict[str, dict]:
    """Required models of the selected workflows (all required models when nothing is selected)."""
    required = required_hashes(env)
    chosen = selection(env)
    if chosen is None:
        return required
    entries = manifest.workflow_entries(env.manifest_data())
    wanted: set[str] = set()
    for name in chosen:
        for h, info in ((entries.get(name) or {}).get("models") or {}).items():
            if any(not n.get("optional") for n in info.get("nodes") or []):
                wanted.add(h)
    return {h: info for h, info in required.items() if h in wanted}


# --- full_hash:<hash> ---------------------------------------------------------------------


def _index_row(db_path: Path, model_hash: str):
    if not db_path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute("SELECT sha256_hash, blake3_hash, file_size FROM models WHERE hash = ?", (model_hash,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def full_hash(env, model_hash: str, target: Path) -> None:
    """SHA256 + Blake3 of a required model: from the index when known, else one read of the file
    (stored in the index, so no later export reads it again while the file is unchanged)."""
    from comfydock import model_index
    from comfydock.hashing import full_hashes

    db = env.workspace.models_db
    conn = model_index.open_index(db)
    try:
        row = conn.execute("SELECT sha256_hash, blake3_hash, file_size FROM models WHERE hash = ?", (model_hash,)).fetchone()
        if row and row[0] and row[1]:
            atomic_write_json(target, {"hash": model_hash, "sha256": row[0], "blake3": row[1], "size": row[2]})
            return
        locations = conn.execute(
            "SELECT base_dir, relative_path, file_size, mtime FROM model_locations WHERE model_hash = ? "
            "ORDER BY base_dir, relative_path",
            (model_hash,),
        ).fetchall()
        for base, rel, size, mtime in locations:
            path = Path(base) / rel
            try:
                st = path.stat()
                if (st.st_size, st.st_mtime_ns) != (size, mtime):
                    continue  # changed since it was indexed: its quick hash may not be ours any more
                sha, b3, read = full_hashes(path)
                st = path.stat()
            except OSError:
                continue
            if read != size or (st.st_size, st.st_mtime_ns) != (size, mtime):
                continue
            conn.execute("UPDATE models SET sha256_hash = ?, blake3_hash = ? WHERE hash = ?", (sha, b3, model_hash))
            with _counter_lock:
                _full_hashed[0] += 1
            atomic_write_json(target, {"hash": model_hash, "sha256": sha, "blake3": b3, "size": size})
            return
    finally:
        conn.close()
    name = (required_hashes(env).get(model_hash) or {}).get("relative_path", model_hash)
    raise ComfydockError(
        f"model {name} ({model_hash}) is not on disk as the index last saw it, so its full hash cannot be computed",
        hint="run 'comfydock models index' (or put the file back), then export again",
    )


def full_hash_uptodate(task, values, env, model_hash: str, target: Path) -> bool:
    try:
        recorded = json.loads(target.read_text())
    except (OSError, ValueError):
        return False
    row = _index_row(env.workspace.models_db, model_hash)
    return bool(row and row[0] and row[1]) and (recorded.get("sha256"), recorded.get("blake3")) == (row[0], row[1])


# --- lookup_source:<hash> -----------------------------------------------------------------


def _index_sources(db_path: Path, model_hash: str) -> list[tuple[str, str]]:
    if not db_path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            return [
                (t, u)
                for t, u in conn.execute(
                    "SELECT source_type, source_url FROM model_sources WHERE model_hash = ? ORDER BY id", (model_hash,)
                )
            ]
        finally:
            conn.close()
    except sqlite3.Error:
        return []


def _lookup_inputs(env, model_hash: str) -> list:
    declared = sorted(str(u) for u in (required_hashes(env).get(model_hash) or {}).get("urls") or [])
    return [
        [list(row) for row in _index_sources(env.workspace.models_db, model_hash)],  # as doit stores it (JSON)
        declared,
        env.workspace.setting("civitai-url"),
        env.workspace.setting("huggingface-url"),
    ]


def record_sources(env, model_hash: str, urls: list[tuple[str, str]]) -> None:
    import time

    from comfydock import model_index

    if not urls:
        return
    conn = model_index.open_index(env.workspace.models_db)
    try:
        if conn.execute("SELECT 1 FROM models WHERE hash = ?", (model_hash,)).fetchone() is None:
            return
        for kind, url in urls:
            conn.execute(
                "INSERT INTO model_sources (model_hash, source_type, source_url, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(model_hash, source_url) DO NOTHING",
                (model_hash, kind, url, time.time()),
            )
    finally:
        conn.close()


def lookup_source(env, model_hash: str, full: Path, target: Path) -> dict:
    """Where a model can be downloaded. In order: sources already in the index, URLs the workflow
    declares, CivitAI by SHA256, Hugging Face URLs recorded earlier. Results go into the index.

    A lookup that gets no answer (offline, an outage) does not stop the export: the model goes
    without a URL, the reason is kept in the target ("failed", see failed_lookups), and nothing
    is returned for lookup_uptodate to match, so the next export asks again."""
    from comfydock.bundle.download import workspace_tokens
    from comfydock.bundle.sources import LookupUnavailable, civitai_lookup, url_problem
    from comfydock.http import ANSWER_DEADLINE_MAX
    from comfydock.limits import download_seconds
    from comfydock.model_index import source_type

    ws = env.workspace
    civitai_base = ws.setting("civitai-url")
    sha256 = json.loads(full.read_text())["sha256"]
    known = [(t, u) for t, u in _index_sources(ws.models_db, model_hash) if url_problem(u) is None]
    declared = [u for u in (required_hashes(env).get(model_hash) or {}).get("urls") or [] if url_problem(u) is None]
    urls: list[str] = []
    via = None
    failed = None
    first = [u for t, u in known if t != "huggingface"] + declared
    if first:
        urls, via = first, "index" if known else "workflow"
    else:
        token = workspace_tokens(ws).get(_host(civitai_base))
        try:
            found = civitai_lookup(sha256, civitai_base, token=token, seconds=min(download_seconds(ws), ANSWER_DEADLINE_MAX))
        except LookupUnavailable as e:
            found, failed = None, e.message
        if found:
            urls, via = found, "civitai"
        elif not failed:
            urls, via, failed = _found_by_name(env, model_hash, sha256, known)
    if not urls:
        urls = [u for t, u in known if t == "huggingface"]
        via = "huggingface" if urls else None
    urls = list(dict.fromkeys(urls))
    new = [(("civitai" if via == "civitai" else source_type(u)), u) for u in urls if u not in {k for _, k in known}]
    record_sources(env, model_hash, new)
    if failed and not urls:
        atomic_write_json(target, {"hash": model_hash, "urls": [], "via": None, "failed": failed})
        return {"failed": failed}  # no "inputs": not up to date, the next export retries
    atomic_write_json(target, {"hash": model_hash, "urls": urls, "via": via})
    return {"inputs": _lookup_inputs(env, model_hash)}


def _found_by_name(env, model_hash: str, sha256: str, known) -> tuple[list[str], str | None, str | None]:
    """(URLs, via, failure) of files with the model's name and SHA256 on CivitAI or in the Hugging Face
    repositories the workflows' model URLs point to."""
    from comfydock.model_sources import SourceFinder

    required = required_hashes(env)
    info = required.get(model_hash) or {}
    name = str(info.get("filename") or str(info.get("relative_path") or "").rsplit("/", 1)[-1])
    if not name:
        return [], None, None
    hints = [u for entry in required.values() for u in entry.get("urls") or []] + [u for t, u in known if t == "huggingface"]
    problems = []
    finder = SourceFinder(env.workspace, problems.append, strict=True)
    found = [s for s in finder.find(name, sha256=sha256, hint_urls=hints, by_hash=False) if s.sha256 == sha256]
    urls = [s.url for s in found]
    return urls, (found[0].kind if found else None), (problems[0] if problems and not urls else None)


def failed_lookups(env) -> list[dict]:
    """Exported models whose source lookup got no answer this time: hash, name, path, error."""
    out = []
    for h, req in selected_hashes(env).items():
        try:
            recorded = json.loads(source_file(env, h).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(recorded, dict) and isinstance(recorded.get("failed"), str):
            rel = str(req.get("relative_path") or "")
            name = str(req.get("filename") or rel.rsplit("/", 1)[-1])
            out.append({"hash": h, "name": name, "path": rel, "error": recorded["failed"]})
    return out


def _host(url: str) -> str:
    from comfydock.bundle.sources import host_key

    return host_key(url)


def lookup_uptodate(task, values, env, model_hash: str) -> bool:
    return "inputs" in values and values["inputs"] == _lookup_inputs(env, model_hash)


# --- write_lock ----------------------------------------------------------------------------


def _node_url(url: str | None) -> str | None:
    from comfydock.bundle.lockfile import URL_SCHEMES
    from comfydock.bundle.sources import url_problem

    return url if url and url_problem(url, URL_SCHEMES) is None else None


def build_lock(env):
    from comfydock.bundle.lockfile import ComfyUIPin, LockedModel, LockedNode, Lockfile
    from comfydock.nodes.spec import tracked_nodes

    data = env.manifest_data()
    info = manifest.environment_info(data)
    models = []
    for h, req in selected_hashes(env).items():
        full = json.loads(full_hash_file(env, h).read_text())
        try:
            urls = json.loads(source_file(env, h).read_text()).get("urls") or []
        except (OSError, ValueError):
            urls = []
        rel = str(req.get("relative_path") or "")
        models.append(
            LockedModel(
                hash=h,
                name=str(req.get("filename") or rel.rsplit("/", 1)[-1]),
                path=rel,
                sha256=full["sha256"],
                blake3=full["blake3"],
                size=int(full["size"]),
                urls=tuple(urls),
            )
        )
    nodes = []
    for spec in tracked_nodes(data).values():
        url = _node_url(spec.url)
        if spec.source == "git" and url is None:
            raise ComfydockError(
                f"node {spec.id}: its git URL {spec.url!r} cannot go into a bundle (only http(s) and file URLs, no credentials)",
                hint=f"re-add it from an https URL: 'comfydock node remove {spec.id}' then 'comfydock node add https://…'",
            )
        nodes.append(
            LockedNode(
                id=spec.id,
                method=spec.source,
                directory=spec.directory,
                version=spec.version if spec.source == "registry" else None,
                url=url,
                ref=spec.ref if spec.source == "git" else None,
                commit=spec.commit if spec.source == "git" else None,
                registry_id=spec.registry_id if spec.source == "registry" and spec.registry_id != spec.id else None,
            )
        )
    comfyui = (
        ComfyUIPin(str(info["comfyui_commit"]), str(info.get("comfyui_version") or "") or None)
        if info.get("comfyui_commit")
        else None
    )
    return Lockfile(models=tuple(models), nodes=tuple(nodes), comfyui=comfyui, python_version=info.get("python_version"))


def write_lock(env, target: Path) -> dict:
    from comfydock.bundle import lockfile

    text = lockfile.dumps(build_lock(env))
    try:
        same = target.read_text(encoding="utf-8") == text
    except OSError:
        same = False
    if not same:
        atomic_write_text(target, text)
    return {"selection": selection(env)}


def selection_uptodate(task, values, env) -> bool:
    return "selection" in values and values.get("selection") == selection(env)


# --- bundle ------------------------------------------------------------------------------


def dev_nodes(env) -> list:

    return sorted((s for s in env.tracked_nodes().values() if s.source == "development"), key=lambda s: s.directory)


def bundle_members(env) -> tuple[dict[str, Path], list[str]]:
    from comfydock.bundle.archive import dev_node_files

    members: dict[str, Path] = {
        "pyproject.toml": env.pyproject_path,
        "uv.lock": env.uv_lock_path,
        "comfydock.lock": comfydock_lock_path(env),
    }
    for name, path in selected_workflows(env).items():
        members[f"workflows/{name}.json"] = path
    skipped: list[str] = []
    for spec in dev_nodes(env):
        root = env.custom_nodes_dir / spec.directory
        if not root.is_dir():
            raise ComfydockError(
                f"development node {spec.id}: custom_nodes/{spec.directory} is missing",
                hint="put it back, or stop tracking it: 'comfydock node remove " + spec.id + "'",
            )
        files, links = dev_node_files(root, f"dev_nodes/{spec.directory}")
        members.update(files)
        skipped += [f"custom_nodes/{spec.directory}/{s}" for s in links]
    return members, skipped


def _dev_snapshot(env) -> str:
    h = hashlib.sha1()
    for spec in dev_nodes(env):
        root = env.custom_nodes_dir / spec.directory
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in (".git", "__pycache__"))
            for f in sorted(filenames):
                p = os.path.join(dirpath, f)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def write_bundle_task(env, target: Path) -> dict:
    from comfydock.bundle.archive import write_bundle

    members, skipped = bundle_members(env)
    write_bundle(members, target)
    atomic_write_json(export_dir(env) / "skipped.json", skipped)
    return {"dev": _dev_snapshot(env), "selection": selection(env), "skipped": skipped}


def bundle_uptodate(task, values, env) -> bool:
    return values.get("dev") == _dev_snapshot(env) and "selection" in values and values.get("selection") == selection(env)
