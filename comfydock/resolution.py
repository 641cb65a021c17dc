"""The environment's resolution date: uv resolves as of one date, packages allowed newer say why.

What uv reads is `[tool.uv]`: `exclude-newer` (the date) and `exclude-newer-package` (per package:
a later date, or `false` for no cutoff). Why each value is there is comfydock's own record,
`[tool.comfydock.resolution]`:

    [tool.comfydock.resolution]
    as-of = "2025-10-12T04:28:01Z"          # equals [tool.uv].exclude-newer
    source = "ComfyUI v0.3.64 commit"       # or "--as-of 2025-06-01", "--as-of now"
    comfyui-date = "2025-10-12T04:28:01Z"   # the checked-out ComfyUI commit's committer date
    [tool.comfydock.resolution.nodes]       # each tracked node's own date, and what it is of
    rgthree-comfy = { date = "2026-08-21T09:12:00Z", of = "<commit or version>" }
    [tool.comfydock.resolution.packages]    # mirrors [tool.uv].exclude-newer-package
    huggingface-hub = { until = "2026-08-21T09:12:00Z", reason = "..." }

A manifest without the section (older comfydock) has no cutoff and is left exactly as it is.
Everything here is pure: documents and uv's text in, documents and values out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

import tomlkit

from comfydock import manifest
from comfydock.dates import parse_date, utc_text
from comfydock.errors import UsageError

AS_OF_HINT = "give a date (2025-10-12), a UTC time (2025-10-12T04:28:01Z, or with an offset) or 'now'"
MAX_ROUNDS = 6  # uv names a transitive package only after the one above it moved: a few rounds

def parse_as_of(text: str, now: datetime | None = None) -> str:
    """`create --as-of` values: YYYY-MM-DD, RFC 3339 or 'now' (the current time, recorded as a
    fixed date: never "no cutoff"), normalised to UTC RFC 3339. Anything else is refused."""
    if isinstance(text, str) and text.strip().lower() == "now":
        return utc_text(now or datetime.now(timezone.utc))
    moment = parse_date(text)
    if moment is None:
        raise UsageError(f"--as-of {text!r} is not a date", hint=AS_OF_HINT)
    return utc_text(moment)


def _table(doc, create=False):
    return manifest.section(doc, "resolution", create=create)


def as_of(doc) -> str | None:
    """The date uv resolves as of ([tool.uv].exclude-newer), None when the environment has none."""
    value = (manifest.section(doc, "uv") or {}).get("exclude-newer")
    return str(value) if value is not None else None


def record(doc, date: str, source: str, comfyui_date: str | None) -> None:
    """Set the environment's resolution date (create, comfyui update): uv's setting and the record.
    Per-package moves that the new date makes unnecessary (not newer than it) are dropped."""
    uv = manifest.section(doc, "uv", create=True)
    uv["exclude-newer"] = date
    table = _table(doc, create=True)
    table["as-of"] = date
    table["source"] = source
    if comfyui_date:
        table["comfyui-date"] = comfyui_date
    new = parse_date(date)
    for name, entry in list(allowed_newer(doc).items()):
        until = parse_date(entry.get("until"))
        if until is not None and until <= new:
            drop_package(doc, name)


def info(doc) -> dict:
    """status' view: {'as_of', 'source', 'packages': [{'name', 'until', 'reason'}]} (as_of None: no cutoff)."""
    table = _table(doc) or {}
    date = as_of(doc)
    packages = [{"name": name, **entry} for name, entry in sorted(allowed_newer(doc).items())]
    return {"as_of": date, "source": str(table.get("source")) if date and table.get("source") else None, "packages": packages}


def allowed_newer(doc) -> dict[str, dict]:
    """Packages allowed newer than the date: name -> {'until': date or None (no cutoff), 'reason'}."""
    uv = manifest.section(doc, "uv") or {}
    per_package = uv.get("exclude-newer-package") or {}
    reasons = (_table(doc) or {}).get("packages") or {}
    out = {}
    for name, value in per_package.items():
        why = reasons.get(name) if isinstance(reasons.get(name), dict) else {}
        out[str(name)] = {"until": None if value is False else str(value), "reason": str(why.get("reason") or "")}
    return out


def allow_package(doc, name: str, until: str | None, reason: str) -> None:
    """Let `name` be newer than the date: up to `until` (None: no cutoff), recorded with `reason`."""
    uv = manifest.section(doc, "uv", create=True)
    if not isinstance(uv.get("exclude-newer-package"), dict):
        uv["exclude-newer-package"] = tomlkit.table()
    uv["exclude-newer-package"][name] = until if until is not None else False
    table = _table(doc, create=True)
    if not isinstance(table.get("packages"), dict):
        table["packages"] = tomlkit.table()
    entry = tomlkit.inline_table()
    entry["until"] = until if until is not None else "none"
    entry["reason"] = reason
    table["packages"][name] = entry


