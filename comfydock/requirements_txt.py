"""Reading requirements.txt files: requirements kept, everything else reported, never dropped silently."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from comfydock.errors import UsageError

# Option lines pip understands that have no meaning in a lock-file world; reported, not applied.
_OPTION_PREFIXES = (
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--no-index",
    "--pre",
    "--prefer-binary",
    "--trusted-host",
    "--only-binary",
    "--no-binary",
    "-e",
    "--editable",
    "-c",
    "--constraint",
    "--hash",
    "--use-feature",
)
_INCLUDE_RE = re.compile(r"^(?:-r|--requirement)(?:\s+|=)?(\S.*)$")


@dataclass
class ScannedRequirements:
    requirements: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (line, why)


def parse_requirement(text: str):
    """A PEP 508 requirement (packaging's Requirement), or a UsageError naming the string."""
    from packaging.requirements import InvalidRequirement, Requirement  # ~70 ms: only when needed

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise UsageError(
            f"invalid requirement {text!r}: {exc}", hint="use PEP 508 form, e.g. 'numpy<2' or 'pillow>=10'"
        ) from None
    return req


def _logical_lines(text: str):
    buf = ""
    for raw in text.splitlines():
        line = raw
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        yield (buf + line)
        buf = ""
    if buf:
        yield buf


def _strip_comment(line: str) -> str:
    # pip: a comment starts with '#' at line start or after whitespace.
    if line.lstrip().startswith("#"):
        return ""
    idx = line.find(" #")
    return (line[:idx] if idx >= 0 else line).strip()


def scan_requirements_file(path: Path, root: Path | None = None, _seen: set[Path] | None = None) -> ScannedRequirements:
    """Requirements from one file, following `-r` includes that stay inside `root`."""
    from packaging.requirements import InvalidRequirement, Requirement

    root = (root or path.parent).resolve()
    seen = _seen if _seen is not None else set()
    result = ScannedRequirements()
    real = path.resolve()
    if real in seen:
        return result
    seen.add(real)
    try:
        text = real.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        result.skipped.append((str(path), f"unreadable: {exc}"))
        return result
    for logical in _logical_lines(text):
        line = _strip_comment(logical)
        if not line:
            continue
        include = _INCLUDE_RE.match(line)
        if include:
            inc = (real.parent / include.group(1).strip()).resolve()
            if not inc.is_relative_to(root):
                result.skipped.append((logical.strip(), "include points outside the node"))
                continue
            sub = scan_requirements_file(inc, root, seen)
            result.requirements.extend(sub.requirements)
            result.skipped.extend(sub.skipped)
            continue
        if line.startswith("-"):
            opt = line.split()[0].split("=")[0]
            why = "pip option, not a requirement" if opt in _OPTION_PREFIXES else "unknown option line"
            result.skipped.append((line, why))
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            result.skipped.append((line, f"not a valid requirement: {exc}"))
            continue
        result.requirements.append(str(req))
    return result
