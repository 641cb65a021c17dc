"""Bundle archives: deterministic writes, dev node file selection, and hostile bundles refused with nothing written."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import time

import pytest

from comfydock.bundle.archive import (
    ArchiveLimits,
    check_bundle,
    dev_node_files,
    extract_bundle,
    write_bundle,
)
from comfydock.errors import ComfydockError

LOCK = b'lock_version = 1\n\n[[node]]\nid = "my-node"\nmethod = "development"\n'
PYPROJECT = b'[project]\nname = "env"\nversion = "0.1.0"\n'
UV_LOCK = b"version = 1\n"
BASE = {"comfydock.lock": LOCK, "pyproject.toml": PYPROJECT, "uv.lock": UV_LOCK}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw_bundle(path, members, *, fmt=tarfile.PAX_FORMAT):
    """A .tar.gz from (TarInfo, bytes | None) pairs, exactly as given (hostile ones too)."""
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name, kind=tarfile.REGTYPE, **attrs):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def base_members():
    return [(member(name), data) for name, data in BASE.items()]


# --- writing ---------------------------------------------------------------------------------


def test_same_content_gives_a_byte_identical_bundle(tmp_path):
    node = tmp_path / "node"
    node.mkdir()
    (node / "nodes.py").write_text("print('hi')\n")
    (node / "run.sh").write_text("#!/bin/sh\n")
    (node / "run.sh").chmod(0o755)
    members = dict(BASE) | {
        "workflows/a.json": b"{}",
        "dev_nodes/node/nodes.py": node / "nodes.py",
        "dev_nodes/node/run.sh": node / "run.sh",
    }
    write_bundle(members, tmp_path / "one.tar.gz")
    os.utime(node / "nodes.py", (time.time() + 100, time.time() + 100))  # only the mtime changes
    write_bundle(dict(reversed(members.items())), tmp_path / "two.tar.gz")
    assert sha256(tmp_path / "one.tar.gz") == sha256(tmp_path / "two.tar.gz")
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == sorted(members)
    assert {i.name: i.mode for i in infos}["dev_nodes/node/run.sh"] == 0o755
    assert {i.name: i.mode for i in infos}["dev_nodes/node/nodes.py"] == 0o644
    assert {(i.uid, i.gid, i.uname, i.gname) for i in infos} == {(0, 0, "", "")}
    header = (tmp_path / "one.tar.gz").read_bytes()[:10]
    assert header[3] & 0x08 == 0, "gzip header must not carry a file name"
    assert header[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"


def test_bundle_round_trips_through_extract_with_exec_bits(tmp_path):
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    write_bundle(dict(BASE) | {"dev_nodes/n/tool.sh": tool, "workflows/w.json": b'{"a": 1}'}, tmp_path / "b.tar.gz")
    members = extract_bundle(tmp_path / "b.tar.gz", tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "workflows" / "w.json").read_bytes() == b'{"a": 1}'
    assert (out / "pyproject.toml").read_bytes() == PYPROJECT
    assert os.access(out / "dev_nodes" / "n" / "tool.sh", os.X_OK)
    assert not os.access(out / "pyproject.toml", os.X_OK)
    assert sorted(m.name for m in members) == sorted(
        ["comfydock.lock", "pyproject.toml", "uv.lock", "dev_nodes/n/tool.sh", "workflows/w.json"]
    )


def test_failed_write_leaves_no_bundle_and_no_temp_file(tmp_path):
    out = tmp_path / "out" / "b.tar.gz"
    with pytest.raises(ComfydockError, match="cannot read"):
        write_bundle(dict(BASE) | {"dev_nodes/n/gone.py": tmp_path / "missing.py"}, out)
    assert list(out.parent.iterdir()) == []


def test_dev_node_files_leave_out_git_pycache_and_gitignored_files(tmp_path):
    node = tmp_path / "my-node"
    (node / ".git" / "objects").mkdir(parents=True)
    (node / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (node / "__pycache__").mkdir()
    (node / "__pycache__" / "nodes.cpython-312.pyc").write_bytes(b"\0")
    (node / ".gitignore").write_text("*.log\nbuild/\n!keep.log\n")
    (node / "nodes.py").write_text("x = 1\n")
    (node / "debug.log").write_text("noise\n")
    (node / "keep.log").write_text("kept\n")
    (node / "build").mkdir()
    (node / "build" / "out.bin").write_bytes(b"\1")
    (node / "web" / "dist").mkdir(parents=True)
    (node / "web" / ".gitignore").write_text("dist/\n!app.log\n")
    (node / "web" / "dist" / "bundle.js").write_text("//\n")
    (node / "web" / "app.log").write_text("re-included by the nested .gitignore\n")
    (node / "web" / "index.js").write_text("//\n")
    (node / "link.py").symlink_to(node / "nodes.py")
    files, skipped = dev_node_files(node, "dev_nodes/my-node")
    assert sorted(files) == [
        "dev_nodes/my-node/.gitignore",
        "dev_nodes/my-node/keep.log",
        "dev_nodes/my-node/nodes.py",
        "dev_nodes/my-node/web/.gitignore",
        "dev_nodes/my-node/web/app.log",
        "dev_nodes/my-node/web/index.js",
    ]
    assert skipped == ["link.py"]


# --- hostile bundles -------------------------------------------------------------------------


FSMONITOR = b"[core]\n\tfsmonitor = touch /tmp/comfydock-fsmonitor-ran\n"


def hostile_cases():
    big = b"\0" * (2 << 20)
    return {
        "dotdot": ([(member("../evil.py"), b"x")], "outside"),
        "nested-dotdot": ([(member("workflows/../../evil.py"), b"x")], "outside"),
        "absolute": ([(member("/tmp/evil.py"), b"x")], "absolute"),
        "drive-letter": ([(member("C:/evil.py"), b"x")], "drive letter"),
        "backslash": ([(member("..\\evil.py"), b"x")], "backslash"),
        "symlink": ([(member("workflows/link", tarfile.SYMTYPE, linkname="/etc/passwd"), None)], "symbolic link"),
        "hardlink": ([(member("workflows/link", tarfile.LNKTYPE, linkname="pyproject.toml"), None)], "hard link"),
        "device": ([(member("dev_nodes/n/tty", tarfile.CHRTYPE, devmajor=5, devminor=0), None)], "device"),
        "fifo": ([(member("dev_nodes/n/pipe", tarfile.FIFOTYPE), None)], "fifo"),
        "duplicate": ([(member("workflows/a.json"), b"1"), (member("workflows/A.json"), b"2")], "appears twice"),
        "file-and-dir": ([(member("workflows"), b"1"), (member("workflows/a.json"), b"2")], "both a file and a directory"),
        "oversized": ([(member("dev_nodes/n/big.bin"), big)], "more than"),
        "member-count": ([(member(f"dev_nodes/n/f{i}.py"), b"") for i in range(60)], "more than 50 members"),
        # a dev node's working .git: the user's next 'git status' there would run its fsmonitor
        "git-dir": (
            [(member("dev_nodes/n/.git", tarfile.DIRTYPE), None), (member("dev_nodes/n/.git/config"), FSMONITOR)],
            ".git",
        ),
        "git-file": ([(member("dev_nodes/n/.git"), b"gitdir: /tmp/elsewhere\n")], ".git"),
        "git-dir-nested-upper": ([(member("dev_nodes/n/sub/.GIT/config"), FSMONITOR)], ".git"),
        # what Windows (8.3 short name, trailing dot) and macOS (ignored characters) open as .git
        "git-short-name": ([(member("dev_nodes/n/git~1/config"), FSMONITOR)], ".git"),
        "git-trailing-dot": ([(member("dev_nodes/n/.git./config"), FSMONITOR)], ".git"),
        "git-hfs-ignored": ([(member("dev_nodes/n/.g\u200cit/config"), FSMONITOR)], ".git"),
    }


SMALL = ArchiveLimits(max_bytes=1 << 20, max_members=50, max_ratio=200)


@pytest.mark.parametrize("case", list(hostile_cases()))
def test_hostile_bundle_is_refused_and_nothing_is_written(tmp_path, case):
    extra, reason = hostile_cases()[case]
    bundle = raw_bundle(tmp_path / "b.tar.gz", base_members() + extra)
    dest_parent = tmp_path / "target"
    dest_parent.mkdir()
    with pytest.raises(ComfydockError) as err:
        extract_bundle(bundle, dest_parent / "env", SMALL)
    assert reason in err.value.message
    assert "\n" not in err.value.message and err.value.hint
    assert list(dest_parent.iterdir()) == []
    assert not (tmp_path / "evil.py").exists()


def test_bundle_without_comfydock_lock_is_refused(tmp_path):
    bundle = raw_bundle(tmp_path / "b.tar.gz", [(member("pyproject.toml"), PYPROJECT), (member("uv.lock"), UV_LOCK)])
    with pytest.raises(ComfydockError, match=r"has no comfydock\.lock"):
        check_bundle(bundle)


def test_bundle_with_malformed_lock_is_refused_naming_the_field(tmp_path):
    bad_lock = b'lock_version = 1\n[[model]]\nhash = "zz"\n'
    bundle = raw_bundle(
        tmp_path / "b.tar.gz",
        [(member("comfydock.lock"), bad_lock), (member("pyproject.toml"), PYPROJECT), (member("uv.lock"), UV_LOCK)],
    )
    with pytest.raises(ComfydockError, match=r"model\[0\]\.hash"):
        check_bundle(bundle)


def test_corrupt_gzip_is_refused(tmp_path):
    write_bundle(dict(BASE) | {"workflows/w.json": os.urandom(200_000)}, tmp_path / "good.tar.gz")
    data = bytearray((tmp_path / "good.tar.gz").read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    (tmp_path / "bad.tar.gz").write_bytes(bytes(data))
    with pytest.raises(ComfydockError, match="not an intact .tar.gz"):
        extract_bundle(tmp_path / "bad.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "good.tar.gz"]


def test_truncated_bundle_is_refused(tmp_path):
    write_bundle(dict(BASE) | {"workflows/w.json": os.urandom(100_000)}, tmp_path / "good.tar.gz")
    (tmp_path / "cut.tar.gz").write_bytes((tmp_path / "good.tar.gz").read_bytes()[:50_000])
    with pytest.raises(ComfydockError, match="not an intact .tar.gz"):
        check_bundle(tmp_path / "cut.tar.gz")


def test_not_gzip_at_all_is_refused(tmp_path):
    (tmp_path / "b.tar.gz").write_bytes(b"PK\x03\x04 a zip, not a tarball")
    with pytest.raises(ComfydockError, match="not an intact .tar.gz"):
        check_bundle(tmp_path / "b.tar.gz")


def test_damaged_member_header_is_refused_not_silently_cut_short(tmp_path):
    # tarfile treats a bad header after the first member as the end of the archive;
    # the members after it would silently vanish from the import.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in list(BASE.items()) + [("workflows/w.json", b"{}")]:
            tar.addfile(member(name, size=len(data)), io.BytesIO(data))
    raw = bytearray(buf.getvalue())
    last = raw.rfind(b"workflows/w.json")
    raw[last + 148 : last + 156] = b"9999999\0"  # header checksum field
    (tmp_path / "b.tar.gz").write_bytes(gzip.compress(bytes(raw), mtime=0))
    with pytest.raises(ComfydockError, match="data after the end"):
        check_bundle(tmp_path / "b.tar.gz")


def test_compression_bomb_is_refused_by_ratio(tmp_path):
    bundle = raw_bundle(tmp_path / "b.tar.gz", base_members() + [(member("workflows/zeros.json"), b"\0" * (20 << 20))])
    with pytest.raises(ComfydockError, match="expands more than 200 times"):
        check_bundle(bundle)


def test_extract_refuses_a_non_empty_destination(tmp_path):
    write_bundle(dict(BASE), tmp_path / "b.tar.gz")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("user data")
    with pytest.raises(ComfydockError, match="not empty"):
        extract_bundle(tmp_path / "b.tar.gz", tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


def test_archive_limits_come_from_settings():
    settings = {"archive-max-bytes": "1000", "archive-max-ratio": "50"}
    limits = ArchiveLimits.from_settings(settings.get)
    assert (limits.max_bytes, limits.max_members, limits.max_ratio) == (1000, 100_000, 50)
    with pytest.raises(ComfydockError, match="archive-max-members") as refused:
        ArchiveLimits.from_settings({"archive-max-members": "lots"}.get)
    assert refused.value.exit_code == 1  # a setting, not the command line: a refused request


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_a_bundle_gets_the_mode_the_umask_gives_not_a_private_one(tmp_path, umask):
    from comfydock.fsutil import atomic_write_text

    old = os.umask(umask)
    try:
        write_bundle({"pyproject.toml": b"[project]\n"}, tmp_path / "shared.tar.gz")
        atomic_write_text(tmp_path / "new.toml", "x = 1\n")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.tar.gz").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "new.toml").stat().st_mode & 0o777 == 0o666 & ~umask
    (tmp_path / "new.toml").chmod(0o604)  # a file that exists keeps its own mode when rewritten
    atomic_write_text(tmp_path / "new.toml", "x = 2\n")
    assert (tmp_path / "new.toml").stat().st_mode & 0o777 == 0o604
