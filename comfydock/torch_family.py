"""One coherent torch family: torch, torchvision and torchaudio from one PyTorch release and one
backend build.

PyTorch releases the three together, by exact version: torch 2.Y.Z pairs with torchvision
0.(Y+15).Z and torchaudio 2.Y.Z (2.5.1 / 0.20.1 / 2.5.1), except for the two releases in
_EXCEPTIONS (torch 2.0.0 / vision 0.15.1 / audio 2.0.1). A patch of one member that the others'
release lacks does not work with them (torch 2.11.0 with torchaudio 2.11.1: `undefined symbol`).
Nothing in their metadata makes a resolver keep them together (torchaudio stopped pinning torch),
so uv happily locks the newest of each. comfydock therefore records the release it keeps the
family to in the manifest ([tool.comfydock.torch].release, named by torch's version, and exact
'==' lines in [tool.uv].constraint-dependencies), derived from what uv can lock (see
lock_coherent in comfydock.tasks.python), and the releases found not to import on a machine
([tool.comfydock.torch].refused, as '!=' lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from comfydock import manifest
from comfydock.errors import ComfydockError

FAMILY = ("torch", "torchvision", "torchaudio")
_TORCHVISION_OFFSET = 15  # torchvision 0.(Y+15).Z belongs to torch 2.Y.Z
# releases that break the rule: torch -> (torchvision, torchaudio), as published on PyPI
_EXCEPTIONS = {"2.0.0": ("0.15.1", "2.0.1"), "2.0.1": ("0.15.2", "2.0.2")}
_BY_MEMBER = {(pkg, pair[i]): torch for torch, pair in _EXCEPTIONS.items() for i, pkg in enumerate(("torchvision", "torchaudio"))}


def _triple(v: Version) -> tuple[int, int, int]:
    return (tuple(v.release) + (0, 0, 0))[:3]


def release_of(package: str, version: str) -> str | None:
    """The PyTorch release a family member's version belongs to, named by torch's version
    ('2.8.0' for torchvision 0.23.0); None if it is not a PyTorch 2 version."""
    try:
        v = Version(str(version))
    except InvalidVersion:
        return None
    major, minor, micro = _triple(v)
    public = f"{major}.{minor}.{micro}"
    if (package, public) in _BY_MEMBER:
        return _BY_MEMBER[(package, public)]
    if package == "torchvision":
        if major != 0 or minor < _TORCHVISION_OFFSET:
            return None
        return f"2.{minor - _TORCHVISION_OFFSET}.{micro}"
    return public if major == 2 else None


def pairing(release: str) -> dict[str, str]:
    """The three versions of a release: {'torch': '2.8.0', 'torchvision': '0.23.0', 'torchaudio': '2.8.0'}."""
    if release in _EXCEPTIONS:
        vision, audio = _EXCEPTIONS[release]
    else:
        major, minor, micro = _triple(Version(release))
        vision, audio = f"0.{minor + _TORCHVISION_OFFSET}.{micro}", release
    return {"torch": release, "torchvision": vision, "torchaudio": audio}


def release_key(release: str) -> Version:
    return Version(release)


def local_of(version: str) -> str:
    """The build tag of a version ('cpu' for 2.8.0+cpu; '' for a PyPI build)."""
    return str(version).partition("+")[2]


def parse_release(text) -> str | None:
    """A recorded release: '2.8.0' (exact), or the minor-only '2.8' of older manifests (read,
    and replaced by the exact form on the next lock)."""
    text = str(text or "")
    return text if re.fullmatch(r"2\.\d+(\.\d+)?", text) else None


def is_exact(release: str | None) -> bool:
    return bool(release) and release.count(".") == 2


def release_constraints(release: str) -> list[str]:
    if not is_exact(release):  # an older manifest's minor-only form
        minor = int(release.split(".")[1])
        return [f"torch=={release}.*", f"torchvision==0.{minor + _TORCHVISION_OFFSET}.*", f"torchaudio=={release}.*"]
    return [f"{pkg}=={v}" for pkg, v in pairing(release).items()]


def bound_constraints(release: str) -> list[str]:
    return [f"{pkg}<={v}" for pkg, v in pairing(release).items()]


def refused_constraints(release: str) -> list[str]:
    return [f"{pkg}!={v}" for pkg, v in pairing(release).items()]


def describe(versions: dict[str, str]) -> str:
    """'torch 2.10.0, torchvision 0.25.0 and torchaudio 2.8.0'."""
    parts = [f"{pkg} {versions[pkg]}" for pkg in FAMILY if versions.get(pkg)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def family_release(versions: dict[str, str]) -> str | None:
    """The release of a coherent set of versions (None: none, or not one release)."""
    releases = {release_of(pkg, v) for pkg, v in versions.items() if pkg in FAMILY and v}
    return releases.pop() if len(releases) == 1 and None not in releases else None


def problem(versions: dict[str, str]) -> str | None:
    """What is wrong with a set of family versions (None: one release and one build, or fewer
    than two members present)."""
    present = {pkg: v for pkg, v in versions.items() if pkg in FAMILY and v}
    if len(present) < 2:
        return None
    if family_release(present) is None:
        return f"{describe(present)} are not one PyTorch release"
    builds = {local_of(v) for v in present.values()}
    if len(builds) > 1:
        return f"{describe(present)} are builds for different backends"
    return None


@dataclass
class FamilyReport:
    """The torch family one venv installs, from uv.lock, and whether it was seen to import."""

    versions: dict[str, str] = field(default_factory=dict)
    release: str | None = None  # the release comfydock keeps the family to (manifest)
    problem: str | None = None
    imports: bool | None = None  # the probe record for this uv.lock: True, False, None (not checked yet)
    import_error: str | None = None

    @property
    def coherent(self) -> bool:
        """One release, one build, and seen to import (an unchecked family is not called coherent)."""
        return self.problem is None and self.imports is True

    def to_json(self) -> dict:
        return {
            "versions": self.versions,
            "release": self.release,
            "coherent": self.coherent,
            "problem": self.problem,
            "imports": self.imports,
            "import_error": self.import_error,
        }

    def summary(self) -> str:
        if not self.versions:
            return "not in the lock"
        if self.problem:
            return f"{describe(self.versions)}: {self.problem}"
        if self.imports is None:
            return f"{describe(self.versions)} (not checked yet)"
        if self.imports is False:
            return f"{describe(self.versions)}: do not import ({self.import_error})"
        return describe(self.versions) + " (coherent, imports)"


# --- the family in uv.lock -------------------------------------------------------------------


def locked_family_versions(uv_lock_text: str | None) -> dict[str, list[str]]:
    """Every version of each family member in uv.lock (one per backend build and platform fork)."""
    found: dict[str, list[str]] = {}
    for package in manifest.uv_lock_packages(uv_lock_text):
        if package.get("name") in FAMILY and package.get("version"):
            found.setdefault(package["name"], []).append(str(package["version"]))
    return found


def lock_problems(uv_lock_text: str | None) -> list[str]:
    """Incoherent families in uv.lock: the builds of each backend are checked together."""
    by_build: dict[str, dict[str, set[str]]] = {}
    for pkg, versions in locked_family_versions(uv_lock_text).items():
        for v in versions:
            by_build.setdefault(local_of(v), {}).setdefault(pkg, set()).add(v)
    problems = []
    for build in sorted(by_build):
        members = by_build[build]
        releases = {release_of(pkg, v) for pkg, vs in members.items() for v in vs}
        if sum(1 for vs in members.values() if vs) >= 2 and (len(releases) > 1 or None in releases):
            shown = {pkg: ", ".join(sorted(vs)) for pkg, vs in members.items()}
            problems.append(f"{describe(shown)} are not one PyTorch release")
    return problems


def lock_release(uv_lock_text: str | None) -> str | None:
    """The newest release every locked family member can come from: the oldest release among
    them (uv locked the newest version of each it could, so none goes beyond its own)."""
    releases = [release_of(pkg, v) for pkg, vs in locked_family_versions(uv_lock_text).items() for v in vs]
    releases = [r for r in releases if r is not None]
    return min(releases, key=release_key) if releases else None


def family_in_lock(uv_lock_text: str | None, versions: dict[str, str], backend: str | None) -> dict[str, str]:
    """This venv's family: each member's locked version for `backend`'s build (uv.lock holds one
    per backend extra, which its package resolution-markers do not tell apart)."""
    want = backend or ""
    result = {}
    for pkg, candidates in locked_family_versions(uv_lock_text).items():
        chosen = [v for v in candidates if local_of(v) == want]
        if chosen:
            result[pkg] = chosen[0]
        elif versions.get(pkg):
            result[pkg] = versions[pkg]
    return result


# --- what the manifest says ---------------------------------------------------------------------


def _requirement_lines(doc) -> list[str]:
    """Every requirement line: the user's and every group's (ComfyUI's, each node's)."""
    entries = manifest.user_requirements(doc)
    for group in manifest.dependency_groups(doc).values():
        entries += [str(e) for e in group if isinstance(e, str)]
    return entries


def recorded_release(doc) -> str | None:
    torch = manifest.section(doc, "torch")
    return parse_release(torch.get("release")) if torch is not None else None


def refused_releases(doc) -> list[str]:
    """Releases found not to import ([tool.comfydock.torch].refused), kept out by '!=' lines."""
    torch = manifest.section(doc, "torch")
    found = torch.get("refused") if torch is not None else None
    if not isinstance(found, list):
        return []
    return [str(r) for r in found if is_exact(parse_release(r))]


def _bound(doc) -> str | None:
    torch = manifest.section(doc, "torch")
    bound = parse_release(torch.get("bound")) if torch is not None else None
    return bound if is_exact(bound) else None


def _constraint_array(doc, create: bool):
    return manifest.array(doc, "uv", "constraint-dependencies", create=create)


def derived_constraints(doc) -> list[str]:
    """The constraint lines comfydock wrote: the recorded release's, a bound while a release
    is being sought, and the refused releases'."""
    release, bound = recorded_release(doc), _bound(doc)
    lines = release_constraints(release) if release else []
    lines += bound_constraints(bound) if bound else []
    for refused in refused_releases(doc):
        lines += refused_constraints(refused)
    return lines


