"""The workspace model index: a SQLite file of model files by quick hash, kept up to date incrementally.

Tables (see the spec's Model Index Schema): `models` (one row per distinct quick hash, with
full hashes once computed), `model_locations` (every place a model file was seen),
`model_sources` (download URLs), `index_stamps` (what each indexed directory tree looked like
when an index run completed: the model index task's cheap up-to-date check), `schema_info`
(schema version, migrated forward on open).
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import sqlite3
import stat
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from comfydock.errors import ComfydockError, CorruptFile, UsageError
from comfydock.hashing import full_hashes, quick_hash, quick_hash_sample_ranges

# What counts as a model file: ComfyUI's supported_pt_extensions plus GGUF and ONNX.
# Everything else (previews, .txt, .yaml, .json, ...) is never indexed.
MODEL_EXTENSIONS = frozenset({".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".gguf", ".onnx"})

SCHEMA_VERSION = 2
# the oldest schema whose tables a reader reads as they are (2 only added index_stamps)
_READABLE_FROM = 1
_MIGRATIONS = {
    1: """
    CREATE TABLE models (
        hash TEXT PRIMARY KEY,
        file_size INTEGER NOT NULL,
        sha256_hash TEXT,
        blake3_hash TEXT,
        last_modified INTEGER,
        indexed_at REAL NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE model_locations (
        id INTEGER PRIMARY KEY,
        model_hash TEXT NOT NULL REFERENCES models(hash) ON DELETE CASCADE,
        base_dir TEXT NOT NULL,
        relative_path TEXT NOT NULL,
        filename TEXT NOT NULL,
        file_size INTEGER NOT NULL,
        mtime INTEGER NOT NULL,
        inode INTEGER,
        device INTEGER,
        last_seen REAL NOT NULL,
        UNIQUE (base_dir, relative_path)
    );
    CREATE INDEX model_locations_hash ON model_locations(model_hash);
    CREATE INDEX model_locations_filename ON model_locations(filename);
    CREATE TABLE model_sources (
        id INTEGER PRIMARY KEY,
        model_hash TEXT NOT NULL REFERENCES models(hash) ON DELETE CASCADE,
        source_type TEXT NOT NULL,
        source_url TEXT NOT NULL,
        added_at REAL NOT NULL,
        UNIQUE (model_hash, source_url)
    );
    """,
    2: """
    CREATE TABLE index_stamps (
        base_dir TEXT PRIMARY KEY,
        stamp TEXT NOT NULL,
        recorded_at REAL NOT NULL
    );
    """,
}
# the tables each schema version has (a file missing one of them is damaged, not an empty index)
_TABLES = {1: {"models", "model_locations", "model_sources"}, 2: {"models", "model_locations", "model_sources", "index_stamps"}}
_BATCH_FILES = 500
_BATCH_SECONDS = 2.0


# --- opening ---------------------------------------------------------------------------


class _CannotWrite(ComfydockError):
    """The index (or its directory) is read-only for this process."""

    def __init__(self, path: Path, why: str):
        super().__init__(
            f"cannot write the model index {path} ({why})",
            hint="the index or its directory is read-only for you: check its permissions, or use a writable workspace",
        )


def _cannot_write(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in {errno.EACCES, errno.EPERM, errno.EROFS}
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("readonly" in text or "unable to open" in text)


def open_reader(path: Path) -> sqlite3.Connection:
    """Open the index for reading: like open_index, but a read-only index (a read-only disk, a
    workspace owned by someone else) is read as it is instead of being called damaged."""
    _refuse_non_file(path)
    try:
        return open_index(path)
    except _CannotWrite:
        pass
    if not path.exists():
        raise ComfydockError(f"no model index at {path}", hint="index models first: 'comfydock models index'")
    last: Exception | None = None
    for query in ("mode=ro", "immutable=1"):  # immutable: a WAL index whose -shm cannot be created
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?{query}", uri=True, timeout=30, isolation_level=None)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_info" not in tables:
                raise corrupt_index(path, "it is an SQLite file of something else")
            (version,) = conn.execute("SELECT version FROM schema_info").fetchone() or (0,)
            if not _READABLE_FROM <= version <= SCHEMA_VERSION:
                raise ComfydockError(
                    f"{path} is read-only and has schema {version} (this comfydock reads {SCHEMA_VERSION})",
                    hint="run 'comfydock models index' where the index is writable, to bring it up to date",
                )
            problem = _missing_table(conn, version)
            if problem:
                raise corrupt_index(path, problem)
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            last = exc
        except BaseException:
            conn.close()
            raise
    raise corrupt_index(path, str(last))


def open_index(path: Path) -> sqlite3.Connection:
    """Open (creating or migrating forward) the index; a foreign or corrupt file is an error."""
    _refuse_non_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except (OSError, sqlite3.OperationalError) as exc:
        if _cannot_write(exc):
            raise _CannotWrite(path, getattr(exc, "strerror", None) or str(exc)) from None
        raise
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_info" not in tables:
            if tables:
                raise corrupt_index(path, "it is an SQLite file of something else")
            current = 0
        else:
            row = conn.execute("SELECT version FROM schema_info").fetchone()
            current = row[0] if row else 0
        if current > SCHEMA_VERSION:
            raise ComfydockError(
                f"{path} was written by a newer comfydock (schema {current}, this one knows {SCHEMA_VERSION})",
                hint="upgrade comfydock, or run 'comfydock models index --rebuild' to start a new index",
            )
        if current < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            # re-read under the write lock: another process may have migrated meanwhile
            row = conn.execute("SELECT version FROM schema_info").fetchone() if _has_schema_info(conn) else None
            current = row[0] if row else 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                # statement by statement: executescript() would commit half a migration
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            if not _has_schema_info(conn):
                conn.execute("CREATE TABLE schema_info (version INTEGER NOT NULL)")
            conn.execute("DELETE FROM schema_info")
            conn.execute("INSERT INTO schema_info (version) VALUES (?)", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        problem = _missing_table(conn, SCHEMA_VERSION)
        if problem:
            raise corrupt_index(path, problem)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _cannot_write(exc):
            raise _CannotWrite(path, str(exc)) from None
        raise corrupt_index(path, str(exc)) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _missing_table(conn, version: int) -> str | None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = sorted(_TABLES.get(version, set()) - tables)
    return f"its table {missing[0]} is missing" if missing else None


def _refuse_non_file(path: Path) -> None:
    """A folder (or anything but a file) where the index goes: SQLite would only say 'unable to open'."""
    if (path.exists() or path.is_symlink()) and not path.is_file():
        raise corrupt_index(path, "it is not a file")


def _has_schema_info(conn) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_info'").fetchone() is not None


def corrupt_index(path: Path, why: str) -> CorruptFile:
    return CorruptFile(
        f"{path} is not a comfydock model index ({why})",
        hint="run 'comfydock models index --rebuild' (the old file is kept beside it)",
    )


def rebuild_index(path: Path) -> Path | None:
    """Move the current index aside (never deleted) so the next open starts a new one."""
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.replace(extra, aside.with_name(aside.name + suffix))
    return aside


# --- walking ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileEntry:
    rel: str  # POSIX path relative to the indexed directory
    size: int
    mtime: int  # st_mtime_ns
    device: int
    inode: int


def walk_models(root: Path, warn=lambda msg: None, directories: list | None = None) -> list[FileEntry]:
    """Model files under `root`. Follows links (a models tree often links to other disks),
    never loops (directories are visited once by device+inode), skips hidden directories.
    `directories`, if given, gets [path, device, inode, mtime_ns, ctime_ns] of every directory
    walked, as stat saw it before listing it (see tree_stamp)."""
    found: list[FileEntry] = []
    visited: set[tuple[int, int]] = set()
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            st = os.stat(directory)
        except OSError as exc:
            warn(f"skipped {directory}: {exc.strerror or exc}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            continue  # a link back into the tree (or a loop): already walked
        visited.add(key)
        if directories is not None:
            directories.append([directory, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns])
        try:
            it = os.scandir(directory)
        except OSError as exc:
            warn(f"skipped {directory}: {exc.strerror or exc}")
            continue
        with it:
            for entry in it:
                name = entry.name
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    if not name.startswith("."):
                        stack.append((entry.path, f"{prefix}{name}/"))
                    continue
                if os.path.splitext(name)[1].lower() not in MODEL_EXTENSIONS:
                    continue
                try:
                    fst = entry.stat()
                except OSError as exc:
                    warn(f"skipped {entry.path}: {exc.strerror or exc}")
                    continue
                if stat.S_ISREG(fst.st_mode):
                    found.append(FileEntry(prefix + name, fst.st_size, fst.st_mtime_ns, fst.st_dev, fst.st_ino))
    return found


# A directory changed this close to the walk (or on a file system that keeps whole seconds)
# might change again within the same timestamp tick unseen: such a walk records no stamp.
_RACY_NS = 20_000_000
_RACY_COARSE_NS = 2_000_000_000
# Files written this recently before a walk (a download still going or paused, a file being
# rewritten in place) are stat'ed by the check too: writing a file leaves its directory's times.
_RECENT_NS = 600 * 1_000_000_000


def _racy(directories: list, walk_started_ns: int) -> bool | None:
    """Did a directory change too close to the walk to tell a later change by its times?
    None: yes, on a file system that keeps whole seconds (waiting that out is too slow)."""
    racy: bool | None = False
    for _, _, _, mtime, ctime in directories:
        for t in (mtime, ctime):
            if t % 1_000_000_000 == 0 and t >= walk_started_ns - _RACY_COARSE_NS:
                return None
            if t >= walk_started_ns - _RACY_NS:
                racy = True
    return racy


def _tree_stamp(root: Path, entries: list[FileEntry], directories: list, walk_started_ns: int) -> dict | None:
    """What index_is_current compares with, or None when the tree cannot be vouched for.

    A directory changed just before the walk (a model just copied in) is walked again once its
    timestamp tick has passed: the same files, and its times are then safe to compare."""
    racy = _racy(directories, walk_started_ns)
    if racy is None:
        return None
    if racy:
        newest = max(max(d[3], d[4]) for d in directories)
        delay = newest + _RACY_NS - time.time_ns()
        if delay > _RACY_NS:
            return None  # times from the future (another machine's clock): cannot tell
        if delay > 0:
            time.sleep(delay / 1e9)
        again_started = time.time_ns()
        again_dirs: list = []
        again = walk_models(root, directories=again_dirs)
        if set(again) != set(entries) or _racy(again_dirs, again_started) is not False:
            return None  # it changed meanwhile: the next run indexes it
        directories = again_dirs
    recent = [[str(root / e.rel), e.size, e.mtime] for e in entries if e.mtime >= walk_started_ns - _RECENT_NS]
    return {"directories": directories, "files": recent}


def index_is_current(db_path: Path, root: Path) -> bool:
    """True when the last completed index run of `root` saw the tree as it is now: no directory
    in it gained, lost or renamed an entry since, no file written within ten minutes before that
    run changed, and every indexed file still has the size and mtime it was indexed with (one
    stat per directory and per file; nothing is listed or read). A model rewritten in place,
    which its directory's times do not show, is seen by that last comparison."""
    root = root.expanduser().absolute()
    if not db_path.exists():
        return False
    stamp, files = None, []
    for query in ("mode=ro", "immutable=1"):  # immutable: a read-only WAL index without its -shm
        try:
            conn = sqlite3.connect(f"{db_path.absolute().as_uri()}?{query}", uri=True, timeout=30)
            try:
                row = conn.execute("SELECT stamp FROM index_stamps WHERE base_dir = ?", (str(root),)).fetchone()
                files = conn.execute(
                    "SELECT relative_path, file_size, mtime FROM model_locations WHERE base_dir = ?", (str(root),)
                ).fetchall()
            finally:
                conn.close()
            stamp = json.loads(row[0]) if row else None
            break
        except sqlite3.OperationalError:
            continue  # no stamp table yet (an older schema), or the file cannot be opened so
        except (sqlite3.Error, ValueError):
            return False  # a damaged index: index again
    try:
        if not stamp["directories"]:
            return False
        for path, device, inode, mtime, ctime in stamp["directories"]:
            st = os.stat(path)
            if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns) != (device, inode, mtime, ctime):
                return False
        for path, size, mtime in stamp["files"]:
            st = os.stat(path)
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                return False
        prefix = str(root) + os.sep
        for rel, size, mtime in files:
            st = os.stat(prefix + rel)
            if st.st_size != size or st.st_mtime_ns != mtime:
                return False
    except (OSError, TypeError, ValueError, KeyError):
        return False  # a directory or file gone, or a stamp this comfydock cannot read
    return True


