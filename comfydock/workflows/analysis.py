"""Read one ComfyUI workflow file: which node types it uses and which model files it names.

Pure: nothing here touches the disk beyond reading the given file, the network or the index.

Two formats are read:
- UI ("ui"): what the ComfyUI frontend saves: `nodes` (each with `type`, `mode`,
  `widgets_values`, `properties`), `definitions.subgraphs` (reusable graphs; a node whose type is
  a subgraph's UUID is an instance of it) and legacy group nodes (`extra.groupNodes`, instances
  typed `workflow>NAME`).
- API ("api"): what "Export (API)" saves: `{node_id: {"class_type", "inputs"}}`.

Node ids: a top-level node keeps its id ("12"). A node inside a subgraph or group node is
reported once per instance, as "<instance id>:<inner id>" (nested: "150:41:89"); that is also
how ComfyUI names it when it runs the graph. Subgraph definitions no instance uses are skipped:
ComfyUI never runs them.

Model references:
- Known loaders (MODEL_LOADERS): the widget at the table's index (UI) or input name (API) names a
  file in the table's folder, when the value has a model file extension (so VAELoader's built-in
  `pixel_space`/`taesd` options are not files).
- Any other node: every string widget value (also inside list/dict values, index "3.lora") that
  ends in a model extension; the folder is unknown (None) unless the workflow declares it.
- Declarations the workflow makes itself (`properties.models` on the node, top-level `models`:
  name, url, directory, hash, hash_type) fill in `url`, `directory`, `declared_hash`.
- Nodes in mode 2 (muted) or 4 (bypassed), or inside such an instance, give optional references.
- `extra.prompt` (a stale API copy some files carry) is ignored: the graph is the truth.
- A subgraph/group instance's own widget values repeat its inner widgets; a value there that no
  inner node names is reported on the instance itself (index into the instance's values).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from comfydock.errors import ComfydockError
from comfydock.model_index import MODEL_EXTENSIONS
from comfydock.pep440 import newest

__all__ = [
    "FRONTEND_TYPES",
    "MODEL_LOADERS",
    "ModelRef",
    "NodeUse",
    "WorkflowAnalysis",
    "WorkflowError",
    "analyze_bytes",
    "analyze_file",
    "analyze_data",
]

# Types the frontend draws but ComfyUI's Python never defines: never a missing node.
FRONTEND_TYPES = frozenset({"Note", "MarkdownNote", "PrimitiveNode", "Reroute"})

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_GROUP_PREFIXES = ("workflow>", "workflow/")


def _loader(folder: str, *names: str) -> list[tuple[int | str, str]]:
    """Widget i (UI) and input name i (API) both name a file in `folder`."""
    return [(i, folder) for i in range(len(names))] + [(name, folder) for name in names]


# node type -> [(widget index (UI) or input name (API), model folder)] for ComfyUI's own loaders.
MODEL_LOADERS: dict[str, list[tuple[int | str, str]]] = {
    "CheckpointLoaderSimple": _loader("checkpoints", "ckpt_name"),
    "ImageOnlyCheckpointLoader": _loader("checkpoints", "ckpt_name"),
    "unCLIPCheckpointLoader": _loader("checkpoints", "ckpt_name"),
    "CheckpointLoader": [(0, "configs"), (1, "checkpoints"), ("config_name", "configs"), ("ckpt_name", "checkpoints")],
    "VAELoader": _loader("vae", "vae_name"),
    "LoraLoader": _loader("loras", "lora_name"),
    "LoraLoaderModelOnly": _loader("loras", "lora_name"),
    "UNETLoader": _loader("diffusion_models", "unet_name"),
    "CLIPLoader": _loader("text_encoders", "clip_name"),
    "DualCLIPLoader": _loader("text_encoders", "clip_name1", "clip_name2"),
    "TripleCLIPLoader": _loader("text_encoders", "clip_name1", "clip_name2", "clip_name3"),
    "QuadrupleCLIPLoader": _loader("text_encoders", "clip_name1", "clip_name2", "clip_name3", "clip_name4"),
    "ControlNetLoader": _loader("controlnet", "control_net_name"),
    "DiffControlNetLoader": _loader("controlnet", "control_net_name"),
    "CLIPVisionLoader": _loader("clip_vision", "clip_name"),
    "StyleModelLoader": _loader("style_models", "style_model_name"),
    "UpscaleModelLoader": _loader("upscale_models", "model_name"),
    "GLIGENLoader": _loader("gligen", "gligen_name"),
    "HypernetworkLoader": _loader("hypernetworks", "hypernetwork_name"),
    "PhotoMakerLoader": _loader("photomaker", "photomaker_model_name"),
    "ModelPatchLoader": _loader("model_patches", "name"),
    "AudioEncoderLoader": _loader("audio_encoders", "audio_encoder_name"),
    "LatentUpscaleModelLoader": _loader("latent_upscale_models", "model_name"),
    "LTXAVTextEncoderLoader": [
        (0, "text_encoders"),
        (1, "checkpoints"),
        ("text_encoder", "text_encoders"),
        ("ckpt_name", "checkpoints"),
    ],
    "LTXVAudioVAELoader": _loader("checkpoints", "ckpt_name"),
    "LoadDA3Model": _loader("geometry_estimation", "model_name"),
    "LoadMoGeModel": _loader("geometry_estimation", "model_name"),
}

_OPTIONAL_MODES = {2, 4}  # 2: muted ("never"), 4: bypassed
_MAX_DEPTH = 16  # subgraphs inside subgraphs: deeper than this is a loop or an attack
_MAX_NODES = 50_000  # nodes after expanding instances: nested instances multiply, a small file could explode


class WorkflowError(ComfydockError):
    """A workflow file that cannot be analysed (its copy is still versioned)."""


@dataclass
class ModelRef:
    node_id: str
    node_type: str
    widget_index: int | str | None
    filename: str
    directory: str | None
    url: str | None
    optional: bool
    declared_hash: str | None = None
    hash_type: str | None = None


@dataclass
class NodeUse:
    type: str
    node_ids: list[str]
    cnr_id: str | None
    version: str | None
    aux_id: str | None
    kind: str  # "node" | "frontend" | "subgraph"


@dataclass
class WorkflowAnalysis:
    format: str  # "ui" | "api"
    node_types: list[NodeUse]
    models: list[ModelRef]
    comfyui_version: str | None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d) -> WorkflowAnalysis:
        try:
            return cls(
                format=d["format"],
                node_types=[NodeUse(**n) for n in d["node_types"]],
                models=[ModelRef(**m) for m in d["models"]],
                comfyui_version=d.get("comfyui_version"),
            )
        except (KeyError, TypeError) as exc:
            raise WorkflowError(
                f"stored workflow analysis is damaged ({exc})", hint="run the command again to re-analyse"
            ) from None


# --- helpers -----------------------------------------------------------------------------
def _is_model_name(value) -> bool:
    if not isinstance(value, str) or not value or len(value) > 1024 or "\n" in value or "://" in value:
        return False
    dot = value.rfind(".")
    return dot > 0 and value[dot:].lower() in MODEL_EXTENSIONS


def _basename(name: str) -> str:
    return re.split(r"[/\\]", name)[-1]


def _node_id_key(node_id: str):
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in node_id.split(":"))


def _widget_key(idx):
    if isinstance(idx, int):
        return (0, idx, "")
    if isinstance(idx, str):
        return (1, 0, idx)
    return (2, 0, "")


def _declarations(raw) -> list[dict]:
    """Valid `models` declarations ({name, url, directory, hash, hash_type}) from untrusted JSON."""
    out = []
    if not isinstance(raw, list):
        return out
    for m in raw:
        if isinstance(m, dict) and isinstance(m.get("name"), str) and m["name"]:
            out.append(
                {
                    k: m.get(k) if isinstance(m.get(k), str) and m.get(k) else None
                    for k in ("name", "url", "directory", "hash", "hash_type")
                }
            )
    return out


def _match_declaration(filename: str, decls: list[dict]) -> dict | None:
    for d in decls:
        if d["name"] == filename:
            return d
    base = _basename(filename)
    for d in decls:
        if _basename(d["name"]) == base:
            return d
    return None


def _strings(value, prefix, depth=0):
    """(index, string) for every string in a widget value, descending into lists and dicts."""
    if isinstance(value, str):
        yield prefix, value
    elif depth < 4 and isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{prefix}.{i}", depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{prefix}.{k}", depth + 1)


class _Collector:
    def __init__(self):
        self.uses: dict[str, dict] = {}
        self.models: dict[tuple[str, object], ModelRef] = {}
        self.core_versions: list[str] = []

    def use(self, node_type: str, node_id: str, props: dict, kind: str) -> None:
        entry = self.uses.setdefault(node_type, {"ids": [], "cnr_id": None, "aux_id": None, "versions": [], "kind": kind})
        entry["ids"].append(node_id)
        cnr, aux, ver = props.get("cnr_id"), props.get("aux_id"), props.get("ver")
        if isinstance(cnr, str) and cnr and entry["cnr_id"] is None:
            entry["cnr_id"] = cnr
        if isinstance(aux, str) and aux and entry["aux_id"] is None:
            entry["aux_id"] = aux
        if isinstance(ver, str) and ver:
            entry["versions"].append(ver)
            if cnr == "comfy-core":
                self.core_versions.append(ver)

    def model(self, ref: ModelRef) -> None:
        key = (ref.node_id, ref.widget_index)
        if key not in self.models:
            self.models[key] = ref

    def result(self, fmt: str, extra_core_version: str | None) -> WorkflowAnalysis:
        uses = [
            NodeUse(
                type=t,
                node_ids=sorted(set(e["ids"]), key=_node_id_key),
                cnr_id=e["cnr_id"],
                version=newest(e["versions"]) if e["cnr_id"] == "comfy-core" else (e["versions"][0] if e["versions"] else None),
                aux_id=e["aux_id"],
                kind=e["kind"],
            )
            for t, e in sorted(self.uses.items())
        ]
        models = sorted(self.models.values(), key=lambda m: (_node_id_key(m.node_id), _widget_key(m.widget_index)))
        version = newest(self.core_versions + ([extra_core_version] if extra_core_version else []))
        return WorkflowAnalysis(format=fmt, node_types=uses, models=models, comfyui_version=version)


def _ref(node_id, node_type, idx, filename, folder, optional, decls) -> ModelRef:
    decl = _match_declaration(filename, decls) or {}
    return ModelRef(
        node_id=node_id,
        node_type=node_type,
        widget_index=idx,
        filename=filename,
        directory=decl.get("directory") or folder,
        url=decl.get("url"),
        optional=optional,
        declared_hash=decl.get("hash"),
        hash_type=decl.get("hash_type"),
    )


# --- UI format ---------------------------------------------------------------------------
class _UIGraph:
    def __init__(self, data: dict, name: str):
        self.name = name
        self.out = _Collector()
        defs = data.get("definitions")
        subgraphs = defs.get("subgraphs") if isinstance(defs, dict) else None
        self.subgraphs: dict[str, dict] = {}
        for sg in subgraphs if isinstance(subgraphs, list) else []:
            if isinstance(sg, dict) and isinstance(sg.get("id"), str) and isinstance(sg.get("nodes"), list):
                self.subgraphs[sg["id"]] = sg
        extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
        groups = extra.get("groupNodes")
        self.group_nodes = {k: v for k, v in groups.items() if isinstance(v, dict)} if isinstance(groups, dict) else {}
        self.top_models = _declarations(data.get("models"))
        self.visited = 0

    def _inner_nodes(self, node_type: str) -> list | None:
        if node_type in self.subgraphs:
            return self.subgraphs[node_type]["nodes"]
        for prefix in _GROUP_PREFIXES:
            if node_type.startswith(prefix) and node_type[len(prefix) :] in self.group_nodes:
                nodes = self.group_nodes[node_type[len(prefix) :]].get("nodes")
                # group node members have no id of their own: their position ("index") stands in
                return (
                    [dict(n, id=n.get("index", i)) for i, n in enumerate(nodes) if isinstance(n, dict)]
                    if isinstance(nodes, list)
                    else []
                )
        return None

    def walk(self, nodes: list, prefix: str, optional: bool, stack: tuple[str, ...]) -> set[str]:
        """Record every node; returns the model filenames named inside (for instance de-duplication)."""
        named: set[str] = set()
        for node in nodes:
            self.visited += 1
            if self.visited > _MAX_NODES:
                raise WorkflowError(
                    f"{self.name} expands to more than {_MAX_NODES:,} nodes (subgraphs nested inside subgraphs)",
                    hint="this is not a workflow ComfyUI could run; check where it came from",
                )
            if not isinstance(node, dict):
                raise WorkflowError(f"{self.name}: a node is not an object", hint="re-save the workflow from ComfyUI")
            node_type = node.get("type")
            if not isinstance(node_type, str) or not node_type:
                continue  # a node without a type cannot run; nothing to require
            raw_id = node.get("id")
            node_id = prefix + (str(raw_id) if isinstance(raw_id, (int, str)) and not isinstance(raw_id, bool) else "?")
            props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
            mode = node.get("mode")
            opt = optional or mode in _OPTIONAL_MODES
            values = node.get("widgets_values")
            inner = self._inner_nodes(node_type)
            if inner is not None or _UUID_RE.match(node_type):
                self.out.use(node_type, node_id, props, "subgraph")
                inner_named: set[str] = set()
                if inner is not None and node_type not in stack and len(stack) < _MAX_DEPTH:
                    inner_named = self.walk(inner, node_id + ":", opt, stack + (node_type,))
                named |= inner_named
                for idx, text in self._widget_strings(values):
                    if _is_model_name(text) and text not in inner_named:
                        self.out.model(
                            _ref(node_id, node_type, idx, text, None, opt, _declarations(props.get("models")) + self.top_models)
                        )
                        named.add(text)
                continue
            if node_type in FRONTEND_TYPES:
                self.out.use(node_type, node_id, props, "frontend")
                continue
            self.out.use(node_type, node_id, props, "node")
            decls = _declarations(props.get("models")) + self.top_models
            table = {idx: folder for idx, folder in MODEL_LOADERS.get(node_type, []) if isinstance(idx, int)}
            for idx, text in self._widget_strings(values):
                if _is_model_name(text):
                    self.out.model(_ref(node_id, node_type, idx, text, table.get(idx), opt, decls))
                    named.add(text)
        return named

    @staticmethod
    def _widget_strings(values):
        if isinstance(values, list):
            for i, v in enumerate(values):
                if isinstance(v, str):
                    yield i, v
                else:
                    yield from _strings(v, str(i)) if isinstance(v, (list, dict)) else ()
        elif isinstance(values, dict):  # some custom nodes save their widgets by name
            for k, v in values.items():
                if isinstance(v, str):
                    yield str(k), v
                elif isinstance(v, (list, dict)):
                    yield from _strings(v, str(k))


def _analyze_ui(data: dict, name: str) -> WorkflowAnalysis:
    if not isinstance(data["nodes"], list):
        raise WorkflowError(f"{name}: 'nodes' is not a list", hint="re-save the workflow from ComfyUI")
    graph = _UIGraph(data, name)
    graph.walk(data["nodes"], "", False, ())
    extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
    versions = extra.get("node_versions")
    legacy = versions.get("comfy-core") if isinstance(versions, dict) and isinstance(versions.get("comfy-core"), str) else None
    return graph.out.result("ui", legacy)


# --- API format --------------------------------------------------------------------------
def _analyze_api(data: dict, name: str) -> WorkflowAnalysis:
    out = _Collector()
    for raw_id, node in data.items():
        node_type = node["class_type"]
        if not isinstance(node_type, str) or not node_type:
            raise WorkflowError(f"{name}: node {raw_id} has no class_type", hint="export the workflow again from ComfyUI")
        node_id = str(raw_id)
        meta = node.get("_meta") if isinstance(node.get("_meta"), dict) else {}
        kind = "frontend" if node_type in FRONTEND_TYPES else "node"
        out.use(node_type, node_id, meta, kind)
        inputs = node.get("inputs")
        if kind != "node" or not isinstance(inputs, dict):
            continue
        table = {idx: folder for idx, folder in MODEL_LOADERS.get(node_type, []) if isinstance(idx, str)}
        for key, value in inputs.items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                continue  # a link [from node, output slot], not a value
            for idx, text in [(key, value)] if isinstance(value, str) else _strings(value, key):
                if _is_model_name(text):
                    out.model(_ref(node_id, node_type, idx, text, table.get(idx), False, []))
    return out.result("api", None)


# --- entry points ------------------------------------------------------------------------
def analyze_data(data, name: str = "workflow") -> WorkflowAnalysis:
    """Analyse an already-parsed workflow (UI or API format)."""
    if isinstance(data, dict) and "nodes" in data:
        return _analyze_ui(data, name)
    if isinstance(data, dict) and data and all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        return _analyze_api(data, name)
    what = type(data).__name__ if not isinstance(data, dict) else ("an empty object" if not data else "an object without 'nodes'")
    raise WorkflowError(
        f"{name} is not a ComfyUI workflow (found {what}; expected 'nodes' or API-format node objects)",
        hint="save it again from ComfyUI (Workflow > Save, or Export (API))",
    )


def analyze_bytes(data: bytes, name: str = "workflow") -> WorkflowAnalysis:
    if not data.strip():
        raise WorkflowError(f"{name} is empty", hint="save it again from ComfyUI, or delete it")
    try:
        parsed = json.loads(data)
    except UnicodeDecodeError:
        raise WorkflowError(f"{name} is not UTF-8 text", hint="save it again from ComfyUI") from None
    except ValueError as exc:
        raise WorkflowError(
            f"{name} is not valid JSON ({exc.msg} at line {getattr(exc, 'lineno', '?')})",
            hint="the file may be truncated or hand-edited; save it again from ComfyUI",
        ) from None
    except RecursionError:
        raise WorkflowError(f"{name} is nested too deeply to read", hint="save it again from ComfyUI") from None
    return analyze_data(parsed, name)


def analyze_file(path: Path) -> WorkflowAnalysis:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorkflowError(
            f"cannot read {path}: {exc.strerror or exc}", hint="check that the file exists and is readable"
        ) from None
    return analyze_bytes(data, path.name)
