"""The workspace's custom node cache: one directory per node version, shared by every environment.

Layout (spec): comfydock_cache/custom_nodes/store/<key>/{content/, metadata.json} and index.json
mapping keys to what they hold. A key is derived from what identifies the content exactly:
registry id + version, or normalised git URL + commit. An entry appears whole or not at all
(built in a temporary directory, then renamed into place).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json, inside, remove_tree
from comfydock.gitutil import git_reason
from comfydock.hashing import file_digest
from comfydock.limits import ArchiveLimits, ArchiveTooLarge


class UnsafeArchive(ComfydockError):
    pass


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path

    @property
    def content(self) -> Path:
        return self.path / "content"

    @property
    def metadata_file(self) -> Path:
        return self.path / "metadata.json"

    def exists(self) -> bool:
        return self.metadata_file.is_file() and self.content.is_dir()

    def metadata(self) -> dict:
        return json.loads(self.metadata_file.read_text())


def cache_key(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


class NodeCache:
    def __init__(self, root: Path, limits: ArchiveLimits | None = None):
        self.root = root
        self.store = root / "store"
        self.index_file = root / "index.json"
        self.limits = limits or ArchiveLimits()

    def entry(self, identity: str) -> CacheEntry:
        key = cache_key(identity)
        return CacheEntry(key, inside(self.root, self.store / key))

    def prune(self, referenced: set[str]) -> list[dict]:
        """Delete the entries whose identity is not in `referenced`; what was removed."""
        from comfydock.process_lock import process_lock

        keep = {cache_key(i) for i in referenced}
        removed = []
        if not self.store.is_dir():
            return removed
        with process_lock(self.root / ".lock"):
            index = self.index()
            for path in sorted(self.store.iterdir()):
                if path.name.startswith(".") or path.name in keep:
                    continue  # '.build-*': another command may be filling it right now
                info = index.pop(path.name, None) or {}
                size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
                remove_tree(inside(self.store, path.name))
                removed.append({"key": path.name, "identity": info.get("identity"), "bytes": size})
            atomic_write_json(self.index_file, {k: v for k, v in index.items() if k in keep})
        return removed

    def _publish(self, identity: str, build_dir: Path, metadata: dict) -> CacheEntry:
        """Move a finished build into the store and record it in index.json."""
        from comfydock.process_lock import process_lock

        entry = self.entry(identity)
        metadata = {**metadata, "identity": identity, "key": entry.key, "cached_at": time.time()}
        atomic_write_json(build_dir / "metadata.json", metadata)
        with process_lock(self.root / ".lock"):
            if not entry.exists():
                if entry.path.exists():
                    remove_tree(entry.path)  # a leftover of an interrupted publish
                os.replace(build_dir, entry.path)
            index = self.index()
            index[entry.key] = {k: metadata.get(k) for k in ("identity", "source", "id", "version", "commit", "url")}
            atomic_write_json(self.index_file, index)
        return entry

    def index(self) -> dict:
        try:
            return json.loads(self.index_file.read_text())
        except (OSError, ValueError):
            return {}

    def _build_dir(self) -> Path:
        self.store.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".build-", dir=self.store))

    # --- registry zips ------------------------------------------------------------------
    def add_registry_zip(self, identity: str, download, metadata: dict) -> CacheEntry:
        """`download(path)` writes the zip; it is checked and unpacked into a new entry."""
        build = self._build_dir()
        try:
            archive = build / "download.zip"
            download(archive)
            sha = file_digest(archive)
            safe_extract_zip(archive, build / "content", self.limits)
            _unwrap_single_folder(build / "content")
            archive.unlink()
            return self._publish(identity, build, {**metadata, "archive_sha256": sha})
        finally:
            if build.exists():
                remove_tree(build)

    # --- git ----------------------------------------------------------------------------
    def add_git(self, identity: str, url: str, commit: str, metadata: dict) -> CacheEntry:
        from comfydock.gitutil import git as _git

        git = _git()

        from comfydock.nodes.spec import check_git_url

        check_git_url(url)  # the URL may come from someone else's manifest
        build = self._build_dir()
        try:
            try:
                repo = git.Repo.clone_from(url, build / "content", no_checkout=True)
            except git.GitCommandError as exc:
                raise ComfydockError(f"cannot clone {url}: {git_reason(exc)}", hint="check the URL") from None
            try:
                repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{commit}^{{commit}}")
            except git.GitCommandError:
                what = metadata.get("ref") or commit
                raise ComfydockError(
                    f"{what!r} is not a commit of {url}",
                    hint="give a branch, a tag or a full commit hash after '@' (see 'git ls-remote URL')",
                ) from None
            try:
                repo.git.checkout("--detach", commit, "--")
            except git.GitCommandError as exc:
                raise ComfydockError(
                    f"cannot clone {url} at {commit[:12]}: {git_reason(exc)}", hint="check the URL and ref"
                ) from None
            check_links_stay_inside(build / "content")
            return self._publish(identity, build, {**metadata, "url": url, "commit": commit})
        finally:
            if build.exists():
                remove_tree(build)


def _unwrap_single_folder(content: Path) -> None:
    """Some archives hold the node inside one folder ('Node-1.0/__init__.py'); ComfyUI wants
    __init__.py at the top of the node directory, so lift that folder's contents up."""
    entries = list(content.iterdir())
    if len(entries) != 1 or not entries[0].is_dir() or not (entries[0] / "__init__.py").exists():
        return
    inner = content.with_name(content.name + ".inner")
    os.replace(entries[0], inner)
    content.rmdir()
    os.replace(inner, content)