# --- indexing --------------------------------------------------------------------------


@dataclass
class IndexResult:
    directory: str
    files_seen: int = 0
    files_unchanged: int = 0
    files_hashed: int = 0
    files_moved: int = 0
    locations_removed: int = 0
    full_hashed: int = 0
    bytes_read: int = 0
    models: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


class _Unstable(Exception):
    pass


def _stable_quick_hash(path: str, size: int, mtime: int) -> tuple[str, int, int, int]:
    """Quick hash of a file that did not change while it was read (one retry on change)."""
    read_total = 0
    for _ in range(2):
        digest, n = quick_hash(path)
        read_total += n
        st = os.stat(path)
        if (st.st_size, st.st_mtime_ns) == (size, mtime):
            return digest, size, mtime, read_total
        size, mtime = st.st_size, st.st_mtime_ns
    raise _Unstable(path)


def _sampled_bytes(size: int) -> int:
    return sum(length for _, length in quick_hash_sample_ranges(size))


def default_workers() -> int:
    return max(2, min(8, (os.cpu_count() or 2) * 2))


def index_directory(
    db_path: Path,
    root: Path,
    *,
    full: bool = False,
    workers: int | None = None,
    progress=None,
    warn=lambda msg: None,
    on_wait=None,
) -> IndexResult:
    """Bring the index in line with `root`: hash new and changed files, follow moves, drop vanished.

    `progress(kind, done_files, total_files, done_bytes, total_bytes)` is called as work goes.
    Results are committed in batches (each batch a consistent set of rows), so Ctrl-C keeps
    what was done and the next run continues from there.
    """
    from comfydock.process_lock import process_lock

    root = root.expanduser().absolute()
    if not root.is_dir():
        what = "is a file, not a directory" if root.is_file() else "does not exist"
        raise ComfydockError(
            f"models directory {root} {what}", hint="pass an existing directory, or 'comfydock config models-dir DIR'"
        )
    started = time.perf_counter()
    result = IndexResult(str(root))

    def _warn(msg):
        result.skipped.append(msg)
        warn(msg)

    with process_lock(db_path.with_name(db_path.name + ".lock"), on_wait=on_wait):
        conn = open_index(db_path)
        try:
            _index(conn, root, result, full, workers or default_workers(), progress, _warn)
        finally:
            conn.close()
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _index(conn, root: Path, result: IndexResult, full: bool, workers: int, progress, warn) -> None:
    base = str(root)
    walk_started_ns = time.time_ns()
    directories: list = []
    entries = walk_models(root, warn, directories)
    result.files_seen = len(entries)
    known = {
        row[0]: row
        for row in conn.execute(
            "SELECT relative_path, model_hash, file_size, mtime, inode, device FROM model_locations WHERE base_dir = ?",
            (base,),
        )
    }
    seen = {e.rel for e in entries}
    vanished = {rel: row for rel, row in known.items() if rel not in seen}
    by_identity = {(row[5], row[4], row[2], row[3]): rel for rel, row in vanished.items()}

    now = time.time()
    unchanged: list[str] = []
    moves: list[tuple[str, str, FileEntry]] = []  # (old rel, model hash, new entry)
    to_hash: list[FileEntry] = []
    for e in entries:
        row = known.get(e.rel)
        if row is not None and (row[2], row[3]) == (e.size, e.mtime):
            unchanged.append(e.rel)
            continue
        if row is None:
            old = by_identity.pop((e.device, e.inode, e.size, e.mtime), None)
            if old is not None:  # renamed or moved inside the tree: same inode, same content
                moves.append((old, vanished.pop(old)[1], e))
                continue
        to_hash.append(e)
    result.files_unchanged = len(unchanged)

    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE model_locations SET last_seen = ? WHERE base_dir = ?", (now, base))
    for old, model_hash, e in moves:
        conn.execute(
            "UPDATE model_locations SET relative_path = ?, filename = ?, last_seen = ? WHERE base_dir = ? AND relative_path = ?",
            (e.rel, os.path.basename(e.rel), now, base, old),
        )
    result.files_moved = len(moves)
    conn.execute("COMMIT")

    total_bytes = sum(_sampled_bytes(e.size) for e in to_hash)
    done_bytes = 0
    pending: list[tuple[FileEntry, str, int, int]] = []
    last_commit = time.monotonic()
    if progress:
        progress("hash", 0, len(to_hash), 0, total_bytes)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_stable_quick_hash, str(root / e.rel), e.size, e.mtime): e for e in to_hash}
            for n, fut in enumerate(as_completed(futures), 1):
                e = futures[fut]
                try:
                    digest, size, mtime, read = fut.result()
                except FileNotFoundError:
                    warn(f"skipped {root / e.rel}: it vanished while being indexed")
                    continue
                except _Unstable:
                    warn(f"skipped {root / e.rel}: it kept changing while being read (still being written?)")
                    continue
                except OSError as exc:
                    warn(f"skipped {root / e.rel}: {exc.strerror or exc}")
                    continue
                result.files_hashed += 1
                result.bytes_read += read
                done_bytes += _sampled_bytes(e.size)
                pending.append((e, digest, size, mtime))
                if len(pending) >= _BATCH_FILES or time.monotonic() - last_commit > _BATCH_SECONDS:
                    _write_batch(conn, base, pending, now)
                    pending.clear()
                    last_commit = time.monotonic()
                if progress:
                    progress("hash", n, len(to_hash), done_bytes, total_bytes)
    finally:
        # Ctrl-C included: what was hashed is kept, so the next run continues from here
        if pending:
            _write_batch(conn, base, pending, now)

    conn.execute("BEGIN IMMEDIATE")
    for rel in vanished:
        conn.execute("DELETE FROM model_locations WHERE base_dir = ? AND relative_path = ?", (base, rel))
    result.locations_removed = len(vanished)
    _drop_orphans(conn)
    conn.execute("COMMIT")
    # what index_is_current compares with: the tree as this run saw it, recorded only when every
    # file of it is in (nothing skipped)
    stamp = None if result.skipped else _tree_stamp(root, entries, directories, walk_started_ns)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM index_stamps WHERE base_dir = ?", (base,))
    if stamp is not None:
        conn.execute(
            "INSERT INTO index_stamps (base_dir, stamp, recorded_at) VALUES (?, ?, ?)",
            (base, json.dumps(stamp), time.time()),
        )
    conn.execute("COMMIT")

    if full:
        _full_hash_missing(conn, root, result, workers, progress, warn)
    result.models = conn.execute("SELECT COUNT(DISTINCT model_hash) FROM model_locations WHERE base_dir = ?", (base,)).fetchone()[
        0
    ]


