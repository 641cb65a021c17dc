"""Undeclared imports: modules ComfyUI's or a custom node's code imports that nothing provides.

Pure: files in, findings out. `scan_imports(root)` reads a source tree's `.py` files with `ast`
and keeps the imports that run whenever the file is imported (module level, outside `if`
blocks and `try`/`except ImportError`-style guards, outside functions); `missing_imports`
subtracts the tree's own modules, the standard library of the venv's Python and what the venv's
site-packages provides. The caller (comfydock.undeclared) caches the scan per tree.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

# A walk never reads more than this: a node that ships a vendored world is scanned in part.
MAX_FILES = 4000
MAX_FILE_BYTES = 2_000_000
MAX_DEPTH = 12

# Directories whose code never runs when ComfyUI or a node is imported.
SKIPPED_DIRS = frozenset(
    {
        "tests", "test", "testing", "tests-unit", "unit_tests", "examples", "example", "script_examples",
        "docs", "doc", "benchmarks", "scripts", "tools", "__pycache__", "node_modules", "site-packages",
        ".venv", "venv", "env", "build", "dist",
    }
)  # fmt: skip
# ComfyUI's directories that hold data or other people's code, not ComfyUI's
COMFYUI_SKIPPED_DIRS = frozenset({"custom_nodes", "models", "input", "output", "temp", "user", "web"})
# ComfyUI's top-level files that are not imported when it starts (its build/update helpers)
_SKIPPED_FILE_RE = re.compile(r"^(test_.*|.*_test|conftest|setup|noxfile)\.py$")

# Import names whose PyPI distribution is named otherwise (the name to 'py add').
PACKAGE_FOR_MODULE = {
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "cairo": "pycairo",
    "Crypto": "pycryptodome",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "docx": "python-docx",
    "dotenv": "python-dotenv",
    "engineio": "python-engineio",
    "fitz": "pymupdf",
    "gi": "PyGObject",
    "git": "GitPython",
    "google.protobuf": "protobuf",
    "jwt": "PyJWT",
    "magic": "python-magic",
    "multipart": "python-multipart",
    "nacl": "PyNaCl",
    "OpenGL": "PyOpenGL",
    "PIL": "pillow",
    "pkg_resources": "setuptools",
    "pptx": "python-pptx",
    "serial": "pyserial",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "socketio": "python-socketio",
    "websocket": "websocket-client",
    "win32api": "pywin32",
    "yaml": "pyyaml",
    "zmq": "pyzmq",
}


@dataclass(frozen=True)
class ImportSite:
    module: str  # the imported name, down to two parts ('requests', 'google.protobuf')
    file: str  # relative to the tree's root, '/'-separated
    line: int


@dataclass
class UndeclaredImport:
    module: str  # the top-level module nothing provides ('requests')
    package: str  # the distribution to add for it ('requests'; 'opencv-python' for cv2)
    file: str  # the first file that imports it (relative to its tree), with the line
    line: int
    more: int = 0  # other places that import it

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict:
        return asdict(self) | {"where": self.where}


def package_for(module: str) -> str:
    """The PyPI distribution that provides `module` (its own name unless known otherwise)."""
    top = module.split(".")[0]
    return PACKAGE_FOR_MODULE.get(module) or PACKAGE_FOR_MODULE.get(top) or re.sub(r"[-_.]+", "-", top).lower()


# --- reading one file ---------------------------------------------------------------------------

_GUARD_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException", "OSError"}


def _is_guard(handler: ast.ExceptHandler) -> bool:
    """An `except` that catches a failed import (ImportError, Exception, a bare except...)."""
    kind = handler.type
    if kind is None:
        return True
    names = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    for name in names:
        ident = name.attr if isinstance(name, ast.Attribute) else getattr(name, "id", None)
        if ident in _GUARD_EXCEPTIONS:
            return True
    return False


def _import_names(node) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and not node.level and node.module:
        return [node.module]
    return []


def unconditional_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(module, line) of the absolute imports that run whenever the module is imported: at module
    level or in a class body or `with` block; not under `if`, not in a `try` whose `except`
    catches ImportError (or wider), not in a function (run only when called)."""
    found: list[tuple[str, int]] = []

    def visit(body):
        for stmt in body:
            for name in _import_names(stmt):
                found.append((".".join(name.split(".")[:2]), stmt.lineno))
            if isinstance(stmt, ast.ClassDef):
                visit(stmt.body)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                visit(stmt.body)
            elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
                if not any(_is_guard(h) for h in stmt.handlers):
                    visit(stmt.body)
                visit(stmt.finalbody)  # runs either way; handlers and else only on one path

    visit(tree.body)
    return found


