"""Where a workflow's node types come from: ComfyUI core, an installed custom node, or a package to add.

Core types are asked of the environment's own ComfyUI (probe_core_types: its venv imports
`nodes` and loads the extra nodes, no custom nodes); when that cannot run (no torch yet) a static
scan of the checkout is the fallback (static_core_types). Custom nodes are probed or scanned the
same way, one directory at a time.

Missing types are mapped to packages through ComfyUI-Manager's extension-node-map.json
(repository URL -> [[node types], {title_aux, nodename_pattern, preemptions, ...}]), optionally
joined with Comfy Registry entries (their `repository` gives the registry id to install by).

Ranking, when several packages claim a type (861 names are claimed by more than one repository
in the real map), first rule that separates them wins:
 1. an exact listing beats a `nodename_pattern` regex match;
 2. a repository whose `preemptions` names the type (ComfyUI-Manager's own "this one wins" mark);
 3. a repository known to the Comfy Registry (installable by id, versioned);
 4. the repository with more node types that no other repository claims (the original pack
    rather than a fork or wrapper that copied some of its nodes);
 5. alphabetical order of the repository URL.
Each candidate carries the reason it is where it is. ComfyUI itself (comfyanonymous/ComfyUI,
Comfy-Org/ComfyUI) is never a candidate: a type listed there is a core type of a newer ComfyUI.
classify() puts a user's stored choice first, then a package the workflow's own node names
(`properties.aux_id` "owner/repo" or a non-core `cnr_id`), then the ranking above.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from comfydock.errors import ComfydockError
from comfydock.fsutil import atomic_write_json
from comfydock.pep440 import parse_version
from comfydock.workflows.analysis import FRONTEND_TYPES, WorkflowAnalysis

__all__ = [
    "FRONTEND_TYPES",
    "Candidate",
    "NodeMap",
    "NodeTypeStatus",
    "build_node_map",
    "classify",
    "fetch_node_map",
    "load_node_map",
    "probe_core_types",
    "probe_custom_node_types",
    "save_node_map",
    "static_core_types",
    "static_node_types",
]

DEFAULT_NODE_MAP_URL = "https://raw.githubusercontent.com/Comfy-Org/ComfyUI-Manager/main/extension-node-map.json"
NODE_MAP_FORMAT = 1
_CORE_REPOS = {"github.com/comfyanonymous/comfyui", "github.com/comfy-org/comfyui"}
_MARKER = "COMFYDOCK-NODE-TYPES:"


# --- static scan ---------------------------------------------------------------------------
def _mapping_keys(tree: ast.AST) -> set[str]:
    """String keys of NODE_CLASS_MAPPINGS literals, `.update({...})`, `[...] =`, and v3 `Schema(node_id=...)`."""
    found: set[str] = set()

    def dict_keys(node):
        if isinstance(node, ast.Dict):
            found.update(k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id == "NODE_CLASS_MAPPINGS":
                    dict_keys(node.value)
                elif (
                    isinstance(t, ast.Subscript)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "NODE_CLASS_MAPPINGS"
                    and isinstance(t.slice, ast.Constant)
                    and isinstance(t.slice.value, str)
                ):
                    found.add(t.slice.value)
        elif isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "update"
                and isinstance(func.value, ast.Name)
                and func.value.id == "NODE_CLASS_MAPPINGS"
            ):
                for arg in node.args:
                    dict_keys(arg)
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name == "Schema":  # ComfyUI's v3 node API: io.Schema(node_id="...", ...)
                for kw in node.keywords:
                    if kw.arg == "node_id" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                        found.add(kw.value.value)
    return found


def _scan_files(files) -> set[str]:
    types: set[str] = set()
    for path in files:
        try:
            source = path.read_bytes()
        except OSError:
            continue
        if b"NODE_CLASS_MAPPINGS" not in source and b"Schema" not in source:
            continue
        try:
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError, RecursionError):
            continue  # not our problem to report here; the probe would show it
        types |= _mapping_keys(tree)
    return types


def _py_files(root: Path, limit: int = 5000):
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith((".", "__pycache__")) and d not in {"node_modules", "tests", "test"}
        )
        for name in sorted(filenames):
            if name.endswith(".py"):
                count += 1
                if count > limit:
                    return
                yield Path(dirpath) / name


def static_core_types(comfyui_dir: Path) -> set[str]:
    """Core node types found by reading ComfyUI's source (nodes.py, comfy_extras/, comfy_api_nodes/)."""
    comfyui_dir = Path(comfyui_dir)
    files = [comfyui_dir / "nodes.py"]
    for sub in ("comfy_extras", "comfy_api_nodes"):
        if (comfyui_dir / sub).is_dir():
            files.extend(_py_files(comfyui_dir / sub))
    return _scan_files(f for f in files if f.is_file())


