"""One coherent torch family: torch, torchvision and torchaudio from one PyTorch release and one
backend build.

PyTorch releases the three together: torch 2.Y pairs with torchaudio 2.Y and torchvision
0.(Y+15) (torch 2.0 <-> torchvision 0.15). Nothing in their metadata makes a resolver keep them
together (torchaudio stopped pinning torch), so uv happily locks the newest of each, which may be
torch 2.15 with torchaudio 2.11: `import torchaudio` then fails. comfydock therefore records the
release it keeps the family to as constraints in the manifest ([tool.comfydock.torch].release and
the matching lines in [tool.uv].constraint-dependencies), derived from what uv can lock: the
newest release all locked family members have (see lock_coherent in comfydock.tasks.python).
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
_TORCHVISION_OFFSET = 15  # torchvision 0.(Y+15) belongs to torch 2.Y


def release_of(package: str, version: str) -> tuple[int, int] | None:
    """The PyTorch release (major, minor) a family member's version belongs to; None if unknown."""
    try:
        v = Version(str(version))
    except InvalidVersion:
        return None
    if package == "torchvision":
        if v.major != 0 or v.minor < _TORCHVISION_OFFSET:
            return None
        return (2, v.minor - _TORCHVISION_OFFSET)
    return (v.major, v.minor)


def local_of(version: str) -> str:
    """The build tag of a version ('cpu' for 2.8.0+cpu; '' for a PyPI build)."""
    return str(version).partition("+")[2]


def release_text(release: tuple[int, int]) -> str:
    return f"{release[0]}.{release[1]}"


def parse_release(text) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)", str(text or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def expected_version_prefix(package: str, release: tuple[int, int]) -> str:
    """'2.8' for torch/torchaudio of release 2.8, '0.23' for torchvision."""
    if package == "torchvision":
        return f"0.{release[1] + _TORCHVISION_OFFSET}"
    return release_text(release)


def release_constraints(release: tuple[int, int]) -> list[str]:
    return [f"{pkg}=={expected_version_prefix(pkg, release)}.*" for pkg in FAMILY]


