"""A Ctrl-C that lands after a change finished (its "Added ..." line printed) keeps the change
and ends with 130, saying so; never killed by the signal (-2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib


def interrupt_after(line_start: str, argv: list[str], cwd) -> tuple[int, str]:
    """Run `comfydock ARGV` in its own process group; as soon as a line starting with `line_start`
    appears on its stderr, send SIGINT to the group as a terminal's Ctrl-C does (as the suite's
    interrupt_when_uv_asks does). The group is stopped around the signal, so that it lands where
    the process was when the line was read, however busy this machine is. (exit code, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfydock", *argv],
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(line_start):
                try:
                    os.killpg(proc.pid, signal.SIGSTOP)
                    os.killpg(proc.pid, signal.SIGINT)
                    os.killpg(proc.pid, signal.SIGCONT)
                except ProcessLookupError:  # it had already ended: the Ctrl-C reached nothing
                    pass
                break
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(seen) + rest


def test_ctrl_c_just_after_added_keeps_the_change_and_never_kills_comfydock(env, tmp_path):
    # where the Ctrl-C lands varies: while the command still prints, while Python tears down
    # (before: killed by the signal, -2, with nothing said), or after the process ended
    for n in range(6):
        verb = ("add", "remove")[n % 2]
        code, err = interrupt_after(("Added", "Removed")[n % 2], ["py", verb, "cdfix-beta"], tmp_path)
        assert code in (0, 130), (code, err)
        if code == 130:
            assert "kept" in err and "error: interrupted\n" not in err, err
        required = tomllib.loads(env.pyproject_path.read_text())["project"]["dependencies"]
        assert required == (["cdfix-beta"] if verb == "add" else []), err
