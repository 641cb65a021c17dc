"""Node identifiers and git URLs: pure string rules, no repositories involved."""

import pytest


@pytest.mark.parametrize(
    "url,same",
    [
        ("https://github.com/Owner/Repo.git", True),
        ("git@github.com:owner/repo", True),
        ("ssh://git@github.com/owner/repo/", True),
        ("http://GITHUB.com/owner/repo", True),
        ("https://github.com/owner/other", False),
        ("https://gitlab.com/owner/repo", False),
    ],
)
def test_git_url_normalisation(url, same):
    from comfydock.nodes.spec import normalize_git_url

    assert (normalize_git_url(url) == normalize_git_url("https://github.com/owner/repo")) is same


def test_git_url_spellings_of_one_local_repository_are_one_node(tmp_path):
    from comfydock.nodes.spec import normalize_git_url, repo_name

    repo = tmp_path / "ComfyUI-Foo"
    repo.mkdir()
    spellings = [repo.as_uri(), str(repo), f"{repo}/", f"{repo}/.git", f"{repo}.git", f"{repo.as_uri()}/.git"]
    assert len({normalize_git_url(u) for u in spellings}) == 1
    assert {repo_name(u) for u in spellings} == {"ComfyUI-Foo"}
    assert repo_name("git@github.com:owner/ComfyUI-Bar.git") == "ComfyUI-Bar"


def test_identifier_parsing():
    from comfydock.nodes.spec import split_ref

    assert split_ref("comfyui-impact-pack@1.2.3") == ("comfyui-impact-pack", "1.2.3")
    assert split_ref("https://github.com/u/r@v1") == ("https://github.com/u/r", "v1")
    assert split_ref("git@github.com:u/r.git") == ("git@github.com:u/r.git", None)
    assert split_ref("git@github.com:u/r.git@main") == ("git@github.com:u/r.git", "main")


# --- paths from hostile names stay inside their root --------------------------------------------


def test_inside_refuses_any_path_that_leaves_its_root(tmp_path):
    from comfydock.errors import ComfydockError
    from comfydock.fsutil import inside

    root = tmp_path / "custom_nodes"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    assert inside(root, "node") == (root / "node").resolve()
    for bad in ("../outside", "../../etc/passwd", "/etc/passwd", "a/../../outside", ".", "..", ""):
        with pytest.raises(ComfydockError, match="not inside"):
            inside(root, bad)
    (root / "sneaky").symlink_to(tmp_path / "outside")
    with pytest.raises(ComfydockError):
        inside(root, "sneaky/file")  # through a link that leaves the root
    assert inside(root, "sneaky") == root.resolve() / "sneaky"  # the link itself: removing it never follows it


@pytest.mark.parametrize(
    "text,ok",
    [
        ("comfyui-impact-pack", True),
        ("ComfyUI_essentials", True),
        ("../../../../tmp/x", False),
        ("x/y", False),
        ("name\n", False),
        (".hidden", False),
        ("-rf", False),
        ("node.disabled", False),
        ("", False),
        (5, False),
    ],
)
def test_names_from_the_network_follow_the_identifier_rules(text, ok):
    from comfydock.nodes.spec import is_valid_name

    assert is_valid_name(text) is ok


def test_versions_from_the_network_follow_the_version_rules():
    from comfydock.nodes.spec import is_valid_version

    assert is_valid_version("1.2.3") and is_valid_version("2024.1.1-beta+b7")
    for bad in ("1.0;rm -rf ~", "../1", "1.0\n", "", "1 0", 3):
        assert not is_valid_version(bad)


def test_a_manifest_node_entry_with_a_path_for_a_directory_is_refused():
    import tomlkit

    from comfydock.errors import ComfydockError
    from comfydock.nodes.spec import tracked_nodes

    doc = tomlkit.parse('[tool.comfydock.nodes.evil]\nsource = "registry"\ndirectory = "../../outside"\nversion = "1.0"\n')
    with pytest.raises(ComfydockError, match="invalid directory"):
        tracked_nodes(doc)


def test_every_node_name_gives_a_valid_dependency_group_name():
    import re

    from comfydock.nodes.spec import group_name

    for name in ("ComfyUI-Foo", "a+b", "x__y..z", "Node.v2"):
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", group_name(name).removeprefix("node-")), name


# --- archives ------------------------------------------------------------------------------------