def _member_parts(name: str) -> tuple[str, ...]:
    """A zip member's path parts, refusing any name that is absolute, climbs out or is odd."""
    unsafe = UnsafeArchive(
        f"node archive entry {name!r} points outside the node directory",
        hint="the archive is unsafe; report it to the node's author",
    )
    if not name or "\x00" in name or name.startswith(("/", "\\")):
        raise unsafe
    parts = tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))
    if not parts or ".." in parts or ":" in parts[0]:
        raise unsafe
    return parts


def safe_extract_zip(archive: Path, dest: Path, limits: ArchiveLimits | None = None) -> None:
    """Unpack a zip whole or refuse it: no entry may be absolute, climb out with '..', be a
    link, or clash with another (a file and a directory of one name); the archive must hold a
    file; its size, member count and ratio stay within `limits` (counted while unpacking too,
    since a member's declared size can lie)."""
    limits = limits or ArchiveLimits()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ComfydockError(
            "the downloaded node archive is not a valid zip", hint="run the command again to download it again"
        ) from None
    with zf:
        infos = zf.infolist()
        limits.check(
            "the node archive",
            len(infos),
            sum(max(i.file_size, 0) for i in infos),
            archive.stat().st_size,
        )
        files: set[tuple[str, ...]] = set()
        dirs: set[tuple[str, ...]] = set()
        for info in infos:
            name = info.filename
            parts = _member_parts(name)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchive(
                    f"node archive entry {name!r} is a symbolic link",
                    hint="the archive is unsafe; report it to the node's author",
                )
            key = tuple(p.lower() for p in parts)  # one name on a case-insensitive disk too
            if info.is_dir():
                dirs.add(key)
            else:
                if key in files:
                    raise UnsafeArchive(
                        f"node archive holds {name!r} twice", hint="the archive is damaged; report it to the node's author"
                    )
                files.add(key)
            for i in range(1, len(key)):
                dirs.add(key[:i])
        clash = sorted(files & dirs)
        if clash:
            raise UnsafeArchive(
                f"node archive holds a file and a directory both named {'/'.join(clash[0])!r}",
                hint="the archive is damaged; report it to the node's author",
            )
        if not files:
            raise UnsafeArchive("the node archive is empty (it holds no file)", hint="report it to the node's author")
        dest.mkdir(parents=True)
        written = 0
        for info in infos:
            target = inside(dest, "/".join(_member_parts(info.filename)))
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > limits.max_bytes:
                        raise ArchiveTooLarge(
                            f"the node archive unpacks to more than the limit of {limits.max_bytes} bytes",
                            hint="if you trust it, raise the limit with 'comfydock config archive-max-bytes N'",
                        )
                    out.write(chunk)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode | 0o600)


def check_links_stay_inside(root: Path) -> None:
    """A checked-out node may contain links, but none that lead out of it."""
    base = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames and Path(dirpath) == root:
            dirnames.remove(".git")
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                target = Path(os.path.normpath(path.parent / os.readlink(path))).resolve()
                if os.path.isabs(os.readlink(path)) or not (target == base or base in target.parents):
                    raise UnsafeArchive(
                        f"node repository contains a link {path.relative_to(root)} -> {os.readlink(path)} that leaves the node",
                        hint="the repository is unsafe; report it to the node's author",
                    )


def copy_content(entry: CacheEntry, dest: Path) -> None:
    """Copy a cache entry's content to `dest` (which must not exist), whole or not at all."""
    tmp = dest.with_name(f".{dest.name}.installing")
    if tmp.exists():
        remove_tree(tmp)
    try:
        shutil.copytree(entry.content, tmp, symlinks=True)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            remove_tree(tmp)
