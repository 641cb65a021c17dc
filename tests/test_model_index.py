"""The model index: the pinned quick hash, incremental runs, moves, bad input, the CLI."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from blake3 import blake3
from conftest import in_child_as_nobody

from comfydock import model_index
from comfydock.hashing import MIB, full_hashes, quick_hash
from comfydock.model_index import index_directory


def sparse(path: Path, size: int, marks: dict[int, bytes]) -> Path:
    """A sparse file of `size` bytes (no disk used) with `marks` written at offsets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in marks.items():
            f.seek(offset)
            f.write(data)
    return path


@pytest.fixture
def models(tmp_path):
    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    (root / "loras").mkdir()
    for i in range(3):
        (root / "loras" / f"lora{i}.safetensors").write_bytes(os.urandom(2048))
    (root / "checkpoints" / "model.ckpt").write_bytes(os.urandom(4096))
    (root / "loras" / "lora0.preview.png").write_bytes(b"png")
    (root / "loras" / "notes.txt").write_text("not a model")
    (root / "loras" / "lora0.json").write_text("{}")
    (root / "configs.yaml").write_text("a: 1")
    return root


@pytest.fixture
def db(tmp_path):
    return tmp_path / "models.db"


def rel_paths(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return sorted(r[0] for r in conn.execute("SELECT relative_path FROM model_locations"))
    finally:
        conn.close()


# --- the quick hash ------------------------------------------------------------------------


def test_quick_hash_is_pinned_on_known_bytes(tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(bytes(range(256)) * 40)
    big = sparse(tmp_path / "big.bin", 64 * MIB, {0: b"front", 32 * MIB: b"middle", 64 * MIB - 3: b"end"})
    # pinned values: bundles and ComfyDock 1.0 manifests depend on these never changing
    assert quick_hash(small) == ("6e82253a5f12e431", 10240)
    assert quick_hash(big) == ("b52a79a488463f67", 15 * MIB)
    # and they are exactly the documented definition
    data = small.read_bytes()
    assert blake3(b"10240" + data).hexdigest()[:16] == "6e82253a5f12e431"
    raw = big.read_bytes()
    size = len(raw)
    mid = size // 2 - 5 * MIB // 2
    expected = blake3(str(size).encode() + raw[: 5 * MIB] + raw[mid : mid + 5 * MIB] + raw[-5 * MIB :])
    assert expected.hexdigest()[:16] == "b52a79a488463f67"


def test_quick_hash_samples_front_middle_and_end_of_multi_gb_files(tmp_path):
    size = 3 * 1024 * MIB
    base = sparse(tmp_path / "a.safetensors", size, {})
    h0, read = quick_hash(base)
    assert read == 15 * MIB
    for offset in (10, size // 2, size - 10):  # inside each sample: the hash changes
        changed = sparse(tmp_path / f"c{offset}.safetensors", size, {offset: b"x"})
        assert quick_hash(changed)[0] != h0
    outside = sparse(tmp_path / "outside.safetensors", size, {size // 4: b"x"})
    assert quick_hash(outside)[0] == h0  # not sampled: only the full hash tells these apart
    small_a = sparse(tmp_path / "sa.bin", 64 * MIB, {})
    small_b = sparse(tmp_path / "sb.bin", 64 * MIB, {16 * MIB: b"x"})
    assert quick_hash(small_a)[0] == quick_hash(small_b)[0]
    assert full_hashes(small_a)[0] != full_hashes(small_b)[0]
    grown = sparse(tmp_path / "grown.safetensors", size + 1, {})
    assert quick_hash(grown)[0] != h0  # the size is part of the hash


def test_files_up_to_30_mib_hash_only_size_and_first_5_mib(tmp_path):
    f = sparse(tmp_path / "m.bin", 30 * MIB, {})
    assert quick_hash(f)[1] == 5 * MIB
    g = sparse(tmp_path / "n.bin", 30 * MIB + 1, {})
    assert quick_hash(g)[1] == 15 * MIB


# --- indexing ----------------------------------------------------------------------------


def test_index_records_model_files_only(models, db):
    result = index_directory(db, models)
    assert result.files_seen == 4 and result.files_hashed == 4
    assert rel_paths(db) == [
        "checkpoints/model.ckpt",
        "loras/lora0.safetensors",
        "loras/lora1.safetensors",
        "loras/lora2.safetensors",
    ]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT version FROM schema_info").fetchone() == (model_index.SCHEMA_VERSION,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_unchanged_files_are_not_read_again(models, db):
    index_directory(db, models)
    again = index_directory(db, models)
    assert (again.files_hashed, again.bytes_read, again.files_unchanged) == (0, 0, 4)


def test_changed_new_and_vanished_files(models, db):
    index_directory(db, models)
    (models / "loras" / "lora1.safetensors").write_bytes(os.urandom(3000))
    (models / "loras" / "new.safetensors").write_bytes(os.urandom(100))
    (models / "loras" / "lora2.safetensors").unlink()
    result = index_directory(db, models)
    assert (result.files_hashed, result.locations_removed, result.files_unchanged) == (2, 1, 2)
    assert "loras/lora2.safetensors" not in rel_paths(db) and "loras/new.safetensors" in rel_paths(db)
    found = model_index.find_models(db, "lora1.safetensors")
    assert found[0].hash == quick_hash(models / "loras" / "lora1.safetensors")[0]


def test_same_content_in_two_places_is_one_model_with_two_locations(models, db):
    data = os.urandom(5000)
    (models / "checkpoints" / "a.safetensors").write_bytes(data)
    (models / "loras" / "copy-of-a.safetensors").write_bytes(data)
    index_directory(db, models)
    (record,) = model_index.find_models(db, "a.safetensors")
    assert sorted(loc["relative_path"] for loc in record.locations) == [
        "checkpoints/a.safetensors",
        "loras/copy-of-a.safetensors",
    ]


def test_move_and_rename_keep_the_model_without_rehashing(models, db):
    index_directory(db, models)
    before = model_index.find_models(db, "model.ckpt")[0].hash
    (models / "archive").mkdir()
    os.rename(models / "checkpoints" / "model.ckpt", models / "archive" / "renamed.ckpt")
    result = index_directory(db, models)
    assert (result.files_hashed, result.bytes_read, result.files_moved, result.locations_removed) == (0, 0, 1, 0)
    (record,) = model_index.find_models(db, "renamed.ckpt")
    assert record.hash == before and [l["relative_path"] for l in record.locations] == ["archive/renamed.ckpt"]


def test_copy_is_hashed_and_joins_the_same_model(models, db):
    import shutil

    index_directory(db, models)
    shutil.copy(models / "checkpoints" / "model.ckpt", models / "loras" / "dup.ckpt")
    result = index_directory(db, models)
    assert result.files_hashed == 1
    assert len(model_index.find_models(db, "dup.ckpt")[0].locations) == 2


def test_symlink_loops_end_and_links_out_of_the_tree_are_followed(models, db, tmp_path):
    os.symlink(models, models / "loras" / "loop")  # a directory link back to the root
    other_disk = tmp_path / "other-disk"
    other_disk.mkdir()
    (other_disk / "far.safetensors").write_bytes(os.urandom(64))
    os.symlink(other_disk, models / "linked")
    os.symlink(tmp_path / "nowhere.safetensors", models / "dangling.safetensors")
    warnings = []
    result = index_directory(db, models, warn=warnings.append)
    assert "linked/far.safetensors" in rel_paths(db)
    assert result.files_seen == 5  # the loop added nothing twice
    assert any("dangling.safetensors" in w for w in warnings)


def test_unreadable_directory_and_file_are_skipped_with_one_warning_each(models, db, tmp_path):
    locked_dir = models / "private"
    locked_dir.mkdir()
    (locked_dir / "secret.safetensors").write_bytes(b"x" * 10)
    locked_file = models / "loras" / "locked.safetensors"
    locked_file.write_bytes(b"y" * 10)
    if os.geteuid() != 0:
        os.chmod(locked_dir, 0)
        os.chmod(locked_file, 0)
        warnings = []
        result = index_directory(db, models, warn=warnings.append)
        os.chmod(locked_dir, 0o755)
        os.chmod(locked_file, 0o644)
    else:
        result, warnings = _index_as_nobody(db, models, [locked_dir, locked_file], tmp_path)
    result = result.to_json() if hasattr(result, "to_json") else result  # as nobody it comes back as JSON
    assert result["files_hashed"] == 4  # the run went on
    assert len(warnings) == 2
    assert any("private" in w for w in warnings) and any("locked.safetensors" in w for w in warnings)


def _index_as_nobody(db, models, locked, tmp_path):
    """Root reads everything: index in a forked child that has dropped to 'nobody'."""
    for path in [tmp_path, *tmp_path.rglob("*")]:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    for path in locked:
        os.chmod(path, 0)
    parent = tmp_path
    while parent != parent.parent:  # nobody must be able to reach tmp_path
        parent = parent.parent
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
    model_index.open_index(db).close()
    os.chmod(db, 0o666)

    def index():
        warnings = []
        result = index_directory(db, models, warn=warnings.append, workers=2)
        return [result.to_json(), warnings]

    result, warnings = in_child_as_nobody(index)
    return result, warnings


def test_file_that_vanishes_or_grows_while_indexed(models, db):
    victim = models / "loras" / "lora0.safetensors"
    grower = models / "loras" / "lora1.safetensors"
    warnings = []

    def progress(kind, done, total, *_):
        if kind == "hash" and done == 0:  # after the walk, before any file is read
            victim.unlink()
            with open(grower, "ab") as f:
                f.write(b"more bytes")

    result = index_directory(db, models, progress=progress, warn=warnings.append)
    assert any("vanished" in w for w in warnings)
    assert "loras/lora0.safetensors" not in rel_paths(db)
    (record,) = model_index.find_models(db, "lora1.safetensors")
    assert record.hash == quick_hash(grower)[0]  # the grown file, never the stale version
    assert record.file_size == grower.stat().st_size
    assert result.files_hashed == 3


def test_interrupted_run_keeps_what_was_done_and_the_next_continues(tmp_path, db):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(40):
        (root / f"m{i:02}.safetensors").write_bytes(os.urandom(256))

    def progress(kind, done, total, *_):
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index_directory(db, root, progress=progress, workers=1)
    kept = len(rel_paths(db))
    assert kept >= 10
    result = index_directory(db, root)
    assert result.files_hashed == 40 - kept
    assert len(rel_paths(db)) == 40


def test_two_index_runs_at_once_give_one_consistent_index(tmp_path, db):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(200):
        (root / f"m{i:03}.safetensors").write_bytes(os.urandom(512))
    script = "import sys; from pathlib import Path; from comfydock.model_index import index_directory; index_directory(Path(sys.argv[1]), Path(sys.argv[2]))"
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(db), str(root)], stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read()
    assert len(rel_paths(db)) == 200
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM models").fetchone() == (200,)


def test_reader_during_indexing_never_fails(tmp_path, db):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(300):
        (root / f"m{i:03}.safetensors").write_bytes(os.urandom(512))
    model_index.open_index(db).close()
    errors, counts = [], []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                conn = sqlite3.connect(db, timeout=5)
                counts.append(
                    conn.execute("SELECT COUNT(*) FROM model_locations l JOIN models m ON m.hash = l.model_hash").fetchone()[0]
                )
                conn.close()
            except sqlite3.Error as exc:
                errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    index_directory(db, root)
    stop.set()
    t.join()
    assert errors == [] and counts
    assert counts == sorted(counts)  # rows only ever appear complete (location joined to its model)


def test_full_hashes_are_computed_once_and_invalidated_by_a_new_version(tmp_path, db):
    root = tmp_path / "m"
    f = sparse(root / "big.safetensors", 64 * MIB, {1: b"a"})
    result = index_directory(db, root, full=True)
    assert result.full_hashed == 1
    (record,) = model_index.find_models(db, "big.safetensors")
    assert record.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    assert record.blake3 == blake3(f.read_bytes()).hexdigest()
    again = index_directory(db, root, full=True)
    assert (again.full_hashed, again.bytes_read) == (0, 0)
    with open(f, "r+b") as fh:  # same quick hash, new content
        fh.seek(16 * MIB)
        fh.write(b"outside the samples")
    third = index_directory(db, root, full=True)
    assert third.full_hashed == 1
    (after,) = model_index.find_models(db, "big.safetensors")
    assert after.hash == record.hash and after.sha256 == hashlib.sha256(f.read_bytes()).hexdigest() != record.sha256


def test_corrupt_or_foreign_database_is_refused(tmp_path, models):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(Exception) as info:
        index_directory(garbage, models)
    assert "garbage.db" in info.value.message and "--rebuild" in info.value.hint
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(Exception) as info:
        index_directory(foreign, models)
    assert "something else" in info.value.message


def test_newer_schema_is_refused(tmp_path, models, db):
    index_directory(db, models)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE schema_info SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(Exception) as info:
        index_directory(db, models)
    assert "newer comfydock" in info.value.message


# --- the index task's up-to-date check ----------------------------------------------------


def test_index_is_current_until_a_file_is_added_removed_or_renamed_anywhere_in_the_tree(models, db):
    (models / "loras" / "deep" / "er").mkdir(parents=True)
    index_directory(db, models)
    assert model_index.index_is_current(db, models)
    for change in (
        lambda: (models / "loras" / "deep" / "er" / "new.safetensors").write_bytes(b"n" * 64),
        lambda: (models / "loras" / "lora1.safetensors").rename(models / "loras" / "renamed.safetensors"),
        lambda: (models / "checkpoints" / "model.ckpt").unlink(),
        lambda: (models / "vae").mkdir(),
    ):
        change()
        assert not model_index.index_is_current(db, models)
        index_directory(db, models)
        assert model_index.index_is_current(db, models)


def test_a_change_right_after_an_index_run_is_seen(models, db):
    (models / "loras" / "just-copied.safetensors").write_bytes(b"j" * 64)  # same timestamp tick as the run
    index_directory(db, models)
    assert model_index.index_is_current(db, models)
    (models / "loras" / "next.safetensors").write_bytes(b"x" * 64)
    assert not model_index.index_is_current(db, models)


def test_a_recent_file_growing_in_place_is_seen(models, db):
    index_directory(db, models)
    with open(models / "loras" / "lora0.safetensors", "ab") as f:  # a download still being written
        f.write(b"more")
    assert not model_index.index_is_current(db, models)


def test_an_old_model_rewritten_in_place_with_an_older_mtime_is_seen(models, db):
    """`cp -p` or `curl -R -o` over an existing model: same name, same size, the directory's
    times untouched, the file's mtime set to an old date."""
    import os

    target = models / "loras" / "lora1.safetensors"
    old = target.stat()
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns - 86400 * 10**9))  # indexed as a day-old file
    index_directory(db, models)
    directory_times = (target.parent.stat().st_mtime_ns, target.parent.stat().st_ctime_ns)
    assert model_index.index_is_current(db, models)
    target.write_bytes(bytes(reversed(target.read_bytes())))  # new bytes, same size, in place
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns - 2 * 86400 * 10**9))
    assert (target.parent.stat().st_mtime_ns, target.parent.stat().st_ctime_ns) == directory_times
    assert not model_index.index_is_current(db, models)


