"""The environment's Python, driven through uv: venv creation, lock, sync, torch indexes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

from comfydock.errors import ExternalToolError
from comfydock.pep440 import version_sort_key


def uv_bin() -> str:
    import uv

    return uv.find_uv_bin()


def uv_environ(workspace, project_env: Path | None = None) -> dict[str, str]:
    """uv's environment: workspace caches, configured indexes, and the venv to act on."""
    env = dict(os.environ)
    if workspace.uv_cache_dir is not None:  # else uv's own user cache (or the caller's $UV_CACHE_DIR)
        env.setdefault("UV_CACHE_DIR", str(workspace.uv_cache_dir))
    env.setdefault("UV_PYTHON_INSTALL_DIR", str(workspace.uv_python_dir))
    if "UV_CREDENTIALS_DIR" not in env and not user_credentials_file().is_file():
        # uv locks its credentials store on every index request, making ~/.local/share/uv/
        # credentials/credentials.toml.lock; with no 'uv auth login' of the user's to read, that
        # store is the workspace's (with one, uv must read it: it holds the user's index logins)
        env["UV_CREDENTIALS_DIR"] = str(workspace.root / "uv" / "credentials")
    env["UV_NO_PROGRESS"] = "1"
    index = workspace.setting("python-index")
    if index:
        env["UV_DEFAULT_INDEX"] = index
    find_links = workspace.setting("find-links")
    if find_links:
        env["UV_FIND_LINKS"] = find_links
    if (workspace.setting("no-index") or "").lower() in {"1", "true", "yes"}:
        env["UV_NO_INDEX"] = "1"
    if project_env is not None:
        env["UV_PROJECT_ENVIRONMENT"] = str(project_env)
    env.pop("VIRTUAL_ENV", None)  # an activated venv of the caller's must not leak in
    return env


def user_credentials_file() -> Path:
    """Where 'uv auth login' keeps the user's index credentials (uv's state directory)."""
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "uv" / "data"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "uv"
    return base / "credentials" / "credentials.toml"


# Who is told uv's progress lines ("Resolved 40 packages", "Downloading torch (766.2MiB)",
# "Installed 40 packages"), as uv prints them: set by the CLI around long commands (reporting()).
_reporter = None


@contextmanager
def reporting(callback):
    """Pass each line uv prints to `callback(line)` while the block runs (the CLI shows them)."""
    global _reporter
    saved, _reporter = _reporter, callback
    try:
        yield
    finally:
        _reporter = saved


def _run_streaming(cmd, cwd, env, report) -> subprocess.CompletedProcess:
    """Like subprocess.run(capture_output=True), handing stderr lines to `report` as they come."""
    import threading

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    err: list[str] = []
    try:
        for line in proc.stderr:
            err.append(line)
            if line.strip():
                try:
                    report(line.rstrip())
                except Exception:  # showing progress must never break the command
                    pass
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    reader.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(out), "".join(err))


def run_uv(args: list[str], *, env: dict[str, str], cwd: Path | None = None, what: str) -> str:
    """Run uv; on failure raise with uv's own explanation attached."""
    cmd = [uv_bin(), *args]
    try:
        if _reporter is not None:
            proc = _run_streaming(cmd, cwd, env, _reporter)
        else:
            proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    except OSError as exc:
        raise ExternalToolError(
            f"could not start uv for {what}: {exc}", hint="reinstall comfydock (uv is a dependency)"
        ) from None
    if proc.returncode != 0:
        details = _uv_explanation(proc.stderr)
        raise ExternalToolError(
            f"uv could not {what}",
            hint="read uv's explanation above; 'comfydock --verbose ...' shows the full output",
            details=details,
        )
    return proc.stdout + proc.stderr


def _uv_explanation(stderr: str) -> str:
    """uv's error text without the noise of interpreter probing warnings."""
    keep = []
    skipping = False
    for line in stderr.splitlines():
        if line.startswith("warning: Failed to inspect Python interpreter"):
            skipping = True
            continue
        if skipping and (line.startswith(" ") or not line.strip()):
            continue
        skipping = False
        if line.startswith(("Using CPython", "Using Python", "Resolved ", "Audited ")):
            continue
        keep.append(line)
    return "\n".join(keep).strip()


