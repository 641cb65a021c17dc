"""What comfydock relies on in doit's internals (comfydock/doit_compat.py) and how its actions
meet doit (comfydock/engine.py): these fail when a doit upgrade changes that behaviour."""

from __future__ import annotations

import sys
import threading
import time

from comfydock import doit_compat, engine
from comfydock.errors import ComfydockError, ExternalToolError


def run_graph(tmp_path, task_dicts, argv=(), reporter=None):
    """Run plain doit task dicts through doit_compat.run (as engine.build does; doit's console
    reporter would write to whatever sys.stdout was when doit was first imported)."""
    from doit.cmd_base import TaskLoader2
    from doit.loader import generate_tasks

    class Loader(TaskLoader2):
        def setup(self, opt_values):
            pass

        def load_doit_config(self):
            return {
                "dep_file": str(tmp_path / "doit.db"),
                "backend": "sqlite3",
                "verbosity": 0,
                "reporter": reporter or engine._reporter_class([], None),
            }

        def load_tasks(self, cmd, pos_args):
            tasks = []
            for d in task_dicts:
                d = engine._wrap_actions(d)
                tasks.extend(generate_tasks(d.pop("basename"), d))
            return tasks

    return doit_compat.run(Loader(), ["run", *argv])


def test_entry_point_plugins_are_not_scanned(monkeypatch):
    from doit import plugin

    class Point:
        name, module, attr = "foreign", "foreign_plugin", "Command"

    # an installed distribution advertising a doit command plugin
    monkeypatch.setattr(plugin, "entry_points_impl", lambda: lambda group: [Point()] if group == "doit.COMMAND" else [])
    doit_compat.skip_entry_point_plugins()
    monkeypatch.setattr(plugin.PluginDict, "_from_entry_points", doit_compat.doit_entry_point_reader)
    found = plugin.PluginDict()
    found.add_plugins({}, "COMMAND")
    assert "foreign" in found  # unpatched, doit would load it: doit reads entry points there
    doit_compat.skip_entry_point_plugins()
    skipped = plugin.PluginDict()
    skipped.add_plugins({}, "COMMAND")
    assert dict(skipped) == {}


def test_real_streams_are_back_after_threaded_actions_interleave_their_captures(tmp_path):
    a_capturing, b_capturing = threading.Event(), threading.Event()

    def action_a():
        a_capturing.set()
        b_capturing.wait(10)  # B swaps its capture in on top of A's, then A puts back the stream it saw

    def b_starts_after_a(task, values):  # doit checks this on its own thread before it hands B out
        a_capturing.wait(10)
        return False

    def action_b():
        mine = sys.stdout
        b_capturing.set()
        deadline = time.monotonic() + 10
        while sys.stdout is mine and time.monotonic() < deadline:  # until A has restored its stream
            time.sleep(0.005)
        # returning now, B "restores" A's capture buffer: without doit_compat it would stay in place

    stdout, stderr = sys.stdout, sys.stderr
    tasks = [
        {"basename": "a", "actions": [action_a]},
        {"basename": "b", "actions": [action_b], "uptodate": [b_starts_after_a]},
    ]
    code, _ = run_graph(tmp_path, tasks, ["-n", "2", "-P", "thread"])
    assert code == 0
    assert sys.stdout is stdout and sys.stderr is stderr


def test_doit_leaves_a_capture_buffer_in_place_when_threaded_actions_interleave(tmp_path, monkeypatch):
    """Why doit_compat.run restores the streams: when doit stops leaking, this fails and the
    restore can go."""
    from doit.doit_cmd import DoitMain

    leaked = []
    real_run = DoitMain.run

    def run_and_look(self, argv):
        before = sys.stdout
        try:
            return real_run(self, argv)
        finally:
            leaked.append(sys.stdout is not before)

    monkeypatch.setattr(DoitMain, "run", run_and_look)
    test_real_streams_are_back_after_threaded_actions_interleave_their_captures(tmp_path)
    assert leaked == [True]


def test_actions_get_targets_and_task_parameters_from_doit_by_name(tmp_path):
    seen = {}

    def write(path, targets, changed, upgrade_package):
        seen.update(targets=targets, changed=changed, upgrade_package=upgrade_package)
        (tmp_path / "out").write_text(path)

    (tmp_path / "in").write_text("x")
    task = {
        "basename": "write",
        "file_dep": [str(tmp_path / "in")],
        "targets": [str(tmp_path / "out")],
        "params": [{"name": "upgrade_package", "long": "upgrade-package", "type": list, "default": []}],
        "actions": [(write, ["in"])],
    }
    code, errors = run_graph(tmp_path, [task], ["write", "--upgrade-package", "numba"])
    assert code == 0, errors
    assert seen == {"targets": [str(tmp_path / "out")], "changed": [str(tmp_path / "in")], "upgrade_package": ["numba"]}


def test_a_failing_action_hands_its_error_and_task_name_to_the_report(tmp_path):
    def lock():
        raise ExternalToolError("uv could not lock", hint="relax a pin", details="uv said no")

    def vanish():
        open(tmp_path / "missing" / "file")

    events = []
    tasks = [{"basename": "lock_deps", "actions": [lock]}, {"basename": "write", "actions": [vanish]}]
    code, _ = run_graph(tmp_path, tasks, ["--continue"], reporter=engine._reporter_class(events, None))
    assert code != 0
    by_task = {e.task: e for e in events}
    lock_event = by_task["lock_deps"]
    assert (lock_event.status, lock_event.error, lock_event.hint, lock_event.details) == (
        "failed",
        "uv could not lock",
        "relax a pin",
        "uv said no",
    )
    assert isinstance(lock_event.cause, ExternalToolError)  # the kind survives, not just the text
    assert "cause" not in lock_event.to_json()
    write_event = by_task["write"]
    assert isinstance(write_event.cause, ComfydockError) and str(tmp_path / "missing" / "file") in write_event.error


def test_the_failure_doit_records_names_its_task(tmp_path):
    failures = []

    class Recorder(engine._reporter_class([], None)):
        def add_failure(self, task, fail):
            failures.append(fail)

    def refuse():
        raise ComfydockError("no")

    code, _ = run_graph(tmp_path, [{"basename": "refuse", "actions": [refuse]}], reporter=Recorder)
    assert code != 0
    (fail,) = failures
    assert isinstance(fail, engine.failure_class()) and fail.task == "refuse" and fail.error.message == "no"