def _write_batch(conn, base: str, batch, now: float) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for e, digest, size, mtime in batch:
        previous = conn.execute(
            "SELECT model_hash, mtime FROM model_locations WHERE base_dir = ? AND relative_path = ?", (base, e.rel)
        ).fetchone()
        conn.execute(
            "INSERT INTO models (hash, file_size, last_modified, indexed_at) VALUES (?, ?, ?, ?) ON CONFLICT(hash) DO NOTHING",
            (digest, size, mtime, now),
        )
        if previous is not None and previous[0] == digest and previous[1] != mtime:
            # same samples, new file version: the unsampled bytes may differ, full hashes are stale
            conn.execute("UPDATE models SET sha256_hash = NULL, blake3_hash = NULL WHERE hash = ?", (digest,))
        conn.execute(
            "INSERT INTO model_locations (model_hash, base_dir, relative_path, filename, file_size, mtime, inode, device, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(base_dir, relative_path) DO UPDATE SET model_hash = excluded.model_hash, "
            "file_size = excluded.file_size, mtime = excluded.mtime, inode = excluded.inode, "
            "device = excluded.device, last_seen = excluded.last_seen",
            (digest, base, e.rel, os.path.basename(e.rel), size, mtime, e.inode, e.device, now),
        )
    _drop_orphans(conn)
    conn.execute("COMMIT")