def available_pythons(workspace) -> list[str]:
    """Python versions uv can find without downloading, e.g. ['3.11.7', '3.12.1']."""
    try:
        out = subprocess.run(
            [uv_bin(), "python", "list", "--only-installed", "--output-format", "json"],
            env=uv_environ(workspace),
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        found = {entry["version"] for entry in json.loads(out or "[]")}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    return sorted(found, key=version_sort_key)


def create_venv(workspace, venv_dir: Path, python: str) -> None:
    try:
        run_uv(["venv", str(venv_dir), "--python", python], env=uv_environ(workspace), what=f"create a Python {python} venv")
    except ExternalToolError as exc:
        found = ", ".join(available_pythons(workspace)) or "none"
        raise ExternalToolError(
            f"Python {python} is not available to uv (interpreters found: {found})",
            hint=f"pick one with --python, or install it with '{Path(uv_bin()).name} python install {python}'",
            details=exc.details,
        ) from None


def venv_python(venv_dir: Path) -> Path:
    if os.name == "nt":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def venv_python_version(venv_dir: Path) -> str | None:
    """The full Python version of a venv, from its pyvenv.cfg (no interpreter started)."""
    try:
        text = (venv_dir / "pyvenv.cfg").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in {"version_info", "version"} and re.fullmatch(r"\d+\.\d+(\.\d+)?", value.strip()):
            return value.strip()
    return None


def marker_environment(venv_dir: Path, python_version: str | None) -> dict[str, str]:
    """PEP 508 marker values of the environment's venv: its Python, this machine's platform.
    Used to pick, from the universal uv.lock, the versions this venv installs."""
    from packaging.markers import default_environment

    environ = dict(default_environment())
    version = venv_python_version(venv_dir) or python_version
    if version:
        parts = version.split(".")
        environ["python_version"] = ".".join(parts[:2])
        environ["python_full_version"] = version if len(parts) > 2 else f"{version}.0"
        environ["implementation_version"] = environ["python_full_version"]
    return environ


def _no_index_args(workspace) -> list[str]:
    # uv has no environment variable for --no-index (UV_NO_INDEX is ignored, checked on uv 0.13):
    # without the flag uv still asks PyPI about every package
    return ["--no-index"] if (workspace.setting("no-index") or "").lower() in {"1", "true", "yes"} else []


def uv_lock(workspace, project_dir: Path, upgrade: list[str] = ()) -> None:
    from comfydock.manifest import check_python_version_file

    check_python_version_file(project_dir)  # uv would run a path named there as "Python"
    args = ["lock", *_no_index_args(workspace)] + [arg for name in upgrade for arg in ("--upgrade-package", name)]
    run_uv(args, env=uv_environ(workspace), cwd=project_dir, what="resolve the environment's dependencies")


def uv_sync(workspace, project_dir: Path, venv_dir: Path, extra: str | None = None) -> None:
    # --frozen: install exactly what uv.lock says; lock_deps keeps the lock current.
    # --extra: this machine's torch backend (see torch_family.ensure_backend)
    from comfydock.manifest import check_python_version_file

    check_python_version_file(project_dir)  # uv would run a path named there as "Python"
    args = ["sync", "--frozen", *_no_index_args(workspace)] + (["--extra", extra] if extra else [])
    env = uv_environ(workspace, venv_dir)
    if "UV_LINK_MODE" not in env and not same_filesystem(cache_dir(env), venv_dir.parent):
        # hard links cannot cross file systems: copy at once instead of uv failing first, and say so
        env["UV_LINK_MODE"] = "copy"
        if _reporter is not None:
            _reporter(f"note: the uv cache ({cache_dir(env)}) is on another file system: packages are copied, not hard-linked")
    run_uv(args, env=env, cwd=project_dir, what="sync the venv to uv.lock")


def prune_cache(workspace) -> dict:
    """`uv cache prune` on the cache this workspace's environments use: what uv removed, in its words."""
    env = uv_environ(workspace)
    out = run_uv(["cache", "prune"], env=env, what="prune its cache")
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return {"cache": str(cache_dir(env)), "said": lines[-1] if lines else ""}


def cache_dir(env: dict[str, str]) -> Path:
    """The cache uv uses with `env` ($UV_CACHE_DIR, else what uv itself says: its user cache)."""
    if env.get("UV_CACHE_DIR"):
        return Path(env["UV_CACHE_DIR"])
    try:
        out = subprocess.run([uv_bin(), "cache", "dir"], env=env, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    return Path(out.strip() or "~/.cache/uv").expanduser()


def same_filesystem(a: Path, b: Path) -> bool:
    """Whether a and b (or their nearest existing parents) are on one file system."""

    def device(path: Path):
        for p in (path, *path.parents):
            try:
                return os.stat(p).st_dev
            except OSError:
                continue
        return None

    return device(a) == device(b)


# --- torch backends ------------------------------------------------------------------------


# --- distributions that install the same module -------------------------------------------------

# Top-level names careless distributions ship that nobody imports: not worth a warning.
_JUNK_MODULES = frozenset({"tests", "test", "docs", "doc", "examples", "benchmarks"})
_EXTENSION_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z0-9_-]+)?\.(py|so|pyd)$")


def site_packages(venv_dir: Path) -> Path | None:
    if os.name == "nt":
        path = venv_dir / "Lib" / "site-packages"
        return path if path.is_dir() else None
    return next(iter(sorted((venv_dir / "lib").glob("python3*/site-packages"))), None)


