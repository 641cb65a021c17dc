"""The environment manifest: `.cec/pyproject.toml`, read and written through tomlkit."""

from __future__ import annotations

import re
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from comfydock.dates import parse_date
from comfydock.errors import ComfydockError, CorruptFile
from comfydock.fsutil import atomic_write_text

# What a manifest, a bundle's comfydock.lock or a `.python-version` may name as the Python: uv
# also takes a path there, and would run it, so nothing else reaches uv from a file.
PYTHON_VERSION = re.compile(r"3\.\d{1,2}(\.\d{1,3})?")


def check_python_version(value, where: str) -> str:
    """`value` if it is a Python version like 3.12 (or 3.12.4); else a one-line refusal naming `where`."""
    if not isinstance(value, str) or not PYTHON_VERSION.fullmatch(value):
        shown = value[:80] if isinstance(value, str) else value
        raise ComfydockError(
            f"{where}: python_version {shown!r} is not a Python version like 3.12; nothing was run",
            hint="the file may be damaged or hostile; ask for a fresh copy (a Python version, never a path)",
        )
    return value


def check_python_version_file(project_dir: Path) -> None:
    """Refuse a `.python-version` in `project_dir` that names anything but versions: uv reads it
    (lock, sync) and runs what it names."""
    path = Path(project_dir) / ".python-version"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise ComfydockError(f"cannot read {path}: {exc.strerror}", hint=f"check {path}") from None
    check_python_version_text(text, str(path))


def check_python_version_text(text: str, where: str) -> None:
    """Every request in a `.python-version`'s text is a Python version (see check_python_version)."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            check_python_version(line, where)


def restore_hint(path: Path) -> str:
    """How to get a versioned file of `.cec/` back: git is the history (it always exists)."""
    return f"restore the last committed version with 'git -C {path.parent} checkout -- {path.name}', or fix it by hand"


def read_versioned(path: Path) -> str:
    """The text of a versioned file of `.cec/`; something else at its path (a folder, a pipe) is
    refused like a damaged file (never read: a pipe would block)."""
    import stat

    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as exc:  # a loop of links, a file where a folder should be
        raise CorruptFile(f"{path} cannot be read ({exc.strerror or exc})", hint=restore_hint(path)) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise CorruptFile(
            f"{path} is {kind}, not a file",
            hint=f"move it away ('mv {path} {path}.moved'), then {restore_hint(path)}",
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:  # comfydock and uv write UTF-8 only: this is damage
        raise CorruptFile(f"{path} is not UTF-8 text (byte {exc.start})", hint=restore_hint(path)) from None


def load(path: Path) -> tomlkit.TOMLDocument:
    """Read and check the manifest: a file that is not the shape comfydock wrote is refused, so
    nothing (a build, a node add) ever acts on an empty or mangled manifest."""
    try:
        doc = tomlkit.parse(read_versioned(path))
    except FileNotFoundError:
        raise CorruptFile(f"{path} is missing", hint=restore_hint(path)) from None
    except (TOMLKitError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptFile(f"{path} is not valid TOML ({first})", hint=restore_hint(path)) from None
    problem = shape_problem(doc)
    if problem:
        raise CorruptFile(f"{path} is not a comfydock manifest: {problem}", hint=restore_hint(path))
    return doc


_NODE_STRING_FIELDS = ("source", "directory", "version", "registry_id", "url", "ref", "commit")


def _is_table(value) -> bool:
    return isinstance(value, dict)


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def shape_problem(doc) -> str | None:
    """What is wrong with the manifest's structure (required tables, value types), or None."""
    if not doc:
        return "the file is empty"
    project = doc.get("project")
    if not _is_table(project):
        return "[project] is missing" if project is None else "[project] is not a table"
    if not isinstance(project.get("name"), str):
        return "[project].name is missing or not a string"
    if "dependencies" in project and not _is_str_list(project["dependencies"]):
        return "[project].dependencies is not a list of requirement strings"
    if "requires-python" in project and not isinstance(project["requires-python"], str):
        return "[project].requires-python is not a string"
    groups = doc.get("dependency-groups", {})
    if not _is_table(groups):
        return "[dependency-groups] is not a table"
    for name, entries in groups.items():
        if not isinstance(entries, list) or not all(isinstance(x, str) or _is_table(x) for x in entries):
            return f"[dependency-groups].{name} is not a list of requirements"
    tool = doc.get("tool", {})
    if not _is_table(tool):
        return "[tool] is not a table"
    uv = tool.get("uv", {})
    if not _is_table(uv):
        return "[tool.uv] is not a table"
    for key in ("constraint-dependencies", "override-dependencies"):
        if key in uv and not _is_str_list(uv[key]):
            return f"[tool.uv].{key} is not a list of requirement strings"
    problem = _resolution_problem(uv)
    if problem:
        return problem
    comfydock = tool.get("comfydock")
    if not _is_table(comfydock):
        return "[tool.comfydock] is missing" if comfydock is None else "[tool.comfydock] is not a table"
    env = comfydock.get("environment")
    if not _is_table(env):
        return "[tool.comfydock.environment] is missing" if env is None else "[tool.comfydock.environment] is not a table"
    for key in ("comfyui_version", "comfyui_commit", "python_version", "torch_backend"):
        if key in env and not isinstance(env[key], str):
            return f"[tool.comfydock.environment].{key} is not a string"
    if "python_version" in env and not PYTHON_VERSION.fullmatch(env["python_version"]):
        return (
            f"[tool.comfydock.environment].python_version {str(env['python_version'])[:80]!r} is not a Python version like 3.12"
        )
    nodes = comfydock.get("nodes", {})
    if not _is_table(nodes):
        return "[tool.comfydock.nodes] is not a table"
    for node_id, entry in nodes.items():
        if not _is_table(entry):
            return f"[tool.comfydock.nodes].{node_id} is not a table"
        for key in _NODE_STRING_FIELDS:
            if key in entry and not isinstance(entry[key], str):
                return f"[tool.comfydock.nodes.{node_id}].{key} is not a string"
    python = comfydock.get("python", {})
    if not _is_table(python):
        return "[tool.comfydock.python] is not a table"
    if "user_added" in python and not _is_str_list(python["user_added"]):
        return "[tool.comfydock.python].user_added is not a list of requirement strings"
    return None


