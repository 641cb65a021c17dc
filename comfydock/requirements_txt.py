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


# --- a user's requirements file ('py add -r') ---------------------------------------------------
# Options that change how pip fetches, not what is installed: noted, not applied (uv.lock records
# every file's hash itself, and uv picks wheels on its own).
_FETCH_ONLY = ("--hash", "--prefer-binary", "--only-binary", "--no-binary", "--trusted-host", "--use-feature", "--require-hashes")
_INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--no-index")
_CONSTRAINT_RE = re.compile(r"^(?:-c|--constraint)(?:\s+|=)?(\S.*)$")
_URL_HINT = (
    "add the package by name and version (a lock file takes it from an index); "
    "for private wheels set 'comfydock config find-links DIR'"
)


@dataclass
class RequirementsFile:
    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)  # from '-c FILE' lines
    notes: list[str] = field(default_factory=list)  # options read but not applied


def read_requirements_file(path: Path) -> RequirementsFile:
    """The requirements (and '-c' constraints) of a user's requirements.txt, '-r' includes followed.
    Anything a lock file cannot honour (URLs, editables, index options) is a UsageError naming the line."""
    result = RequirementsFile()
    _read_user_file(path, result, set(), constraint=False)
    return result


def _refuse(path: Path, line: str, why: str, hint: str) -> UsageError:
    return UsageError(f"{path}: {line[:80]!r} {why}", hint=hint)


def _read_user_file(path: Path, result: RequirementsFile, seen: set[Path], constraint: bool) -> None:
    try:
        real = path.resolve(strict=True)
    except OSError:
        raise UsageError(f"no requirements file {path}", hint="give the path of a requirements.txt, e.g. -r ./requirements.txt") from None
    if real in seen:
        return  # an include loop: each file counts once
    seen.add(real)
    try:
        text = real.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read requirements file {path}: {exc}", hint="give a UTF-8 text file") from None
    for logical in _logical_lines(text):
        line = _strip_comment(logical)
        if not line:
            continue
        nested = _INCLUDE_RE.match(line) or _CONSTRAINT_RE.match(line)
        if nested:
            inner = Path(nested.group(1).strip())
            inner = inner if inner.is_absolute() else real.parent / inner
            _read_user_file(inner, result, seen, constraint or line.startswith(("-c", "--constraint")))
        elif line.startswith("-"):
            _user_option(path, line, result)
        else:
            _user_requirement(path, line, result, constraint)


def _user_option(path: Path, line: str, result: RequirementsFile) -> None:
    option = line.split()[0].split("=")[0]
    if option in _FETCH_ONLY:
        result.notes.append(f"{path}: {line!r} not applied (uv decides how to fetch, and uv.lock records hashes)")
    elif option in _INDEX_OPTIONS:
        raise _refuse(
            path,
            line,
            "sets where packages come from, which a requirements list cannot change here",
            "remove the line; set the index with 'comfydock config python-index URL' (or find-links / no-index)",
        )
    elif option in ("-e", "--editable"):
        raise _refuse(
            path, line, "is an editable install", "add the package by name and version; a custom node you work on is 'node add DIR --dev'"
        )
    elif option == "--pre":
        raise _refuse(path, line, "allows every pre-release", "remove it and name the pre-release you want, e.g. 'pkg>=2.0b1'")
    else:
        raise _refuse(path, line, "is an option 'py add -r' does not know", "remove the line and add the requirements it meant by name")


def _user_requirement(path: Path, line: str, result: RequirementsFile, constraint: bool) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    text, *options = re.split(r"\s+(?=--)", line)
    for option in options:
        _user_option(path, option, result)  # a hash after the requirement: noted; anything else refused
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        if "://" in text or text.startswith((".", "/", "~")) or text.endswith((".whl", ".zip", ".tar.gz")):
            raise _refuse(path, text, "is a URL or a path, not a requirement by name", _URL_HINT) from None
        raise _refuse(path, text, f"is not a valid requirement ({str(exc).splitlines()[0]})", "use PEP 508 form, e.g. 'numpy<2'") from None
    if req.url:
        raise _refuse(path, text, "points at a URL", _URL_HINT)
    (result.constraints if constraint else result.requirements).append(str(req))