# --- walking a tree -----------------------------------------------------------------------------


@dataclass
class TreeScan:
    """A tree's unconditional imports and the module names the tree itself provides."""

    imports: list[ImportSite]
    own_modules: set[str]
    files: int = 0
    unreadable: int = 0
    truncated: bool = False

    def to_json(self) -> dict:
        return {
            "imports": [[s.module, s.file, s.line] for s in self.imports],
            "own_modules": sorted(self.own_modules),
            "files": self.files,
            "unreadable": self.unreadable,
            "truncated": self.truncated,
        }

    @classmethod
    def from_json(cls, data) -> "TreeScan | None":
        try:
            return cls(
                [ImportSite(str(m), str(f), int(n)) for m, f, n in data["imports"]],
                {str(m) for m in data["own_modules"]},
                int(data["files"]),
                int(data["unreadable"]),
                bool(data["truncated"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _python_files(root: Path, skip: frozenset[str]):
    """(relative path, path) of every .py file under root, never through a symbolic link,
    skipping `skip` directories (and hidden ones) and stopping at MAX_DEPTH."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root)
        if len(rel.parts) >= MAX_DEPTH:
            dirnames[:] = []
        dirnames[:] = sorted(
            d for d in dirnames if d not in skip and not d.startswith(".") and not os.path.islink(os.path.join(dirpath, d))
        )
        for name in sorted(filenames):
            if name.endswith(".py") and not _SKIPPED_FILE_RE.match(name):
                yield (rel / name).as_posix(), Path(dirpath) / name


def _module_names(root: Path, skip: frozenset[str]) -> set[str]:
    """Names importable from inside the tree: its packages and modules at any depth (a node
    that puts a subdirectory on sys.path imports its modules by their bare names)."""
    names: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if len(Path(dirpath).relative_to(root).parts) >= MAX_DEPTH:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith(".")]
        names.update(d for d in dirnames if d.isidentifier())
        names.update(f[:-3] for f in filenames if f.endswith(".py"))
        names.update(f.split(".")[0] for f in filenames if f.endswith((".so", ".pyd")))
    return names


def scan_imports(root: Path, *, extra_skip: frozenset[str] = frozenset()) -> TreeScan:
    """Every unconditional absolute import of the tree's .py files (unparsable files skipped)."""
    skip = SKIPPED_DIRS | extra_skip
    scan = TreeScan([], _module_names(root, skip | {"__pycache__"}))
    for rel, path in _python_files(root, skip):
        if scan.files >= MAX_FILES:
            scan.truncated = True
            break
        scan.files += 1
        try:
            if path.is_symlink() or path.stat().st_size > MAX_FILE_BYTES:
                scan.unreadable += 1
                continue
            tree = ast.parse(path.read_bytes(), filename=rel)
        except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
            scan.unreadable += 1
            continue
        shown = "".join(c if c.isprintable() else "?" for c in rel)  # a file name is data: printable
        scan.imports.extend(ImportSite(module, shown, line) for module, line in unconditional_imports(tree))
    return scan


def tree_stamp(root: Path, *, extra_skip: frozenset[str] = frozenset()) -> str:
    """What a tree's scan depends on, cheaply: each .py file's path, size and mtime."""
    import hashlib

    digest = hashlib.sha256()
    count = 0
    for rel, path in _python_files(root, SKIPPED_DIRS | extra_skip):
        count += 1
        if count > MAX_FILES:
            break
        try:
            st = path.lstat()
        except OSError:
            continue
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# --- what the venv provides ---------------------------------------------------------------------


@dataclass
class Provided:
    """Module names a venv's site-packages provides: regular top-level modules and packages,
    and the portions installed below namespace packages ('google' -> {'protobuf'})."""

    modules: set[str]
    namespaces: dict[str, set[str]]

    def provides(self, module: str) -> bool:
        top, _, sub = module.partition(".")
        if top in self.modules:
            return True
        if top in self.namespaces:
            return not sub or sub in self.namespaces[top]
        return False

    def to_json(self) -> dict:
        return {"modules": sorted(self.modules), "namespaces": {k: sorted(v) for k, v in sorted(self.namespaces.items())}}

    @classmethod
    def from_json(cls, data) -> "Provided | None":
        try:
            return cls({str(m) for m in data["modules"]}, {str(k): {str(x) for x in v} for k, v in data["namespaces"].items()})
        except (KeyError, TypeError, AttributeError):
            return None


_MODULE_FILE_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z0-9_.-]+)?\.(py|pyc|so|pyd)$")


def _entry_module(name: str, is_dir: bool) -> str | None:
    if is_dir:
        return name if name.isidentifier() else None
    match = _MODULE_FILE_RE.match(name)
    return match.group(1) if match else None


def installed_modules(site_packages: Path | None) -> Provided:
    """What site-packages provides, from its listing (installed distributions' files, whatever
    installed them): a directory with __init__.py is a package, one without a namespace whose
    portions are listed, files are modules. Each `top_level.txt` adds its names too (a
    distribution can install a module under a directory .pth files point to)."""
    provided = Provided(set(), {})
    if site_packages is None:
        return provided
    try:
        entries = list(os.scandir(site_packages))
    except OSError:
        return provided
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir and entry.name.endswith((".dist-info", ".egg-info")):
            try:
                text = (Path(entry.path) / "top_level.txt").read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            provided.modules.update(n.strip().replace("/", ".").split(".")[0] for n in text.splitlines() if n.strip())
            continue
        module = _entry_module(entry.name, is_dir)
        if module is None:
            continue
        if not is_dir or os.path.exists(os.path.join(entry.path, "__init__.py")):
            provided.modules.add(module)
            continue
        try:
            portions = {p for p in (_entry_module(c.name, c.is_dir()) for c in os.scandir(entry.path)) if p}
        except OSError:
            portions = set()
        provided.namespaces.setdefault(module, set()).update(portions)
    for module in list(provided.namespaces):
        if module in provided.modules:  # a regular package of that name wins
            del provided.namespaces[module]
    return provided


# --- the difference -----------------------------------------------------------------------------


def missing_imports(scan: TreeScan, *, stdlib: set[str], provided: Provided, also_own: set[str] = frozenset()) -> list[UndeclaredImport]:
    """The scan's imports that neither the tree (nor `also_own`: ComfyUI's modules for a node,
    the other nodes' directories), the standard library nor the venv provides, one per
    top-level module (namespace portions kept apart: 'google.protobuf'), first place first."""
    found: dict[str, UndeclaredImport] = {}
    for site in scan.imports:
        top = site.module.split(".")[0]
        if top in scan.own_modules or top in also_own or top in stdlib or top.startswith("__"):
            continue
        if provided.provides(site.module):
            continue
        key = site.module if site.module in PACKAGE_FOR_MODULE or top in provided.namespaces else top
        if key in found:
            found[key].more += 1
        else:
            found[key] = UndeclaredImport(key, package_for(key), site.file, site.line)
    return sorted(found.values(), key=lambda u: u.module.lower())
