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
    from comfydock.nodes import normalize_git_url

    assert (normalize_git_url(url) == normalize_git_url("https://github.com/owner/repo")) is same


def test_identifier_parsing():
    from comfydock.nodes import split_ref

    assert split_ref("comfyui-impact-pack@1.2.3") == ("comfyui-impact-pack", "1.2.3")
    assert split_ref("https://github.com/u/r@v1") == ("https://github.com/u/r", "v1")
    assert split_ref("git@github.com:u/r.git") == ("git@github.com:u/r.git", None)
    assert split_ref("git@github.com:u/r.git@main") == ("git@github.com:u/r.git", "main")