def _resolution_problem(uv) -> str | None:
    """The resolution date and per-package dates (comfydock.resolution): only dates, or false for
    a package, ever reach uv."""
    if "exclude-newer" in uv and parse_date(uv["exclude-newer"]) is None:
        return f"[tool.uv].exclude-newer is not a date ({str(uv['exclude-newer'])[:40]!r})"
    per_package = uv.get("exclude-newer-package", {})
    if not _is_table(per_package):
        return "[tool.uv].exclude-newer-package is not a table"
    for name, value in per_package.items():
        if value is not False and parse_date(value) is None:
            return f"[tool.uv].exclude-newer-package.{name} is neither a date nor false"
    return None


def _uv_lock_closure_problem(packages: list[dict]) -> str | None:
    """A cut-short lock still parses: every package a locked package depends on must be locked too."""
    names = {p.get("name") for p in packages}
    if None in names or not all(isinstance(n, str) for n in names):
        return "a [[package]] has no name"
    roots = [
        p
        for p in packages
        if isinstance(p.get("source"), dict) and "." in (p["source"].get("virtual"), p["source"].get("editable"))
    ]
    if not roots:
        return "the environment's own entry is missing (is the file cut short?)"
    for p in packages:
        wanted = list(p.get("dependencies", []))
        for table in ("optional-dependencies", "dev-dependencies"):
            groups = p.get(table, {})
            if isinstance(groups, dict):
                for deps in groups.values():
                    wanted.extend(deps if isinstance(deps, list) else [])
        for dep in wanted:
            name = dep.get("name") if isinstance(dep, dict) else None
            if name not in names:
                return f"{p['name']} depends on {name!r}, which is not in the lock (is the file cut short?)"
    return None