def test_index_is_not_current_without_a_completed_run_of_that_tree(tmp_path, models, db):
    assert not model_index.index_is_current(db, models)
    other = tmp_path / "other-models"
    other.mkdir()
    index_directory(db, other)
    assert not model_index.index_is_current(db, models)
    model_index.rebuild_index(db)
    index_directory(db, models)
    assert model_index.index_is_current(db, models)


def test_an_index_from_the_first_schema_is_migrated_and_then_kept_current(tmp_path, models, db):
    index_directory(db, models)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE index_stamps")
    conn.execute("UPDATE schema_info SET version = 1")
    conn.commit()
    conn.close()
    assert not model_index.index_is_current(db, models)
    assert len(model_index.list_models(db)) == 4
    index_directory(db, models)
    assert model_index.index_is_current(db, models)


# --- CLI ---------------------------------------------------------------------------------


@pytest.fixture
def ws(tmp_path, models, run_cli, monkeypatch):
    ws = tmp_path / "ws"
    assert run_cli("init", ws, "--models-dir", models, "--no-interactive").code == 0
    monkeypatch.setenv("COMFYDOCK_HOME", str(ws))
    return ws


def test_cli_index_list_find_info_add_source(ws, models, run_cli):
    result = run_cli("models", "index", "--json")
    assert result.code == 0 and result.json["files_hashed"] == 4
    assert "last_sync" in json.loads((ws / ".metadata" / "workspace.json").read_text())["global_model_directory"]
    rows = run_cli("models", "list", "--json").json
    assert len(rows) == 4
    assert [r["locations"][0]["relative_path"] for r in run_cli("models", "list", "--filter", "lora*", "--json").json] == [
        "loras/lora0.safetensors",
        "loras/lora1.safetensors",
        "loras/lora2.safetensors",
    ]
    assert [r["locations"][0]["filename"] for r in run_cli("models", "list", "--filter", "LORA1", "--json").json] == [
        "lora1.safetensors"
    ]
    assert [r["locations"][0]["filename"] for r in run_cli("models", "list", "--filter", "*.ckpt", "--json").json] == [
        "model.ckpt"
    ]
    h = quick_hash(models / "checkpoints" / "model.ckpt")[0]
    assert [r["hash"] for r in run_cli("models", "find", h[:6], "--json").json] == [h]
    assert [r["hash"] for r in run_cli("models", "find", "model.ckpt", "--json").json] == [h]
    assert [r["hash"] for r in run_cli("models", "find", "MODEL.ck", "--json").json] == [h]  # part of a name, any case
    assert run_cli("models", "find", "nothing-like-this").code == 1
    url = "https://civitai.com/api/download/models/4384"
    assert run_cli("models", "add-source", h[:8], url).code == 0
    info = run_cli("models", "info", h, "--json").json
    assert info["sources"] == [{"type": "civitai", "url": url}]
    assert run_cli("models", "add-source", h, "not a url").code == 2