def _record_entries(dist_info: Path) -> dict[str, str]:
    """The installed files a RECORD lists, down to two directories deep, with their hashes (all
    provided_modules and module_clashes need: torch's RECORD has ~20,000 lines, nearly all deeper)."""
    import csv

    try:
        text = (dist_info / "RECORD").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    entries = {}
    for line in text.splitlines():
        if line.startswith('"'):  # a quoted path (it holds a comma): let csv read it
            try:
                fields = next(csv.reader([line]))
            except (csv.Error, StopIteration):
                continue
        else:
            fields = line.split(",")
        if not fields:
            continue
        path = fields[0].replace("\\", "/")
        if path.count("/") <= 2:
            entries[path] = fields[1] if len(fields) > 1 else ""
    return entries


def _record_paths(dist_info: Path) -> list[str]:
    return list(_record_entries(dist_info))


def _distribution_name(dist_info: Path) -> str:
    from packaging.utils import canonicalize_name

    try:
        with open(dist_info / "METADATA", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("name:"):
                    return canonicalize_name(line.split(":", 1)[1].strip())
                if not line.strip():
                    break
    except OSError:
        pass
    return canonicalize_name(dist_info.name.removesuffix(".dist-info").rsplit("-", 1)[0])


def provided_modules(paths: list[str]) -> set[str]:
    """Import names a distribution's files provide: top-level packages (with __init__.py) and
    modules; inside a namespace package (no __init__.py) the portion below it ('google.protobuf')."""
    files = {p for p in paths if p and not p.startswith(("..", "/")) and "__pycache__" not in p}
    modules: set[str] = set()
    for path in files:
        parts = path.split("/")
        if parts[0].endswith((".dist-info", ".data")):
            continue
        if len(parts) == 1:
            match = _EXTENSION_RE.match(parts[0])
            if match:
                modules.add(match.group(1))
            continue
        top = parts[0]
        if f"{top}/__init__.py" in files:
            modules.add(top)
        elif len(parts) == 2:  # a module inside a namespace package
            match = _EXTENSION_RE.match(parts[1])
            if match:
                modules.add(f"{top}.{match.group(1)}")
        elif f"{top}/{parts[1]}/__init__.py" in files:
            modules.add(f"{top}.{parts[1]}")
    return {m for m in modules if m.split(".")[0] not in _JUNK_MODULES}


def module_clashes(venv_dir: Path) -> list[dict]:
    """Modules installed by more than one distribution in the venv (e.g. opencv-python and
    opencv-python-headless both install cv2): the one installed last overwrites the other's
    files, so what `import cv2` gets depends on install order."""
    root = site_packages(venv_dir)
    if root is None:
        return []
    owners: dict[str, set[str]] = {}
    records: dict[str, dict[str, str]] = {}
    for dist_info in root.glob("*.dist-info"):
        name = _distribution_name(dist_info)
        records[name] = _record_entries(dist_info)
        for module in provided_modules(list(records[name])):
            owners.setdefault(module, set()).add(name)
    return [
        {"module": module, "distributions": sorted(dists)}
        for module, dists in sorted(owners.items())
        if len(dists) > 1 and _overwrite(module, [records[d] for d in dists])
    ]


def _overwrite(module: str, records: list[dict[str, str]]) -> bool:
    """Whether distributions providing `module` really overwrite each other's files: some file of
    the module is installed by two of them, other than an identical __init__.py (the nvidia-*
    wheels all ship the same empty nvidia/__init__.py beside their own subpackages: no clash)."""
    prefix = module.replace(".", "/")
    seen: dict[str, str] = {}
    for entries in records:
        for path, digest in entries.items():
            if path != prefix and not path.startswith(prefix + "/") and not path.startswith(prefix + "."):
                continue
            if path in seen and not (path.endswith("/__init__.py") and seen[path] == digest and digest):
                return True
            seen[path] = digest
    return False


def clash_warning(clash: dict) -> tuple[str, str]:
    """(message, fix) for one module clash."""
    dists = clash["distributions"]
    both = "both" if len(dists) == 2 else "all"
    message = (
        f"{' and '.join(dists)} {both} install the module '{clash['module']}': "
        "the one installed last overwrites the other's files"
    )
    # uv's way to drop a package from the resolution (works in every uv comfydock supports;
    # uv's newer exclude-dependencies setting does the same)
    others = ", ".join(f"\"{d}; sys_platform == 'never'\"" for d in dists[1:])
    fix = (
        f"keep one: add override-dependencies = [{others}] under [tool.uv] in .cec/pyproject.toml "
        f"(or drop {dists[0]} that way instead), then run 'comfydock build'"
    )
    return message, fix
