"""Small filesystem helpers: atomic writes and careful removal."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path


def _umask() -> int:
    try:  # Linux says it without changing it (os.umask can only be read by setting it)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def temp_beside(path: Path) -> tuple[int, str]:
    """A temp file beside `path` to be renamed over it, with the mode `path` will have: its own
    if it exists, else what the umask gives a new file (mkstemp's 0600 would make a shared bundle
    or a versioned file private)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    try:
        os.fchmod(fd, mode)
    except OSError:
        pass  # a file system without modes: mkstemp's mode stands
    return fd, tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write names no file: name the one being written (a full disk)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def restore_bytes(path: Path, data: bytes) -> None:
    """Put `data` back at `path` (an undo): nothing to do when it already holds them; atomic when
    there is room, else in place (a full disk has no room for a second copy, and truncating the
    file frees its own blocks first)."""
    try:
        if path.is_file() and not path.is_symlink() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.is_file() or path.is_symlink():
            raise
        with open(path, "r+b") as f:
            f.truncate(0)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: object) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json_state(path: Path, expect: type = dict) -> object | None:
    """A derived-state JSON file (never versioned): its content, or None when it is missing,
    unreadable, not JSON, or not of the expected type, so the caller re-derives it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # nested past the parser: damaged (or planted)
        return None
    return data if isinstance(data, expect) else None


def _make_writable_and_retry(func, path, _exc_info):
    # git object files are read-only; rmtree needs them writable to unlink on some systems.
    os.chmod(path, stat.S_IWRITE | stat.S_IREAD)
    func(path)


def remove_tree(path: Path) -> None:
    """Remove a directory tree (or a link/file) without following links out of it."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=_make_writable_and_retry)


def inside(root: Path, path: Path | str) -> Path:
    """`path` (absolute, or relative to `root`) made absolute, proven to stay inside `root`.

    The parent is resolved (links followed) and the last part kept as it is, so a link inside
    `root` that points elsewhere is the link itself (removing it never follows it). Raises
    ComfydockError when the result would be outside `root` or would be `root` itself.
    """
    from comfydock.errors import ComfydockError

    base = Path(root).resolve()
    p = Path(path)
    if not p.is_absolute():
        p = Path(root) / p
    name = p.name
    if name in ("", ".", "..") or "\x00" in str(p):
        resolved = p.resolve()
    else:
        resolved = p.parent.resolve() / name
    if resolved == base or base not in resolved.parents:
        raise ComfydockError(
            f"refusing to touch {path}: it is not inside {root}",
            hint="a name from the registry, a manifest or an archive tried to leave its directory; nothing was changed",
        )
    return resolved


_DRIVE_RE = re.compile(r"^[A-Za-z]:")


# characters HFS+ ignores in names: '.g\u200cit' opens as '.git' on macOS
_HFS_IGNORED = dict.fromkeys([0x200C, 0x200D, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


def names_git_dir(part: str) -> bool:
    """Whether one path part is what git, Windows or macOS would open as `.git`: '.git' in any
    case, '.git.', '.git ', '.git::$INDEX_ALLOCATION', the 8.3 short name 'GIT~1', '.g\u200cit'."""
    bare = part.split(":")[0].translate(_HFS_IGNORED).rstrip(". ").casefold()
    return bare == ".git" or re.fullmatch(r"git~\d+", bare) is not None


def relative_path_problem(name: str, root: str = "its folder") -> str | None:
    """Why `name` (from a bundle, a lock file) cannot be a relative path inside its root, or None:
    a plain 'a/b/c' that stays inside. The reason is a predicate for the caller's subject
    ("model[0].path points outside its folder ('..')"); `root` names what '..' would leave."""
    if not name:
        return "is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "holds control characters"
    if "\\" in name:
        return "holds a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE_RE.match(name) or ":" in name:
        return "holds a drive letter or ':'"
    parts = name.split("/")
    if ".." in parts:
        return f"points outside {root} ('..')"
    if any(p in ("", ".") for p in parts):
        return "is not a plain relative path"
    if len(name) > 4096 or any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        return "is too long"
    return None
