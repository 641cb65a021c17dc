"""requirements.txt scanning: what is kept, and what is reported instead of silently dropped."""

import pytest

from comfydock.errors import UsageError
from comfydock.requirements_txt import parse_requirement, scan_requirements_file


def test_comments_markers_continuations_and_includes(tmp_path):
    (tmp_path / "extra.txt").write_text("cdfix-beta>=1  # trailing comment\n")
    (tmp_path / "requirements.txt").write_text(
        "# header\n\n"
        "numpy<2\n"
        "pillow>=10 ; python_version >= '3.11'\n"
        "opencv-python\\\n>=4.5\n"
        "-r extra.txt\n"
        "pkg @ https://example.invalid/pkg-1.0.tar.gz\n"
    )
    scanned = scan_requirements_file(tmp_path / "requirements.txt")
    assert scanned.requirements == [
        "numpy<2",
        'pillow>=10; python_version >= "3.11"',
        "opencv-python>=4.5",
        "cdfix-beta>=1",
        "pkg @ https://example.invalid/pkg-1.0.tar.gz",
    ]
    assert scanned.skipped == []


def test_option_lines_and_garbage_are_reported(tmp_path):
    (tmp_path / "requirements.txt").write_text(
        "--extra-index-url https://download.pytorch.org/whl/cu121\n-e git+https://x/y#egg=y\nnumpy>>2\nok-pkg\n"
    )
    scanned = scan_requirements_file(tmp_path / "requirements.txt")
    assert scanned.requirements == ["ok-pkg"]
    reasons = dict(scanned.skipped)
    assert reasons["--extra-index-url https://download.pytorch.org/whl/cu121"] == "pip option, not a requirement"
    assert "not a valid requirement" in reasons["numpy>>2"]
    assert len(scanned.skipped) == 3


def test_include_outside_the_node_is_refused(tmp_path):
    node = tmp_path / "node"
    node.mkdir()
    (tmp_path / "secret.txt").write_text("evil-pkg\n")
    (node / "requirements.txt").write_text("-r ../secret.txt\nfine\n")
    scanned = scan_requirements_file(node / "requirements.txt")
    assert scanned.requirements == ["fine"]
    assert scanned.skipped == [("-r ../secret.txt", "include points outside the node")]


def test_include_cycles_terminate(tmp_path):
    (tmp_path / "a.txt").write_text("-r b.txt\nalpha\n")
    (tmp_path / "b.txt").write_text("-r a.txt\nbeta\n")
    assert scan_requirements_file(tmp_path / "a.txt").requirements == ["beta", "alpha"]


@pytest.mark.parametrize("bad", ["numpy>>2", "../evil", ""])
def test_invalid_requirement_strings_name_the_string(bad):
    with pytest.raises(UsageError) as info:
        parse_requirement(bad)
    assert repr(bad) in info.value.message