def static_node_types(node_dir: Path) -> set[str]:
    """Node types a custom node directory (or single .py file) defines, read from its source."""
    node_dir = Path(node_dir)
    if node_dir.is_file():
        return _scan_files([node_dir])
    return _scan_files(_py_files(node_dir))


# --- probe -------------------------------------------------------------------------------
_PROBE = r"""
import asyncio, inspect, json, os, sys
comfyui_dir, node_dir = sys.argv[1], sys.argv[2]
# ComfyUI's options as its main.py would see them (--cpu where there is no GPU)
sys.argv = [os.path.join(comfyui_dir, "main.py"), *json.loads(sys.argv[3])]
os.chdir(comfyui_dir)
sys.path.insert(0, comfyui_dir)

def run(result):
    return asyncio.run(result) if inspect.iscoroutine(result) else result

# as main.py does, where this ComfyUI has them: options parsed from sys.argv before comfy.cli_args
# is imported, and ComfyUI's utils package imported before comfy/utils.py can shadow it
if os.path.isfile(os.path.join(comfyui_dir, "comfy", "options.py")):
    import comfy.options
    comfy.options.enable_args_parsing()
if os.path.isfile(os.path.join(comfyui_dir, "utils", "extra_config.py")):
    import utils.extra_config

import nodes
if node_dir:
    before = set(nodes.NODE_CLASS_MAPPINGS)
    ok = run(nodes.load_custom_node(node_dir))
    if ok is False:
        raise SystemExit("the custom node failed to import")
    types = set(nodes.NODE_CLASS_MAPPINGS) - before
else:
    init = getattr(nodes, "init_extra_nodes", None)
    if init is not None:
        params = inspect.signature(init).parameters
        kwargs = {k: v for k, v in (("init_custom_nodes", False), ("init_api_nodes", True)) if k in params}
        run(init(**kwargs))
    types = set(nodes.NODE_CLASS_MAPPINGS)
sys.stdout.write("\n__MARKER__" + json.dumps(sorted(types)) + "\n")
""".replace("__MARKER__", _MARKER)


def _probe(python: Path, comfyui_dir: Path, node_dir: Path | None, timeout: float, comfyui_args=()) -> set[str]:
    python, comfyui_dir = Path(python), Path(comfyui_dir)
    if not python.exists():
        raise ComfydockError(f"cannot ask ComfyUI for its node types: no Python at {python}", hint="build the environment first")
    try:
        proc = subprocess.run(
            [
                str(python),
                "-c",
                _PROBE,
                str(comfyui_dir.absolute()),
                str(node_dir.absolute()) if node_dir else "",
                json.dumps(list(comfyui_args)),
            ],
            cwd=comfyui_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    except subprocess.TimeoutExpired:
        raise ComfydockError(
            f"ComfyUI did not list its node types within {timeout:.0f} s", hint="run again; a first import can be slow"
        ) from None
    except OSError as exc:
        raise ComfydockError(f"cannot run {python}: {exc.strerror or exc}") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARKER):
            try:
                types = json.loads(line[len(_MARKER) :])
            except ValueError:
                break
            if proc.returncode == 0 and isinstance(types, list) and all(isinstance(t, str) for t in types):
                return set(types)
            break
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise ComfydockError(
        f"ComfyUI could not list its node types ({last[:300]})",
        hint="its Python packages may not be installed yet (torch); the node types are read from the source instead",
    )


def probe_core_types(python: Path, comfyui_dir: Path, timeout: float = 120, comfyui_args=()) -> set[str]:
    """Core node types as the environment's ComfyUI registers them (extra nodes loaded, no custom
    nodes); `comfyui_args`: ComfyUI's options (["--cpu"] where there is no GPU)."""
    return _probe(python, comfyui_dir, None, timeout, comfyui_args)


def probe_custom_node_types(python: Path, comfyui_dir: Path, node_dir: Path, timeout: float = 120, comfyui_args=()) -> set[str]:
    """Node types one custom node registers when ComfyUI loads it; its source is read if that fails."""
    try:
        return _probe(python, comfyui_dir, Path(node_dir), timeout, comfyui_args)
    except ComfydockError:
        return static_node_types(node_dir)


