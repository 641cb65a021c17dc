"""All-or-nothing changes: record what a command is about to touch, put it all back on any failure.

    with Transaction(env.state_dir / "undo") as tx:
        tx.save_file(env.pyproject_path)          # remembered byte for byte (or its absence)
        tx.save_tree(env.workflows_dir)           # a copy of a whole directory
        tx.move_aside(custom_nodes / "old-node")  # moved out of the way, moved back on failure
        tx.move(node_dir, disabled_dir)           # a rename that stays: moved back on failure
        tx.on_undo(lambda: ...)                   # anything else (a git tag, a re-sync)
        ... the change ...
    # leaving the block normally keeps the change and drops what was moved aside;
    # any exception (Ctrl-C included) undoes every step, newest first, then re-raises.

Undo steps never raise: a step that cannot be undone is reported in `tx.not_restored`, and the
original exception carries those lines so the user learns what to fix by hand.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid
from pathlib import Path

from comfydock.fsutil import remove_tree, restore_bytes

# how the last Transaction of this process ended ("kept" | "undone"), so that a Ctrl-C caught after
# a change finished can say the change is kept (cli.main); main clears it before each command
last_outcome: str | None = None


class Transaction:
    def __init__(self, scratch_dir: Path):
        self.scratch_dir = scratch_dir
        self._undo: list[tuple[str, object]] = []  # (what, callable)
        self._on_commit: list[object] = []
        self.not_restored: list[str] = []
        self._dir: Path | None = None

    # --- recording --------------------------------------------------------------------
    def _scratch(self) -> Path:
        if self._dir is None:
            self._dir = self.scratch_dir / uuid.uuid4().hex[:12]
            self._dir.mkdir(parents=True)
        return self._dir

    def save_file(self, path: Path) -> None:
        """Remember a file's bytes (or that it did not exist) to write back on failure."""
        data = path.read_bytes() if path.is_file() else None

        def undo():
            if data is None:
                if path.is_file() or path.is_symlink():
                    path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                restore_bytes(path, data)  # nothing to write when it holds them (a full disk has no room to)

        self._undo.append((str(path), undo))

    def save_tree(self, path: Path) -> None:
        """Remember a whole directory (a copy in the scratch area; links kept as links). Something
        that cannot be copied back (a file where the folder should be, a named pipe or socket
        inside) is refused before anything is recorded: its undo would lose it."""
        _refuse_uncopyable(path)
        existed = path.is_dir()
        copy = self._scratch() / f"tree-{len(self._undo)}"
        if existed:
            shutil.copytree(path, copy, symlinks=True)

        def undo():
            if existed and _same_tree(copy, path):
                return  # unchanged: nothing to put back (on a full disk there is no room to copy it)
            if path.exists() or path.is_symlink():
                remove_tree(path)
            if existed:
                shutil.copytree(copy, path, symlinks=True)

        self._undo.append((str(path), undo))
        self._on_commit.append(lambda: remove_tree(copy) if copy.exists() else None)

    def move_aside(self, path: Path) -> Path | None:
        """Move a file or directory out of the way; it comes back on failure, goes on success."""
        if not (path.exists() or path.is_symlink()):
            return None
        kept = self._scratch() / f"aside-{len(self._undo)}-{path.name}"

        def undo():  # recorded first: a Ctrl-C during the move still puts back what was moved
            if not (kept.exists() or kept.is_symlink()):
                return  # the move never happened
            if path.exists() or path.is_symlink():
                remove_tree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(kept), str(path))

        self._undo.append((str(path), undo))
        os.replace(path, kept) if _same_device(path, kept.parent) else shutil.move(str(path), str(kept))
        self._on_commit.append(lambda: remove_tree(kept) if kept.exists() or kept.is_symlink() else None)
        return kept

    def move(self, src: Path, dest: Path) -> None:
        """Rename a file or directory (the change keeps it there); it is moved back on failure."""
        if dest.exists() or dest.is_symlink():
            raise FileExistsError(errno.EEXIST, "already exists", str(dest))

        def undo():  # recorded first: a Ctrl-C during the move still puts it back
            if (dest.exists() or dest.is_symlink()) and not (src.exists() or src.is_symlink()):
                src.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(dest), str(src))

        self._undo.append((str(src), undo))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dest))

    def created(self, path: Path) -> None:
        """A path this change creates: removed on failure."""

        def undo():
            if path.exists() or path.is_symlink():
                remove_tree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

        self._undo.append((str(path), undo))

    def on_undo(self, fn, what: str = "a step") -> None:
        self._undo.append((what, fn))

    # --- ending -----------------------------------------------------------------------
    def rollback(self) -> None:
        global last_outcome
        last_outcome = "undone"
        for what, undo in reversed(self._undo):
            try:
                undo()
            except BaseException as exc:  # keep undoing the rest (a second Ctrl-C too); report this one
                self.not_restored.append(f"{what}: {exc or type(exc).__name__}")
        self._undo.clear()
        if self.not_restored and self._dir is not None and self._dir.exists():
            # the scratch area may hold the only copy of what could not be put back: keep it
            self.not_restored.append(f"what was moved aside is kept in {self._dir}")
            self._dir = None
            return
        self._cleanup()

    def commit(self) -> None:
        global last_outcome
        self._undo.clear()
        last_outcome = "kept"
        for fn in self._on_commit:
            try:
                fn()
            except OSError:
                pass  # leftovers in the scratch area are harmless
        self._cleanup()

    def _cleanup(self) -> None:
        if self._dir is not None and self._dir.exists():
            try:
                remove_tree(self._dir)
            except OSError:
                pass
        self._dir = None

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
            return False
        self.rollback()
        if self.not_restored and exc is not None:
            note = "could not restore: " + "; ".join(self.not_restored)
            if hasattr(exc, "hint"):
                exc.hint = ((exc.hint or "") + "; " + note).lstrip("; ")
            else:  # Ctrl-C or a bug: the CLI prints the exception's notes
                exc.add_note(note)
        return False


