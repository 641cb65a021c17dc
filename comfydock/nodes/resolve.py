"""Turning what the user typed into an exact NodeSpec: registry lookups, git ls-remote, dev dirs."""

from __future__ import annotations

import re
from pathlib import Path

from comfydock.errors import ComfydockError, UsageError
from comfydock.nodes.spec import NodeSpec, is_git_url, repo_name, split_ref

_SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")


def registry_client(ws):
    from comfydock.registry import RegistryClient

    return RegistryClient(ws.setting("registry-url"), ws.api_cache_dir / "registry_cache.json")


def resolve_registry(ws, node_id: str, version: str | None) -> NodeSpec:
    client = registry_client(ws)
    info = client.node(node_id)
    canonical = str(info["id"])
    if version is None:
        latest = info.get("latest_version") or {}
        version = latest.get("version")
        if not version:
            raise ComfydockError(
                f"registry node {canonical!r} has no published version", hint="add it from its git repository URL instead"
            )
    else:
        known = [str(v.get("version")) for v in client.versions(canonical)]
        if version not in known:
            raise ComfydockError(
                f"registry node {canonical!r} has no version {version!r}",
                hint="available: " + (", ".join(known[:8]) or "none"),
            )
    repository = info.get("repository") or None
    directory = repo_name(repository) if repository else canonical
    return NodeSpec(canonical, "registry", directory, version=str(version), registry_id=canonical, url=repository)


def ls_remote(url: str, ref: str | None) -> str:
    """The commit `ref` (default HEAD) points at in the remote repository."""
    import git

    try:
        out = git.cmd.Git().ls_remote(url, ref or "HEAD")
    except git.GitCommandError as exc:
        from comfydock.gitutil import git_reason

        raise ComfydockError(
            f"cannot read git repository {url}: {git_reason(exc)}", hint="check the URL, and that you can reach it"
        ) from None
    refs = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    if ref is None:
        if "HEAD" in refs:
            return refs["HEAD"]
        raise ComfydockError(f"git repository {url} has no HEAD", hint="give a branch or tag: URL@REF")
    for name in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if name in refs:
            return refs[name]
    if _SHA_RE.match(ref):
        return ref  # a commit: verified when it is fetched
    raise ComfydockError(f"git repository {url} has no branch or tag {ref!r}", hint="check the ref after '@'")


def resolve_git(url: str, ref: str | None) -> NodeSpec:
    commit = ls_remote(url, ref)
    name = repo_name(url)
    return NodeSpec(name, "git", name, url=url, ref=ref, commit=commit)


def resolve(env, identifier: str, dev: bool) -> NodeSpec:
    if dev:
        name = Path(identifier.rstrip("/")).name.removesuffix(".disabled")
        from comfydock.workspace import validate_name

        validate_name(name, "node directory")
        return NodeSpec(name, "development", name)
    target, ref = split_ref(identifier)
    if is_git_url(target):
        return resolve_git(target, ref)
    if "/" in target or target.startswith("."):
        raise UsageError(
            f"{identifier!r} is neither a registry id nor a git URL",
            hint="for a directory in custom_nodes/, use 'comfydock node add NAME --dev'",
        )
    return resolve_registry(env.workspace, target, ref)