def drop_package(doc, name: str) -> None:
    uv = manifest.section(doc, "uv") or {}
    if isinstance(uv.get("exclude-newer-package"), dict):
        uv["exclude-newer-package"].pop(name, None)
        if not uv["exclude-newer-package"]:
            del uv["exclude-newer-package"]
    table = _table(doc)
    if table is not None and isinstance(table.get("packages"), dict):
        table["packages"].pop(name, None)
        if not table["packages"]:
            del table["packages"]


# --- the parts' dates ----------------------------------------------------------------------------


def node_dates(doc) -> dict[str, dict]:
    nodes = (_table(doc) or {}).get("nodes") or {}
    return {str(k): dict(v) for k, v in nodes.items() if isinstance(v, dict)}


def set_node_date(doc, node_id: str, date: str, of: str) -> None:
    table = _table(doc, create=True)
    if not isinstance(table.get("nodes"), dict):
        table["nodes"] = tomlkit.table()
    entry = tomlkit.inline_table()
    entry["date"] = date
    entry["of"] = of
    table["nodes"][node_id] = entry


def drop_node_date(doc, node_id: str) -> None:
    table = _table(doc)
    if table is not None and isinstance(table.get("nodes"), dict) and node_id in table["nodes"]:
        del table["nodes"][node_id]
        if not table["nodes"]:
            del table["nodes"]


def newest_part(doc) -> tuple[str, str] | None:
    """(whose, date) of the newest part: ComfyUI's commit or a tracked node (their recorded dates)."""
    table = _table(doc) or {}
    parts = []
    if parse_date(table.get("comfyui-date")):
        parts.append(("ComfyUI", str(table["comfyui-date"])))
    parts += [(node_id, str(entry.get("date"))) for node_id, entry in node_dates(doc).items() if parse_date(entry.get("date"))]
    return max(parts, key=lambda p: parse_date(p[1]), default=None)


# --- reading uv's refusal, and the rule -----------------------------------------------------------

# hint: `hf-xet` was filtered by `exclude-newer` to only include packages uploaded before
# 2025-10-12T04:28:01Z. The latest version satisfying the requirement is v1.8.0, published at
# 2026-10-30T10:04:03Z. Consider using `exclude-newer-package` ...   (uv 0.13; no "published at":
# the file has no upload time)
_FILTERED = re.compile(
    r"`(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)` was filtered by `(?P<setting>exclude-newer(?:-package)?)`"
    r"[^`]*?(?:The latest version satisfying the requirement is (?P<version>\S+?)"
    r"(?P<published>, published at (?P<at>\S+?))?\.(?:\s|$)|Consider using)"
)
# "warning: `torch-2.10.0-py3-none-any.whl` is missing an upload date, but user provided: ..."
_UNDATED = re.compile(r"`(?P<file>[^`]+)` is missing an upload date")


@dataclass(frozen=True)
class Filtered:
    """One package uv's error says the cutoff filtered (the version uv would otherwise take)."""

    name: str
    by_package_setting: bool  # filtered by its own exclude-newer-package entry (moved before)
    version: str  # '' when uv names none
    published: str | None  # when that version was uploaded (None: not said)
    undated: bool = False  # the index gives its files no upload time: no cutoff can admit them


def filtered_packages(uv_text: str) -> list[Filtered]:
    """The packages uv names as filtered by the cutoff, in its order (pure: uv's stderr in)."""
    from packaging.utils import canonicalize_name

    text = re.sub(r"\s*\n\s*", " ", uv_text or "")  # a terminal may wrap the hint
    undated_files = set()
    for m in _UNDATED.finditer(text):
        project = m.group("file").split("-", 1)[0]  # a wheel's or an sdist's project part
        undated_files.add(canonicalize_name(project))
    found: dict[str, Filtered] = {}
    for m in _FILTERED.finditer(text):
        name = canonicalize_name(m.group("name"))
        # no upload time: uv names a latest version without a date, or warns about the files
        undated = name in undated_files or (m.group("version") is not None and m.group("at") is None)
        found.setdefault(
            name,
            Filtered(name, m.group("setting") == "exclude-newer-package", m.group("version") or "", m.group("at"), undated),
        )
    return list(found.values())


@dataclass(frozen=True)
class Move:
    name: str
    until: str | None  # None: no cutoff for it
    reason: str
    final: bool = False  # to now or to no cutoff: nothing further to move it to in this run

    def describe(self) -> str:
        return f"{self.name} may be newer than the resolution date: {self.reason}"