def _drop_orphans(conn) -> None:
    """Models no file points at any more are forgotten, unless a download URL is known for them."""
    conn.execute(
        "DELETE FROM models WHERE hash NOT IN (SELECT model_hash FROM model_locations) "
        "AND hash NOT IN (SELECT model_hash FROM model_sources)"
    )


def _full_hash_missing(conn, root: Path, result: IndexResult, workers: int, progress, warn) -> None:
    rows = conn.execute(
        "SELECT m.hash, l.relative_path, l.file_size, l.mtime FROM models m "
        "JOIN model_locations l ON l.model_hash = m.hash "
        "WHERE l.base_dir = ? AND (m.sha256_hash IS NULL OR m.blake3_hash IS NULL) GROUP BY m.hash",
        (str(root),),
    ).fetchall()
    total = sum(r[2] for r in rows)
    done = 0
    if progress:
        progress("full", 0, len(rows), 0, total)
    # Full hashes read whole files: two at a time keeps the disk streaming; Blake3 uses all cores.
    with ThreadPoolExecutor(max_workers=min(2, workers)) as pool:
        futures = {pool.submit(full_hashes, str(root / rel)): (h, rel, size, mtime) for h, rel, size, mtime in rows}
        for n, fut in enumerate(as_completed(futures), 1):
            model_hash, rel, size, mtime = futures[fut]
            try:
                sha, b3, read = fut.result()
                st = os.stat(root / rel)
            except OSError as exc:
                warn(f"full hash of {root / rel} failed: {exc.strerror or exc}")
                continue
            if (st.st_size, st.st_mtime_ns) != (size, mtime) or read != size:
                warn(f"skipped full hash of {root / rel}: it changed while being read")
                continue
            conn.execute("UPDATE models SET sha256_hash = ?, blake3_hash = ? WHERE hash = ?", (sha, b3, model_hash))
            result.full_hashed += 1
            result.bytes_read += read
            done += size
            if progress:
                progress("full", n, len(rows), done, total)


