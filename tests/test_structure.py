"""The code's layering: no module of comfydock (or tasks/) imports, directly or through others,
a module that imports it back, counting imports inside functions too. A circle means two
modules that cannot be understood, tested or changed one without the other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    mods = {}
    for package in ("comfydock", "tasks"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = path
    return mods


def _imports(path: Path, mods: dict[str, Path]) -> set[str]:
    """Modules of ours that `path` imports anywhere in it (the tasks package is importable as
    comfydock.tasks too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if _ours(s, mods)] or [node.module]
        for name in names:
            name = _ours(name, mods)
            if name:
                found.add(name)
    return found


def _ours(name: str, mods: dict[str, Path]) -> str | None:
    if name.startswith("comfydock.tasks"):
        name = name.replace("comfydock.tasks", "tasks", 1)
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_back_through_others():
    mods = _modules()
    graph = {name: _imports(path, mods) - {name} for name, path in mods.items()}
    # importing a submodule runs its package's __init__ first, except from inside the package
    for name in graph:
        for dep in list(graph[name]):
            parts = dep.split(".")
            for i in range(1, len(parts)):
                package = ".".join(parts[:i])
                if package in mods and not name.startswith(package + ".") and package != name:
                    graph[name].add(package)
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_cli_starts_without_loading_the_heavy_libraries():
    """Every command pays for what `comfydock` imports before parsing its arguments: doit, git,
    tomlkit, requests, filelock and SQLite load only when a command needs them."""
    import subprocess
    import sys

    heavy = ["doit", "git", "tomlkit", "requests", "filelock", "blake3", "yaml", "sqlite3", "urllib3", "argcomplete"]
    code = f"import sys, comfydock.cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def _third_party_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_git_is_run_only_through_the_git_module():
    """GitPython is imported by comfydock.gitutil alone, which turns hooks and fsmonitor off for
    every git command; a module importing `git` itself would run a hostile tree's hooks."""
    offenders = sorted(
        name for name, path in _modules().items() if name != "comfydock.gitutil" and "git" in _third_party_imports(path)
    )
    assert offenders == []
