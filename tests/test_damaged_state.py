"""Damaged state is a one-line error with a hint, exit 1, and nothing changes: a `.cec/.git`
git cannot read, files that are folders, garbage in derived state, a hostile bundle layout.
One fixture per kind of damage; following the hint makes the command work again."""

from __future__ import annotations

import os
import subprocess

import pytest


def _digest(root) -> dict:
    """Every file under root (the .git directory included): relative path -> bytes."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, root)] = fh.read()
    return out


def _one_error(result) -> tuple[str, str]:
    """The error line and the hint line of a failed command (exit 1, never 3: no traceback)."""
    assert result.code == 1, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    lines = [ln for ln in result.err.splitlines() if ln.startswith(("error:", "hint:"))]
    errors = [ln for ln in lines if ln.startswith("error:")]
    hints = [ln for ln in lines if ln.startswith("hint:")]
    assert len(errors) == 1 and hints, result.err
    return errors[0], " ".join(hints)


# --- a .cec/.git that git cannot read -----------------------------------------------------------

GARBAGE = b"\x00garbage\xff[[[\n"


@pytest.mark.parametrize("part", ["HEAD", "index", "config"])
def test_damaged_history_is_one_error_whose_hint_repairs_it(env, run_cli, part):
    env.workflows_dir.mkdir(parents=True, exist_ok=True)
    (env.workflows_dir / "a.json").write_text('{"nodes": [], "links": []}\n')  # an uncommitted change
    git_file = env.cec_dir / ".git" / part
    good = git_file.read_bytes()
    git_file.write_bytes(GARBAGE)
    before = _digest(env.cec_dir)
    for argv in (["status"], ["log"], ["commit", "-m", "x", "--no-interactive"], ["rollback", "--yes"]):
        error, hint = _one_error(run_cli(*argv))
        assert "is damaged" in error and "half-made" not in error + hint, error
        assert "could not restore" not in hint and "delete" not in hint, hint
        assert _digest(env.cec_dir) == before, argv
    assert (env.workflows_dir / "a.json").exists()
    # the hint's repair (the index one is a command; HEAD and config need their file back)
    if part == "index":
        assert "git -C" in hint
        git_file.unlink()
        subprocess.run(["git", "-C", str(env.cec_dir), "reset", "-q"], check=True)
    elif part == "HEAD":
        assert "ref: refs/heads/main" in hint
        git_file.write_text("ref: refs/heads/main\n")
    else:
        assert str(git_file) in hint
        git_file.write_bytes(good)
    committed = run_cli("commit", "-m", "after repair", "--no-interactive")
    assert committed.code == 0, committed.err
    assert "a" in [w["name"] for w in run_cli("workflow", "list", "--json").json]


def test_a_transport_helper_url_is_refused_in_one_line_and_runs_nothing(env, run_cli, tmp_path):
    ran = tmp_path / "ran"
    url = f"ext::sh -c touch% {ran}"
    for argv in (["create", "copy", "--from", url], ["remote", "add", "evil", url]):
        result = run_cli(*argv)
        assert result.code in (1, 2) and "invalid remote URL" in result.err and "hint:" in result.err, result.err
        assert "Traceback" not in result.err and "internal error" not in result.err
    assert not ran.exists()
    assert not (env.workspace.environments_dir / "copy").exists()
    assert "evil" not in [r["name"] for r in run_cli("remote", "list", "--json").json]


# --- a versioned file that is a folder ----------------------------------------------------------


@pytest.mark.parametrize("name", ["pyproject.toml", "uv.lock"])
def test_a_versioned_file_that_is_a_folder_is_refused_and_kept(env, run_cli, tmp_path, name):
    path = env.cec_dir / name
    path.unlink()
    path.mkdir()
    (path / "notes.txt").write_text("someone's notes\n")
    for argv in (["status"], ["build"], ["commit", "-m", "x", "--no-interactive"], ["py", "add", "cdfix-alpha"]):
        error, hint = _one_error(run_cli(*argv))
        assert f"{name} is a folder, not a file" in error and "mv " in hint and "checkout" in hint, argv
        assert (path / "notes.txt").read_text() == "someone's notes\n"
    os.rename(path, tmp_path / "moved")  # the hint: move it away, then restore it from git
    subprocess.run(["git", "-C", str(env.cec_dir), "checkout", "--", name], check=True)
    assert run_cli("status").code == 0


# --- derived state in .comfydock/ ---------------------------------------------------------------


def test_a_lock_path_that_is_a_folder_is_one_error_and_moving_it_away_fixes_it(env, run_cli, tmp_path):
    lock = env.state_dir / "lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    error, hint = _one_error(run_cli("commit", "-m", "x", "--no-interactive"))
    assert str(lock) in error and "mv " in hint
    assert lock.is_dir()
    os.rename(lock, tmp_path / "moved")
    assert run_cli("commit", "-m", "x", "--no-interactive").code == 0


def test_garbage_in_every_derived_json_file_is_rebuilt_not_a_failure(env, run_cli, workspace_path):
    env.workflows_dir.mkdir(parents=True, exist_ok=True)
    (env.workflows_dir / "a.json").write_text('{"nodes": [], "links": []}\n')
    assert run_cli("commit", "-m", "with a workflow", "--no-interactive").code == 0
    damaged = sorted(env.state_dir.rglob("*.json")) + sorted((workspace_path / "comfydock_cache").rglob("*.json"))
    assert any(p.parent.name == "analysis" for p in damaged) and any(p.parent.name == "resolved" for p in damaged)
    for path in damaged:
        path.write_bytes(b"\xff\x00{garbage")
    (env.workflows_dir / "a.json").write_text('{"nodes": [], "links": [], "extra": 1}\n')
    for argv in (["status"], ["build"], ["commit", "-m", "after damage", "--no-interactive"], ["workflow", "list"]):
        result = run_cli(*argv)
        assert result.code == 0 and "Traceback" not in result.err, (argv, result.err)
    assert run_cli("status", "--json").json["workflows"] is not None


@pytest.mark.parametrize("damage", ["missing table", "folder"])
def test_a_damaged_model_index_is_one_error_and_rebuild_fixes_it(env, run_cli, workspace_path, damage):
    import sqlite3

    db = workspace_path / "comfydock_cache" / "models.db"
    assert run_cli("models", "index").code == 0
    if damage == "missing table":
        conn = sqlite3.connect(db)
        conn.execute("DROP TABLE models")
        conn.commit()
        conn.close()
    else:
        for suffix in ("", "-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        db.mkdir()
        (db / "kept.txt").write_text("kept\n")
    for argv in (["models", "list"], ["models", "index"]):
        error, hint = _one_error(run_cli(*argv))
        assert "is not a comfydock model index" in error and "--rebuild" in hint, (argv, error)
    rebuilt = run_cli("models", "index", "--rebuild")
    assert rebuilt.code == 0, rebuilt.err
    assert run_cli("models", "list").code == 0
    assert list(db.parent.glob("models.db.old-*")), "the damaged index is kept beside the new one"


# --- rollback over what it cannot keep a copy of --------------------------------------------------


@pytest.mark.parametrize("damage", ["named pipe", "file for the folder"])
def test_rollback_over_a_workflow_it_cannot_copy_changes_nothing(env, run_cli, tmp_path, damage):
    env.workflows_dir.mkdir(parents=True, exist_ok=True)
    (env.workflows_dir / "a.json").write_text('{"nodes": [], "links": []}\n')
    assert run_cli("commit", "-m", "with a", "--no-interactive").code == 0
    (env.workflows_dir / "a.json").write_text('{"nodes": [], "links": [], "edited": true}\n')
    if damage == "named pipe":
        odd = env.workflows_dir / "pipe.json"
        os.mkfifo(odd)
    else:
        os.rename(env.workflows_dir, tmp_path / "workflows-moved")
        odd = env.workflows_dir
        odd.write_text("not a folder\n")
    before = _digest(env.cec_dir), _digest(env.custom_nodes_dir)
    error, hint = _one_error(run_cli("rollback", "v1", "--yes"))
    assert str(odd) in error and "mv " in hint, error
    assert (_digest(env.cec_dir), _digest(env.custom_nodes_dir)) == before
    if damage == "named pipe":
        assert (env.workflows_dir / "a.json").read_text().endswith('"edited": true}\n')
        odd.unlink()
    else:
        assert odd.read_text() == "not a folder\n"
        odd.unlink()
    assert run_cli("rollback", "v1", "--yes").code == 0  # once it is moved away, as the hint says


# --- a bundle whose workflow is a folder ----------------------------------------------------------


@pytest.mark.parametrize("layout", ["implied", "explicit"])
def test_import_refuses_a_bundle_whose_workflow_is_a_folder(env, run_cli, tmp_path, layout):
    import io
    import tarfile

    from comfydock.bundle.archive import write_bundle

    good = tmp_path / "good.tar.gz"
    assert run_cli("export", "--output", good, "--no-interactive").code == 0
    with tarfile.open(good) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    bad = tmp_path / "bad.tar.gz"
    if layout == "implied":
        write_bundle({**members, "workflows/d.json/inner.json": b'{"nodes": []}'}, bad)
    else:
        with tarfile.open(bad, "w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            folder = tarfile.TarInfo("workflows/d.json")
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
    error, hint = _one_error(run_cli("import", bad, "-e", "copy", "--no-interactive"))
    assert "workflows/d.json is a folder" in error, error
    assert not (env.workspace.environments_dir / "copy").exists()
    imports = env.workspace.root / "comfydock_cache" / "imports"
    assert not imports.exists() or not any(imports.iterdir())


def test_init_where_no_folder_can_be_made_is_one_error(run_cli, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x\n")
    for where in (a_file / "ws", "/proc/comfydock-ws"):
        error, hint = _one_error(run_cli("init", where, "--no-interactive"))
        assert "cannot make a workspace" in error and "pick a folder" in hint, error
    assert a_file.read_text() == "x\n"


# --- an install whose packages' metadata is not UTF-8 ---------------------------------------------


def test_adopt_reads_a_package_whose_metadata_is_not_utf8(workspace, comfyui_source, run_cli, tmp_path):
    import git

    comfy = tmp_path / "old" / "ComfyUI"
    git.Repo.clone_from(comfyui_source.as_uri(), comfy)
    site = tmp_path / "old" / "venv" / "lib" / "python3.11" / "site-packages"
    info = site / "cdfix_alpha-1.5.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: cdfix-alpha\nVersion: 1.5\nSummary: caf\xe9 (latin-1)\n")
    result = run_cli("adopt", comfy, "--name", "adopted", "--no-interactive", "--json")
    assert result.code == 0, result.err
    adopted = run_cli("py", "list", "-e", "adopted", "--json")
    assert "cdfix-alpha" in adopted.out, adopted.out


def test_a_model_index_that_is_a_folder_leaves_status_answering(env, run_cli):
    db = env.workspace.models_db
    if db.exists():
        db.unlink()
    db.mkdir()
    result = run_cli("status")
    assert result.code == 0, result.err  # committed workflows: the index's damage is commit's to report
    assert "Traceback" not in result.err


def test_run_over_a_uv_lock_that_is_not_text_is_one_error(env, run_cli):
    env.uv_lock_path.write_bytes(b"\xff\xfe garbage \x00\x01")
    error, hint = _one_error(run_cli("run", "--no-sync", "--quick-test-for-ci"))
    assert "uv.lock is not UTF-8 text" in error and "checkout -- uv.lock" in hint


@pytest.mark.parametrize("where", ["HEAD", "refs/heads/main"])
def test_a_null_or_garbage_commit_id_is_damage_not_a_crash(env, run_cli, where):
    path = env.cec_dir / ".git" / where
    path.write_text("0" * 40 + "\n" if where == "HEAD" else "not-a-commit-id\n")
    before = _digest(env.cec_dir)
    for argv in (["status"], ["commit", "-m", "x", "--no-interactive"]):
        error, hint = _one_error(run_cli(*argv))
        assert "damaged" in error and "could not restore" not in hint and "delete" not in hint
    assert _digest(env.cec_dir) == before
