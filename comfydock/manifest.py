"""The environment manifest: `.cec/pyproject.toml`, read and written through tomlkit."""

from __future__ import annotations

from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from comfydock.errors import CorruptFile
from comfydock.fsutil import atomic_write_text
from comfydock.python_env import TORCH_PACKAGES


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
    torch_backend_requested: str,
    torch_backend: str | None,
    torch_index_base: str,
) -> tomlkit.TOMLDocument:
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
    if torch_backend:
        index = tomlkit.aot()
        entry = tomlkit.table()
        entry["name"] = f"pytorch-{torch_backend}"
        entry["url"] = f"{torch_index_base.rstrip('/')}/{torch_backend}"
        entry["explicit"] = True
        index.append(entry)
        uv["index"] = index
        sources = tomlkit.table()
        marker = _torch_index_marker(torch_backend)
        for pkg in TORCH_PACKAGES:
            sources[pkg] = tomlkit.inline_table()
            sources[pkg]["index"] = f"pytorch-{torch_backend}"
            if marker:
                sources[pkg]["marker"] = marker
        uv["sources"] = sources
    tool = tomlkit.table(is_super_table=True)
    tool["uv"] = uv

    env = tomlkit.table()
    env["comfyui_version"] = comfyui_ref
    env["comfyui_commit"] = comfyui_commit
    env["python_version"] = python_version
    env["torch_backend"] = torch_backend_requested if torch_backend_requested != "auto" else (torch_backend or "pypi")
    if torch_backend_requested == "auto":
        env["torch_backend_requested"] = "auto"
    comfydock = tomlkit.table(is_super_table=True)
    comfydock["environment"] = env
    comfydock["nodes"] = tomlkit.table()
    tool["comfydock"] = comfydock
    doc["tool"] = tool
    return doc


def _torch_index_marker(backend: str) -> str | None:
    """GPU builds exist only for some platforms; elsewhere (macOS) torch comes from PyPI, so the
    universal uv.lock still resolves everywhere and a bundle stays importable on any machine."""
    if backend.startswith("rocm"):
        return "sys_platform == 'linux'"
    if backend.startswith(("cu", "xpu")):
        return "sys_platform == 'linux' or sys_platform == 'win32'"
    return None


def _major_minor(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2])


def environment_info(doc) -> dict:
    return dict(doc.get("tool", {}).get("comfydock", {}).get("environment", {}))