def _drop_lines(doc, lines) -> None:
    arr = _constraint_array(doc, create=False)
    if arr is None:
        return
    for i in reversed(range(len(arr))):
        if str(arr[i]) in lines:
            del arr[i]
    if len(arr) == 0:
        manifest.drop_key(doc, "uv", "constraint-dependencies")


def _add_lines(doc, lines) -> None:
    arr = _constraint_array(doc, create=True)
    present = {str(e) for e in arr}
    for line in lines:
        if line not in present:
            arr.append(line)
    arr.multiline(True)


def _torch_table(doc):
    torch = manifest.section(doc, "torch")
    if torch is None:
        torch = tomlkit.table()
        torch.add(tomlkit.comment("torch, torchvision and torchaudio are kept to one PyTorch release (derived by comfydock)"))
        manifest.set_section(doc, "torch", torch)
    return torch


def clear_release(doc) -> bool:
    """Drop the recorded release (and a bound) and their constraints; refused releases stay.
    True if there was one."""
    release, bound = recorded_release(doc), _bound(doc)
    if not release and not bound:
        return False
    _drop_lines(doc, set((release_constraints(release) if release else []) + (bound_constraints(bound) if bound else [])))
    torch = manifest.section(doc, "torch")
    for key in ("release", "bound"):
        if key in torch:
            del torch[key]
    if not refused_releases(doc):
        manifest.drop_section(doc, "torch")
    return True