# --- queries ---------------------------------------------------------------------------


@dataclass
class ModelRecord:
    hash: str
    file_size: int
    sha256: str | None
    blake3: str | None
    locations: list[dict]
    sources: list[dict]
    metadata: dict

    def to_json(self) -> dict:
        return asdict(self)


def _records(conn, hashes: list[str] | None = None) -> list[ModelRecord]:
    """Models with at least one location (all, or those in `hashes`), in three queries in all."""
    where, args = "", ()
    if hashes is not None:
        if not hashes:
            return []
        where, args = f" WHERE model_hash IN ({', '.join('?' * len(hashes))})", tuple(hashes)
    locations: dict[str, list[dict]] = {}
    for h, b, r, f, m in conn.execute(
        "SELECT model_hash, base_dir, relative_path, filename, mtime FROM model_locations"
        + where
        + " ORDER BY base_dir, relative_path",
        args,
    ):
        locations.setdefault(h, []).append(
            {"path": str(Path(b) / r), "base_dir": b, "relative_path": r, "filename": f, "mtime": m}
        )
    sources: dict[str, list[dict]] = {}
    for h, t, u in conn.execute("SELECT model_hash, source_type, source_url FROM model_sources" + where + " ORDER BY id", args):
        sources.setdefault(h, []).append({"type": t, "url": u})
    records = []
    model_where = where.replace("model_hash", "hash")
    for h, size, sha, b3, meta in conn.execute(
        "SELECT hash, file_size, sha256_hash, blake3_hash, metadata FROM models" + model_where, args
    ):
        if h in locations:
            records.append(ModelRecord(h, size, sha, b3, locations[h], sources.get(h, []), json.loads(meta or "{}")))
    return records


