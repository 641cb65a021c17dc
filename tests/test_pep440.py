"""Version ordering as pip and uv have it: release tags, Python versions, node versions."""

from __future__ import annotations

from comfydock.pep440 import newest, parse_version, version_sort_key


def test_release_tags_sort_numerically_not_by_text():
    tags = ["v0.3.9", "v0.3.10", "v0.10.0", "v0.3", "v1.0.0rc1", "v1.0.0"]
    assert sorted(tags, key=version_sort_key, reverse=True) == ["v1.0.0", "v1.0.0rc1", "v0.10.0", "v0.3.10", "v0.3.9", "v0.3"]


def test_python_versions_sort_with_prereleases_and_local_builds():
    found = ["3.13.0+freethreaded", "3.9.18", "3.14.0a1", "3.12.1", "3.13.0"]
    assert sorted(found, key=version_sort_key) == ["3.9.18", "3.12.1", "3.13.0", "3.13.0+freethreaded", "3.14.0a1"]


def test_unparseable_versions_rank_below_every_real_one():
    assert newest(["nightly", "1.2", "", None, "v1.10"]) == "v1.10"
    assert newest(["nightly", "latest"]) == "nightly"
    assert newest([]) is None
    assert parse_version(" v2.0 ") == parse_version("2") and parse_version("not a version") is None
