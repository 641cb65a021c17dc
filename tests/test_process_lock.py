"""The per-environment process lock (filelock underneath): who holds it, since when, and no stale locks."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from comfydock.errors import ProcessLockHeld
from comfydock.process_lock import holder_file, process_lock

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from comfydock.process_lock import process_lock\n"
    "lock = Path(sys.argv[1])\n"
    "sys.argv = ['comfydock', 'node', 'add', 'x']\n"
    "with process_lock(lock):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


def _holder(lock):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_busy_lock_names_the_holders_pid_command_and_start_time(tmp_path):
    lock = tmp_path / "locks" / "main.lock"
    proc = _holder(lock)
    try:
        with pytest.raises(ProcessLockHeld) as info:
            with process_lock(lock, timeout=0):
                pass
    finally:
        proc.kill()
        proc.wait()
    assert f"environment is busy: pid {proc.pid}: comfydock node add x (since " in info.value.message


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    lock = tmp_path / "main.lock"
    proc = _holder(lock)
    proc.kill()  # no cleanup runs: the OS drops the lock with the process
    proc.wait()
    with process_lock(lock, timeout=0):
        assert f"pid {proc.pid}" not in holder_file(lock).read_text()
    assert not holder_file(lock).exists()


def test_nested_use_in_one_thread_proceeds_and_another_thread_waits(tmp_path):
    lock = tmp_path / "main.lock"
    outcome = []

    def other():
        try:
            with process_lock(lock, timeout=0):
                outcome.append("got it")
        except ProcessLockHeld:
            outcome.append("busy")

    with process_lock(lock, timeout=0):
        with process_lock(lock, timeout=0):  # an operation calling another
            thread = threading.Thread(target=other)
            thread.start()
            thread.join()
    assert outcome == ["busy"]
    with process_lock(lock, timeout=0):  # released once the outer block ends
        pass
