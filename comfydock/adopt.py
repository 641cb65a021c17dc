"""Adopting an existing ComfyUI install: read it (never write it), then create an environment
that reproduces it, and say what was carried over exactly, approximately, or not at all.

Two halves: `inspect_install` only reads the install and classifies what it finds (ComfyUI's
git state, custom nodes with their evidence, the old Python's distributions, models,
workflows); `adopt_install` creates the environment from that through create_environment, so
an interrupted or failed adopt leaves nothing half-made.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from comfydock import manifest
from comfydock.errors import ComfydockError, UsageError

# Tools of the old venv itself, never a requirement of the new one.
_TOOLING = {"pip", "setuptools", "wheel", "uv", "distribute", "pkg-resources"}
# Installed per torch backend (cpu, cuda, rocm...), never pinned to the old build string.
TORCH_PACKAGES = {"torch", "torchvision", "torchaudio"}
_IGNORED_UNTRACKED = ("__pycache__/", ".pyc")


@dataclass
class NodeFinding:
    directory: str  # its directory in custom_nodes/ (without .disabled)
    path: str  # where it is in the install
    kind: str  # registry | git | development | invalid
    evidence: str
    disabled: bool = False
    registry_id: str | None = None
    version: str | None = None
    url: str | None = None
    commit: str | None = None
    carried: str = "exact"  # exact | approximate | not
    why: str | None = None  # why approximate / not carried

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class PythonFinding:
    location: str | None = None  # the venv or Python directory read
    version: str | None = None  # major.minor
    site_packages: str | None = None
    distributions: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    not_on_index: dict[str, str] = field(default_factory=dict)  # name -> why (local wheel, editable)
    note: str | None = None


@dataclass
class Inspection:
    path: Path
    comfyui: dict
    nodes: list[NodeFinding]
    python: PythonFinding
    models_dir: Path | None
    model_files: int
    model_bytes: int
    extra_model_paths: Path | None
    workflows: list[str]


# --- reading the install -----------------------------------------------------------------------


def _git_repo(path: Path):
    """The git repository whose work tree is exactly `path`, or None. Git runs without optional
    locks, so even 'status' never rewrites the install's index."""
    from comfydock.gitutil import git as _git

    git = _git()

    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    if repo.working_tree_dir is None or Path(repo.working_tree_dir).resolve() != path.resolve():
        return None
    repo.git.update_environment(GIT_OPTIONAL_LOCKS="0")
    return repo


def _origin(repo) -> str | None:
    remotes = {r.name: r for r in repo.remotes}
    remote = remotes.get("origin") or next(iter(remotes.values()), None)
    if remote is None:
        return None
    try:
        return next(iter(remote.urls), None)
    except Exception:
        return None


def _changed_files(repo, untracked: bool) -> list[str]:
    """Files git sees as changed (and untracked ones, minus caches, when asked)."""
    out = repo.git.status("--porcelain", "--untracked-files=" + ("all" if untracked else "no"))
    files = [line[3:] for line in out.splitlines() if line.strip()]
    return [f for f in files if not (f.endswith(_IGNORED_UNTRACKED) or "__pycache__/" in f)]


def check_install(path: Path) -> Path:
    path = Path(path).expanduser().absolute()
    if not path.is_dir():
        raise ComfydockError(f"{path} is not a directory", hint="give the folder that holds ComfyUI's main.py")
    if not (path / "main.py").is_file() or not ((path / "comfy").is_dir() or (path / "folder_paths.py").is_file()):
        nested = path / "ComfyUI"
        hint = (
            f"that looks like a portable build: adopt {nested}"
            if (nested / "main.py").is_file()
            else "give the folder that holds ComfyUI's main.py and comfy/"
        )
        raise ComfydockError(f"{path} is not a ComfyUI install (no main.py and comfy/)", hint=hint)
    return path


def inspect_comfyui(path: Path) -> dict:
    """The install's ComfyUI: commit, origin and local edits (a git checkout), or its version."""
    from comfydock.gitutil import git as _git

    git = _git()

    repo = _git_repo(path)
    if repo is None:
        version = _comfyui_version_file(path)
        return {"git": False, "version": version, "commit": None, "origin": None, "local_edits": []}
    try:
        commit = repo.head.commit.hexsha
        edits = _changed_files(repo, untracked=False)
    except (ValueError, git.GitCommandError) as exc:
        raise ComfydockError(
            f"{path} has a broken git checkout ({exc})", hint=f"check it with 'git -C {path} status'; nothing was changed"
        ) from None
    try:
        described = repo.git.describe("--tags", "--exact-match", commit)
    except git.GitCommandError:
        described = None
    return {"git": True, "commit": commit, "version": described, "origin": _origin(repo), "local_edits": edits}


