"""Model resolution: which indexed file each model reference of a workflow means.

The spec's hierarchy, first answer wins:
  1. the stored resolution (same node id + widget index + filename) whose file is still indexed;
  2. the exact path `<folder>/<filename>` (or `<filename>`) relative to an indexed models directory;
  3. the same file name inside the folder the node type implies (`checkpoints/`, legacy aliases too);
  4. the same file name anywhere in the index, when it is one model;
  5. otherwise "ambiguous" (several candidates: the caller may ask the user) or "unresolved".
Files of at most 30 MiB are told apart by their full hash when they share a quick hash (the
quick hash only samples the first 5 MiB of such files).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

SMALL_FILE = 30 * 1024 * 1024

# ComfyUI's folder_paths.map_legacy: the old folder names still in use.
FOLDER_ALIASES = {
    "text_encoders": ("clip",),
    "clip": ("text_encoders",),
    "diffusion_models": ("unet",),
    "unet": ("diffusion_models",),
}


@dataclass
class Candidate:
    hash: str
    path: str
    relative_path: str
    size: int

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Resolution:
    node_id: str
    node_type: str
    widget_index: int | str | None
    filename: str
    directory: str | None
    url: str | None
    optional: bool
    status: str  # resolved | unresolved | ambiguous
    hash: str | None = None
    path: str | None = None
    relative_path: str | None = None
    size: int | None = None
    how: str | None = None  # stored | exact | folder | filename | chosen
    candidates: list[Candidate] = field(default_factory=list)
    # resolved to a file outside every folder the loader searches: where ComfyUI looks instead
    expected_path: str | None = None

    def key(self) -> tuple:
        return (self.node_id, str(self.widget_index), self.filename)

    def to_json(self) -> dict:
        data = asdict(self)
        data["candidates"] = [c.to_json() if hasattr(c, "to_json") else c for c in self.candidates]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Resolution":
        data = dict(data)
        data["candidates"] = [Candidate(**c) for c in data.get("candidates") or []]
        return cls(**data)


def stored_choices(entry: dict | None) -> dict[tuple, str]:
    """(node_id, widget_index, filename) -> hash, from a workflow's recorded resolution."""
    found = {}
    for h, info in ((entry or {}).get("models") or {}).items():
        for node in info.get("nodes") or []:
            found[(str(node.get("node_id")), str(node.get("widget_idx")), node.get("filename"))] = h
    return found


def skipped_refs(entry: dict | None) -> set[tuple]:
    """(node_id, widget_index, filename) of the references the user answered 'skip' for: a kept
    answer (commit asks no more; `models resolve` asks again and may pick a file)."""
    return {
        (str(r.get("node_id")), str(r.get("widget_idx")), r.get("filename"))
        for r in (entry or {}).get("unresolved") or []
        if isinstance(r, dict) and r.get("skipped")
    }


class _Index:
    """The few queries resolution needs, against one open model index."""

    def __init__(self, db_path: Path):
        """No index yet: nothing resolves. A file that is not a readable index is an error, never
        an empty index (a commit would record every model as unresolved)."""
        from comfydock.model_index import corrupt_index

        self.conn = None
        if not db_path.exists():
            return
        why = "it cannot be read"
        for query in ("mode=ro", "immutable=1"):  # immutable: a read-only WAL index without its -shm
            try:  # a directory (or another non-file) where the index should be fails here already
                conn = sqlite3.connect(f"{db_path.absolute().as_uri()}?{query}", uri=True, timeout=30)
            except sqlite3.Error as exc:
                why = str(exc)
                continue
            try:
                conn.execute("SELECT 1 FROM model_locations LIMIT 1")
                self.conn = conn
                return
            except sqlite3.Error as exc:
                conn.close()
                why = str(exc)
        raise corrupt_index(db_path, why)

    def close(self):
        if self.conn is not None:
            self.conn.close()

    def _rows(self, where: str, args: tuple) -> list[Candidate]:
        if self.conn is None:
            return []
        rows = self.conn.execute(
            "SELECT l.model_hash, l.base_dir, l.relative_path, m.file_size FROM model_locations l "
            "JOIN models m ON m.hash = l.model_hash WHERE " + where + " ORDER BY l.base_dir, l.relative_path",
            args,
        ).fetchall()
        return [Candidate(h, str(Path(b) / r), r, size) for h, b, r, size in rows]

    def by_hash(self, h: str) -> list[Candidate]:
        return self._rows("l.model_hash = ?", (h,))

    def by_filename(self, filename: str) -> list[Candidate]:
        return self._rows("l.filename = ? COLLATE NOCASE", (PurePosixPath(filename).name,))


