"""Looking nodes up in the Comfy Registry: search and one node's details (answers cached)."""

from __future__ import annotations

from comfydock.errors import UsageError
from comfydock.nodes.resolve import registry_client
from comfydock.nodes.spec import is_valid_name, is_valid_version


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _latest(node: dict) -> str | None:
    latest = node.get("latest_version")
    return _text(latest.get("version")) if isinstance(latest, dict) else None


def search_nodes(ws, query: str, limit: int = 10, refresh: bool = False) -> list[dict]:
    """Registry nodes matching `query`: id, name, latest version, downloads, description and the
    `node add` line (none for an id comfydock would refuse)."""
    if not query.strip():
        raise UsageError("the search is empty", hint="comfydock node search WORDS, e.g. 'comfydock node search impact'")
    if not 1 <= limit <= 100:
        raise UsageError(f"--limit {limit} is out of range", hint="give a number from 1 to 100")
    rows = []
    for node in registry_client(ws, refresh).search(query, limit):
        node_id = node["id"]
        rows.append(
            {
                "id": node_id,
                "name": _text(node.get("name")),
                "latest_version": _latest(node),
                "downloads": _count(node.get("downloads")),
                "description": _text(node.get("description")),
                "repository": _text(node.get("repository")),
                "add": f"comfydock node add {node_id}" if is_valid_name(node_id) else None,
            }
        )
    return rows


def _version_row(v: dict) -> dict:
    created = _text(v.get("createdAt"))
    return {
        "version": v["version"],
        "date": created[:10] if created else None,
        "deprecated": v.get("deprecated") is True,
        "status": _text(v.get("status")),
    }


def node_info(ws, env, node_id: str, refresh: bool = False) -> dict:
    """One registry node: what it is, its versions (newest first), the node types its latest
    version provides (None if the registry lists none) and whether `env` has it installed."""
    from comfydock.pep440 import version_sort_key
    from comfydock.registry import newest_usable_version

    if not is_valid_name(node_id):
        raise UsageError(f"{node_id!r} is not a registry id", hint="registry ids look like 'comfyui-impact-pack'")
    client = registry_client(ws, refresh)
    node = client.node(node_id)
    canonical = node["id"]
    if not isinstance(canonical, str) or canonical.lower() != node_id.lower():
        raise client.bad_answer(f"node id {str(canonical)[:60]!r} when asked for {node_id!r}")
    versions = sorted(client.versions(canonical), key=lambda v: version_sort_key(v["version"]), reverse=True)
    latest = _latest(node) or newest_usable_version(versions)
    if latest is not None and not is_valid_version(latest):
        raise client.bad_answer(f"an invalid latest version {latest[:40]!r} for {canonical!r}")
    installed = None
    if env is not None:
        spec = next(
            (s for s in env.tracked_nodes().values() if s.source == "registry" and (s.registry_id or s.id).lower() == canonical.lower()),
            None,
        )
        if spec is not None:
            installed = {"environment": env.name, "id": spec.id, "version": spec.version, "directory": spec.directory}
    return {
        "id": canonical,
        "name": _text(node.get("name")),
        "description": _text(node.get("description")),
        "author": _text(node.get("author")),
        "repository": _text(node.get("repository")),
        "license": node.get("license") if isinstance(node.get("license"), (str, dict)) else None,
        "downloads": _count(node.get("downloads")),
        "latest_version": latest,
        "newest_usable_version": newest_usable_version(versions),
        "versions": [_version_row(v) for v in versions],
        "node_types": client.comfy_nodes(canonical, latest) if latest else None,
        "installed": installed,
        "add": f"comfydock node add {canonical}",
    }
