"""Builders for the demo and the tests: a git repository shaped like ComfyUI, tiny wheels.

Nothing here is a mock: the repository is real git with release tags, the wheels are real
pure-Python wheels that uv resolves and installs from a local find-links directory.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import zipfile
from pathlib import Path

_HERE = Path(__file__).parent

# name -> version -> requirements. Names are prefixed so they never collide with PyPI.
FIXTURE_WHEELS: dict[str, dict[str, list[str]]] = {
    "cdfix-alpha": {"0.9": [], "1.0": [], "1.5": [], "2.0": []},
    "cdfix-beta": {"1.0": ["cdfix-alpha>=1.0"], "2.0": ["cdfix-alpha>=2.0"]},
    "cdfix-gamma": {"0.1": [], "0.2": []},
    # two distributions of one library that install the same module (like opencv-python and
    # opencv-python-headless both installing cv2)
    "cdfix-vision": {"1.0": []},
    "cdfix-vision-headless": {"1.0": []},
    # a dependency only Windows installs (like colorama under tqdm/click), and setuptools (like
    # torch's): uv.lock lists both, a Linux sync installs only setuptools
    "cdfix-delta": {"1.0": ['cdfix-winonly; sys_platform == "win32"', "setuptools"]},
    "cdfix-winonly": {"1.0": []},
    "setuptools": {"0.0.1": []},  # a stand-in (tests never reach PyPI); installs a module 'setuptools'
}
# distributions whose import name is not their own name with '-' -> '_'
FIXTURE_MODULES = {"cdfix-vision-headless": "cdfix_vision"}

# ComfyUI fixture releases: tag -> requirements.txt text.
COMFYUI_RELEASES = {
    "v0.1.0": "# fixture ComfyUI requirements\ncdfix-alpha>=1.0\n",
    "v0.2.0": "# fixture ComfyUI requirements\ncdfix-alpha>=1.0\ncdfix-gamma\n",
}

# A ComfyUI version whose code imports a module its requirements.txt does not name (as real
# ComfyUI v0.3.64's server.py imports requests): tag -> (requirements.txt, files). Made on a
# branch of its own, and its tag is not a release tag, so the default ComfyUI stays v0.2.0.
UNDECLARED_TAG = "v0.2.1-undeclared"
UNDECLARED_SERVER = '''
# this release's server.py also imports cdfix_gamma, which requirements.txt does not name
import cdfix_gamma  # undeclared: what comfydock fills into comfyui-core

try:
    import cdfix_vision  # guarded: optional, never reported
except ImportError:
    cdfix_vision = None

GAMMA = cdfix_gamma.__version__
'''

DEMO_WORKFLOW = {
    "last_node_id": 2,
    "last_link_id": 0,
    "nodes": [
        {"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["demo_model.safetensors"]},
        {"id": 2, "type": "SaveImage", "widgets_values": ["ComfyUI"]},
    ],
    "links": [],
    "version": 0.4,
}


def make_wheel(
    dest_dir: Path, name: str, version: str, requires: list[str] = (), module: str | None = None, init: str | None = None
) -> Path:
    """Write a minimal, valid pure-Python wheel of `name` `version` (installing `module`, whose
    __init__.py is `init` when given)."""
    module = module or name.replace("-", "_")
    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        f"{module}/__init__.py": init if init is not None else f"__version__ = {version!r}\nDISTRIBUTION = {name!r}\n",
        f"{dist}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
        ),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: comfydock-fixtures\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = "\n".join(record) + "\n"
    dest_dir.mkdir(parents=True, exist_ok=True)
    wheel = dest_dir / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            # fixed timestamps: the same wheel bytes every time, so uv.lock hashes are stable
            info = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            zf.writestr(info, text)
    return wheel


def build_wheels(dest_dir: Path) -> Path:
    for name, versions in FIXTURE_WHEELS.items():
        for version, requires in versions.items():
            make_wheel(dest_dir, name, version, requires, FIXTURE_MODULES.get(name))
    return dest_dir


def _commit_all(repo, message: str):
    from comfydock.gitutil import git as _git

    git = _git()

    actor = git.Actor("Fixture Author", "fixture@example.invalid")
    repo.git.add(A=True)
    return repo.index.commit(message, author=actor, committer=actor)


FIXTURE_COMFYUI_FILES = (
    "main.py",
    "folder_paths.py",
    "nodes.py",
    "comfy_extras/nodes_fixture.py",
    "comfy/__init__.py",
    "comfy/options.py",
    "comfy/cli_args.py",
    "comfy/model_management.py",
    "utils/__init__.py",
    "utils/extra_config.py",
    "server.py",
)


def build_comfyui_repo(dest: Path) -> Path:
    """A git repo shaped like ComfyUI with releases v0.1.0, v0.2.0 and one commit after them."""
    import json

    from comfydock.gitutil import git as _git

    git = _git()

    dest.mkdir(parents=True)
    repo = git.Repo.init(dest, initial_branch="master")
    for name in FIXTURE_COMFYUI_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(_HERE / "comfyui" / name, dest / name)
    (dest / "custom_nodes").mkdir()
    (dest / "custom_nodes" / "example_node.py.example").write_text("# custom nodes go in this folder\n")
    (dest / "models" / "checkpoints").mkdir(parents=True)
    (dest / "models" / "checkpoints" / "put_checkpoints_here").write_text("")
    workflows = dest / "user" / "default" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "demo.json").write_text(json.dumps(DEMO_WORKFLOW, indent=2) + "\n")
    (dest / ".gitignore").write_text("__pycache__/\n/extra_model_paths.yaml\n/user/fixture_last_run.json\n")
    for tag, requirements in COMFYUI_RELEASES.items():
        (dest / "requirements.txt").write_text(requirements)
        commit = _commit_all(repo, f"Release {tag}")
        repo.create_tag(tag, ref=commit)
    (dest / "README.md").write_text("Fixture ComfyUI: unreleased work on master.\n")
    _commit_all(repo, "Unreleased change after the last tag")
    repo.git.checkout("-b", "undeclared-imports")
    (dest / "requirements.txt").write_text("# fixture ComfyUI requirements\ncdfix-alpha>=1.0\n")
    (dest / "server.py").write_text((_HERE / "comfyui" / "server.py").read_text() + UNDECLARED_SERVER)
    repo.create_tag(UNDECLARED_TAG, ref=_commit_all(repo, f"Release {UNDECLARED_TAG}: server.py imports cdfix_gamma"))
    repo.git.checkout("master")
    return dest


NODE_INIT = '''"""Fixture custom node {name} (comfydock demo and tests)."""

NODE_CLASS_MAPPINGS = {{}}
NODE_DISPLAY_NAME_MAPPINGS = {{}}
'''


def build_node_repo(dest: Path, name: str, releases: dict[str, str], files: dict[str, str] | None = None) -> Path:
    """A git repository shaped like a custom node: one commit + tag per release (tag -> requirements.txt)."""
    from comfydock.gitutil import git as _git

    git = _git()

    dest.mkdir(parents=True)
    repo = git.Repo.init(dest, initial_branch="main")
    (dest / "__init__.py").write_text(NODE_INIT.format(name=name))
    for rel, text in (files or {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    for tag, requirements in releases.items():
        (dest / "requirements.txt").write_text(requirements)
        commit = _commit_all(repo, f"{name} {tag}")
        repo.create_tag(tag, ref=commit)
    return dest


def node_zip_bytes(name: str, requirements: str, files: dict[str, str] | None = None) -> bytes:
    """A registry-style node archive: the node's files at the root of a zip."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("__init__.py", NODE_INIT.format(name=name))
        zf.writestr("requirements.txt", requirements)
        for rel, text in (files or {}).items():
            zf.writestr(rel, text)
    return buf.getvalue()
