"""Damaged state, interrupted creates, read-only workspaces: one-line errors, nothing lost, the
next command works. Every state file is damaged for real (empty, cut short, garbage, wrong types)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomlkit
from conftest import in_child_as_nobody, venv_has


def assert_one_line_error(result, code: int = 1, *words: str) -> None:
    """A refused command: the exit code, one 'error:' line and a hint, never a traceback."""
    assert result.code == code, result.err
    assert "Traceback" not in result.err and "Traceback" not in result.out
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.err
    assert any(ln.startswith("hint:") for ln in result.err.splitlines()), result.err
    for word in words:
        assert word in result.err, result.err


DAMAGE = {
    "empty": lambda data: b"",
    "cut short": lambda data: data[: len(data) // 2],
    "garbage": lambda data: b"\x00\xffnot = [what ]] it was\n\x00" * 4,
}


def _toml_edit(path: Path, change) -> bytes:
    doc = tomlkit.parse(path.read_text())
    change(doc)
    return tomlkit.dumps(doc).encode()


WRONG_TYPES = {
    "dependencies a string": lambda d: d["project"].__setitem__("dependencies", "oops"),
    "user_added a number": lambda d: d["tool"]["comfydock"].__setitem__("python", {"user_added": 5}),
    "environment a number": lambda d: d["tool"]["comfydock"].__setitem__("environment", 5),
    "no [project]": lambda d: d.pop("project"),
}


# --- versioned files: refused with the way back --------------------------------------------------


def test_damaged_manifest_is_refused_and_the_venv_and_lock_are_untouched(env, run_cli):
    good = env.pyproject_path.read_bytes()
    lock = env.uv_lock_path.read_bytes()
    cases = {kind: damage(good) for kind, damage in DAMAGE.items()}
    cases |= {kind: _toml_edit(env.pyproject_path, change) for kind, change in WRONG_TYPES.items()}
    for kind, data in cases.items():
        env.pyproject_path.write_bytes(data)
        for argv in (["status"], ["build"], ["py", "add", "cdfix-beta"], ["node", "list"]):
            result = run_cli(*argv)
            assert_one_line_error(result, 1, "pyproject.toml", f"git -C {env.cec_dir} checkout -- pyproject.toml")
        assert env.uv_lock_path.read_bytes() == lock, kind  # no empty lock written
        assert venv_has(env, "cdfix_alpha") == "2.0", kind  # nothing uninstalled
        assert env.pyproject_path.read_bytes() == data, kind  # and the user's file is left for them to fix
        # the hint's command brings it back, and the next command works
        subprocess.run(["git", "-C", str(env.cec_dir), "checkout", "--", "pyproject.toml"], check=True)
        assert env.pyproject_path.read_bytes() == good
        assert run_cli("status").code == 0


def test_damaged_uv_lock_is_refused_before_anything_is_synced(env, run_cli):
    good = env.uv_lock_path.read_bytes()
    for kind, damage in DAMAGE.items():
        env.uv_lock_path.write_bytes(damage(good))
        for argv in (["build"], ["status"], ["py", "list"], ["constraint", "list"], ["run", "--", "--quick-test-for-ci"]):
            result = run_cli(*argv)
            assert_one_line_error(result, 1, "uv.lock", "checkout -- uv.lock")
            assert "removes what it does not list" not in result.err, (kind, argv)  # no scare before the refusal
        assert venv_has(env, "cdfix_alpha") == "2.0", kind
        subprocess.run(["git", "-C", str(env.cec_dir), "checkout", "--", "uv.lock"], check=True)
        assert run_cli("build").code == 0


def test_damaged_workspace_json_is_a_clear_error_and_restoring_it_works(workspace_path, run_cli):
    meta = workspace_path / ".metadata" / "workspace.json"
    good = meta.read_bytes()
    config = json.loads(good)
    cases = {kind: damage(good) for kind, damage in DAMAGE.items()}
    cases["active_environment a number"] = json.dumps(config | {"active_environment": 5}).encode()
    cases["a newer version"] = json.dumps(config | {"version": 99}).encode()
    cases["a list"] = b"[1, 2]"
    for kind, data in cases.items():
        meta.write_bytes(data)
        result = run_cli("list")
        assert_one_line_error(result, 1, "workspace.json")
        if kind == "a newer version":
            assert "newer comfydock" in result.err
        meta.write_bytes(good)
        assert run_cli("list").code == 0, kind


# --- derived state: rebuilt -----------------------------------------------------------------------


def test_damaged_derived_state_files_are_rebuilt(env, run_cli, tmp_path):
    dev = env.custom_nodes_dir / "my-dev-node"
    dev.mkdir(parents=True)
    (dev / "requirements.txt").write_text("cdfix-beta\n")
    assert run_cli("node", "add", "my-dev-node", "--dev").code == 0
    reqs = env.state_dir / "reqs" / "my-dev-node.json"
    state_files = {
        "venv marker": env.venv_marker,
        "requirements scan": reqs,
    }
    for what, path in state_files.items():
        good = path.read_bytes() if path.exists() else b'["cdfix-beta"]'
        for n, (kind, data) in enumerate(
            {**{k: d(good) for k, d in DAMAGE.items()}, "wrong type": b'{"requirements": 5}'}.items()
        ):
            path.write_bytes(data)
            with open(env.pyproject_path, "a") as f:  # a real change: the lock task runs (and reads its request)
                f.write(f"# edit {what} {n}\n")
            status = run_cli("status", "--json")
            assert status.code == 0, (what, kind, status.err)
            assert run_cli("node", "list", "--json").code == 0, (what, kind)
            result = run_cli("build")
            assert result.code == 0, (what, kind, result.err)
            assert "Traceback" not in result.err
            assert venv_has(env, "cdfix_beta") == "2.0", (what, kind)
        assert isinstance(json.loads(path.read_text()), dict), what
    assert run_cli("status", "--json").json["venv_in_sync"]
    # caches that status keeps for workflows and node types: read, found damaged, redone
    for name in ("installed-node-types.json", "analysis-cache.json", "core-node-types.json"):
        path = env.state_dir / name
        for kind, data in {"garbage": b"\x00{[", "wrong type": b"[1, 2]", "wrong inner type": b'{"types": 5, "x": 5}'}.items():
            path.write_bytes(data)
            result = run_cli("status")
            assert result.code == 0 and "Traceback" not in result.err, (name, kind, result.err)


def test_damaged_doit_db_is_moved_aside_with_a_warning_and_rebuilt(env, run_cli):
    db = env.state_dir / "doit.db"
    for kind, damage in DAMAGE.items():
        db.write_bytes(damage(db.read_bytes()))  # an empty file is an empty SQLite database: nothing to repair
        result = run_cli("status")
        assert result.code == 0 and "Traceback" not in result.err, result.err
        if kind != "empty":
            assert "warning:" in result.err and "doit.db" in result.err and "moved it aside" in result.err
        for argv in (["build"], ["run", "--", "--quick-test-for-ci"]):
            result = run_cli(*argv)
            assert result.code == 0, (kind, argv, result.err)
        assert (env.state_dir / "doit.db").exists()
    aside = sorted(p.name for p in env.state_dir.iterdir() if p.name.startswith("doit.db.damaged-"))
    assert len(aside) == 2  # kept, not deleted
    tasks = {t["task"]: t["status"] for t in run_cli("build", "--json").json["tasks"]}
    assert tasks["lock_deps"] == tasks["sync_venv"] == "up-to-date"  # the new state is complete again


def test_doit_db_with_a_broken_row_is_repaired(env, run_cli):
    import sqlite3

    db = env.state_dir / "doit.db"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE doit SET task_data = '[not json' WHERE task_id = 'lock_deps'")
    conn.commit()
    conn.close()
    result = run_cli("build")
    assert result.code == 0 and "moved it aside" in result.err, result.err


# --- interrupted create ---------------------------------------------------------------------------


def _comfydock(*argv: str, cwd: Path) -> subprocess.Popen:
    """comfydock in its own process (for kills, locks held by another process, plain stderr)."""
    return subprocess.Popen(
        [sys.executable, "-m", "comfydock", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        cwd=cwd,
    )


def _kill_create_midway(workspace, name: str) -> bool:
    """SIGKILL a `create` once its manifest is written (before its first commit); False when it
    finished first (a loaded machine can be that slow to notice)."""
    from comfydock.history import has_commit

    root = workspace.environments_dir / name
    proc = _comfydock("create", name, "--torch-backend", "cpu", cwd=workspace.root)
    deadline = time.monotonic() + 60
    while not (root / ".cec" / "pyproject.toml").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert root.is_dir(), proc.stderr.read()
    return not has_commit(root / ".cec")


def test_killed_create_leaves_a_half_made_environment_that_delete_removes(env, workspace, run_cli):
    for name in ("c", "c2", "c3"):
        if _kill_create_midway(workspace, name):
            break
    else:
        pytest.skip("every create finished before it could be killed")
    root = workspace.environments_dir / name
    if name != "c":  # the same test, under the name that was cut short
        assert run_cli("delete", "c", "--yes").code == 0

    listed = {r["name"]: r for r in run_cli("list", "--json").json}
    assert listed[name]["state"] == "half-made" and listed["main"]["state"] == "ok"
    assert "half-made" in run_cli("list").out
    assert_one_line_error(run_cli("create", name), 1, "half-made", f"comfydock delete {name}")
    assert_one_line_error(run_cli("status", "-e", name), 1, "half-made", f"comfydock delete {name}")
    result = run_cli("delete", name, "--yes")
    assert result.code == 0 and "half-made" in result.err
    assert not root.exists()
    result = run_cli("create", name, "--torch-backend", "cpu")
    assert result.code == 0, result.err
    assert "uv: Installed 2 packages" in result.err  # uv's progress is shown, not one line for the whole install
    assert run_cli("status", "-e", name).code == 0


def _hold_lock(lock: Path, holder: str) -> subprocess.Popen:
    """Another process holding `lock` (as a running comfydock command would) until killed."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from comfydock.process_lock import process_lock\n"
        "lock = Path(sys.argv[1])\n"
        "sys.argv = sys.argv[2].split()  # the command line the holder names itself by\n"
        "with process_lock(lock):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock), holder], stdout=subprocess.PIPE, text=True, cwd=lock.parent)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_delete_leaves_a_create_that_is_still_running_alone(workspace, run_cli):
    root = workspace.environments_dir / "busy"
    root.mkdir(parents=True)
    lock = workspace.create_process_lock_file("busy")
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = _hold_lock(lock, "comfydock create busy")
    try:
        result = run_cli("delete", "busy", "--yes")
    finally:
        holder.kill()
        holder.wait()
    assert_one_line_error(result, 1, "busy", "comfydock create busy")
    assert root.is_dir()