def lock_contradiction(pyproject: dict, packages: list[dict]) -> str | None:
    """What in uv.lock contradicts pyproject.toml, naming the package, or None.

    uv trusts a lock whose recorded requirements equal the project's: `uv lock --check` passes,
    `uv lock` keeps it and `uv sync --frozen` installs it, even when a locked version is outside
    those requirements (a lock edited to install cdfix-alpha 0.9 under `cdfix-alpha>=1.0`). So each
    direct requirement (dependencies, extras, dependency groups; an override replaces it, a
    constraint narrows it) is checked against the version the lock installs for it, and the lock
    may install nothing directly that pyproject.toml does not ask for."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    project = pyproject.get("project") if isinstance(pyproject.get("project"), dict) else {}
    name = canonicalize_name(str(project.get("name", "")))
    root = next(
        (
            p
            for p in packages
            if isinstance(p.get("source"), dict)
            and "." in (p["source"].get("virtual"), p["source"].get("editable"))
            and canonicalize_name(str(p.get("name", ""))) == name
        ),
        None,
    )
    if root is None:
        return f"it locks no project named {project.get('name')!r}"

    def parse(texts) -> list:
        out = []
        for text in texts if isinstance(texts, list) else []:
            try:
                out.append(Requirement(text))
            except (InvalidRequirement, TypeError):
                continue  # not a requirement string ({include-group}, garbage): uv refuses garbage itself
        return out

    def group(groups: dict, key: str, depth: int = 0) -> list[str]:
        texts = []
        for entry in groups.get(key, []) if depth < 8 else []:
            if isinstance(entry, str):
                texts.append(entry)
            elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
                texts.extend(group(groups, entry["include-group"], depth + 1))
        return texts

    uv = (pyproject.get("tool") or {}).get("uv") or {}
    overrides: dict[str, list] = {}
    for r in parse(uv.get("override-dependencies")):
        overrides.setdefault(canonicalize_name(r.name), []).append(r)
    constraints: dict[str, list] = {}
    for r in parse(uv.get("constraint-dependencies")):
        if r.marker is None:
            constraints.setdefault(canonicalize_name(r.name), []).append(r)
    locked: dict[str, list[str]] = {}
    for p in packages:
        locked.setdefault(canonicalize_name(str(p.get("name", ""))), []).append(str(p.get("version", "")))

    def table(key: str) -> dict:
        value = root.get(key)
        return {canonicalize_name(str(k)): v for k, v in value.items()} if isinstance(value, dict) else {}

    extras, groups = table("optional-dependencies"), table("dev-dependencies")
    declared = pyproject.get("dependency-groups") if isinstance(pyproject.get("dependency-groups"), dict) else {}
    optional = project.get("optional-dependencies") if isinstance(project.get("optional-dependencies"), dict) else {}
    sections = [("[project].dependencies", parse(project.get("dependencies")), root.get("dependencies"))]
    sections += [(f"extra {k}", parse(v), extras.get(canonicalize_name(k))) for k, v in optional.items()]
    sections += [(f"group {k}", parse(group(declared, k)), groups.get(canonicalize_name(k))) for k in declared]
    for where, requirements, edges in sections:
        wanted = {canonicalize_name(r.name) for r in requirements}
        installed = set()
        for edge in edges if isinstance(edges, list) else []:
            dep = canonicalize_name(str(edge.get("name", ""))) if isinstance(edge, dict) else ""
            installed.add(dep)
            if dep not in wanted:
                return f"uv.lock installs {dep} ({where}), which pyproject.toml does not ask for"
            versions = locked.get(dep, [])
            version = str(edge["version"]) if "version" in edge else (versions[0] if len(versions) == 1 else None)
            if version is None:
                continue  # several versions (a fork by markers) and the edge names none: uv picks by marker
            try:
                parsed = Version(version)
            except InvalidVersion:
                return f"uv.lock locks {dep} at {version!r}, which is not a version"
            rules = overrides.get(dep) or [r for r in requirements if canonicalize_name(r.name) == dep]
            if not any(r.url for r in rules) and not any(r.specifier.contains(parsed, prereleases=True) for r in rules):
                asked = " or ".join(str(r) for r in rules)
                return f"uv.lock installs {dep} {version}, but pyproject.toml asks for {asked} ({where})"
            for c in constraints.get(dep, []):
                if not c.specifier.contains(parsed, prereleases=True):
                    return f"uv.lock installs {dep} {version}, but pyproject.toml constrains it to {c}"
        for r in requirements:
            if r.marker is None and canonicalize_name(r.name) not in installed and canonicalize_name(r.name) != name:
                return f"pyproject.toml asks for {r} ({where}), which uv.lock does not install"
    return None


def uv_lock_packages(uv_lock_text: str | None) -> list[dict]:
    """The [[package]] tables of uv.lock text, for reading (a lock that does not parse has none:
    check_uv_lock is where a damaged lock is an error)."""
    import tomllib

    if not uv_lock_text:
        return []
    try:
        packages = tomllib.loads(uv_lock_text).get("package", [])
    except (tomllib.TOMLDecodeError, AttributeError):
        return []
    return [p for p in packages if isinstance(p, dict)] if isinstance(packages, list) else []


def check_uv_lock(path: Path) -> None:
    """uv.lock is versioned: a file uv cannot read is an error with the way back, never relocked blindly."""
    import tomllib

    if not path.exists():
        return
    try:
        data = tomllib.loads(read_versioned(path))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problem = f"not valid TOML ({str(exc).splitlines()[0]})"
    else:
        if not data:
            problem = "the file is empty"
        elif not isinstance(data.get("version"), int):
            problem = "it has no lock format version"
        elif not isinstance(data.get("package", []), list) or not all(isinstance(p, dict) for p in data.get("package", [])):
            problem = "[[package]] is not a list of tables"
        else:
            problem = _uv_lock_closure_problem(data["package"] if "package" in data else [])
            if problem is None:
                return
    raise CorruptFile(
        f"{path} is not a uv lock file: {problem}",
        hint=f"restore it with 'git -C {path.parent} checkout -- {path.name}', or delete it and run 'comfydock build' to lock again",
    )


_data_cache: dict[str, tuple[tuple, dict]] = {}


def load_data(path: Path) -> dict:
    """The manifest as plain data, for reading only: tomllib is ~15x faster than tomlkit, and
    the result is kept per file version (status and task loading read it many times)."""
    import tomllib

    try:
        st = path.stat()
    except FileNotFoundError:
        return load(path)  # the same error as a full load
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _data_cache.get(str(path))
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        data = tomllib.loads(read_versioned(path))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return load(path)  # tomlkit's message names the line
    problem = shape_problem(data)
    if problem:
        raise CorruptFile(f"{path} is not a comfydock manifest: {problem}", hint=restore_hint(path))
    _data_cache[str(path)] = (key, data)
    return data


def parse(text: str) -> tomlkit.TOMLDocument:
    return tomlkit.parse(text)


def dumps(doc) -> str:
    return tomlkit.dumps(doc)


def save(path: Path, doc: tomlkit.TOMLDocument) -> None:
    atomic_write_text(path, tomlkit.dumps(doc))


def new_manifest(
    env_name: str,
    python_version: str,
    requirements: list[str],
    comfyui_ref: str,
    comfyui_commit: str,
) -> tomlkit.TOMLDocument:
    """A new environment's manifest. Nothing in it is machine-specific: the torch backend is a
    setting of each machine, added as an extra when the environment is first locked there."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("Managed by comfydock: edit with 'comfydock node|py|constraint', or by hand."))
    project = tomlkit.table()
    project["name"] = f"comfydock-env-{env_name}".lower()
    project["version"] = "0.0.0"
    # the venv has one Python: lock for it alone (see docs/DESIGN.md, "One Python per lock")
    project["requires-python"] = f"=={_major_minor(python_version)}.*"
    project["dependencies"] = tomlkit.array()  # what the user adds with 'comfydock py add'
    doc["project"] = project

    # ComfyUI's own requirements.txt: a group of its own, so a user's pin can never replace it
    groups = tomlkit.table()
    core = tomlkit.array()
    core.extend(requirements)
    groups["comfyui-core"] = core.multiline(len(requirements) > 0)
    doc["dependency-groups"] = groups

    uv = tomlkit.table()
    uv["package"] = False  # the environment is not itself an installable package
    uv["default-groups"] = "all"  # every node's group is installed by 'uv sync'
    tool = tomlkit.table(is_super_table=True)
    tool["uv"] = uv

    env = tomlkit.table()
    env["comfyui_version"] = comfyui_ref
    env["comfyui_commit"] = comfyui_commit
    env["python_version"] = python_version
    comfydock = tomlkit.table(is_super_table=True)
    comfydock["environment"] = env
    comfydock["nodes"] = tomlkit.table()
    tool["comfydock"] = comfydock
    doc["tool"] = tool
    return doc


