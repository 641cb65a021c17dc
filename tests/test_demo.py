"""The README's first command: the offline demo runs end to end."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end_whatever_the_users_comfydock_variables_say(tmp_path):
    # a user's own settings (another environment, a CivitAI that cannot be reached) stay out of the demo
    users = {
        "COMFYDOCK_ENV": "not-a-demo-env",
        "COMFYDOCK_CIVITAI_URL": "http://127.0.0.1:9",
        "COMFYDOCK_HOME": str(tmp_path / "mine"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "comfydock", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, **users),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Demo complete" in proc.stderr
    assert "v1: Initial environment setup" in proc.stdout
    assert "Fixture ComfyUI started" in proc.stdout
    assert "ComfyUI starts and imports every custom node" in proc.stderr  # the demo's check
    assert (tmp_path / "demo" / "workspace" / "environments" / "demo" / ".cec" / "uv.lock").exists()
    assert "Exported to" in proc.stdout and "Imported environment demo-copy (v1)" in proc.stdout
    copy = tmp_path / "demo" / "workspace" / "environments" / "demo-copy" / ".cec"
    assert (copy / "uv.lock").read_bytes() == (copy.parent.parent / "demo" / ".cec" / "uv.lock").read_bytes()


def test_demo_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    proc = subprocess.run([sys.executable, "-m", "comfydock", "demo", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1 and "not empty" in proc.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"