# --- the node map ------------------------------------------------------------------------
@dataclass
class Candidate:
    package: str  # what to give `comfydock node add`: a registry id, else the repository URL
    url: str | None
    reason: str


def _norm_url(url: str) -> str:
    u = url.strip().lower()
    for scheme in ("https://", "http://"):
        if u.startswith(scheme):
            u = u[len(scheme) :]
    return u.rstrip("/").removesuffix(".git")


@dataclass
class NodeMap:
    """Node type -> candidate packages, built from extension-node-map.json (and registry entries)."""

    repos: dict[str, dict] = field(default_factory=dict)  # url -> {names, pattern, title, preemptions, registry_id}
    _exact: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _patterns: list[tuple[re.Pattern, str]] = field(default_factory=list, init=False, repr=False)
    _unique: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _core: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self):
        claims: dict[str, list[str]] = {}
        for url, repo in sorted(self.repos.items()):
            if _norm_url(url) in _CORE_REPOS:
                self._core.update(repo["names"])
                continue
            for name in repo["names"]:
                claims.setdefault(name, []).append(url)
            if repo.get("pattern"):
                try:
                    self._patterns.append((re.compile(repo["pattern"]), url))
                except (re.error, RecursionError):
                    pass  # a broken pattern in someone else's data: that repo just matches nothing
        self._exact = claims
        for url, repo in self.repos.items():
            self._unique[url] = sum(1 for n in repo["names"] if len(claims.get(n, ())) == 1)

    def is_core(self, node_type: str) -> bool:
        """The map lists this type under ComfyUI itself (a core type, maybe of a newer ComfyUI)."""
        return node_type in self._core

    def _candidate(self, url: str, reason: str) -> Candidate:
        reg = self.repos[url].get("registry_id")
        return Candidate(package=reg or url, url=url, reason=reason)

    def candidates(self, node_type: str) -> list[Candidate]:
        exact = list(self._exact.get(node_type, []))
        pattern = [url for rx, url in self._patterns if url not in exact and rx.search(node_type)]
        out: list[Candidate] = []
        for group, how in ((exact, "lists"), (pattern, "matches by its name pattern")):
            ranked = sorted(
                group,
                key=lambda u: (
                    node_type not in self.repos[u].get("preemptions", ()),
                    not self.repos[u].get("registry_id"),
                    -self._unique.get(u, 0),
                    u,
                ),
            )
            for i, url in enumerate(ranked):
                out.append(self._candidate(url, self._reason(node_type, url, how, ranked, i, bool(out) and i == 0)))
        return out

    def _reason(self, node_type: str, url: str, how: str, ranked: list[str], i: int, after_exact: bool) -> str:
        base = f"{self.repos[url].get('title') or url} {how} {node_type!r}"
        if after_exact:
            return base + " (a name pattern ranks after exact listings)"
        if len(ranked) == 1:
            return base + (" (the only package that does)" if how == "lists" else "")
        others = len(ranked) - 1
        if i > 0:
            return base + f" (also claimed by {others} other package{'s' if others > 1 else ''}; ranked lower)"
        repo, runner = self.repos[url], self.repos[ranked[1]]
        if node_type in repo.get("preemptions", ()) and node_type not in runner.get("preemptions", ()):
            why = "it claims precedence for this type in the map"
        elif repo.get("registry_id") and not runner.get("registry_id"):
            why = "it is in the Comfy Registry"
        elif self._unique.get(url, 0) != self._unique.get(ranked[1], 0):
            why = f"{self._unique.get(url, 0)} of its types are its own (the original rather than a copy)"
        else:
            why = "alphabetical order"
        return base + f"; {others + 1} packages claim it, first because {why}"

    def to_json(self) -> dict:
        return {"format": NODE_MAP_FORMAT, "repos": self.repos}