def _major_minor(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2])


def environment_info(doc) -> dict:
    return dict(section(doc, "environment") or {})


# --- the sections: the one place where a TOML path of the manifest is spelled --------------------
# Every other module reads and edits the manifest through these names; the shape check above and
# new_manifest() are the only other places that know the layout.
SECTIONS: dict[str, tuple[str, ...]] = {
    "project": ("project",),
    "optional-dependencies": ("project", "optional-dependencies"),  # the torch backend extras
    "dependency-groups": ("dependency-groups",),  # comfyui-core, one group per node, the user's groups
    "uv": ("tool", "uv"),  # constraints, indexes, sources, conflicts
    "environment": ("tool", "comfydock", "environment"),  # ComfyUI version/commit, Python
    "nodes": ("tool", "comfydock", "nodes"),  # one entry per custom node (nodes.spec.NodeSpec)
    "torch": ("tool", "comfydock", "torch"),  # the PyTorch release the family is kept to
    "resolution": ("tool", "comfydock", "resolution"),  # the resolution date's source, parts' dates, moved packages
    "workflows": ("tool", "comfydock", "workflows"),  # each tracked workflow's resolution
    "models": ("tool", "comfydock", "models"),
    "required-models": ("tool", "comfydock", "models", "required"),
    "node-choices": ("tool", "comfydock", "node_choices"),  # answers for ambiguous node types
    "legacy-python": ("tool", "comfydock", "python"),  # before comfyui-core: user_added names
    # group -> {package: why}: requirements comfydock or the user added to a group whose lines
    # otherwise come from a file (ComfyUI's undeclared imports in comfyui-core, a node's group)
    "requirement-reasons": ("tool", "comfydock", "requirement_reasons"),
}
# tables written as super-tables (their header never appears on its own)
_SUPER = {("tool",), ("tool", "comfydock"), ("tool", "comfydock", "workflows"), ("tool", "comfydock", "models")}


