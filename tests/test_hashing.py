"""The one digest module: file, named-files and tree digests keep the values earlier versions
stored (doit states, node install records), so an upgrade does not rebuild or re-check anything."""

from __future__ import annotations

import pytest

from comfydock.hashing import file_digest, files_digest, tree_digest
from comfydock.nodes.safety import _tree_digest
from comfydock.nodes.scan import requirements_digest


@pytest.fixture
def node_dir(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy>=1\n")
    (tmp_path / "requirements-extra.txt").write_text("-r requirements.txt\n")
    (tmp_path / "sub" / "__pycache__").mkdir(parents=True)
    (tmp_path / "sub" / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "__pycache__" / "a.pyc").write_bytes(b"c")
    (tmp_path / "b.pyc").write_bytes(b"d")
    return tmp_path


def test_digests_are_pinned_on_known_files(node_dir):
    req = node_dir / "requirements.txt"
    assert file_digest(req) == "61a016e6e50a3e5f8c1ee78f74d8f0d12c7c69428495def373c075bea21ebe5c"  # sha256sum
    assert file_digest(req, "blake3") == "a0c54ba633a305893a59ef35c329e27f26736dd906e1bfebbcb0e325acafa588"
    assert requirements_digest(node_dir) == "0dd9d9e8d5f4cb0b82cd249be2c9b718588a0af8b7eb498e51bb1be15c6cf7a9"
    assert _tree_digest(node_dir) == "8ebb66dd361ed11e5a8f4359da9b3cf7bd57e84fdb7e3828b847d807b8df1b0c"


def test_a_node_tree_digest_ignores_bytecode_but_not_sources(node_dir):
    before = _tree_digest(node_dir)
    (node_dir / "sub" / "__pycache__" / "a.pyc").write_bytes(b"recompiled")
    (node_dir / "c.pyc").write_bytes(b"new")
    assert _tree_digest(node_dir) == before
    (node_dir / "sub" / "a.py").write_text("x = 2\n")
    assert _tree_digest(node_dir) != before
    assert tree_digest(node_dir, "sha256") != tree_digest(node_dir, "blake3")


def test_names_are_part_of_a_files_digest(node_dir):
    req = node_dir / "requirements.txt"
    assert files_digest([("a", req)]) != files_digest([("b", req)])
    with pytest.raises(OSError):
        files_digest([("gone", node_dir / "missing.txt")])
    gone = files_digest([("x", node_dir / "missing.txt")], unreadable=b"?")
    assert gone != files_digest([("x", req)], unreadable=b"?") and len(gone) == 64