def describe(versions: dict[str, str]) -> str:
    """'torch 2.10.0, torchvision 0.25.0 and torchaudio 2.8.0'."""
    parts = [f"{pkg} {versions[pkg]}" for pkg in FAMILY if versions.get(pkg)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def problem(versions: dict[str, str]) -> str | None:
    """What is wrong with a set of family versions (None: coherent, or fewer than two present)."""
    present = {pkg: v for pkg, v in versions.items() if pkg in FAMILY and v}
    if len(present) < 2:
        return None
    releases = {pkg: release_of(pkg, v) for pkg, v in present.items()}
    if None in releases.values() or len(set(releases.values())) > 1:
        return f"{describe(present)} are not one PyTorch release"
    builds = {local_of(v) for v in present.values()}
    if len(builds) > 1:
        return f"{describe(present)} are builds for different backends"
    return None


@dataclass
class FamilyReport:
    """The torch family one venv installs, from uv.lock (or from the venv itself)."""

    versions: dict[str, str] = field(default_factory=dict)
    release: str | None = None  # the release comfydock keeps the family to (manifest)
    problem: str | None = None

    @property
    def coherent(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict:
        return {"versions": self.versions, "release": self.release, "coherent": self.coherent, "problem": self.problem}

    def summary(self) -> str:
        if not self.versions:
            return "not in the lock"
        return describe(self.versions) + (" (coherent)" if self.coherent else f": {self.problem}")


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


def lock_release(uv_lock_text: str | None) -> tuple[int, int] | None:
    """The newest release every locked family member can come from: the oldest release among
    them (uv locked the newest version of each it could, so none goes beyond its own)."""
    releases = [release_of(pkg, v) for pkg, vs in locked_family_versions(uv_lock_text).items() for v in vs]
    releases = [r for r in releases if r is not None]
    return min(releases) if releases else None


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


def recorded_release(doc) -> tuple[int, int] | None:
    torch = manifest.section(doc, "torch")
    return parse_release(torch.get("release")) if torch is not None else None


def _constraint_array(doc, create: bool):
    return manifest.array(doc, "uv", "constraint-dependencies", create=create)


def derived_constraints(doc) -> list[str]:
    """The constraint lines comfydock wrote for the recorded release."""
    release = recorded_release(doc)
    return release_constraints(release) if release else []


def clear_release(doc) -> bool:
    """Drop the recorded release and its constraints (True if there was one)."""
    derived = set(derived_constraints(doc))
    if not derived:
        return False
    arr = _constraint_array(doc, create=False)
    if arr is not None:
        for i in reversed(range(len(arr))):
            if str(arr[i]) in derived:
                del arr[i]
        if len(arr) == 0:
            manifest.drop_key(doc, "uv", "constraint-dependencies")
    manifest.drop_section(doc, "torch")
    return True


def record_release(doc, release: tuple[int, int]) -> None:
    """Keep the family to `release`: [tool.comfydock.torch].release and its constraints."""
    clear_release(doc)
    torch = tomlkit.table()
    torch.add(tomlkit.comment("torch, torchvision and torchaudio are kept to one PyTorch release (derived by comfydock)"))
    torch["release"] = release_text(release)
    manifest.set_section(doc, "torch", torch)
    arr = _constraint_array(doc, create=True)
    for line in release_constraints(release):
        arr.append(line)
    arr.multiline(True)


def explicit_pins(doc) -> dict[str, str]:
    """Family members the user pinned to one version ('==X.Y.Z' / '==X.Y.*'), outside the
    derived constraints: requirements of every group and [tool.uv].constraint-dependencies."""
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
                pins[name] = spec.version.removesuffix(".*")
    return pins


def check_pins(doc) -> None:
    """Refuse explicit pins that cannot be one release, naming the three versions."""
    pins = explicit_pins(doc)
    wrong = problem(pins)
    if wrong:
        raise ComfydockError(f"refused: {wrong}", hint=_pin_hint(pins))


def _pin_hint(pins: dict[str, str]) -> str:
    anchor = next((pkg for pkg in FAMILY if pkg in pins), None)
    release = release_of(anchor, pins[anchor]) if anchor else None
    if release is None:
        return "pin torch, torchvision and torchaudio of one PyTorch release, or pin torch alone"
    match = ", ".join(f"{pkg}=={expected_version_prefix(pkg, release)}.*" for pkg in FAMILY)
    return f"one release is e.g. {match} (torchvision 0.(Y+15) goes with torch 2.Y); or pin torch alone"


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


# --- the family as installed in a venv (checked by 'comfydock run') ---------------------------

_PROBE = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = {"version": str(importlib.import_module(name).__version__)}
    except BaseException as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
print(json.dumps(out))
"""


def installed_members(venv_dir) -> list[str]:
    from comfydock.uv_runner import site_packages

    root = site_packages(venv_dir)
    if root is None:
        return []
    names = {canonicalize_name(p.name.removesuffix(".dist-info").rsplit("-", 1)[0]) for p in root.glob("*.dist-info")}
    return [pkg for pkg in FAMILY if pkg in names]


def check_installed(venv_python, venv_dir, backend: str | None) -> str | None:
    """What is wrong with the venv's torch family (None: it imports, is one release, and is the
    build of `backend`). Imports each installed member in the venv's own interpreter."""
    import json
    import subprocess

    members = installed_members(venv_dir)
    if not members:
        return None
    try:
        proc = subprocess.run([str(venv_python), "-c", _PROBE, *members], capture_output=True, text=True, timeout=300)
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
        return f"the venv's Python could not check torch ({exc})"
    failed = [f"{name} ({info['error']})" for name, info in found.items() if "error" in info]
    if failed:
        return "cannot import " + "; ".join(failed)
    versions = {name: info["version"] for name, info in found.items()}
    wrong = problem(versions)
    if wrong:
        return wrong
    builds = {local_of(v) for v in versions.values()}
    want = backend or ""
    # PyPI's builds carry no tag; a GPU index's builds do (+cu128): the tag tells the backend
    if builds != {want} and not (want == "" and builds <= {""}):
        return f"{describe(versions)} are not the {backend or 'pypi'} build this machine uses"
    return None