def section(doc, name: str, *, create: bool = False):
    """The table of section `name` (see SECTIONS): None when it is absent (or not a table),
    unless `create`, which makes it, and the tables above it, as comfydock writes them."""
    table = doc
    path = SECTIONS[name]
    for i, key in enumerate(path):
        inner = table.get(key) if hasattr(table, "get") else None
        if inner is None:
            if not create:
                return None
            inner = tomlkit.table(is_super_table=path[: i + 1] in _SUPER)
            table[key] = inner
        elif not hasattr(inner, "get"):
            return None
        table = inner
    return table


def set_section(doc, name: str, table) -> None:
    """Replace section `name` with `table` (the tables above it made when absent)."""
    *above, last = SECTIONS[name]
    parent = doc
    for i, key in enumerate(above):
        if not hasattr(parent.get(key), "get"):
            parent[key] = tomlkit.table(is_super_table=tuple(above[: i + 1]) in _SUPER)
        parent = parent[key]
    parent[last] = table


def drop_section(doc, name: str) -> bool:
    """Remove section `name`; True if it was there."""
    *above, last = SECTIONS[name]
    parent = doc
    for key in above:
        parent = parent.get(key) if hasattr(parent, "get") else None
        if parent is None:
            return False
    if hasattr(parent, "get") and last in parent:
        del parent[last]
        return True
    return False