def record_release(doc, release: str) -> None:
    """Keep the family to `release`: [tool.comfydock.torch].release and its '==' constraints."""
    clear_release(doc)
    _torch_table(doc)["release"] = release
    _add_lines(doc, release_constraints(release))


def bound_release(doc, release: str) -> None:
    """Let uv pick nothing newer than `release` in any member ('<=' lines), when the release
    itself cannot be locked (torchaudio 2.11.1 has no torch 2.11.1): the next lock then shows
    the newest release below it that every member has. Replaced by record_release."""
    clear_release(doc)
    _torch_table(doc)["bound"] = release
    _add_lines(doc, bound_constraints(release))


def refuse_release(doc, release: str) -> None:
    """Record that `release` does not import here: [tool.comfydock.torch].refused and its '!='
    constraints; the recorded release is dropped so that the next lock chooses another."""
    clear_release(doc)
    refused = refused_releases(doc)
    if release not in refused:
        torch = _torch_table(doc)
        arr = tomlkit.array()
        arr.extend(sorted({*refused, release}, key=release_key))
        torch["refused"] = arr
    _add_lines(doc, refused_constraints(release))


def explicit_pins(doc) -> dict[str, str]:
    """Family members the user pinned to one version ('X.Y.Z', or 'X.Y.*' kept as written),
    outside the derived constraints: requirements of every group and [tool.uv].constraint-dependencies."""
    derived = set(derived_constraints(doc))
    entries = _requirement_lines(doc)
    entries += [str(e) for e in _constraint_array(doc, create=False) or [] if str(e) not in derived]
    pins: dict[str, str] = {}
    for entry in entries:
        try:
            req = Requirement(entry)
        except InvalidRequirement:
            continue
        name = canonicalize_name(req.name)
        if name not in FAMILY:
            continue
        for spec in req.specifier:
            if spec.operator in ("==", "==="):
                pins[name] = spec.version
    return pins