def _matches(pattern: str, location: dict) -> bool:
    """Wildcards (* ?) match the file name or the relative path; plain text is a substring. No case."""
    pat = pattern.lower()
    names = (location["filename"].lower(), location["relative_path"].lower())
    if any(c in pat for c in "*?["):
        return any(fnmatch.fnmatchcase(n, pat) for n in names)
    return any(pat in n for n in names)


def list_models(db_path: Path, pattern: str | None = None) -> list[ModelRecord]:
    conn = open_reader(db_path)
    try:
        records = _records(conn)
    finally:
        conn.close()
    if pattern:
        records = [r for r in records if any(_matches(pattern, loc) for loc in r.locations)]
    return sorted(records, key=lambda r: (r.locations[0]["relative_path"], r.hash))


def find_models(db_path: Path, query: str) -> list[ModelRecord]:
    """By hash prefix (quick, sha256 or blake3), else by file name or path, else by part of one."""
    conn = open_reader(db_path)
    try:
        q = query.lower()
        hashes: list[str] = []
        if all(c in "0123456789abcdef" for c in q) and len(q) >= 4:
            hashes = [
                r[0]
                for r in conn.execute(
                    "SELECT hash FROM models WHERE hash LIKE ? OR sha256_hash LIKE ? OR blake3_hash LIKE ?",
                    (q + "%", q + "%", q + "%"),
                )
            ]
        if not hashes:
            hashes = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT model_hash FROM model_locations WHERE filename = ? COLLATE NOCASE OR relative_path = ?",
                    (query, query),
                )
            ]
        if not hashes:  # part of a name ('demo' finds demo_model.safetensors), or a wildcard pattern
            rows = conn.execute("SELECT model_hash, filename, relative_path FROM model_locations").fetchall()
            hashes = sorted({h for h, f, rel in rows if _matches(query, {"filename": f, "relative_path": rel})})
        return _records(conn, hashes)
    finally:
        conn.close()