def _comfyui_version_file(path: Path) -> str | None:
    import re

    try:
        text = (path / "comfyui_version.py").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(r"__version__\s*=\s*['\"]([0-9][0-9A-Za-z.+-]*)['\"]", text)
    return m.group(1) if m else None


def _registry_identity(node_dir: Path) -> tuple[str, str] | None:
    """(registry id, version) from a node's pyproject.toml [project] + [tool.comfy], if it has them."""
    import tomllib

    try:
        data = tomllib.loads((node_dir / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    project, comfy = data.get("project"), data.get("tool", {}).get("comfy")
    if not isinstance(project, dict) or not isinstance(comfy, dict):
        return None
    name, version = project.get("name"), project.get("version")
    if isinstance(name, str) and isinstance(version, str):
        return name, version
    return None


def classify_node(node_dir: Path, directory: str, disabled: bool = False) -> NodeFinding:
    """What a node directory is, with the evidence: registry, git or development (copied)."""
    from comfydock.nodes.spec import check_git_url, is_valid_name, is_valid_version

    finding = NodeFinding(directory, str(node_dir), "development", "", disabled=disabled)
    if not is_valid_name(directory):
        finding.kind, finding.carried = "invalid", "not"
        finding.evidence = "directory name"
        finding.why = "its name cannot be a node directory (letters, digits, '.', '_', '+', '-')"
        return finding
    if node_dir.is_symlink():
        finding.evidence = "a link to " + os.readlink(node_dir)
        finding.carried, finding.why = "approximate", "a link in the install: its target's files are copied in"
        return finding
    tracking = (node_dir / ".tracking").is_file()
    ident = _registry_identity(node_dir)
    if ident is not None and is_valid_name(ident[0]) and is_valid_version(ident[1]):
        finding.kind, finding.registry_id, finding.version = "registry", ident[0], ident[1]
        finding.evidence = ("ComfyUI-Manager .tracking + " if tracking else "") + "pyproject.toml [tool.comfy] name/version"
        return finding
    if (node_dir / ".git").exists():
        repo = _git_repo(node_dir)
        if repo is None:
            finding.evidence, finding.why = "a broken .git", "its git data cannot be read: copied as it is"
            finding.carried = "approximate"
            return finding
        try:
            commit = repo.head.commit.hexsha
            changed = _changed_files(repo, untracked=True)
        except Exception:
            finding.evidence, finding.why = "a git clone without a commit", "copied as it is"
            return finding
        url = _origin(repo)
        finding.commit, finding.url = commit, url
        if url is None:
            finding.evidence = f"a git clone at {commit[:10]} without a remote"
            return finding
        try:
            check_git_url(url)
        except UsageError:
            finding.evidence = f"a git clone of {url!r}, which comfydock does not fetch from"
            return finding
        if changed:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            finding.evidence = f"a git clone of {url} at {commit[:10]} with local changes ({shown})"
            return finding
        finding.kind, finding.evidence = "git", f"a clean git clone of {url} at {commit[:10]}"
        return finding
    finding.evidence = "a plain directory" + (" with a ComfyUI-Manager .tracking file but no registry name" if tracking else "")
    return finding


def find_nodes(custom_nodes: Path) -> list[NodeFinding]:
    found: list[NodeFinding] = []
    if not custom_nodes.is_dir():
        return found
    for entry in sorted(custom_nodes.iterdir()):
        if entry.name == ".disabled" and entry.is_dir():  # ComfyUI-Manager's folder of disabled nodes
            for inner in sorted(entry.iterdir()):
                if inner.is_dir():
                    name = inner.name.split("@")[0]  # Manager names them 'node@version'
                    found.append(classify_node(inner, name, disabled=True))
            continue
        if entry.name.startswith((".", "__")) or not entry.is_dir():
            continue
        if entry.name.endswith(".disabled"):
            found.append(classify_node(entry, entry.name.removesuffix(".disabled"), disabled=True))
        else:
            found.append(classify_node(entry, entry.name))
    return found


def _python_dirs(path: Path) -> list[Path]:
    return [path / "venv", path / ".venv", path.parent / "venv", path.parent / ".venv", path.parent / "python_embeded"]


def _site_packages(location: Path) -> Path | None:
    for candidate in [*sorted(location.glob("lib/python3*/site-packages")), location / "Lib" / "site-packages"]:
        if candidate.is_dir():
            return candidate
    return None


def _python_version(location: Path) -> str | None:
    import re

    try:
        for line in (location / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version_info", "version"):
                m = re.match(r"\s*(3)\.(\d+)", value)
                if m:
                    return f"{m.group(1)}.{m.group(2)}"
    except OSError:
        pass
    for pth in location.glob("python3*._pth"):  # the portable build's embedded Python
        m = re.fullmatch(r"python3(\d+)\._pth", pth.name)
        if m:
            return f"3.{m.group(1)}"
    for site in location.glob("lib/python3.*/site-packages"):
        m = re.fullmatch(r"python(3\.\d+)", site.parent.name)
        if m:
            return m.group(1)
    return None


def inspect_python(path: Path, python_from: str | None) -> PythonFinding:
    """The old Python's installed distributions, read from its site-packages (never run)."""
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name

    if python_from and python_from != "auto":
        given = Path(python_from).expanduser().absolute()
        if given.is_file():  # .../bin/python or python.exe: its venv or install directory
            given = given.parent.parent if given.parent.name in ("bin", "Scripts") else given.parent
        if not given.is_dir():
            raise ComfydockError(
                f"--python-from {python_from}: no such Python environment", hint="give a venv directory or its python"
            )
        candidates = [given]
    else:
        candidates = _python_dirs(path)
    finding = PythonFinding()
    location = next((c for c in candidates if c.is_dir() and _site_packages(c) is not None), None)
    if location is None:
        finding.note = "no venv or embedded Python found beside the install; give one with --python-from"
        return finding
    site = _site_packages(location)
    finding.location, finding.site_packages, finding.version = str(location), str(site), _python_version(location)
    if not (location / "bin" / "python").exists() and not (location / "python.exe").exists():
        if not (location / "Scripts" / "python.exe").exists():
            finding.note = "its Python executable is gone; the installed packages were read from site-packages"
    for dist in distributions(path=[str(site)]):
        try:
            name, version = dist.metadata.get("Name"), dist.version
        except (ValueError, OSError):  # METADATA that is not UTF-8 (or unreadable): the folder's name says it
            folder = getattr(dist, "_path", None)
            name, _, version = (folder.name if folder else "").removesuffix(".dist-info").partition("-")
        if not name or not version:
            continue
        key = canonicalize_name(name)
        finding.distributions[key] = version
        try:
            direct = json.loads(dist.read_text("direct_url.json") or "null")
        except ValueError:
            direct = None
        if isinstance(direct, dict):
            if direct.get("dir_info", {}).get("editable"):
                finding.not_on_index[key] = f"an editable install from {direct.get('url')}"
            elif str(direct.get("url", "")).startswith("file:"):
                finding.not_on_index[key] = f"installed from a local file ({direct.get('url')})"
            elif "vcs_info" in direct:
                finding.not_on_index[key] = f"installed from {direct.get('url')} (a VCS checkout)"
    return finding


def inspect_install(path: Path, python_from: str | None = "auto") -> Inspection:
    """Everything adopt carries over, read from the install without changing it."""
    from comfydock.model_index import walk_models
    from comfydock.workflows.tracking import _walk_json, workflow_name

    path = check_install(path)
    comfy = inspect_comfyui(path)
    try:
        nodes = find_nodes(path / "custom_nodes")
    except OSError as exc:
        raise ComfydockError(
            f"cannot read {path / 'custom_nodes'}: {exc.strerror or exc}", hint="check its permissions; nothing was changed"
        ) from None
    python = inspect_python(path, python_from)
    models = path / "models"
    files = walk_models(models) if models.is_dir() else []
    extra = path / "extra_model_paths.yaml"
    workflows_dir = path / "user" / "default" / "workflows"
    workflows = sorted(workflow_name(rel) for rel in _walk_json(workflows_dir)) if workflows_dir.is_dir() else []
    return Inspection(
        path,
        comfy,
        nodes,
        python,
        models if models.is_dir() else None,
        len(files),
        sum(f.size for f in files),
        extra if extra.is_file() else None,
        workflows,
    )


# --- creating the environment ------------------------------------------------------------------


def _comfyui_source(ws, inspection: Inspection, warn) -> tuple[str, str]:
    """(git URL to take ComfyUI from, how it was chosen): the origin when it has the commit,
    else the install's own repository (read through a file:// URL, so git never hard-links
    into it)."""
    from comfydock import comfyui
    from comfydock.nodes.spec import check_git_url

    commit, origin = inspection.comfyui["commit"], inspection.comfyui["origin"]
    if origin:
        try:
            check_git_url(origin)
            notes: list[str] = []
            repo = comfyui.update_cache(ws.comfyui_cache_dir, origin, warn=notes.append)
            repo.commit(commit)
            return origin, f"its origin {origin}"
        except Exception as exc:  # unreachable, or the commit was never pushed
            why = getattr(exc, "message", None) or f"it lacks commit {commit[:10]}"
            warn(f"ComfyUI's origin {origin} cannot be used ({why}); taking ComfyUI from the install itself")
    return inspection.path.as_uri(), "the install's own git repository (its origin is unreachable or lacks the commit)"


def _copy_node(src: Path, dest: Path) -> None:
    """Copy a node directory (links kept as links; its caches left out), whole or not at all."""
    tmp = dest.with_name(f".{dest.name}.adopting")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        shutil.copytree(src, tmp, symlinks=not src.is_symlink(), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _prefetch(env, finding: NodeFinding):
    """The NodeSpec of a registry or git node, fetched through the node cache; a reason string
    instead when it cannot be reproduced from its source (then it is copied in as a dev node)."""
    from comfydock.nodes.cache import NodeCache
    from comfydock.nodes.resolve import resolve_registry
    from comfydock.nodes.safety import _holds_all_of
    from comfydock.nodes.spec import NodeSpec
    from comfydock.tasks.nodes import _fetch

    try:
        if finding.kind == "registry":
            spec = resolve_registry(env.workspace, finding.registry_id, finding.version, name=finding.directory)
        else:
            spec = NodeSpec(finding.directory, "git", finding.directory, url=finding.url, commit=finding.commit)
        _fetch(env, spec)
    except ComfydockError as exc:
        return f"cannot fetch it from its source ({exc.message}): copied as it is"
    if spec.source == "registry":
        entry = NodeCache(env.workspace.node_cache_dir).entry(spec.identity())
        if not _holds_all_of(Path(finding.path), entry.content):
            return f"its files differ from {spec.id} {spec.version} on the registry: copied as it is"
    return spec


def _merge_extra_paths(env, inspection: Inspection, add_models_dir: bool) -> list[str]:
    """Add the install's models/ (when it is not the workspace's) and its own extra_model_paths.yaml
    sections to the environment's extra_model_paths.yaml; the section names added."""
    import yaml

    from comfydock import comfyui
    from comfydock.fsutil import atomic_write_text

    path = env.comfyui_dir / "extra_model_paths.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, yaml.YAMLError):
        data = {}
    data = data if isinstance(data, dict) else {}
    added = []
    if add_models_dir and inspection.models_dir is not None:
        data["adopted"] = {"base_path": str(inspection.models_dir), **{f: f"{f}/" for f in comfyui.MODEL_FOLDERS}}
        added.append("adopted")
    if inspection.extra_model_paths is not None:
        try:
            theirs = yaml.safe_load(inspection.extra_model_paths.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            theirs = None
        for key, section in (theirs or {}).items() if isinstance(theirs, dict) else ():
            if not isinstance(section, dict) or key in data:
                continue
            section = dict(section)
            base = section.get("base_path")
            if isinstance(base, str) and not os.path.isabs(os.path.expanduser(base)):
                section["base_path"] = str((inspection.path / base).absolute())  # was relative to the old ComfyUI
            data[key] = section
            added.append(str(key))
    if added:
        header = "# Written by comfydock: the workspace's models, and the adopted install's model folders.\n"
        atomic_write_text(path, header + yaml.safe_dump(data, sort_keys=False))
    return added


def _add_packages(env, specs: list[str]) -> tuple[list[str], dict[str, str]]:
    """Add user requirements: all at once; when uv refuses the set, each half again, down to the
    single packages it cannot resolve (a few unresolvable ones cost a few locks, not one per
    package). change_manifest puts the manifest back after each refused attempt."""
    from comfydock.manifest_change import change_manifest
    from comfydock.pydeps import add_requirements

    added: list[str] = []
    failed: dict[str, str] = {}

    def attempt(batch: list[str]) -> None:
        try:
            change_manifest(env, lambda doc: add_requirements(doc, batch))
            added.extend(batch)
        except ComfydockError as exc:
            if len(batch) == 1:
                failed[batch[0]] = exc.message.splitlines()[0][:300]
            else:
                attempt(batch[: len(batch) // 2])
                attempt(batch[len(batch) // 2 :])

    if specs:
        attempt(specs)
    return sorted(added), failed


@dataclass
class AdoptResult:
    environment: object
    report: dict


def adopt_install(
    ws,
    path: Path,
    *,
    name: str | None = None,
    use: bool = False,
    python_from: str | None = "auto",
    torch_backend: str = "auto",
    step=lambda message: None,
    warn=lambda message: None,
) -> AdoptResult:
    """Create environment `name` reproducing the ComfyUI install at `path` (only read)."""
    from packaging.utils import canonicalize_name

    from comfydock import engine, model_index, uv_runner
    from comfydock.engine import build_failure
    from comfydock.lifecycle import create_environment
    from comfydock.nodes.spec import drop_node, node_path, reqs_file, set_node
    from comfydock.workflows.tracking import copy_path
    from comfydock.workspace import validate_name

    step(f"Reading {path}")
    inspection = inspect_install(path, python_from)
    path = inspection.path
    name = validate_name(name or _default_name(ws, path))
    if ws.environment_path(name).exists():
        raise ComfydockError(
            f"environment {name!r} already exists at {ws.environment_path(name)}",
            hint="pick another name with --name, or remove it first with 'comfydock delete " + name + "'",
        )
    warnings: list[str] = []

    def _warn(msg):
        warnings.append(msg)
        warn(msg)

    report: dict = {"environment": name, "source": str(path), "warnings": warnings}
    comfy = inspection.comfyui
    if comfy["git"]:
        source, how = _comfyui_source(ws, inspection, _warn)
        ref = comfy["commit"]
        report["comfyui"] = {
            "commit": comfy["commit"],
            "version": comfy["version"],
            "from": how,
            "carried": "approximate" if comfy["local_edits"] else "exact",
            "local_edits": comfy["local_edits"],
            "why": "local edits to ComfyUI's files are not carried over (listed)" if comfy["local_edits"] else None,
        }
    else:
        source, ref = None, _release_tag(ws, comfy["version"])
        report["comfyui"] = {
            "commit": None,
            "version": comfy["version"],
            "from": f"release {ref} of the workspace's ComfyUI source (the install is not a git checkout)",
            "carried": "approximate",
            "local_edits": [],
            "why": "not a git checkout: the release matching comfyui_version.py is used",
        }

    py = inspection.python
    python = py.version or "3.11"
    available = uv_runner.available_pythons(ws) if py.version else []
    if available and not any(v == py.version or v.startswith(py.version + ".") for v in available):
        _warn(f"Python {py.version} of the install is not available here; using Python 3.11")
        python = "3.11"
    report["python"] = {
        "from": py.location,
        "version": python,
        "carried": "exact" if py.version == python else "approximate",
        "note": py.note,
    }

    models_setting_before = ws.setting("models-dir")
    adopt_models_dir = models_setting_before is None and inspection.models_dir is not None
    already_there = (
        inspection.models_dir is not None
        and ws.models_dir is not None
        and ws.models_dir.resolve() == inspection.models_dir.resolve()
    )
    node_rows: list[dict] = []
    packages: dict = {"added": [], "already_required": [], "torch": [], "not_carried": []}

    def populate(env):
        # nodes: registry/git through the cache (reclassified as copied when that fails), others copied
        env.custom_nodes_dir.mkdir(parents=True, exist_ok=True)
        doc = env.manifest()
        specs = []
        for finding in inspection.nodes:
            if finding.kind == "invalid":
                node_rows.append(finding.to_json())
                continue
            step(f"Carrying over custom node {finding.directory}")
            if finding.kind in ("registry", "git") and not finding.disabled:
                got = _prefetch(env, finding)
                if isinstance(got, str):
                    finding.kind, finding.carried, finding.why = "development", "approximate", got
                else:
                    specs.append(got)
                    set_node(doc, got)
                    node_rows.append(finding.to_json() | {"id": got.id})
                    continue
            src = Path(finding.path)
            if finding.disabled:
                dest = node_path(env, finding.directory, ".disabled")
                finding.why = finding.why or (
                    f"kept disabled as custom_nodes/{dest.name} (enable it with 'comfydock node add {finding.directory} --dev')"
                )
            else:
                from comfydock.nodes.spec import NodeSpec

                dest = node_path(env, finding.directory)
                spec = NodeSpec(finding.directory, "development", finding.directory, url=finding.url)
                specs.append(spec)
                set_node(doc, spec)
            if dest.exists():
                finding.carried, finding.why = "not", f"custom_nodes/{dest.name} appears twice in the install"
                if not finding.disabled:
                    specs.pop()
                node_rows.append(finding.to_json())
                continue
            try:
                _copy_node(src, dest)
            except OSError as exc:  # an unreadable file: that node is left out, said so
                finding.carried, finding.why = "not", f"cannot be copied: {exc}"
                if not finding.disabled:
                    specs.pop()
                    drop_node(doc, spec)
                node_rows.append(finding.to_json())
                continue
            node_rows.append(finding.to_json() | {"id": finding.directory, "kind": finding.kind})
        manifest.save(env.pyproject_path, doc)
        if specs:
            step("Installing custom nodes and their requirements")
            targets = [f"install_node:{s.id}" for s in specs if s.source != "development"]
            targets += [f"scan_requirements:{s.id}" for s in specs] + ["lock_deps", "sync_venv"]
            result = engine.build(env, targets)
            if not result.ok:
                raise build_failure(result)
            by_id = {row.get("id"): row for row in node_rows}
            for spec in specs:  # requirement lines the scan could not use, per node
                try:
                    skipped = json.loads(reqs_file(env, spec.id).read_text()).get("skipped", [])
                except (OSError, ValueError, AttributeError):
                    skipped = []
                if skipped and spec.id in by_id:
                    by_id[spec.id]["requirements_skipped"] = [f"{line} ({why})" for line, why in skipped]

        # Python packages: what the requirements do not bring, at the installed version
        locked = {canonicalize_name(k): v for k, v in env.locked_versions().items()}
        wanted = []
        for pkg, version in sorted(py.distributions.items()):
            if pkg in _TOOLING:
                continue
            if pkg in TORCH_PACKAGES:
                packages["torch"].append(
                    {"name": pkg, "old": version, "new": locked.get(pkg), "why": "installed for the environment's torch backend"}
                )
            elif pkg in locked:
                if locked[pkg] != version:
                    packages["already_required"].append({"name": pkg, "old": version, "new": locked[pkg]})
            elif pkg in py.not_on_index:
                packages["not_carried"].append({"name": pkg, "version": version, "why": py.not_on_index[pkg]})
            else:
                wanted.append(f"{pkg}=={version}")
        if wanted:
            step(f"Adding {len(wanted)} Python package(s) of the old environment")
        added, failed = _add_packages(env, wanted)
        packages["added"] = added
        for spec, why in failed.items():
            pkg, _, version = spec.partition("==")
            packages["not_carried"].append({"name": pkg, "version": version, "why": f"not resolvable from the index: {why}"})

        # models: never copied
        models = {"files": inspection.model_files, "bytes": inspection.model_bytes, "directory": None}
        if inspection.models_dir is not None:
            models["directory"] = str(inspection.models_dir)
            if adopt_models_dir:
                models["how"] = "became the workspace's models directory, indexed"
            elif already_there:
                models["how"] = "already the workspace's models directory, indexed"
            else:
                models["how"] = "indexed in place, added to the environment's extra_model_paths.yaml"
            # in every case: 'models list' and the first commit know the models at once
            step(f"Indexing the install's models in place ({inspection.model_files} files)")
            model_index.index_directory(ws.models_db, inspection.models_dir)
        models["extra_paths"] = _merge_extra_paths(env, inspection, add_models_dir=not (adopt_models_dir or already_there))
        report["models"] = models

        # workflows and user settings: copied (the workflows versioned in .cec/ too)
        user = path / "user"
        copied_settings = []
        links: list[str] = []  # never followed: a workflow linked to /etc/passwd would be versioned and shared
        if user.is_dir() and not user.is_symlink():
            for item in sorted(user.rglob("*")):  # rglob never descends into a linked folder
                rel = item.relative_to(user)
                if rel.parts[:2] == ("default", "workflows"):
                    continue
                if item.is_symlink():
                    links.append(f"user/{rel.as_posix()}")
                    continue
                if not item.is_file():
                    continue
                if rel.suffix not in (".json", ".yaml", ".yml", ".css", ".txt") or rel.name.startswith("."):
                    continue
                dest = env.comfyui_dir / "user" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(item, dest)
                copied_settings.append(str(rel))
        src_workflows = path / "user" / "default" / "workflows"
        from comfydock.workflows.tracking import _walk_json, read_workflow, workflow_name

        linked_workflows: list[str] = []
        for rel_name, wf_path in _walk_json(src_workflows, linked_workflows).items():
            rel, wf_name = wf_path.relative_to(src_workflows), workflow_name(rel_name)
            data = read_workflow(wf_path)
            for dest in (env.workflows_dir / rel, copy_path(env, wf_name)):
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
        links += [f"user/default/workflows/{rel}" for rel in linked_workflows]
        for link in sorted(links):
            _warn(f"{link} is a symbolic link: not copied (adopt never follows a link)")
        report["workflows"] = inspection.workflows
        report["skipped_links"] = sorted(links)
        report["settings"] = copied_settings

    with ws.transaction() as tx:  # any failure, Ctrl-C included, undoes it
        if adopt_models_dir:
            tx.on_undo(lambda: ws.set_setting("models-dir", models_setting_before), "the models-dir setting")
            ws.set_models_dir(inspection.models_dir)
        step("Creating the environment")
        created = create_environment(
            ws,
            name,
            python=python,
            comfyui_ref=ref,
            torch_backend=torch_backend,
            use=use,
            step=step,
            warn=_warn,
            comfyui_source=source,
            populate=populate,
            message=f"Adopted from {path}",
        )
    report["nodes"] = node_rows
    report["packages"] = packages
    report["version"] = "v1"
    report["torch_backend"] = created.torch_backend
    report["active"] = ws.active_environment == name
    return AdoptResult(created.environment, report)


def _release_tag(ws, version: str | None) -> str:
    if not version:
        raise ComfydockError(
            "the install is not a git checkout and has no comfyui_version.py",
            hint="adopt a git checkout of ComfyUI, or create an environment with 'comfydock create'",
        )
    from comfydock import comfyui

    repo = comfyui.update_cache(ws.comfyui_cache_dir, ws.setting("comfyui-source"))
    for tag in (f"v{version}", version):
        if tag in comfyui.release_tags(repo):
            return tag
    raise ComfydockError(
        f"no ComfyUI release {version} (the install's comfyui_version.py) in {ws.setting('comfyui-source')}",
        hint="create an environment with 'comfydock create --comfyui-version REF' and add the nodes",
    )


def _default_name(ws, path: Path) -> str:
    import re

    base = path.name if path.name.lower() != "comfyui" else (path.parent.name or "adopted")
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "adopted"
    base = base if base[0].isalnum() else "adopted"
    taken = set(ws.environment_names())
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


# --- drift inside a managed environment ------------------------------------------------------


def venv_distributions(venv_dir: Path) -> dict[str, str]:
    """Installed distributions (canonical name -> version), from the dist-info directory names
    alone (fast enough for every 'status')."""
    from packaging.utils import canonicalize_name

    site = _site_packages(venv_dir)
    found: dict[str, str] = {}
    if site is None:
        return found
    for entry in site.iterdir():
        if entry.name.endswith(".dist-info") and entry.is_dir():
            name, _, version = entry.name.removesuffix(".dist-info").partition("-")
            if name and version:
                found[canonicalize_name(name)] = version
    return found


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _synced_packages(env) -> dict[str, str]:
    """What the last sync installed (package -> version): uv.lock's packages this machine takes
    (dependency markers evaluated for the venv's Python and this platform, this machine's torch
    extra), without the project itself and without pip/setuptools (left out on both sides)."""
    from packaging.utils import canonicalize_name

    from comfydock.pydeps import synced_versions

    doc = env.manifest_data()
    text = env.uv_lock_text()
    project = canonicalize_name(manifest.project_name(doc))
    versions = synced_versions(text, env.marker_environment(doc), env.synced_torch_extra())
    if versions is None:  # no project entry to walk from: every package the lock has for this fork
        versions = env.locked_versions(doc, text)
    return {k: v for k, v in versions.items() if k != project and k not in _TOOLING}


def drift(env) -> dict:
    """What changed behind comfydock's back: node directories no manifest entry owns (with the
    evidence adopt --here would act on), and venv distributions that differ from uv.lock (only
    when the venv was synced to this uv.lock; otherwise the difference is a pending build)."""
    from comfydock.nodes.operations import untracked_directories

    nodes = [classify_node(env.custom_nodes_dir / d, d).to_json() for d in untracked_directories(env)]
    packages: dict = {"checked": False, "added": [], "removed": [], "other_version": []}
    try:
        in_sync = env.venv_in_sync()
        locked = _synced_packages(env) if in_sync else {}
    except (OSError, ValueError, ComfydockError):  # a damaged uv.lock or manifest: status reports those
        in_sync = False
    if in_sync:
        installed = {k: v for k, v in venv_distributions(env.venv_dir).items() if k not in _TOOLING}
        packages["checked"] = True
        packages["added"] = [{"name": n, "version": v} for n, v in sorted(installed.items()) if n not in locked]
        packages["removed"] = [{"name": n, "version": v} for n, v in sorted(locked.items()) if n not in installed]
        packages["other_version"] = [
            {"name": n, "version": installed[n], "locked": v}
            for n, v in sorted(locked.items())
            if n in installed and not _same_version(installed[n], v)
        ]
    return {"nodes": nodes, "packages": packages}


def unlocked_packages(env) -> list[str]:
    """Distributions in the venv that uv.lock does not have (a sync to uv.lock removes them)."""
    from packaging.utils import canonicalize_name

    if not env.uv_lock_path.exists():
        return []
    try:
        manifest.check_uv_lock(env.uv_lock_path)  # an empty or damaged uv.lock: the build refuses and says so
        project = canonicalize_name(manifest.project_name(env.manifest_data()))
        locked = set(env.locked_versions()) | {project}
    except (OSError, ValueError, ComfydockError):
        return []
    installed = venv_distributions(env.venv_dir)
    return sorted(f"{n} {v}" for n, v in installed.items() if n not in locked and n not in _TOOLING)


def adopt_here(env, *, listener=None, on_wait=None, step=lambda message: None) -> dict:
    """Track the environment's drift: untracked node directories become registry, git or
    development nodes (their files stay where they are), distributions installed beside uv.lock
    become user requirements at their versions. One manifest change, left for 'commit'; on any
    failure the manifest, uv.lock, the venv and the node records are put back."""
    from comfydock import engine
    from comfydock.engine import build_failure
    from comfydock.nodes.operations import guard_node_records
    from comfydock.nodes.spec import NodeSpec, set_node
    from comfydock.pydeps import add_requirements

    with env.process_lock(on_wait):
        found = drift(env)
        findings = [classify_node(env.custom_nodes_dir / n["directory"], n["directory"]) for n in found["nodes"]]
        extra = [p for p in found["packages"]["added"] if p["name"] not in TORCH_PACKAGES]
        report: dict = {"nodes": [], "packages": {"added": [], "left_to_the_lock": found["packages"]["other_version"]}}
        # what tracking cannot keep (a package missing or at another version than uv.lock's, a torch
        # build installed by hand) is put back by syncing the venv to uv.lock
        restore = _restored_by_sync(found["packages"], extra)
        report["packages"]["restored"] = restore
        if not findings and not extra:
            if restore:
                step("Syncing the venv to uv.lock")
                _sync_venv_again(env)
            return report
        doc = env.manifest()
        with env.transaction() as tx:  # any failure, Ctrl-C included, puts everything back
            engine.guard_manifest(env, tx)
            specs = []

            # a second clone of a node already tracked (or found twice) would share its cache entry
            # and install target: it is tracked as a development node instead, files in place
            seen = {s.identity(): s.id for s in env.tracked_nodes().values() if s.identity()}
            for finding in findings:
                if finding.kind == "invalid":
                    report["nodes"].append(finding.to_json())
                    continue
                step(f"Tracking custom_nodes/{finding.directory}")
                spec = None
                if finding.kind in ("registry", "git"):
                    got = _prefetch(env, finding)
                    if isinstance(got, str):
                        finding.kind, finding.carried, finding.why = "development", "approximate", got
                    else:
                        spec = got
                if spec is not None and spec.identity() in seen:
                    finding.kind, finding.carried = "development", "approximate"
                    finding.why = f"a second copy of node {seen[spec.identity()]}: tracked as a development node"
                    spec = None
                if spec is None:
                    spec = NodeSpec(finding.directory, "development", finding.directory, url=finding.url)
                elif spec.identity():
                    seen[spec.identity()] = spec.id
                specs.append(spec)
                set_node(doc, spec)
                report["nodes"].append(finding.to_json() | {"id": spec.id, "kind": spec.source})
            wanted = [f"{p['name']}=={p['version']}" for p in extra]
            if wanted:
                add_requirements(doc, wanted)
            report["packages"]["added"] = wanted
            guard_node_records(tx, env, [s.id for s in specs])
            manifest.save(env.pyproject_path, doc)
            targets = [f"install_node:{s.id}" for s in specs if s.source != "development"]
            targets += [f"scan_requirements:{s.id}" for s in specs] + ["lock_deps", "sync_venv"]
            result = engine.build(env, targets, listener=listener)
            if not result.ok:
                raise build_failure(result)
            if restore and not any(e.task == "sync_venv" and e.status == "ran" for e in result.events):
                _sync_venv_again(env)
        report["build"] = result.to_json()
    return report


def _restored_by_sync(packages: dict, tracked: list[dict]) -> list[str]:
    """Drift lines a sync to uv.lock puts back (everything adopt does not track as a requirement)."""
    kept = {p["name"] for p in tracked}
    lines = [f"{p['name']} {p['version']}" for p in packages["removed"]]
    lines += [f"{p['name']} {p['version']} -> {p['locked']}" for p in packages["other_version"]]
    lines += [f"{p['name']} {p['version']} (removed)" for p in packages["added"] if p["name"] not in kept]
    return lines


def _sync_venv_again(env) -> None:
    """uv sync to the current uv.lock even though the marker says the venv is synced to it."""
    from comfydock import uv_runner

    extra = env.torch_extra()
    uv_runner.uv_sync(env.workspace, env.cec_dir, env.venv_dir, extra)
    env.record_venv_synced(extra)