def test_cli_verify_reports_missing_and_changed_files(ws, models, run_cli):
    run_cli("models", "index")
    (models / "loras" / "lora0.safetensors").unlink()
    (models / "loras" / "lora1.safetensors").write_bytes(b"different")
    result = run_cli("models", "list", "--verify", "--json")
    problems = {loc["relative_path"]: loc["problem"] for r in result.json for loc in r["locations"]}
    assert problems["loras/lora0.safetensors"] == "missing"
    assert problems["loras/lora1.safetensors"] == "changed"
    assert problems["loras/lora2.safetensors"] is None
    assert run_cli("models", "list", "--verify").code == 1


def test_cli_corrupt_db_names_the_file_and_rebuild_fixes_it(ws, run_cli):
    db = ws / "comfydock_cache" / "models.db"
    db.write_bytes(b"garbage" * 200)
    result = run_cli("models", "list")
    assert result.code == 1
    assert "models.db" in result.err and "--rebuild" in result.err
    result = run_cli("models", "index", "--rebuild", "--json")
    assert result.code == 0 and result.json["files_hashed"] == 4
    assert list((ws / "comfydock_cache").glob("models.db.old-*"))  # the old file is kept


def test_cli_index_without_models_dir_says_how_to_set_one(tmp_path, run_cli):
    ws = tmp_path / "bare"
    run_cli("init", ws, "--no-interactive")
    result = run_cli("-w", ws, "models", "index")
    assert result.code == 1 and "config models-dir" in result.err