def _pins_problem(pins: dict[str, str]) -> str | None:
    """problem() for pins, where 'X.Y.*' only fixes the minor release."""
    if all(not v.endswith(".*") for v in pins.values()):
        return problem(pins)
    shown = {pkg: v for pkg, v in pins.items()}
    minors = set()
    for pkg, v in pins.items():
        release = release_of(pkg, v.removesuffix(".*"))
        if release is None:
            return f"{describe(shown)} are not one PyTorch release"
        minors.add(release.rsplit(".", 1)[0])
    exact = {pkg: v for pkg, v in pins.items() if not v.endswith(".*")}
    if len(minors) > 1 or problem(exact):
        return problem(exact) or f"{describe(shown)} are not one PyTorch release"
    return None


def check_pins(doc) -> None:
    """Refuse explicit pins that cannot be one release, naming the three versions."""
    pins = explicit_pins(doc)
    wrong = _pins_problem(pins)
    if wrong:
        raise ComfydockError(f"refused: {wrong}", hint=_pin_hint(pins))


def _pin_hint(pins: dict[str, str]) -> str:
    anchor = next((pkg for pkg in FAMILY if pkg in pins), None)
    release = release_of(anchor, pins[anchor].removesuffix(".*")) if anchor else None
    if release is None:
        return "pin torch, torchvision and torchaudio of one PyTorch release, or pin torch alone"
    match = ", ".join(f"{pkg}=={v}" for pkg, v in pairing(release).items())
    return f"one release is e.g. {match} (torchvision 0.(Y+15).Z goes with torch 2.Y.Z); or pin torch alone"


# --- the backend: one optional extra per backend, mutually exclusive --------------------------
# The backend is a setting of the machine (see torch_backend.requested_torch_backend), never of the
# shared manifest. The manifest holds one extra per backend the environment has been used with
# ('torch-cpu', 'torch-cu128', 'torch-pypi'), marked conflicting in [tool.uv].conflicts, with
# per-extra index sources: uv's documented pattern for PyTorch accelerators. One uv.lock then
# holds every variant and each machine syncs with its own extra (see docs/DESIGN.md).


