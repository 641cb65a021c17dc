"""Bounds on what an archive may unpack to (node zips now, bundles later): size, members, ratio.

Generous defaults; each is a workspace setting (`comfydock config archive-max-bytes N`) and an
environment variable ($COMFYDOCK_ARCHIVE_MAX_BYTES, …), the variable winning.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from comfydock.errors import ComfydockError

GIB = 1 << 30


class ArchiveTooLarge(ComfydockError):
    pass


def seconds_from_env(name: str, default: float) -> float:
    """A number of seconds from $name (default when unset or empty); anything else is refused, naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ComfydockError(
            f"${name} must be a number of seconds (0 or more), not {raw[:40]!r}",
            hint=f"set it to a number (e.g. {default:g}) or unset it: 'unset {name}'",
        )
    return value


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = 2 * GIB  # total uncompressed size
    max_members: int = 100_000
    max_ratio: float = 200.0  # uncompressed / compressed, over the whole archive

    SETTINGS = {"archive-max-bytes": "max_bytes", "archive-max-members": "max_members", "archive-max-ratio": "max_ratio"}

    @classmethod
    def from_settings(cls, setting) -> "ArchiveLimits":
        """From a settings getter (e.g. Workspace.setting, which also reads the env vars)."""
        values = {}
        for key, field in cls.SETTINGS.items():
            try:
                raw = setting(key)
            except KeyError:  # a workspace that does not know this setting
                raw = None
            if raw in (None, ""):
                continue
            try:
                number = float(raw) if field == "max_ratio" else int(str(raw).strip())
            except ValueError:
                number = 0
            if number <= 0:
                raise ComfydockError(
                    f"setting {key} must be a positive number, not {raw!r}",
                    hint=f"'comfydock config {key} NUMBER', or back to the default: 'comfydock config {key} --unset'",
                )
            values[field] = number
        return cls(**values)

    @classmethod
    def from_workspace(cls, ws) -> "ArchiveLimits":
        return cls() if ws is None else cls.from_settings(ws.setting)

    def check(self, what: str, members: int, total: int, compressed: int) -> None:
        """Refuse an archive whose listing already says it is too big (before unpacking a byte)."""
        hint = "if you trust it, raise the limit with 'comfydock config {} N'"
        if members > self.max_members:
            raise ArchiveTooLarge(
                f"{what} has {members} members, more than the limit of {self.max_members}",
                hint=hint.format("archive-max-members"),
            )
        if total > self.max_bytes:
            raise ArchiveTooLarge(
                f"{what} unpacks to {total} bytes, more than the limit of {self.max_bytes}",
                hint=hint.format("archive-max-bytes"),
            )
        if total > 1 << 20 and total > self.max_ratio * max(compressed, 1):
            raise ArchiveTooLarge(
                f"{what} unpacks to {total} bytes from {compressed} ({total / max(compressed, 1):.0f}:1, limit {self.max_ratio:g}:1)",
                hint=hint.format("archive-max-ratio"),
            )


DOWNLOAD_SECONDS = 600.0  # the download-timeout setting's default


def download_seconds(workspace) -> float:
    """The download-timeout setting: how long one download may take in all (comfydock.http.bounded_get)."""
    if workspace is None:
        return DOWNLOAD_SECONDS
    raw = workspace.setting("download-timeout")
    try:
        value = float(raw) if raw not in (None, "") else DOWNLOAD_SECONDS
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ComfydockError(
            f"setting download-timeout must be a number of seconds above 0, not {raw!r}",
            hint="'comfydock config download-timeout SECONDS', or back to the default: 'comfydock config download-timeout --unset'",
        )
    return value
