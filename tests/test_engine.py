"""The doit task graph: skipping what is unchanged, resuming after failures, dodo.py, the lock."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import venv_has

from comfydock.errors import ProcessLockHeld
from comfydock.process_lock import process_lock

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def statuses(result):
    """Statuses of the Python tasks (the model index, core node types and ComfyUI checkout tasks have their own tests)."""
    skip = {"index_models", "core_node_types", "checkout_comfyui"}
    return {t["task"]: t["status"] for t in result.json["tasks"] if t["task"] not in skip}


def statuses_of(result):
    return {t["task"]: t["status"] for t in result.json["tasks"]}


def test_second_build_with_nothing_changed_executes_nothing(env, run_cli):
    lock_mtime = env.uv_lock_path.stat().st_mtime_ns
    marker_mtime = env.venv_marker.stat().st_mtime_ns
    result = run_cli("build", "--json")
    assert result.code == 0
    assert statuses(result) == {"lock_deps": "up-to-date", "sync_venv": "up-to-date"}
    assert env.uv_lock_path.stat().st_mtime_ns == lock_mtime
    assert env.venv_marker.stat().st_mtime_ns == marker_mtime


def test_touching_pyproject_without_changing_it_runs_nothing(env, run_cli):
    os.utime(env.pyproject_path)
    assert statuses(run_cli("build", "--json")) == {"lock_deps": "up-to-date", "sync_venv": "up-to-date"}


def test_hand_edited_dependency_is_locked_and_installed(env, run_cli):
    text = env.pyproject_path.read_text().replace('"cdfix-gamma",', '"cdfix-gamma",\n    "cdfix-beta<2",')
    env.pyproject_path.write_text(text)
    plan = run_cli("build", "--dry-run", "lock_deps", "sync_venv", "--json").json
    assert plan == [{"task": "lock_deps", "status": "run"}, {"task": "sync_venv", "status": "after-upstream"}]
    assert venv_has(env, "cdfix_beta") is None  # dry run ran nothing
    result = run_cli("build", "--json")
    assert statuses(result) == {"lock_deps": "ran", "sync_venv": "ran"}
    assert venv_has(env, "cdfix_beta") == "1.0"
    assert 'name = "cdfix-beta"' in env.uv_lock_path.read_text()


def test_deleted_venv_is_rebuilt_without_relocking(env, run_cli):
    import shutil

    shutil.rmtree(env.venv_dir)
    result = run_cli("build", "--json")
    assert statuses(result) == {"lock_deps": "up-to-date", "sync_venv": "ran"}
    assert venv_has(env, "cdfix_alpha") == "2.0"


def test_failed_lock_reports_uv_and_rerun_continues_after_fix(env, run_cli):
    good = env.pyproject_path.read_text()
    env.pyproject_path.write_text(good.replace('"cdfix-gamma",', '"cdfix-gamma>=5",'))
    lock_before = env.uv_lock_path.read_bytes()
    result = run_cli("build")
    assert result.code == 1
    assert "lock_deps" in result.err and "cdfix-gamma" in result.err
    assert env.uv_lock_path.read_bytes() == lock_before  # uv refused: the old lock stands
    assert venv_has(env, "cdfix_gamma") == "0.2"
    env.pyproject_path.write_text(good.replace('"cdfix-gamma",', '"cdfix-gamma<0.2",'))
    result = run_cli("build", "--json")
    assert statuses(result) == {"lock_deps": "ran", "sync_venv": "ran"}
    assert venv_has(env, "cdfix_gamma") == "0.1"


def test_build_a_single_target_by_name_or_file(env, run_cli):
    os.remove(env.venv_marker)
    result = run_cli("build", "lock_deps", "--json")
    assert statuses(result) == {"lock_deps": "up-to-date"}
    result = run_cli("build", str(env.venv_marker), "--json")
    assert statuses(result)["sync_venv"] == "ran"


def test_unknown_target_is_a_usage_error(env, run_cli):
    result = run_cli("build", "no_such_task")
    assert result.code == 2 and "known tasks" in result.err


def test_build_list_shows_inputs_and_outputs(env, run_cli):
    tasks = {t["name"]: t for t in run_cli("build", "--list", "--json").json}
    assert tasks["lock_deps"]["file_dep"] == [str(env.pyproject_path)]
    assert tasks["lock_deps"]["targets"] == [str(env.uv_lock_path)]
    assert tasks["sync_venv"]["file_dep"] == [str(env.uv_lock_path)]


def test_doit_state_lives_outside_the_versioned_tree(env):
    assert (env.state_dir / "doit.db").exists()
    assert not any(p.name.startswith("doit") for p in env.cec_dir.rglob("*"))


def test_plain_doit_drives_the_same_graph(env):
    environ = dict(os.environ, COMFYDOCK_ENV="main")
    proc = subprocess.run(
        [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "list", "--status"],
        capture_output=True,
        text=True,
        env=environ,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "U lock_deps" in proc.stdout and "U sync_venv" in proc.stdout
    # by path, and after a change: doit reruns the lock the CLI then sees as done
    env.pyproject_path.write_text(env.pyproject_path.read_text().replace('"cdfix-gamma",', '"cdfix-gamma<0.2",'))
    environ["COMFYDOCK_ENV"] = str(env.root)
    proc = subprocess.run(
        [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")], capture_output=True, text=True, env=environ, cwd=REPO
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert venv_has(env, "cdfix_gamma") == "0.1"


def test_second_process_waits_for_the_lock_and_names_the_holder(env, tmp_path):
    script = (
        "import sys, time; from pathlib import Path; from comfydock.process_lock import process_lock\n"
        f"with process_lock(Path({str(env.process_lock_file)!r})):\n"
        "    print('held', flush=True); sys.stdin.readline()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        waits = []
        with pytest.raises(ProcessLockHeld) as info:
            with process_lock(env.process_lock_file, timeout=0.5, on_wait=waits.append):
                pass
        assert f"pid {holder.pid}" in info.value.message
        assert waits and f"pid {holder.pid}" in waits[0]
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(10)
    with process_lock(env.process_lock_file, timeout=2):  # free again once the holder exits
        pass


def test_index_models_task_runs_only_when_the_models_tree_changed(env, workspace, run_cli):
    models = workspace.models_dir
    (models / "loras").mkdir(exist_ok=True)
    (models / "loras" / "a.safetensors").write_bytes(b"a" * 100)
    first = {t["task"]: t["status"] for t in run_cli("build", "index_models", "--json").json["tasks"]}
    assert first == {"index_models": "ran"}
    assert run_cli("models", "find", "a.safetensors", "--json").json[0]["file_size"] == 100
    again = {t["task"]: t["status"] for t in run_cli("build", "index_models", "--json").json["tasks"]}
    assert again == {"index_models": "up-to-date"}
    (models / "loras" / "b.safetensors").write_bytes(b"b" * 10)
    third = {t["task"]: t["status"] for t in run_cli("build", "index_models", "--json").json["tasks"]}
    assert third == {"index_models": "ran"}
    assert run_cli("models", "find", "b.safetensors", "--json").json


def test_index_models_is_up_to_date_for_every_environment_once_the_workspace_index_is(env, workspace, run_cli):
    (workspace.models_dir / "m.safetensors").write_bytes(b"m" * 64)
    assert statuses_of(run_cli("build", "index_models", "--json")) == {"index_models": "ran"}
    (env.state_dir / "doit.db").unlink()  # the environment's build state knows nothing of it now
    assert run_cli("build", "--dry-run", "index_models", "--json").json == [{"task": "index_models", "status": "up-to-date"}]


def test_status_neither_checks_nor_indexes_the_models_tree(env, workspace, run_cli):
    (workspace.models_dir / "new.safetensors").write_bytes(b"n" * 64)
    assert run_cli("build", "--dry-run", "index_models", "--json").json == [{"task": "index_models", "status": "run"}]
    status = run_cli("status", "--json")
    assert status.code == 0 and "index_models" not in status.json["pending_tasks"]
    assert not run_cli("models", "find", "new.safetensors", "--json").json


def test_continue_runs_independent_tasks_after_a_failure(env, workspace, run_cli):
    (workspace.models_dir / "m.safetensors").write_bytes(b"m" * 64)
    env.pyproject_path.write_text(env.pyproject_path.read_text().replace('"cdfix-gamma",', '"cdfix-gamma>=5",'))
    stopped = run_cli("build", "--json")
    assert stopped.code == 1
    assert "index_models" not in {t["task"] for t in stopped.json["tasks"]}  # a plain build stops at the failure
    result = run_cli("build", "--continue", "--json")
    assert result.code == 1
    by_task = {t["task"]: t["status"] for t in result.json["tasks"]}
    assert by_task["lock_deps"] == "failed" and by_task["sync_venv"] == "not-run"
    assert by_task["index_models"] == "ran"  # does not depend on the lock: --continue still runs it


def test_comfydock_env_selects_the_environment_by_name_or_directory(env, run_cli, monkeypatch):
    assert run_cli("create", "other", "--torch-backend", "cpu").code == 0  # 'main' stays active
    monkeypatch.setenv("COMFYDOCK_ENV", "other")
    assert run_cli("status", "--json").json["environment"] == "other"
    monkeypatch.setenv("COMFYDOCK_ENV", str(env.root.parent / "other"))
    assert run_cli("status", "--json").json["environment"] == "other"
    assert run_cli("status", "-e", "main", "--json").json["environment"] == "main"  # -e still wins
