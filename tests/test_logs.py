"""`comfydock logs`: ComfyUI's output of the last run, following a run, and where the logs are."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from comfydock.run_log import KEEP, run_logs


def test_logs_shows_the_last_runs_output(env, run_cli):
    assert run_cli("run", "--port", "8190").code == 0
    result = run_cli("logs")
    assert result.code == 0
    assert "Fixture ComfyUI started with ['--port', '8190']" in result.out
    assert "last run" in result.err and "comfyui-check.log" not in result.err  # no check yet


def test_run_still_shows_comfyuis_output_as_it_comes(env):
    proc = subprocess.run([sys.executable, "-m", "comfydock", "run", "--port", "8191"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "Fixture ComfyUI started with ['--port', '8191']" in proc.stdout
    assert "Fixture ComfyUI started with ['--port', '8191']" in run_logs(env)[0].read_text()


def test_logs_json_lists_the_paths(env, run_cli):
    assert run_cli("run").code == 0
    assert run_cli("check").code == 0
    info = run_cli("logs", "--json").json
    assert Path(info["run"]) == run_logs(env)[0] and info["run_going"] is False
    assert Path(info["check"]) == env.state_dir / "comfyui-check.log"
    assert Path(info["comfydock"]) == env.log_file and env.log_file.is_file()
    assert info["environment"] == "main"
    assert not [c for c in info["crashes"] if c.startswith(str(env.workspace.root))]  # none in this workspace


def test_logs_before_any_run_says_so(env, run_cli):
    result = run_cli("logs")
    assert result.code == 0 and result.out == ""
    assert "No run of ComfyUI is logged yet" in result.err
    assert run_cli("logs", "--json").json["run"] is None


def test_only_the_last_runs_are_kept(env, run_cli):
    for port in range(KEEP + 2):
        assert run_cli("run", "--port", str(9000 + port)).code == 0
    kept = run_logs(env)
    assert len(kept) == KEEP
    assert f"'{9000 + KEEP + 1}'" in kept[0].read_text()


def test_logs_shows_a_progress_bar_as_it_ended_and_escapes_control_characters(env, run_cli):
    node = env.custom_nodes_dir / "noisy"
    node.mkdir()
    (node / "__init__.py").write_text(
        "import sys\nsys.stdout.write('loading 10%\\rloading 100%\\n')\nprint('colour \\x1b[31mred')\n"
    )
    assert run_cli("run").code == 0
    out = run_cli("logs").out
    assert "loading 100%\n" in out and "loading 10%" not in out
    assert "colour \\x1b[31mred" in out and "\x1b" not in out


def test_logs_follow_prints_the_running_comfyuis_output_until_it_ends(env, tmp_path):
    # a custom node that prints, then waits (bounded) for the test's go-ahead, then prints again
    go = tmp_path / "go"
    node = env.custom_nodes_dir / "waiting"
    node.mkdir()
    (node / "__init__.py").write_text(
        "import os, sys, time\n"
        "print('first words', flush=True)\n"
        f"for _ in range(600):\n    if os.path.exists({str(go)!r}): break\n    time.sleep(0.1)\n"
        "print('last words', flush=True)\n"
    )
    run = subprocess.Popen([sys.executable, "-m", "comfydock", "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # until the run's log holds the first line
            logs = run_logs(env)
            if logs and b"first words" in logs[0].read_bytes():
                break
            time.sleep(0.1)
        follow = subprocess.Popen(
            [sys.executable, "-m", "comfydock", "logs", "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        header = follow.stderr.readline()  # said before it starts reading the log
        assert "still running" in header
        go.write_text("")
        out, err = follow.communicate(timeout=120)  # ends by itself once the run is over
        assert follow.returncode == 0, err
        assert "first words" in out and "last words" in out
        assert run.wait(timeout=60) == 0
    finally:
        for proc in (run, locals().get("follow")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert os.path.exists(go)
