"""Dates as comfydock writes them for uv: RFC 3339 in UTC to the second ('2025-10-12T04:28:01Z')."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})")


def utc_text(moment: datetime) -> str:
    """RFC 3339 in UTC to the second: '2025-10-12T04:28:01Z' (what is written for uv)."""
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(text) -> datetime | None:
    """A date or RFC 3339 time as an aware datetime, or None when `text` is anything else."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    try:
        if _DATE.fullmatch(text):
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        if _TIME.fullmatch(text):
            moment = datetime.fromisoformat(text.replace(" ", "T").replace("t", "T").replace("z", "Z").replace("Z", "+00:00"))
            return moment if moment.tzinfo else None
    except ValueError:
        return None
    return None