def build_node_map(extension_node_map: dict, registry_nodes: list[dict] | None = None) -> NodeMap:
    """A NodeMap from extension-node-map.json's data; registry nodes ({id, repository}) add install ids."""
    if not isinstance(extension_node_map, dict):
        raise ComfydockError("the node map is not a JSON object of repositories", hint="check 'comfydock config node-map-url'")
    by_repo = {}
    for node in registry_nodes or []:
        if isinstance(node, dict) and isinstance(node.get("id"), str) and isinstance(node.get("repository"), str):
            by_repo.setdefault(_norm_url(node["repository"]), node["id"])
    repos: dict[str, dict] = {}
    for url, value in extension_node_map.items():
        if not isinstance(url, str) or not isinstance(value, list) or not value or not isinstance(value[0], list):
            continue  # a malformed entry in a community file: skip it, keep the rest
        meta = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
        names = sorted({n for n in value[0] if isinstance(n, str) and n})
        pattern = meta.get("nodename_pattern") if isinstance(meta.get("nodename_pattern"), str) else None
        if not names and not pattern:
            continue
        pre = meta.get("preemptions")
        repos[url] = {
            "names": names,
            "pattern": pattern,
            "title": meta.get("title_aux") if isinstance(meta.get("title_aux"), str) else None,
            "preemptions": sorted(p for p in pre if isinstance(p, str)) if isinstance(pre, list) else [],
            "registry_id": by_repo.get(_norm_url(url)),
        }
    return NodeMap(repos)


def save_node_map(node_map: NodeMap, path: Path, source: str | None = None) -> None:
    data = node_map.to_json()
    data["source"] = source
    data["saved_at"] = time.time()
    atomic_write_json(Path(path), data)


def load_node_map(path: Path) -> NodeMap:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        repos = data["repos"]
        if data.get("format") != NODE_MAP_FORMAT or not isinstance(repos, dict):
            raise ValueError("unknown format")
        for repo in repos.values():
            if not isinstance(repo.get("names"), list):
                raise ValueError("bad entry")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ComfydockError(
            f"cannot read the node map {path} ({exc})", hint="delete it; it is fetched again when needed"
        ) from None
    return NodeMap(repos)


def fetch_node_map(workspace, *, refresh: bool = False, ttl: float | None = None) -> NodeMap:
    """The workspace's node map: cached in comfydock_cache/custom_nodes/node_mappings.json, refetched when expired.

    Source: setting `node-map-url` ($COMFYDOCK_NODE_MAP_URL). A failed fetch falls back to an
    expired cache; with no cache at all it is an error.
    """

    from comfydock.registry import DEFAULT_TTL

    path = workspace.node_cache_dir / "node_mappings.json"
    url = workspace.setting("node-map-url") or DEFAULT_NODE_MAP_URL
    from comfydock.limits import seconds_from_env

    ttl = seconds_from_env("COMFYDOCK_API_CACHE_TTL", DEFAULT_TTL) if ttl is None else ttl
    cached: NodeMap | None = None
    if path.exists():
        try:
            cached = load_node_map(path)
            meta = json.loads(path.read_text(encoding="utf-8"))
            fresh = meta.get("source") == url and time.time() - float(meta.get("saved_at", 0)) < ttl
        except (ComfydockError, OSError, ValueError, TypeError):
            cached, fresh = None, False
        if cached is not None and fresh and not refresh:
            return cached
    import requests  # only now: a fresh cache answers without the network (and without ~90 ms of import)

    from comfydock.http import ANSWER_DEADLINE_MAX, ANSWER_MAX_BYTES, bounded_get, loads_json, make_session
    from comfydock.limits import download_seconds

    hint = "check your network, or point 'comfydock config node-map-url' / $COMFYDOCK_NODE_MAP_URL elsewhere"
    try:
        # asked during commit, under the process lock: a short read timeout and deadline
        with (
            make_session() as session,
            bounded_get(
                session,
                url,
                timeout=(10, 20),
                max_bytes=ANSWER_MAX_BYTES,
                seconds=min(download_seconds(workspace), ANSWER_DEADLINE_MAX),
                what=f"the node map at {url}",
                too_large_hint=hint,
            ) as resp,
        ):
            status = resp.status_code
            body = resp.read() if status == 200 else b""
        if status != 200:
            raise ComfydockError(f"the node map at {url} answered HTTP {status}", hint=hint)
        data = loads_json(body, f"the node map at {url}", hint=hint)
        node_map = build_node_map(data)
        if not node_map.repos:
            raise ComfydockError(f"the node map at {url} lists no repositories", hint=hint)
    except (ComfydockError, requests.RequestException) as exc:
        if cached is not None:
            return cached  # stale beats nothing: it only suggests packages
        if isinstance(exc, ComfydockError):
            raise
        raise ComfydockError(f"cannot fetch the node map from {url} ({type(exc).__name__})", hint=hint) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    save_node_map(node_map, path, source=url)
    return node_map