def plan_moves(doc, uv_text: str, now: datetime, spent=frozenset()) -> list[Move]:
    """The rule, for one failed `uv lock`: each package uv names as filtered by the cutoff may be
    newer, up to the newest part's date (ComfyUI's commit, a node's); one already allowed that far
    and still filtered, up to `now`; one whose file has no upload time, without a cutoff.
    `spent`: names already moved to `now` in this run (never moved again). Empty: nothing left to
    move (the failure is something else)."""
    date = parse_date(as_of(doc))
    if date is None:
        return []
    newest = newest_part(doc)
    moves = []
    current = allowed_newer(doc)
    for f in filtered_packages(uv_text):
        if f.name in spent:
            continue
        if f.undated:
            moves.append(Move(f.name, None, f"no cutoff (its index gives {f.version or 'its files'} no upload time)", True))
            continue
        had = parse_date((current.get(f.name) or {}).get("until"))
        floor = max(d for d in (date, had) if d is not None)
        if newest is not None and parse_date(newest[1]) > floor:
            whose = "ComfyUI's commit" if newest[0] == "ComfyUI" else f"{newest[0]}'s"
            moves.append(Move(f.name, utc_text(parse_date(newest[1])), f"up to {newest[1][:10]} ({whose} date)"))
        elif now > floor:
            moves.append(Move(f.name, utc_text(now), f"up to {utc_text(now)[:10]} (when it was needed: no part is newer)", True))
    return moves or _companions(doc, uv_text, current) or _needed_by_newer_nodes(doc, uv_text, current)


# "comfydock-env-real:node-hubnode depends on huggingface-hub>=1.0": a node's own requirement
_GROUP_DEPENDS = re.compile(r"[A-Za-z0-9._-]+:(?P<group>node-[A-Za-z0-9._-]+) depends on (?P<dep>[A-Za-z0-9][A-Za-z0-9._-]*)")


def _needed_by_newer_nodes(doc, uv_text: str, current: dict[str, dict]) -> list[Move]:
    """When uv names nothing filtered (the conflict it reports first runs through a package of the
    cutoff's world: transformers of 2025 need huggingface-hub<1.0) but a node newer than the date
    is in it: what that node itself requires may be as new as the node (up to its date)."""
    from packaging.utils import canonicalize_name

    from comfydock.nodes.spec import group_name

    date = parse_date(as_of(doc))
    groups = {group_name(node_id): (node_id, entry.get("date")) for node_id, entry in node_dates(doc).items()}
    text = re.sub(r"\s*\n\s*", " ", uv_text or "")
    moves: dict[str, Move] = {}
    for m in _GROUP_DEPENDS.finditer(text):
        node_id, until = groups.get(m.group("group"), (None, None))
        dep = canonicalize_name(m.group("dep"))
        if node_id is None or dep in moves or parse_date(until) is None or parse_date(until) <= date:
            continue
        had = parse_date((current.get(dep) or {}).get("until"))
        if had is not None and had >= parse_date(until):
            continue  # already as far as this node goes
        moves[dep] = Move(dep, utc_text(parse_date(until)), f"up to {str(until)[:10]} ({node_id} requires it)")
    return list(moves.values())


# "transformers>=4.54.0,<=4.56.2 depends on huggingface-hub>=0.34.0,<1.0": a package of the
# cutoff's world holding a moved one back (uv gives no hint for it)
_DEPENDS = re.compile(r"(?<![\w.:-])(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:[<>=!~][^\s]*)? depends? on (?P<dep>[A-Za-z0-9][A-Za-z0-9._-]*)")


def _companions(doc, uv_text: str, current: dict[str, dict]) -> list[Move]:
    """When uv names nothing filtered: each package the failure says depends on a package already
    allowed newer moves with it, to the same date (e.g. transformers with huggingface-hub: the
    transformers of the cutoff's date require huggingface-hub<1.0)."""
    from packaging.utils import canonicalize_name

    text = re.sub(r"\s*\n\s*", " ", uv_text or "")
    moves: dict[str, Move] = {}
    for m in _DEPENDS.finditer(text):
        name, dep = canonicalize_name(m.group("name")), canonicalize_name(m.group("dep"))
        until = (current.get(dep) or {}).get("until")
        if name in ("project", dep) or dep not in current or name in moves:
            continue
        had = (current.get(name) or {}).get("until")
        if name in current and (had is None or until is None or parse_date(had) >= parse_date(until)):
            continue  # already as far as the package it follows
        reason = f"up to {until[:10]} (with {dep}, which it holds back)" if until else f"no cutoff (with {dep}, which it holds back)"
        moves[name] = Move(name, until, reason, until is None)
    return list(moves.values())


def apply_moves(doc, moves: list[Move]) -> None:
    for move in moves:
        allow_package(doc, move.name, move.until, move.reason)


def new_moves(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    """What to tell the user after a command: packages newly allowed newer (or further), as lines."""
    return [
        f"{name} may be newer than the resolution date: {entry['reason'] or 'see [tool.comfydock.resolution]'}"
        for name, entry in sorted(after.items())
        if before.get(name) != entry
    ]