def test_a_missing_development_node_is_named_in_status_with_how_to_get_it_back(env, run_cli):
    dev = env.custom_nodes_dir / "my-dev-node"
    dev.mkdir(parents=True)
    (dev / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    assert run_cli("node", "add", "my-dev-node", "--dev").code == 0
    assert run_cli("status", "--json").json["missing_dev_nodes"] == []
    moved = env.root / "moved-away"
    dev.rename(moved)
    out = run_cli("status").out
    assert "Development node my-dev-node missing on disk" in out
    assert "ComfyUI/custom_nodes/my-dev-node" in out and "comfydock node remove my-dev-node" in out
    assert "build restores it" not in out and "out of sync" not in out
    data = run_cli("status", "--json").json
    assert data["missing_dev_nodes"] == [{"id": "my-dev-node", "path": "ComfyUI/custom_nodes/my-dev-node"}]
    assert data["missing_node_dirs"] == []
    moved.rename(env.custom_nodes_dir / "my-dev-node.disabled")  # kept disabled on purpose: not missing
    assert run_cli("status", "--json").json["missing_dev_nodes"] == []
    assert "missing on disk" not in run_cli("status").out
    shutil.rmtree(env.custom_nodes_dir / "my-dev-node.disabled")  # gone for good: the hint's other way out
    removed = run_cli("node", "remove", "my-dev-node")
    assert removed.code == 0, removed.err
    assert run_cli("status", "--json").json["missing_dev_nodes"] == []


def test_temp_files_of_an_interrupted_write_are_not_changes(env, run_cli):
    (env.cec_dir / ".pyproject.toml.k2j4h5.tmp").write_text("half a manifest")
    data = run_cli("status", "--json").json
    assert data["uncommitted_changes"] == []
    assert "No uncommitted changes." in run_cli("status").out


def test_new_environments_ignore_temp_files_in_git(env):
    assert ".*.tmp" in (env.cec_dir / ".gitignore").read_text()


# --- a missing ComfyUI checkout -------------------------------------------------------------------


def test_removed_comfyui_is_restored_by_build_and_run_keeps_the_nodes(env, run_cli):
    shutil.rmtree(env.comfyui_dir)
    assert_one_line_error(run_cli("run", "--no-sync"), 1, "ComfyUI is missing", "comfydock build")
    status = run_cli("status")
    assert "missing on disk" in status.out
    assert run_cli("status", "--json").json["comfyui_missing"] is True
    result = run_cli("build")
    assert result.code == 0, result.err
    assert (env.comfyui_dir / "main.py").is_file()
    assert run_cli("status", "--json").json["comfyui_checkout_matches"]
    # run restores it too, and says so; a dev node's files (the user's) are kept
    dev = env.custom_nodes_dir / "my-dev-node"
    dev.mkdir(parents=True)
    (dev / "nodes.py").write_text("# mine\n")
    assert run_cli("node", "add", "my-dev-node", "--dev").code == 0
    for child in env.comfyui_dir.iterdir():
        if child.name != "custom_nodes":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    result = run_cli("run", "--", "--quick-test-for-ci")
    assert result.code == 0, result.err
    assert "Restored the ComfyUI checkout" in result.err
    assert (dev / "nodes.py").read_text() == "# mine\n"


# --- read-only workspaces -------------------------------------------------------------------------

READERS = [
    ["status"],
    ["status", "--json"],
    ["list"],
    ["log"],
    ["models", "list"],
    ["models", "list", "--json"],
    ["node", "list"],
    ["py", "list"],
    ["build", "--dry-run"],
]
WRITERS = [["build"], ["py", "add", "cdfix-beta"], ["use", "main"], ["models", "index"], ["config", "registry-url", "http://127.0.0.1:9/x"]]


def _make_reachable(tmp_path: Path) -> None:
    """Let 'nobody' reach and read tmp_path (pytest makes its base directory private)."""
    for path in [tmp_path, *tmp_path.rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, os.stat(path).st_mode | (0o555 if path.is_dir() else 0o444))
    parent = tmp_path
    while parent != parent.parent:
        parent = parent.parent
        os.chmod(parent, os.stat(parent).st_mode | 0o011)


def _read_only(root: Path, on: bool) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = os.stat(path).st_mode
        os.chmod(path, (mode & ~0o222) if on else (mode | 0o200))


def _run_in_child(commands: list[list[str]]) -> list[dict]:
    """Run CLI commands in a forked child; as root the child drops to 'nobody' first, so the
    workspace's permissions apply to it as they would to any user."""
    from comfydock.cli import main

    def run_all():
        results = []
        for argv in commands:
            out, err = io.StringIO(), io.StringIO()
            sys.stdout, sys.stderr = out, err
            try:
                code = main(argv)
            finally:
                sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            results.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
        return results

    return in_child_as_nobody(run_all)


def test_read_only_workspace_reading_commands_work_and_writing_ones_fail_in_one_line(env, workspace, run_cli, tmp_path):
    models = workspace.models_dir
    (models / "checkpoints").mkdir(parents=True, exist_ok=True)
    (models / "checkpoints" / "a.safetensors").write_bytes(os.urandom(4096))
    assert run_cli("models", "index").code == 0
    expected = {}
    for argv in READERS:  # as the owner, writable: the answers to compare with (and every import done)
        result = run_cli(*argv)
        assert result.code == 0, (argv, result.err)
        expected[tuple(argv)] = result
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if os.geteuid() == 0:  # the child runs as 'nobody': let it reach the files, and trust the repos
        _make_reachable(tmp_path)
        os.chmod(home, 0o777)  # HOME stays writable (git, uv look there), the workspace does not
        (home / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")  # git refuses others' repos otherwise
        os.chmod(home / ".gitconfig", 0o644)
    _read_only(workspace.root, True)
    try:
        results = _run_in_child(READERS + WRITERS)
    finally:
        _read_only(workspace.root, False)
    for r in results[: len(READERS)]:
        assert r["code"] == 0, r
        assert "Traceback" not in r["err"] and "not a comfydock model index" not in r["err"], r
        if "--json" in r["argv"]:
            assert json.loads(r["out"]) == json.loads(expected[tuple(r["argv"])].out) or r["argv"][0] == "status"
    models_list = next(r for r in results if r["argv"] == ["models", "list", "--json"])
    assert [m["locations"][0]["relative_path"] for m in json.loads(models_list["out"])] == ["checkpoints/a.safetensors"]
    for r in results[len(READERS) :]:
        assert r["code"] == 1, r
        errors = [ln for ln in r["err"].splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in r["err"], r
        assert str(workspace.root) in errors[0], r  # names the path it could not write
    # nothing was changed, and the owner carries on
    assert run_cli("build").code == 0


# --- smaller sharp edges --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["main\n", "a-b\n"])
def test_names_with_line_breaks_are_refused(workspace, run_cli, name):
    result = run_cli("create", name)
    assert_one_line_error(result, 2, "invalid environment name")
    assert not any(workspace.environments_dir.iterdir())


def test_an_error_before_logging_is_set_up_prints_once(tmp_path):
    proc = _comfydock("-w", str(tmp_path / "nowhere"), "list", cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.count("no comfydock workspace") == 1, err


def test_models_index_of_a_file_says_it_is_a_file(workspace_path, run_cli, tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    result = run_cli("models", "index", f)
    assert_one_line_error(result, 1, "is a file, not a directory")


def test_negative_log_limit_is_a_usage_error(env, run_cli):
    result = run_cli("log", "--limit", "-5")
    assert result.code == 2 and "must be 0 or more" in result.err


def test_a_second_models_index_says_whom_it_waits_for(workspace, tmp_path):
    lock = workspace.models_db.with_name(workspace.models_db.name + ".lock")
    holder = _hold_lock(lock, "comfydock models index")
    try:
        proc = _comfydock("models", "index", cwd=tmp_path)
        first = proc.stderr.readline()  # said while it waits
    finally:
        holder.kill()
        holder.wait()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, first + err
    assert "Waiting for another model index run" in first and f"pid {holder.pid}: comfydock models index (since" in first


def test_internal_error_writes_the_crash_log_in_the_workspace_and_names_it(workspace_path, capsys):
    from comfydock.cli.app import App
    from comfydock.cli.main import _internal_error, build_parser

    app = App(build_parser().parse_args(["-w", str(workspace_path), "list"]))
    app.workspace()
    try:
        raise RuntimeError("boom [bold]not markup[/]")
    except RuntimeError:
        code = _internal_error(app)
    err = capsys.readouterr().err
    assert code == 3
    logs = list((workspace_path / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and "RuntimeError" in logs[0].read_text()
    assert str(logs[0]) in err.replace("\n", "")
    assert "[bold]not markup[/]" in err


def test_internal_error_without_a_workspace_uses_a_per_user_temp_file(tmp_path, capsys, monkeypatch):
    import tempfile

    from comfydock.cli.app import App
    from comfydock.cli.main import _internal_error, build_parser

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    app = App(build_parser().parse_args(["list"]))
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        assert _internal_error(app) == 3
    (log,) = (tmp_path / f"comfydock-{os.getuid()}").glob("crash-*.log")
    assert str(log) in capsys.readouterr().err.replace("\n", "")


def test_build_list_shows_markup_like_text_and_each_tasks_inputs_and_outputs(env, run_cli):
    dev = env.custom_nodes_dir / "my-dev-node"
    dev.mkdir(parents=True)
    assert run_cli("node", "add", "my-dev-node", "--dev").code == 0
    out = run_cli("build", "--list").out
    assert "[dependency-groups]" in out
    assert "inputs: .cec/pyproject.toml" in out and "outputs: .cec/uv.lock" in out


def test_status_lists_dependency_changes_one_per_line(env, run_cli):
    assert run_cli("py", "add", "cdfix-beta").code == 0
    assert run_cli("constraint", "add", "cdfix-alpha<3").code == 0
    lines = run_cli("status").out.splitlines()
    assert "  +requirement:cdfix-beta" in lines and "  +constraint:cdfix-alpha<3" in lines


def test_a_missing_node_directory_is_named_in_status_and_run_says_it_restored_it(env, registry, run_cli):
    assert run_cli("node", "add", "comfyui-plain").code == 0
    node_dir = env.custom_nodes_dir / "comfyui-plain"
    shutil.rmtree(node_dir)
    out = run_cli("status").out
    assert "Custom node comfyui-plain missing on disk (comfydock build restores it)" in out
    assert "out of sync" not in out
    assert run_cli("status", "--json").json["missing_node_dirs"] == ["comfyui-plain"]
    result = run_cli("run", "--", "--quick-test-for-ci")
    assert result.code == 0, result.err
    assert "Restored custom node comfyui-plain" in result.err
    assert node_dir.is_dir()
