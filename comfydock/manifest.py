"""The environment manifest: `.cec/pyproject.toml`, read and written through tomlkit."""

from __future__ import annotations

from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from comfydock.errors import CorruptFile
from comfydock.fsutil import atomic_write_text


def load(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptFile(f"{path} is missing", hint="restore it with 'comfydock rollback' (last committed state)") from None
    except (TOMLKitError, UnicodeDecodeError) as exc:
        raise CorruptFile(
            f"{path} is not valid TOML ({exc})",
            hint="fix the file, or discard the edit with 'comfydock rollback'",
        ) from None


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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return load(path)  # tomlkit's message names the line
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
    return dict(doc.get("tool", {}).get("comfydock", {}).get("environment", {}))


# --- workflows and the models they need ([tool.comfydock.workflows.*], [tool.comfydock.models.required])


def _comfydock_table(doc, create: bool = False):
    tool = doc.get("tool")
    if tool is None:
        if not create:
            return None
        doc["tool"] = tool = tomlkit.table(is_super_table=True)
    section = tool.get("comfydock")
    if section is None:
        if not create:
            return None
        tool["comfydock"] = section = tomlkit.table(is_super_table=True)
    return section


def _plain(value):
    """tomlkit items -> plain Python values (for comparing and for JSON)."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


def workflow_entries(doc) -> dict[str, dict]:
    """Each tracked workflow's recorded resolution, by workflow name, as plain data."""
    section = _comfydock_table(doc)
    workflows = section.get("workflows") if section is not None else None
    if not isinstance(workflows, dict):
        return {}
    return {str(k): _plain(v) for k, v in workflows.items() if isinstance(_plain(v), dict)}


def required_models(doc) -> dict[str, dict]:
    section = _comfydock_table(doc)
    models = section.get("models") if section is not None else None
    required = models.get("required") if isinstance(models, dict) else None
    if not isinstance(required, dict):
        return {}
    return {str(k): _plain(v) for k, v in required.items() if isinstance(_plain(v), dict)}


def node_type_choices(doc) -> dict[str, str]:
    """The user's answers for node types several packages provide: type -> package."""
    section = _comfydock_table(doc)
    choices = section.get("node_choices") if section is not None else None
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
    section = _comfydock_table(doc, create=True)
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
                array = tomlkit.array()
                array.extend(_inline(r) for r in entry[key])
                table[key] = array.multiline(True)
        workflows[name] = table
    section["workflows"] = workflows
    models_section = section.get("models")
    if not isinstance(models_section, dict):
        section["models"] = models_section = tomlkit.table(is_super_table=True)
    req = tomlkit.table()
    for h in sorted(required):
        req[h] = _inline(required[h])
    models_section["required"] = req
    return True


def set_node_type_choice(doc, node_type: str, package: str) -> None:
    section = _comfydock_table(doc, create=True)
    if not isinstance(section.get("node_choices"), dict):
        section["node_choices"] = tomlkit.table()
    section["node_choices"][node_type] = package