def zip_of(path, members):
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def test_archive_bombs_are_refused_by_ratio_size_and_member_count(tmp_path):
    from comfydock.limits import ArchiveLimits, ArchiveTooLarge
    from comfydock.nodes.cache import safe_extract_zip

    bomb = zip_of(tmp_path / "bomb.zip", [("__init__.py", ""), ("zeros.bin", b"\0" * (8 << 20))])
    with pytest.raises(ArchiveTooLarge, match="200:1"):
        safe_extract_zip(bomb, tmp_path / "a")
    assert not (tmp_path / "a").exists()  # refused before a byte was written
    with pytest.raises(ArchiveTooLarge, match="limit of 1048576"):
        safe_extract_zip(bomb, tmp_path / "b", ArchiveLimits(max_bytes=1 << 20, max_ratio=1e9))
    many = zip_of(tmp_path / "many.zip", [(f"f{i}.py", "") for i in range(50)])
    with pytest.raises(ArchiveTooLarge, match="50 members"):
        safe_extract_zip(many, tmp_path / "c", ArchiveLimits(max_members=10))
    safe_extract_zip(many, tmp_path / "d")  # within the defaults
    assert len(list((tmp_path / "d").iterdir())) == 50


@pytest.mark.parametrize(
    "members,reason",
    [
        ([], "empty"),
        ([("node/", b"")], "empty"),
        ([("node", b"x"), ("node/__init__.py", b"")], "a file and a directory"),
        ([("a.py", b"1"), ("A.py", b"2")], "twice"),
    ],
)
def test_damaged_archives_are_refused(tmp_path, members, reason):
    from comfydock.errors import ComfydockError
    from comfydock.nodes.cache import safe_extract_zip

    archive = zip_of(tmp_path / "x.zip", members)
    with pytest.raises(ComfydockError, match=reason):
        safe_extract_zip(archive, tmp_path / "out")


def test_archive_limits_come_from_settings_and_environment_variables(workspace, monkeypatch):
    from comfydock.errors import ComfydockError
    from comfydock.limits import GIB, ArchiveLimits

    assert ArchiveLimits.from_workspace(workspace) == ArchiveLimits(2 * GIB, 100_000, 200.0)
    workspace.set_setting("archive-max-members", "500")
    monkeypatch.setenv("COMFYDOCK_ARCHIVE_MAX_RATIO", "50")
    assert ArchiveLimits.from_workspace(workspace) == ArchiveLimits(2 * GIB, 500, 50.0)
    monkeypatch.setenv("COMFYDOCK_ARCHIVE_MAX_BYTES", "lots")
    with pytest.raises(ComfydockError, match="archive-max-bytes"):
        ArchiveLimits.from_workspace(workspace)


# --- .comfydock_ignore, ComfyUI's import report ----------------------------------------------------


@pytest.mark.parametrize(
    "patterns,directory,ignored",
    [
        ("**/foo\n", "foo", True),
        ("foo\n", "foo", True),
        ("custom_nodes/foo\n", "foo", True),
        ("/custom_nodes/foo/\n", "foo", True),
        ("private-*\n!private-keep\n", "private-keep", False),
        ("private-*\n!private-keep\n", "private-x", True),
        ("**/bar\n", "foo", False),
        ("# foo\n", "foo", False),
    ],
)
def test_comfydock_ignore_follows_gitignore_rules(tmp_path, patterns, directory, ignored):
    from types import SimpleNamespace

    from comfydock.nodes.safety import is_ignored

    (tmp_path / ".comfydock_ignore").write_text(patterns)
    assert is_ignored(SimpleNamespace(cec_dir=tmp_path), directory) is ignored


def test_import_failed_lines_of_comfyui_name_the_nodes():
    from comfydock.nodes.check import import_failures

    log = [
        "Import times for custom nodes:",
        "   0.0 seconds: /ws/environments/main/ComfyUI/custom_nodes/websocket_image_save.py",
        "   0.1 seconds (IMPORT FAILED): /ws/environments/main/ComfyUI/custom_nodes/ComfyUI-Impact-Pack",
        "\x1b[33m   0.0 seconds (IMPORT FAILED): C:\\ComfyUI\\custom_nodes\\Other-Node\x1b[0m",
    ]
    assert import_failures(log) == ["ComfyUI-Impact-Pack", "Other-Node"]


def test_a_link_into_a_sibling_with_a_longer_name_is_outside_the_node(tmp_path):
    from comfydock.nodes.cache import UnsafeArchive, check_links_stay_inside

    node, sibling = tmp_path / "node", tmp_path / "node-evil"
    node.mkdir()
    sibling.mkdir()
    (node / "inside").symlink_to("sub")
    check_links_stay_inside(node)
    (node / "sneaky").symlink_to("../node-evil/x")
    with pytest.raises(UnsafeArchive, match="leaves the node"):
        check_links_stay_inside(node)


@pytest.mark.parametrize(
    "url", ["ext::sh -c touch% /tmp/pwned.git", "--upload-pack=touch /tmp/x.git", "fd::17.git", "https://h/x\n.git"]
)
def test_git_urls_that_make_git_run_something_are_refused(url):
    from comfydock.errors import UsageError
    from comfydock.nodes.spec import check_git_url

    with pytest.raises(UsageError, match="not a git URL"):
        check_git_url(url)
    for ok in ("https://github.com/o/r", "git@github.com:o/r.git", "ssh://git@h:22/o/r", "file:///tmp/r", "/tmp/r.git"):
        assert check_git_url(ok) == ok