_SPECIAL = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


def _refuse_uncopyable(path: Path) -> None:
    from comfydock.errors import ComfydockError

    def refuse(what: Path, kind: str):
        return ComfydockError(
            f"{what} is {kind}", hint=f"move it out of the way ('mv {what} {what}.moved'), then run the command again"
        )

    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        raise refuse(path, "not a folder")
    for dirpath, dirnames, filenames in os.walk(path):  # never into a linked folder
        for name in filenames + dirnames:
            entry_mode = os.lstat(os.path.join(dirpath, name)).st_mode
            kind = next((k for test, k in _SPECIAL if test(entry_mode)), None)
            if kind:
                raise refuse(Path(dirpath) / name, f"{kind}, not a file")


def _same_tree(a: Path, b: Path) -> bool:
    """Whether two trees hold the same names, link targets and file bytes (a missing or
    unreadable one: not the same)."""
    try:
        if not b.is_dir() or b.is_symlink():
            return False
        for dirpath, dirnames, filenames in os.walk(a):
            rel = os.path.relpath(dirpath, a)
            other = b / rel
            if sorted(os.listdir(other)) != sorted(dirnames + filenames):
                return False
            for name in dirnames + filenames:
                x, y = Path(dirpath) / name, other / name
                if x.is_symlink() or y.is_symlink():
                    if not (x.is_symlink() and y.is_symlink() and os.readlink(x) == os.readlink(y)):
                        return False
                elif x.is_dir() != y.is_dir():
                    return False
                elif not x.is_dir() and (x.stat().st_size != y.stat().st_size or x.read_bytes() != y.read_bytes()):
                    return False
        return True
    except OSError:
        return False


def _same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a, follow_symlinks=False).st_dev == os.stat(b).st_dev
    except OSError:
        return False