def extra_name(backend: str | None) -> str:
    return f"torch-{backend or 'pypi'}"


def index_name(backend: str) -> str:
    return f"pytorch-{backend}"


def backend_extras(doc) -> list[str]:
    """The torch backend extras the manifest has ('torch-cpu', ...), in order."""
    return [str(k) for k in manifest.section(doc, "optional-dependencies") or {} if str(k).startswith("torch-")]


def _source_marker(backend: str) -> str | None:
    """GPU builds exist only for some platforms; elsewhere (macOS) torch comes from PyPI, so the
    universal uv.lock still resolves everywhere."""
    if backend.startswith("rocm"):
        return "sys_platform == 'linux'"
    if backend.startswith(("cu", "xpu")):
        return "sys_platform == 'linux' or sys_platform == 'win32'"
    return None


def legacy_backend(doc) -> str | None:
    """The backend of a manifest from before per-machine backends: a single PyTorch index
    that torch's source names without an extra (None if the manifest is not like that)."""
    source = ((manifest.section(doc, "uv") or {}).get("sources") or {}).get("torch")
    if hasattr(source, "get") and str(source.get("index", "")).startswith("pytorch-") and not source.get("extra"):
        return str(source["index"]).removeprefix("pytorch-")
    return None


def required_members(doc) -> list[str]:
    """Family members some requirement of the manifest names (ComfyUI's, a node's, the user's)."""
    names = set()
    for entry in _requirement_lines(doc):
        try:
            names.add(canonicalize_name(Requirement(entry).name))
        except InvalidRequirement:
            continue
    return [pkg for pkg in FAMILY if pkg in names]


def backend_ready(doc, backend: str | None) -> bool:
    """Nothing to add for `backend`: its extra lists what the manifest requires, or a legacy
    manifest is for it, or nothing requires torch at all."""
    members = required_members(doc)
    if not members:
        return True
    if legacy_backend(doc) is not None:
        return legacy_backend(doc) == backend
    optional = manifest.section(doc, "optional-dependencies") or {}
    extras = backend_extras(doc)
    return extra_name(backend) in extras and all([str(x) for x in optional[e]] == members for e in extras)


def ensure_backend(doc, backend: str | None, index_base: str) -> bool:
    """Give the manifest an extra for `backend` (None: PyPI builds) listing the family members
    it requires; True if it changed. A legacy manifest's single PyTorch source becomes its
    backend's extra first. Nothing requires torch: no extra."""
    if backend_ready(doc, backend) and legacy_backend(doc) is None:
        return False
    uv = manifest.section(doc, "uv", create=True)
    changed = False
    legacy = legacy_backend(doc)
    if legacy is not None:
        _add_extra(doc, legacy)
    for other in backend_extras(doc):  # the family members required may have changed
        _add_extra(doc, other.removeprefix("torch-"))
    _add_extra(doc, backend)
    if backend is not None:
        indexes = uv.get("index")
        if indexes is None:
            uv["index"] = indexes = tomlkit.aot()
        if not any(str(e.get("name")) == index_name(backend) for e in indexes):
            entry = tomlkit.table()
            entry["name"] = index_name(backend)
            entry["url"] = f"{index_base.rstrip('/')}/{backend}"
            entry["explicit"] = True
            indexes.append(entry)
    # each required member comes from its extra's index (none for torch-pypi: PyPI's build)
    sources = uv.get("sources")
    if sources is None:
        uv["sources"] = sources = tomlkit.table()
    members = required_members(doc)
    for pkg in FAMILY:
        if pkg in sources:
            del sources[pkg]
        if pkg not in members:
            continue
        entries = tomlkit.array()
        for extra in backend_extras(doc):
            build = extra.removeprefix("torch-")
            if build == "pypi":
                continue
            entry = tomlkit.inline_table()
            entry["index"] = index_name(build)
            entry["extra"] = extra
            marker = _source_marker(build)
            if marker:
                entry["marker"] = marker
            entries.append(entry)
        if len(entries):
            sources[pkg] = entries
    if not len(sources):
        del uv["sources"]
    changed = True
    if changed:
        extras = backend_extras(doc)
        if len(extras) > 1:
            conflicts = tomlkit.array()
            group = tomlkit.array()
            for name in extras:
                item = tomlkit.inline_table()
                item["extra"] = name
                group.append(item)
            conflicts.append(group)
            uv["conflicts"] = conflicts
    return changed