# --- classification ----------------------------------------------------------------------
@dataclass
class NodeTypeStatus:
    type: str
    provider: str  # "core" | "installed" | "missing" | "newer-comfyui" | "frontend" | "subgraph"
    package: str | None
    candidates: list[Candidate]
    needs_comfyui: str | None
    reason: str


def _workflow_hints(use, node_map: NodeMap | None) -> list[Candidate]:
    """Packages the workflow's node itself names (aux_id "owner/repo", a registry cnr_id)."""
    out = []
    if use.aux_id and re.fullmatch(r"[\w.-]+/[\w.-]+", use.aux_id):
        url = f"https://github.com/{use.aux_id}"
        reg = None
        if node_map is not None:
            reg = next((r.get("registry_id") for u, r in node_map.repos.items() if _norm_url(u) == _norm_url(url)), None)
        out.append(Candidate(reg or url, url, f"the workflow's node names its repository {use.aux_id}"))
    if use.cnr_id and use.cnr_id != "comfy-core" and not any(c.package == use.cnr_id for c in out):
        out.append(Candidate(use.cnr_id, None, f"the workflow's node names its registry id {use.cnr_id}"))
    return out


def classify(
    analysis: WorkflowAnalysis,
    core_types: set[str],
    installed: dict[str, str],
    node_map: NodeMap | None,
    comfyui_version: str | None,
    choices: dict[str, str] | None = None,
) -> list[NodeTypeStatus]:
    """One status per node type of the workflow, in the analysis' order (sorted by type).

    `core_types`: what the environment's ComfyUI provides; `installed`: type -> node id of an
    installed custom node; `comfyui_version`: the environment's ComfyUI ("v0.3.64" or "0.3.64");
    `choices`: type -> package the user picked for an ambiguous type.
    "newer-comfyui": the node says cnr_id "comfy-core" (needs_comfyui: the version that saved
    it, else the workflow's), or ComfyUI's own entry in the node map lists the type. A type with
    neither mark is "missing" even when the workflow was saved by a newer ComfyUI (the reason
    says so): without a mark it cannot be told from an unknown custom node.
    """
    env_version = parse_version(comfyui_version)
    wf_version = parse_version(analysis.comfyui_version)
    workflow_newer = env_version is not None and wf_version is not None and wf_version > env_version
    out = []
    for use in analysis.node_types:
        t = use.type
        if use.kind == "frontend":
            out.append(NodeTypeStatus(t, "frontend", None, [], None, "drawn by ComfyUI's frontend; no Python node needed"))
        elif use.kind == "subgraph":
            out.append(NodeTypeStatus(t, "subgraph", None, [], None, "a subgraph or group node defined in the workflow itself"))
        elif t in core_types:
            out.append(NodeTypeStatus(t, "core", None, [], None, "provided by ComfyUI"))
        elif t in installed:
            out.append(NodeTypeStatus(t, "installed", installed[t], [], None, f"provided by the installed node {installed[t]}"))
        elif use.cnr_id == "comfy-core":
            need = use.version or analysis.comfyui_version
            out.append(
                NodeTypeStatus(
                    t, "newer-comfyui", None, [], need, f"a ComfyUI core node (saved by ComfyUI {need or 'of a newer version'})"
                )
            )
        elif node_map is not None and node_map.is_core(t):
            need = analysis.comfyui_version
            out.append(
                NodeTypeStatus(
                    t, "newer-comfyui", None, [], need, "a core node of a newer ComfyUI (ComfyUI's own node list names it)"
                )
            )
        else:
            hinted = _workflow_hints(use, node_map)
            mapped = node_map.candidates(t) if node_map is not None else []
            cands = hinted + [c for c in mapped if all(c.package != h.package for h in hinted)]
            chosen = (choices or {}).get(t)
            if chosen:
                picked = next((c for c in cands if c.package == chosen or c.url == chosen), None)
                picked = Candidate(chosen, picked.url if picked else None, "your choice, stored in pyproject.toml")
                cands = [picked] + [c for c in cands if c.package != chosen and c.url != chosen]
            if cands:
                reason = cands[0].reason
            elif node_map is None:
                reason = "not provided by ComfyUI or an installed node (no node map to look it up)"
            elif workflow_newer:
                # it may be a core node of that newer ComfyUI that saved no cnr_id: say so, decide nothing
                reason = f"no known package provides this node type (the workflow was saved by ComfyUI {analysis.comfyui_version}; it may be a core node of that version)"
            else:
                reason = "no known package provides this node type"
            out.append(NodeTypeStatus(t, "missing", cands[0].package if cands else None, cands, None, reason))
    return out
