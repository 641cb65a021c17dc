"""doit embedded as a library: load the task graph of an environment, run targets, report."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from comfydock.errors import BuildFailed, ComfydockError, UsageError, disk_full
from comfydock.fsutil import read_json_state, restore_bytes


@dataclass
class TaskEvent:
    task: str
    status: str  # "ran", "up-to-date", "failed", "not-run"
    seconds: float = 0.0
    error: str | None = None
    hint: str | None = None
    details: str | None = None
    # the ComfydockError a failed action raised (its class is the kind of failure); not in the JSON
    cause: ComfydockError | None = field(default=None, repr=False, compare=False)
    notes: list[str] = field(default_factory=list)  # what a task that ran wants the user to know
    rerun: list[str] = field(default_factory=list, repr=False, compare=False)  # tasks whose inputs it changed

    def to_json(self) -> dict:
        data = {k: getattr(self, k) for k in ("task", "status", "seconds", "error", "hint", "details")}
        return data | ({"notes": self.notes} if self.notes else {})


@dataclass
class BuildReport:
    events: list[TaskEvent] = field(default_factory=list)
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def first_failure(self) -> TaskEvent | None:
        return next((e for e in self.events if e.status == "failed"), None)

    def to_json(self) -> dict:
        return {"ok": self.ok, "exit_code": self.exit_code, "tasks": [e.to_json() for e in self.events]}


def _checker_class():
    from doit.dependency import FileChangedChecker

    from comfydock.hashing import file_digest

    class Blake3Checker(FileChangedChecker):
        """mtime, then size, then a Blake3 digest: a touched but unchanged file is up to date."""

        def check_modified(self, file_path, file_stat, state):
            timestamp, size, digest = state
            if file_stat.st_mtime == timestamp:
                return False
            if file_stat.st_size != size:
                return True
            return digest != file_digest(file_path, "blake3")

        def get_state(self, dep, current_state):
            st = os.stat(dep)
            if current_state and current_state[0] == st.st_mtime:
                return None
            return st.st_mtime, st.st_size, file_digest(dep, "blake3")

    return Blake3Checker


_CHECKER = None


def checker_class():
    global _CHECKER
    if _CHECKER is None:
        _CHECKER = _checker_class()
    return _CHECKER


def _state_db_healthy(path) -> bool:
    import json
    import sqlite3

    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return False
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            return False
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "doit" in tables:
            for (data,) in conn.execute("SELECT task_data FROM doit"):
                if not isinstance(json.loads(data), dict):
                    return False
        return True
    except (sqlite3.DatabaseError, ValueError, TypeError):
        return False
    finally:
        conn.close()


_state_checked: set[tuple] = set()


def repair_state(env) -> list[str]:
    """`.comfydock/doit.db` is derived (what the last build saw): a damaged one is moved aside and
    starts afresh (tasks then check their targets again). Returns what was done, for a warning."""
    path = env.state_dir / "doit.db"
    try:
        st = path.stat()
    except OSError:
        return []
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key in _state_checked:
        return []
    if _state_db_healthy(path):
        _state_checked.add(key)
        return []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"doit.db.damaged-{stamp}")
    n = 1
    while aside.exists():  # an earlier one this second: keep both
        aside = path.with_name(f"doit.db.damaged-{stamp}-{n}")
        n += 1
    os.replace(path, aside)
    for suffix in ("-wal", "-shm", "-journal"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.replace(extra, aside.with_name(aside.name + suffix))
    return [f"{path} was damaged; moved it aside to {aside.name} and started a new one (it is derived state)"]


def preflight(env) -> None:
    """Refuse to act on a damaged manifest or lock file; repair damaged derived state."""
    from comfydock import manifest

    env.manifest_data()  # validates the shape (the fast reader checks it too)
    manifest.check_uv_lock(env.uv_lock_path)
    repair_state(env)


def doit_config(env) -> dict:
    """The one doit configuration, shared by the CLI and dodo.py (absolute paths only)."""
    try:
        env.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        if not env.state_dir.is_dir():
            raise
    repair_state(env)
    return {
        "dep_file": str((env.state_dir / "doit.db").absolute()),
        "backend": "sqlite3",
        "check_file_uptodate": checker_class(),
        "verbosity": 0,
    }


def _failure_class():
    from doit.exceptions import TaskFailed

    class ActionFailed(TaskFailed):
        """A task action raised a ComfydockError: doit records a failure, and the error itself
        (message, hint, kind) travels with it to the reporter, named by its task."""

        def __init__(self, task: str, error: ComfydockError):
            super().__init__(error.message)
            self.task = task
            self.error = error

    return ActionFailed


_FAILURE = None


def failure_class():
    global _FAILURE
    if _FAILURE is None:
        _FAILURE = _failure_class()
    return _FAILURE


def guarded(task_name: str, fn):
    """`fn` as a doit action whose ComfydockError (or OSError) becomes an ActionFailed.

    functools.wraps keeps `fn`'s signature visible to doit (inspect follows __wrapped__), so
    doit passes it `targets`, `changed`, `task` and the task's parameters by name as usual."""

    @functools.wraps(fn)
    def action(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ComfydockError as exc:
            return failure_class()(task_name, exc)
        except OSError as exc:  # disk full, permissions, a vanished file: say which file and why
            full = disk_full(exc, "")
            if full is not None and full.path:
                return failure_class()(task_name, full)
            where = f" ({exc.filename})" if exc.filename else ""
            error = ComfydockError(f"{exc.strerror or exc}{where}", hint="check free disk space and permissions, then run again")
            return failure_class()(task_name, error)

    return action


def _wrap_actions(task_dict: dict) -> dict:
    name = task_dict["basename"] + (f":{task_dict['name']}" if task_dict.get("name") else "")
    wrapped = []
    for action in task_dict.get("actions") or []:
        if callable(action):
            action = (action, (), {})
        if isinstance(action, tuple) and callable(action[0]):
            fn, args, kwargs = (list(action) + [(), {}])[:3]
            wrapped.append((guarded(name, fn), list(args), dict(kwargs)))
        else:
            wrapped.append(action)
    task_dict = dict(task_dict)
    task_dict["actions"] = wrapped
    return task_dict


def task_dicts(env) -> list[dict]:
    """Every task of the environment's graph, as plain doit task dicts."""
    from comfydock.tasks import TASK_CREATORS

    dicts = []
    for creator in TASK_CREATORS:
        for d in creator(env):
            d.setdefault("doc", creator.__doc__)
            dicts.append(d)
    return dicts


def _json_target_readable(path: Path, task, values) -> bool:
    return read_json_state(path, object) is not None


def _check_json_targets(env, task_dict: dict) -> dict:
    """doit checks that a target exists, not what it holds: a JSON target in `.comfydock/` that is
    damaged (garbage, cut short) makes its task out of date, so it is written again before any
    task reads it (derived state: damaged = absent)."""
    state = str(env.state_dir) + os.sep
    checks = [
        functools.partial(_json_target_readable, Path(t))
        for t in task_dict.get("targets", [])
        if str(t).startswith(state) and str(t).endswith(".json")
    ]
    if checks:
        task_dict["uptodate"] = [*task_dict.get("uptodate", []), *checks]
    return task_dict


def load_tasks(env):
    from doit.loader import generate_tasks

    families: dict[str, list[dict]] = {}
    for d in task_dicts(env):
        d = _check_json_targets(env, _wrap_actions(d))
        families.setdefault(d.pop("basename"), []).append(d)
    tasks = []
    for basename, dicts in families.items():
        doc = dicts[0].get("doc")
        if len(dicts) == 1 and "name" not in dicts[0]:
            tasks.extend(generate_tasks(basename, dicts[0], doc))
        else:  # a family (fetch_node:<id>, ...): doit wants sub-tasks yielded by a generator
            tasks.extend(generate_tasks(basename, (d for d in dicts), doc))
    return tasks


def default_targets(tasks) -> list[str]:
    """What a plain build runs: every task family but those run only on request (commit's)."""
    from comfydock.tasks import ON_REQUEST

    return [t.name for t in tasks if t.subtask_of is None and t.name.split(":")[0] not in ON_REQUEST]


def _resolve_targets(tasks, targets: list[str]) -> list[str]:
    names = {t.name for t in tasks}
    by_target = {str(tt): t.name for t in tasks for tt in t.targets}
    resolved = []
    for target in targets:
        if target in names:
            resolved.append(target)
        elif target in by_target:
            resolved.append(by_target[target])
        elif os.path.abspath(target) in by_target:
            resolved.append(by_target[os.path.abspath(target)])
        else:
            known = ", ".join(sorted(n for n in names if ":" not in n))
            raise UsageError(f"unknown build target {target!r}", hint=f"known tasks: {known} (see 'comfydock build --list')")
    return resolved


def _reporter_class(events: list[TaskEvent], listener):
    from doit.exceptions import UnmetDependency
    from doit.reporter import ZeroReporter

    started: dict[str, float] = {}

    class EventReporter(ZeroReporter):
        """Records what happened to each task; rendering is the CLI's business."""

        def execute_task(self, task):
            started[task.name] = time.perf_counter()
            if listener and task.actions:
                listener("start", task.name)

        def _elapsed(self, task):
            return round(time.perf_counter() - started.get(task.name, time.perf_counter()), 3)

        def add_success(self, task):
            if task.actions:
                # an action may return {"notes": [...], "rerun": [...]} (e.g. sync_venv refusing a torch release)
                notes = [str(n) for n in task.values.get("notes") or []] if isinstance(task.values, dict) else []
                rerun = [str(n) for n in task.values.get("rerun") or []] if isinstance(task.values, dict) else []
                events.append(TaskEvent(task.name, "ran", self._elapsed(task), notes=notes, rerun=rerun))
                if listener:
                    for note in notes:
                        listener("note", note)
                    listener("ran", task.name)

        def skip_uptodate(self, task):
            if task.actions:
                events.append(TaskEvent(task.name, "up-to-date"))
                if listener:
                    listener("up-to-date", task.name)

        def add_failure(self, task, fail):
            if isinstance(fail, UnmetDependency):
                events.append(TaskEvent(task.name, "not-run", error=fail.message))
                return
            exc = fail.error if isinstance(fail, failure_class()) else None
            if exc is not None:
                details = getattr(exc, "details", None)
                event = TaskEvent(task.name, "failed", self._elapsed(task), exc.message, exc.hint, details, cause=exc)
            else:
                event = TaskEvent(task.name, "failed", self._elapsed(task), fail.message, None, "".join(fail.traceback) or None)
            events.append(event)
            if listener:
                listener("failed", task.name)

        def runtime_error(self, msg):
            events.append(TaskEvent("doit", "failed", error=msg.strip()))

    return EventReporter


class _Loader:
    """A TaskLoader2 built lazily (doit is imported only when a build runs)."""

    @staticmethod
    def create(env, reporter_cls, tasks):
        from doit.cmd_base import TaskLoader2

        class EnvironmentTaskLoader(TaskLoader2):
            def setup(self, opt_values):
                pass

            def load_doit_config(self):
                config = doit_config(env)
                config["reporter"] = reporter_cls
                return config

            def load_tasks(self, cmd, pos_args):
                return tasks

        return EnvironmentTaskLoader()


def build(
    env,
    targets: list[str] | None = None,
    *,
    keep_going: bool = False,
    listener=None,
    on_wait=None,
    workers: int = 1,
    task_options: dict[str, list[str]] | None = None,
) -> BuildReport:
    """Run `targets` (default: the whole graph) under the environment lock.

    `task_options` maps a selected task to its doit parameters on the command line (e.g.
    tasks.python.upgrade_options); values must be validated names, never free user text."""
    from comfydock import doit_compat
    from comfydock.process_lock import process_lock

    doit_compat.skip_entry_point_plugins()
    # the lock first: the graph is planned from pyproject.toml, which another process may be changing
    with process_lock(env.process_lock_file, on_wait=on_wait):
        preflight(env)
        tasks = load_tasks(env)
        selected = _resolve_targets(tasks, targets) if targets else default_targets(tasks)
        events: list[TaskEvent] = []
        loader = _Loader.create(env, _reporter_class(events, listener), tasks)
        argv = ["run"] + (["--continue"] if keep_going else [])
        if workers > 1:  # threads: actions are module-level functions, and uv/git/downloads release the GIL
            argv += ["-n", str(workers), "-P", "thread"]
        for name in selected:
            argv += [name, *(task_options or {}).get(name, [])]
        code, doit_errors = doit_compat.run(loader, argv)
        rerun = sorted({t for e in events if e.status == "ran" for t in e.rerun})
        if code == 0 and rerun:
            # a task changed an earlier task's inputs (sync_venv's refusal re-locked): run that
            # one again so that doit's record of its inputs is current and the next build is a no-op
            loader = _Loader.create(env, _reporter_class(events, listener), load_tasks(env))
            code, doit_errors = doit_compat.run(loader, ["run", *rerun])
    if code != 0 and not any(e.status == "failed" for e in events):
        events.append(TaskEvent("doit", "failed", error="the task engine failed", details=doit_errors.strip()))
    return BuildReport(events, 0 if code == 0 else 1)


def plan(env, targets: list[str] | None = None, skip: set[str] = frozenset()) -> list[TaskEvent]:
    """What `build` would do, without doing it: 'up-to-date', 'run', or 'after-upstream'."""
    from doit.control import TaskControl
    from doit.dependency import Dependency, SqliteDB

    preflight(env)
    tasks = load_tasks(env)
    selected = _resolve_targets(tasks, targets) if targets else [t for t in default_targets(tasks) if t not in skip]
    control = TaskControl(tasks)
    control.process(selected)
    config = doit_config(env)
    dep = Dependency(SqliteDB, config["dep_file"], checker_cls=config["check_file_uptodate"])
    by_name = {t.name: t for t in tasks}
    order: list[str] = []

    def visit(name, stack=()):
        if name in order or name in stack or name in skip:  # skipped: not even checked (status)
            return
        for upstream in by_name[name].task_dep:
            visit(upstream, stack + (name,))
        order.append(name)

    for name in control.selected_tasks:
        visit(name)
    result: list[TaskEvent] = []
    will_run: set[str] = set()
    try:
        for name in order:
            task = by_name[name]
            if not task.actions:
                if any(up in will_run for up in task.task_dep):
                    will_run.add(name)
                continue
            if any(up in will_run for up in task.task_dep):
                status = "after-upstream"
            else:
                status = dep.get_status(task, by_name).status
                status = "up-to-date" if status == "up-to-date" else "run"
            if status != "up-to-date":
                will_run.add(name)
            result.append(TaskEvent(name, status))
    finally:
        dep.close()
    return result


def describe(env) -> list[dict]:
    """The graph as data: name, doc, file_dep, targets, task_dep."""
    out = []
    for t in load_tasks(env):
        if not t.actions:
            continue
        out.append(
            {
                "name": t.name,
                "doc": (t.doc or "").strip(),
                "file_dep": sorted(str(p) for p in t.file_dep),
                "targets": [str(p) for p in t.targets],
                "task_dep": list(t.task_dep),
            }
        )
    return out


def environment_from_environ():
    """$COMFYDOCK_ENV: an environment name (in $COMFYDOCK_HOME's workspace) or its directory."""
    from pathlib import Path

    from comfydock.environment import Environment
    from comfydock.workspace import Workspace, resolve_workspace_path

    value = os.environ.get("COMFYDOCK_ENV", "")
    if value and (os.sep in value or Path(value).is_dir()):
        root = Path(value).absolute()
        return Environment.open(Workspace.open(root.parent.parent), root.name)
    return Environment.open(Workspace.open(resolve_workspace_path()), value or None)


def dodo_namespace(env=None) -> dict:
    """DOIT_CONFIG and task_* functions for a dodo.py: the same graph the CLI runs."""
    env = env or environment_from_environ()
    from comfydock.tasks import TASK_CREATORS

    namespace: dict = {"DOIT_CONFIG": doit_config(env)}
    for creator in TASK_CREATORS:

        def task_creator(creator=creator):
            return (_wrap_actions(d) for d in creator(env))

        task_creator.__doc__ = creator.__doc__
        namespace[creator.__name__] = task_creator
    return namespace


# --- failures and undo, for the commands that run builds -------------------------------------


def build_failure(report) -> BuildFailed:
    """The user-facing error for a failed build: the first failed task's message and hint,
    and its name as data (`BuildFailed.task`)."""
    failure = report.first_failure()
    if failure is None:
        return BuildFailed("build failed", hint="run 'comfydock build' to see which task fails")
    return BuildFailed(
        f"{failure.task}: {failure.error}",
        hint=failure.hint or "run 'comfydock --verbose build' for details",
        details=failure.details or "",
        task=failure.task,
    )


def guard_manifest(env, tx, resync: bool = True) -> None:
    """If `tx` is undone, pyproject.toml, uv.lock and doit's record of the last build come
    back byte for byte (the failed build never happened), and (`resync`) the venv is synced
    to them again. Call it first in the transaction: undo runs newest first, so the re-sync
    then runs after every other file is back, and finds only the venv to redo."""
    if resync:
        tx.on_undo(functools.partial(resync_venv, env, venv_stamp(env)), "the venv (run 'comfydock build')")
    tx.save_file(env.pyproject_path)
    tx.save_file(env.uv_lock_path)
    tx.save_file(env.state_dir / "doit.db")


def venv_stamp(env) -> tuple | None:
    """What changes when a sync touches the venv: the names in site-packages (an install, removal
    or upgrade adds or renames a `*.dist-info`) and the sync marker. None: no venv to compare."""
    site = next(iter(sorted(env.venv_dir.glob("lib/python3*/site-packages"))), None) or env.venv_dir / "Lib" / "site-packages"
    try:
        names = tuple(sorted(os.listdir(site)))
        marker = env.venv_marker.read_bytes() if env.venv_marker.is_file() else b""
    except OSError:
        return None
    return (names, marker)


def resync_venv(env, stamp: tuple | None = None) -> None:
    """Sync the venv to uv.lock again, even if doit thinks it is (a failed sync may have
    half-changed it); not when its `stamp` (venv_stamp before the change) shows no sync touched
    it. As an undo step its failure is reported ('could not restore: the venv'), and
    'comfydock build' finishes the job."""
    now = venv_stamp(env)
    if stamp is not None and now is not None and now[0] == stamp[0]:
        # the same distributions as before (a sync that failed early, or installed what was there):
        # only the marker may name the other lock; put it back, no sync (a full disk has no room for one)
        if now[1] != stamp[1]:
            if stamp[1]:
                restore_bytes(env.venv_marker, stamp[1])
            else:
                env.venv_marker.unlink(missing_ok=True)
        return
    env.venv_marker.unlink(missing_ok=True)
    report = build(env, ["sync_venv"])
    if not report.ok:
        raise build_failure(report)
