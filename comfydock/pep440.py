"""Version strings ordered the way pip and uv order them (packaging.version), with a leading "v" allowed."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version


def parse_version(text: str | None) -> Version | None:
    """`text` ("1.2", "v0.3.10", "3.13.0+freethreaded") as a Version; None if empty or not PEP 440."""
    if not text:
        return None
    try:
        return Version(text.strip().lstrip("vV"))
    except InvalidVersion:
        return None


def version_sort_key(text: str) -> tuple:
    """Sort key: valid versions in PEP 440 order, above any unparseable string (those by text)."""
    version = parse_version(text)
    return (1, version, "") if version is not None else (0, Version("0"), text)


def newest(versions) -> str | None:
    """The newest of `versions` (strings; empty and non-strings ignored); None if there is none."""
    versions = [v for v in versions if isinstance(v, str) and v]
    return max(versions, key=version_sort_key) if versions else None