def _distinct(cands: list[Candidate]) -> list[Candidate]:
    """One candidate per distinct file content (first location of each hash), split by full hash
    where small files share a quick hash."""
    by_hash: dict[str, list[Candidate]] = {}
    for c in cands:
        by_hash.setdefault(c.hash, []).append(c)
    out = []
    for h, group in by_hash.items():
        if len(group) > 1 and group[0].size <= SMALL_FILE:
            seen: dict[str, Candidate] = {}
            for c in group:
                seen.setdefault(_sha256(c.path), c)
            out.extend(seen.values())
        else:
            out.append(group[0])
    return out


_SHA_CACHE: dict[tuple, str] = {}


def _sha256(path: str) -> str:
    import hashlib
    import os

    try:
        st = os.stat(path)
    except OSError:
        return "missing:" + path
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def _folders(directory: str | None) -> tuple[str, ...]:
    if not directory:
        return ()
    d = directory.strip("/")
    return (d, *FOLDER_ALIASES.get(d, ()))


def expected_path(directory: str | None, filename: str, relative_path: str | None) -> str | None:
    """Where ComfyUI looks for a model file, `<folder>/<filename>`, when the indexed file at
    `relative_path` (relative to an indexed models directory) lies outside every folder its
    loader searches (a VAE moved under `loras/`: ComfyUI will not find it); None when it is in
    one of them, or when the loader's folder is unknown."""
    folders = _folders(directory)
    if not folders or not relative_path:
        return None
    if relative_path.split("/", 1)[0] in folders:
        return None
    from comfydock.fsutil import relative_path_problem

    name = filename.replace("\\", "/")
    if relative_path_problem(name):  # a workflow's text: never a path out of the folder
        name = PurePosixPath(name).name or relative_path.rsplit("/", 1)[-1]
    return f"{folders[0]}/{name}"


def open_index(db_path: Path) -> _Index:
    """The model index opened once for many resolve_refs calls (close() it after)."""
    return _Index(db_path)


def resolve_refs(refs, db_path: Path, entry: dict | None = None, index: _Index | None = None) -> list[Resolution]:
    """Resolve each model reference (analysis ModelRefs) against the index, without asking;
    `index`: one already open (open_index), else the file at db_path is opened for this call."""
    stored = stored_choices(entry)
    own = index is None
    index = _Index(db_path) if own else index
    try:
        return [_resolve_one(ref, index, stored) for ref in refs]
    finally:
        if own:
            index.close()


def _resolve_one(ref, index: _Index, stored: dict) -> Resolution:
    res = Resolution(
        node_id=str(ref.node_id),
        node_type=ref.node_type,
        widget_index=ref.widget_index,
        filename=ref.filename,
        directory=ref.directory,
        url=ref.url,
        optional=bool(ref.optional),
        status="unresolved",
    )
    filename = ref.filename.replace("\\", "/")
    folders = _folders(ref.directory)

    def accept(c: Candidate, how: str) -> Resolution:
        return _resolved(res, c, how)

    by_name = index.by_filename(filename)
    exact_paths = {filename, *(f"{d}/{filename}" for d in folders)}
    exact = [c for c in by_name if c.relative_path in exact_paths]

    chosen = stored.get(res.key())
    if chosen:
        located = index.by_hash(chosen)
        if located:
            pick = [c for c in located if c.relative_path in exact_paths] or located
            distinct = _distinct(pick)
            if len(distinct) == 1 or len({c.hash for c in exact}) == 1:
                return accept(pick[0], "stored")
    for how, group in (
        ("exact", exact),
        ("folder", [c for c in by_name if folders and c.relative_path.split("/", 1)[0] in folders]),
        ("filename", by_name),
    ):
        distinct = _distinct(group)
        if len(distinct) == 1:
            return accept(distinct[0], how)
        if len(distinct) > 1:
            res.status, res.candidates = "ambiguous", distinct
            return res
    return res


def _resolved(res: Resolution, c: Candidate, how: str) -> Resolution:
    res.status, res.hash, res.path, res.relative_path, res.size, res.how = (
        "resolved",
        c.hash,
        c.path,
        c.relative_path,
        c.size,
        how,
    )
    res.candidates = []
    res.expected_path = expected_path(res.directory, res.filename, c.relative_path)
    return res