def _add_extra(doc, backend: str | None) -> None:
    arr = tomlkit.array()
    arr.extend(required_members(doc))
    manifest.section(doc, "optional-dependencies", create=True)[extra_name(backend)] = arr


# --- the family as installed in a venv (checked after a sync, see comfydock.torch_probe) -------

# Each member's distribution version (the metadata: PyPI's Linux torch says 2.11.0 there and
# '2.11.0+cu130' in __version__, a PyTorch index's build '2.11.0+cu130' in both), then its import.
_PROBE = """
import importlib, importlib.metadata, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = {"version": importlib.metadata.version(name)}
    except Exception as exc:
        out[name] = {"version": None}
    try:
        out[name]["module_version"] = str(importlib.import_module(name).__version__)
    except BaseException as exc:
        out[name]["error"] = f"{type(exc).__name__}: {exc}"[:300]
print(json.dumps(out))
"""


def installed_versions(venv_dir) -> dict[str, str]:
    """The family members installed in a venv and their distribution versions (from the
    *.dist-info directory names: no import, a few milliseconds)."""
    from comfydock.uv_runner import site_packages

    root = site_packages(venv_dir)
    found = {}
    for p in root.glob("torch*.dist-info") if root is not None else ():
        name, _, version = p.name.removesuffix(".dist-info").rpartition("-")
        if canonicalize_name(name) in FAMILY:
            found[canonicalize_name(name)] = version
    return {pkg: found[pkg] for pkg in FAMILY if pkg in found}


def installed_members(venv_dir) -> list[str]:
    return list(installed_versions(venv_dir))


def probe_installed(venv_python, venv_dir) -> tuple[dict[str, str], str | None]:
    """Import each installed member in the venv's own interpreter: (distribution versions,
    the first failure as one line, or None when all import)."""
    import json
    import subprocess

    members = installed_members(venv_dir)
    if not members:
        return {}, None
    try:
        proc = subprocess.run([str(venv_python), "-c", _PROBE, *members], capture_output=True, text=True, timeout=600)
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
        return installed_versions(venv_dir), f"the venv's Python could not check torch ({exc})"
    fallback = installed_versions(venv_dir)
    versions = {name: str(info.get("version") or fallback.get(name, "?")) for name, info in found.items()}
    failed = [(name, str(info["error"])) for name, info in found.items() if info.get("error")]
    if failed:
        name, error = failed[0]
        lines = [ln.strip() for ln in error.splitlines() if ln.strip()]
        first = "".join(c if c.isprintable() else "?" for c in (lines[0] if lines else error))
        return versions, f"cannot import {name} ({first})"
    return versions, None


def build_problem(versions: dict[str, str], backend: str | None) -> str | None:
    """What is wrong with installed distribution versions for this machine's backend: one
    release, and the backend's build (its local tag, as the distribution records it; PyPI's
    own builds record none, whatever their __version__ says)."""
    wrong = problem(versions)
    if wrong:
        return wrong
    builds = {local_of(v) for v in versions.values()}
    if versions and builds != {backend or ""}:
        return f"{describe(versions)} are not the {backend or 'pypi'} build this machine uses"
    return None


def check_installed(venv_python, venv_dir, backend: str | None) -> str | None:
    """What is wrong with the venv's torch family (None: it imports, is one release, and is the
    build of `backend`). Imports each installed member in the venv's own interpreter."""
    versions, error = probe_installed(venv_python, venv_dir)
    return error or build_problem(versions, backend)
