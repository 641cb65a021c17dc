"""The bundle archive: a deterministic .tar.gz on export, checked as a whole before an import writes anything.

A bundle holds pyproject.toml, uv.lock, comfydock.lock, workflows/ and dev_nodes/<name>/. It comes from
someone else's machine, so it is hostile until checked: check_bundle reads the whole archive (names, member
kinds, sizes, counts, the compression ratio, the gzip checksum, the locks) and only then may
extract_bundle write, into a fresh directory it renames into place.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
import tempfile
import tomllib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from comfydock.bundle import lockfile
from comfydock.errors import ComfydockError
from comfydock.fsutil import names_git_dir, relative_path_problem, temp_beside

GIB = 1 << 30
# A fixed timestamp for every member (1980-01-01, the zip epoch): tools warn about 1970.
BUNDLE_MTIME = 315532800
from comfydock.limits import ArchiveLimits  # noqa: E402 (one definition for node zips and bundles)

REQUIRED_MEMBERS = ("comfydock.lock", "pyproject.toml", "uv.lock")
# The ratio bound starts counting once this much is decompressed: tar headers and padding of a
# tiny bundle compress far better than 200:1 and are harmless.
RATIO_FLOOR = 16 << 20
# Members read into memory during the check, to parse them.
_PARSED_MEMBERS = {"comfydock.lock": 16 << 20, "pyproject.toml": 16 << 20, "uv.lock": 256 << 20}
_CHUNK = 1 << 20
_HOSTILE_HINT = "the bundle may be damaged or hostile; ask its author for a fresh export (nothing was written)"


@dataclass(frozen=True)
class BundleMember:
    name: str  # posix path inside the bundle
    size: int
    is_dir: bool = False
    executable: bool = False


# --- writing ---------------------------------------------------------------------------------


def write_bundle(members: Mapping[str, Path | bytes], out: Path) -> None:
    """Write `members` (bundle name -> file or bytes) to `out`: same input, byte-identical output.

    Sorted members, fixed mtime/owner, modes 0644 or 0755 (the exec bit is kept), gzip header
    without a file name and with mtime 0; written to a temp file beside `out`, then renamed.
    """
    for name in members:
        reason = relative_path_problem(name, "the bundle")
        if reason:
            raise ComfydockError(f"cannot bundle {name!r}: its name {reason}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(out)
    try:
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for name in sorted(members):
                        _add_member(tar, name, members[name])
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _tarinfo(name: str, size: int, executable: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = BUNDLE_MTIME
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _add_member(tar: tarfile.TarFile, name: str, source: Path | bytes) -> None:
    if isinstance(source, (bytes, bytearray)):
        tar.addfile(_tarinfo(name, len(source), False), io.BytesIO(source))
        return
    path = Path(source)
    try:
        f = open(path, "rb", buffering=0)
    except OSError as e:
        raise ComfydockError(f"cannot read {path}: {e.strerror}") from None
    with f:
        st = os.fstat(f.fileno())
        if path.is_symlink() or not stat.S_ISREG(st.st_mode):
            raise ComfydockError(f"cannot bundle {path}: not a regular file")
        try:
            tar.addfile(_tarinfo(name, st.st_size, bool(st.st_mode & 0o111)), f)
        except OSError as e:  # "unexpected end of data": the file shrank while being read
            raise ComfydockError(f"{path} changed while it was being bundled", hint="run the export again") from e


def dev_node_files(root: Path, prefix: str) -> tuple[dict[str, Path], list[str]]:
    """A dev node's files as bundle members `prefix/<relative path>` -> file.

    Leaves out `.git`, `__pycache__/` and whatever the node's .gitignore files exclude (nested
    ones too, with git's precedence). Symbolic links and special files are left out and returned
    as the second value, so the caller can say so.
    """
    import pathspec

    root = Path(root)
    files: dict[str, Path] = {}
    skipped: list[str] = []
    specs: dict[str, pathspec.GitIgnoreSpec] = {}  # directory relative to root ("" = root) -> its .gitignore

    def ignored(rel: str, is_dir: bool) -> bool:
        base = rel
        while True:
            base = base.rpartition("/")[0] if "/" in base else ""
            spec = specs.get(base)
            if spec is not None:
                sub = rel[len(base) + 1 :] if base else rel
                result = spec.check_file(sub + ("/" if is_dir else ""))
                if result.include is not None:
                    return bool(result.include)
            if not base:
                return False

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        gitignore = here / ".gitignore"
        if gitignore.is_file() and not gitignore.is_symlink():
            lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
            specs[rel_dir] = pathspec.GitIgnoreSpec.from_lines(lines)
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if d.casefold() == ".git" or d == "__pycache__" or ignored(rel, True):
                continue
            if (here / d).is_symlink():
                skipped.append(rel)
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = f"{rel_dir}/{f}" if rel_dir else f
            if f.casefold() == ".git" or ignored(rel, False):
                continue
            path = here / f
            if path.is_symlink() or not path.is_file():
                skipped.append(rel)
                continue
            files[f"{prefix}/{rel}"] = path
    return files, skipped


# --- checking --------------------------------------------------------------------------------


class _Refused(Exception):
    """A reason to refuse the bundle (turned into a ComfydockError naming the bundle)."""


class _BoundedReader(io.RawIOBase):
    """Decompressed bytes of the bundle, refusing to expand past the limits.

    Also remembers where the last non-zero byte was, so data hidden after the tar end marker
    (which tarfile stops reading at) is noticed.
    """

    def __init__(self, gz: gzip.GzipFile, max_total: int, compressed_size: int, max_ratio: int):
        self.gz = gz
        self.total = 0
        self.last_nonzero_end = 0
        self.max_total = max_total
        self.compressed_size = max(compressed_size, 1)
        self.max_ratio = max_ratio

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.gz.read(len(b))
        n = len(data)
        b[:n] = data
        if n:
            stripped = len(data.rstrip(b"\0"))
            if stripped:
                self.last_nonzero_end = self.total + stripped
            self.total += n
            if self.total > self.max_total:
                raise _Refused("it expands past the size limit")
            if self.total > RATIO_FLOOR and self.total > self.max_ratio * self.compressed_size:
                raise _Refused(
                    f"it expands more than {self.max_ratio:g} times its size ({self.compressed_size} bytes compressed)"
                )
        return n


def _quote(name: str) -> str:
    return repr(name if len(name) <= 120 else name[:120] + "…")


def _scan(path: Path, limits: ArchiveLimits, on_file: Callable[[BundleMember, tarfile.TarFile, tarfile.TarInfo], None]):
    """Read the whole archive once, validating everything; call on_file for each member (data unread)."""
    members: list[BundleMember] = []
    total_size = 0
    seen_casefold: dict[str, str] = {}
    files: set[str] = set()
    parents: set[str] = set()
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ComfydockError(f"cannot read bundle {path}: {e.strerror}", hint="check the path") from None
    with f:
        compressed_size = os.fstat(f.fileno()).st_size
        # Tar headers are 512 bytes, PAX ones add two more blocks: room for every allowed member.
        max_stream = limits.max_bytes + (limits.max_members + 2) * 2048 + tarfile.RECORDSIZE
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            reader = _BoundedReader(gz, max_stream, compressed_size, limits.max_ratio)
            buffered = io.BufferedReader(reader, buffer_size=_CHUNK)
            with tarfile.open(fileobj=buffered, mode="r|", bufsize=_CHUNK) as tar:
                for info in tar:
                    if len(members) >= limits.max_members:
                        raise _Refused(f"it holds more than {limits.max_members} members (setting archive-max-members)")
                    name = info.name
                    reason = relative_path_problem(name, "the bundle")
                    if reason:
                        raise _Refused(f"member {_quote(name)}: its name {reason}")
                    if info.issym() or info.islnk():
                        raise _Refused(f"member {_quote(name)} is a {'symbolic' if info.issym() else 'hard'} link")
                    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):  # also no sparse/contiguous
                        raise _Refused(f"member {_quote(name)} is not a regular file or directory (a device, fifo or other)")
                    if any(names_git_dir(part) for part in name.split("/")):
                        # a working .git would be the bundle's config (fsmonitor, hooks) run by the user's next git status
                        raise _Refused(f"member {_quote(name)} is part of a git repository (.git); export never writes one")
                    folded = name.casefold()
                    if folded in seen_casefold:
                        raise _Refused(f"member {_quote(name)} appears twice (as {_quote(seen_casefold[folded])})")
                    seen_casefold[folded] = name
                    parts = name.split("/")
                    parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
                    total_size += info.size
                    if total_size > limits.max_bytes:
                        raise _Refused(f"its members add up to more than {limits.max_bytes} bytes (setting archive-max-bytes)")
                    member = BundleMember(name, info.size if info.isreg() else 0, info.isdir(), bool(info.mode & 0o111))
                    members.append(member)
                    if info.isreg():
                        files.add(name)
                        on_file(member, tar, info)
                end_offset = tar.offset
            while buffered.read(_CHUNK):  # the rest of the gzip stream: its checksum is checked at the end
                pass
            if reader.last_nonzero_end > end_offset:
                raise _Refused("it holds data after the end of the archive (a damaged member header)")
    clash = files & parents
    if clash:
        raise _Refused(f"member {_quote(min(clash))} is both a file and a directory")
    return members


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, sink) -> None:
    src = tar.extractfile(info)
    remaining = info.size
    while remaining:
        chunk = src.read(min(_CHUNK, remaining))
        if not chunk:
            raise _Refused(f"member {_quote(info.name)} is cut short")
        remaining -= len(chunk)
        if sink is not None:
            sink(chunk)


def _refusal(path: Path, reason: str) -> ComfydockError:
    return ComfydockError(f"bundle {path.name} refused: {reason}", hint=_HOSTILE_HINT)


def check_bundle(
    path: Path, limits: ArchiveLimits | None = None, required: tuple[str, ...] = REQUIRED_MEMBERS
) -> list[BundleMember]:
    """Validate the WHOLE bundle without writing anything; the members, or ComfydockError with the reason.

    Refuses: names with '..', absolute names, drive letters, backslashes, control characters, a `.git`; links,
    devices, fifos; duplicate names (also differing only in case), a name used as both file and directory,
    a folder named *.json in workflows/; more members, bytes or expansion than `limits`; a corrupt or
    truncated gzip/tar; a missing required member; a comfydock.lock, pyproject.toml or uv.lock that does not parse.
    """
    path = Path(path)
    limits = limits or ArchiveLimits()
    parsed: dict[str, bytearray] = {}

    def keep_locks(member: BundleMember, tar, info) -> None:
        cap = _PARSED_MEMBERS.get(member.name)
        if cap is not None:
            if member.size > cap:
                raise _Refused(f"member {member.name} is larger than {cap} bytes")
            parsed[member.name] = buf = bytearray()
            _read_member(tar, info, buf.extend)
        else:
            _read_member(tar, info, None)

    members = _run_scan(path, limits, keep_locks)
    names = {m.name for m in members if not m.is_dir}
    folders = {m.name.rstrip("/") for m in members if m.is_dir} | {n.rsplit("/", 1)[0] for n in names if "/" in n}
    for folder in sorted(folders):
        parents = folder.split("/")
        for i in range(1, len(parents)):  # every folder on the way, 'workflows/d.json' of 'workflows/d.json/x/y'
            if parents[0] == "workflows" and parents[i].endswith(".json"):
                raise _refusal(path, f"{'/'.join(parents[: i + 1])} is a folder (a workflow is a file)")
    missing = [r for r in required if r not in names]
    if missing:
        raise _refusal(path, f"it has no {', '.join(missing)} (not a comfydock bundle?)")
    _check_locks(path, parsed)
    return members


def _run_scan(path: Path, limits: ArchiveLimits, on_file) -> list[BundleMember]:
    try:
        return _scan(path, limits, on_file)
    except _Refused as e:
        raise _refusal(path, str(e)) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _refusal(path, f"it is not an intact .tar.gz ({detail})") from None


def _check_locks(path: Path, parsed: Mapping[str, bytes]) -> None:
    for name, data in parsed.items():
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise _refusal(path, f"{name} is not UTF-8 text") from None
        try:
            if name == "comfydock.lock":
                lockfile.loads(text)
            else:
                tomllib.loads(text)
        except ComfydockError as e:
            refusal = _refusal(path, f"{e.message}")
            if e.hint and e.hint != lockfile.GENERAL_HINT:  # a specific way out (a model URL: --models-from)
                refusal.hint = f"{e.hint} (nothing was written)"
            raise refusal from None
        except tomllib.TOMLDecodeError as e:
            raise _refusal(path, f"{name} does not parse ({e})") from None


def extract_bundle(path: Path, dest: Path, limits: ArchiveLimits | None = None) -> list[BundleMember]:
    """Check the whole bundle, then extract it to `dest` (which must not exist, or be empty).

    Files are written into a temporary directory beside `dest`, never through a link, and
    renamed into place at the end: on any failure (Ctrl-C too) nothing is left at `dest`.
    """
    path, dest = Path(path), Path(dest)
    limits = limits or ArchiveLimits()
    checked = check_bundle(path, limits)
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise ComfydockError(f"cannot extract the bundle into {dest}: it exists and is not empty", hint="choose a new directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extract", dir=dest.parent))
    root = os.path.realpath(tmp)
    expected = iter([m for m in checked if not m.is_dir])
    nofollow = getattr(os, "O_NOFOLLOW", 0)

    def write(member: BundleMember, tar, info) -> None:
        target = tmp.joinpath(*member.name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.commonpath([root, os.path.realpath(target.parent)]) != root:
            raise _Refused(f"member {_quote(member.name)} would be written outside the destination")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow | getattr(os, "O_BINARY", 0), 0o600)
        with os.fdopen(fd, "wb") as out:
            _read_member(tar, info, out.write)
        os.chmod(target, 0o755 if member.executable else 0o644)

    def write_checked(member: BundleMember, tar, info) -> None:
        # The file could have been swapped since the check: every member must be the one checked.
        if next(expected, None) != member:
            raise _Refused("it changed while being imported")
        write(member, tar, info)

    try:
        seen = _run_scan(path, limits, write_checked)
        if seen != checked:
            raise _refusal(path, "it changed while being imported")
        for member in seen:
            if member.is_dir:
                tmp.joinpath(*member.name.split("/")).mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return checked