def model_info(db_path: Path, query: str) -> ModelRecord:
    matches = find_models(db_path, query)
    if not matches:
        raise ComfydockError(
            f"no indexed model matches {query!r}", hint="see 'comfydock models list', or index first: 'comfydock models index'"
        )
    if len(matches) > 1:
        raise ComfydockError(
            f"{query!r} matches {len(matches)} models: " + ", ".join(m.hash for m in matches[:5]),
            hint="give more of the hash",
        )
    return matches[0]


def source_type(url: str) -> str:
    host = (urlparse(url).hostname or "").lower()
    if host.endswith("civitai.com"):
        return "civitai"
    if host.endswith("huggingface.co") or host.endswith("hf.co"):
        return "huggingface"
    return "url"


def add_source(db_path: Path, query: str, url: str, kind: str | None = None) -> ModelRecord:
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise UsageError(f"not a download URL: {url!r}", hint="use an http(s) URL")
    record = model_info(db_path, query)
    conn = open_index(db_path)
    try:
        conn.execute(
            "INSERT INTO model_sources (model_hash, source_type, source_url, added_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(model_hash, source_url) DO NOTHING",
            (record.hash, kind or source_type(url), url, time.time()),
        )
        return _records(conn, [record.hash])[0]
    finally:
        conn.close()


def index_file(
    db_path: Path,
    root: Path,
    path: Path,
    *,
    sha256: str,
    blake3: str | None,
    source_url: str | None = None,
    kind: str | None = None,
) -> ModelRecord:
    """Index one file under `root` whose full hashes are known (a download just verified), and
    record where it came from: what `models index` and `models add-source` would do for it."""
    from comfydock.process_lock import process_lock

    root = root.expanduser().absolute()
    st = path.stat()
    digest, size, mtime, _ = _stable_quick_hash(str(path), st.st_size, st.st_mtime_ns)
    entry = FileEntry(path.relative_to(root).as_posix(), size, mtime, st.st_dev, st.st_ino)
    with process_lock(db_path.with_name(db_path.name + ".lock")):
        conn = open_index(db_path)
        try:
            _write_batch(conn, str(root), [(entry, digest, size, mtime)], time.time())
            conn.execute(  # a Blake3 known for the same SHA256 is kept
                "UPDATE models SET blake3_hash = CASE WHEN sha256_hash = ? THEN COALESCE(?, blake3_hash) ELSE ? END, "
                "sha256_hash = ? WHERE hash = ?",
                (sha256, blake3, blake3, sha256, digest),
            )
            if source_url:
                conn.execute(
                    "INSERT INTO model_sources (model_hash, source_type, source_url, added_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(model_hash, source_url) DO NOTHING",
                    (digest, kind or source_type(source_url), source_url, time.time()),
                )
            return _records(conn, [digest])[0]
        finally:
            conn.close()


def verify(db_path: Path) -> list[dict]:
    """Locations whose file is gone or changed since it was indexed."""
    conn = open_reader(db_path)
    problems = []
    try:
        for h, base, rel, size, mtime in conn.execute(
            "SELECT model_hash, base_dir, relative_path, file_size, mtime FROM model_locations ORDER BY base_dir, relative_path"
        ):
            path = Path(base) / rel
            try:
                st = path.stat()
            except OSError:
                problems.append({"hash": h, "path": str(path), "problem": "missing"})
                continue
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                problems.append({"hash": h, "path": str(path), "problem": "changed"})
    finally:
        conn.close()
    return problems