def array(doc, name: str, key: str, *, create: bool = False):
    """The list `key` of section `name` (e.g. "uv", "constraint-dependencies"); None when absent
    unless `create`."""
    table = section(doc, name, create=create)
    if table is None:
        return None
    if key not in table:
        if not create:
            return None
        table[key] = tomlkit.array()
    return table[key]


def drop_key(doc, name: str, key: str) -> None:
    table = section(doc, name)
    if table is not None and key in table:
        del table[key]


def user_requirements(doc) -> list[str]:
    """[project].dependencies: what the user added with 'py add'."""
    return [str(e) for e in (section(doc, "project") or {}).get("dependencies", [])]


def dependency_groups(doc) -> dict:
    """[dependency-groups] (empty when absent)."""
    return section(doc, "dependency-groups") or {}


def requirement_reasons(doc, group: str) -> dict[str, str]:
    """Package -> why, for the requirements added to `group` beside its file's (see SECTIONS)."""
    table = (section(doc, "requirement-reasons") or {}).get(group)
    if not hasattr(table, "items"):
        return {}
    return {str(k): str(v) for k, v in table.items() if isinstance(v, str)}


def set_requirement_reason(doc, group: str, package: str, reason: str | None) -> None:
    """Record (or with None, forget) why `package` was added to `group`."""
    reasons = section(doc, "requirement-reasons", create=reason is not None)
    if reasons is None:
        return
    table = reasons.get(group)
    if not hasattr(table, "get"):
        if reason is None:
            return
        reasons[group] = tomlkit.table()
        table = reasons[group]
    if reason is None:
        if package in table:
            del table[package]
        if not table:
            del reasons[group]
        if not reasons:
            drop_section(doc, "requirement-reasons")
    else:
        table[package] = reason


def project_name(doc) -> str:
    return str((section(doc, "project") or {}).get("name") or "")


def _plain(value):
    """tomlkit items -> plain Python values (for comparing and for JSON)."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


def workflow_entries(doc) -> dict[str, dict]:
    """Each tracked workflow's recorded resolution, by workflow name, as plain data."""
    workflows = section(doc, "workflows")
    if not isinstance(workflows, dict):
        return {}
    return {str(k): _plain(v) for k, v in workflows.items() if isinstance(_plain(v), dict)}


def required_models(doc) -> dict[str, dict]:
    required = section(doc, "required-models")
    if not isinstance(required, dict):
        return {}
    return {str(k): _plain(v) for k, v in required.items() if isinstance(_plain(v), dict)}


def node_type_choices(doc) -> dict[str, str]:
    """The user's answers for node types several packages provide: type -> package."""
    choices = section(doc, "node-choices")
    if not isinstance(choices, dict):
        return {}
    return {str(k): str(v) for k, v in _plain(choices).items() if isinstance(v, str)}


def _inline(value):
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for k, v in value.items():
            if v is not None:
                table[k] = _inline(v)
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(_inline(v) for v in value)
        return array
    return value


def set_workflows(doc, entries: dict[str, dict], required: dict[str, dict]) -> bool:
    """Replace the workflow and required-model sections; True if anything changed.

    Untouched when equal, so a no-op commit rewrites nothing (and comments survive)."""
    if workflow_entries(doc) == entries and required_models(doc) == required:
        return False
    workflows = tomlkit.table(is_super_table=True)
    for name in sorted(entries):
        entry = entries[name]
        table = tomlkit.table()
        for key in ("path", "state", "comfyui_version"):
            if entry.get(key) is not None:
                table[key] = entry[key]
        if entry.get("models"):
            models = tomlkit.table()
            for h in sorted(entry["models"]):
                models[h] = _inline(entry["models"][h])
            table["models"] = models
        for key in ("optional", "unresolved"):
            if entry.get(key):
                items = tomlkit.array()
                items.extend(_inline(r) for r in entry[key])
                table[key] = items.multiline(True)
        workflows[name] = table
    set_section(doc, "workflows", workflows)
    req = tomlkit.table()
    for h in sorted(required):
        req[h] = _inline(required[h])
    set_section(doc, "required-models", req)
    return True


def set_node_type_choice(doc, node_type: str, package: str) -> None:
    section(doc, "node-choices", create=True)[node_type] = package
