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
from comfydock.fsutil import atomic_write_json, remove_tree
from comfydock.gitutil import git_reason
from comfydock.locking import environment_lock


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
    def __init__(self, root: Path):
        self.root = root
        self.store = root / "store"
        self.index_file = root / "index.json"

    def entry(self, identity: str) -> CacheEntry:
        return CacheEntry(cache_key(identity), self.store / cache_key(identity))

    def _publish(self, identity: str, build_dir: Path, metadata: dict) -> CacheEntry:
        """Move a finished build into the store and record it in index.json."""
        entry = self.entry(identity)
        metadata = {**metadata, "identity": identity, "key": entry.key, "cached_at": time.time()}
        atomic_write_json(build_dir / "metadata.json", metadata)
        with environment_lock(self.root / ".lock"):
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
            sha = hashlib.sha256(archive.read_bytes()).hexdigest()
            safe_extract_zip(archive, build / "content")
            _unwrap_single_folder(build / "content")
            archive.unlink()
            return self._publish(identity, build, {**metadata, "archive_sha256": sha})
        finally:
            if build.exists():
                remove_tree(build)

    # --- git ----------------------------------------------------------------------------
    def add_git(self, identity: str, url: str, commit: str, metadata: dict) -> CacheEntry:
        import git

        build = self._build_dir()
        try:
            try:
                repo = git.Repo.clone_from(url, build / "content", no_checkout=True)
                repo.git.checkout("--detach", commit)
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


def safe_extract_zip(archive: Path, dest: Path) -> None:
    """Unpack a zip, refusing any entry that is absolute, climbs out with '..', or is a link."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise ComfydockError(
            "the downloaded node archive is not a valid zip", hint="run the command again to download it again"
        ) from None
    with zf:
        for info in zf.infolist():
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (parts and (":" in parts[0])) or ".." in parts:
                raise UnsafeArchive(
                    f"node archive entry {name!r} points outside the node directory",
                    hint="the archive is unsafe; report it to the node's author",
                )
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchive(
                    f"node archive entry {name!r} is a symbolic link",
                    hint="the archive is unsafe; report it to the node's author",
                )
        dest.mkdir(parents=True)
        for info in zf.infolist():
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
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
                target = Path(os.path.normpath(path.parent / os.readlink(path)))
                if os.path.isabs(os.readlink(path)) or not str(target.resolve()).startswith(str(base)):
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
