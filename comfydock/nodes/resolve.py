"""Turning what the user typed into an exact NodeSpec: registry lookups, git ls-remote, dev dirs.

Everything a registry or a remote answers is checked here before it can become a name on disk:
ids and versions against the identifier rules (spec.is_valid_name / is_valid_version), the id
against the one asked for.
"""

from __future__ import annotations

import re
from pathlib import Path

from comfydock.errors import ComfydockError, UsageError
from comfydock.nodes.spec import (
    NodeSpec,
    check_directory_name,
    check_git_url,
    is_git_url,
    is_valid_name,
    is_valid_version,
    repo_name,
    split_ref,
)

_SHA_RE = re.compile(r"[0-9a-f]{7,40}")


def registry_client(ws, refresh: bool = False):
    from comfydock.limits import ArchiveLimits, download_seconds
    from comfydock.registry import RegistryClient

    return RegistryClient(
        ws.setting("registry-url"),
        ws.api_cache_dir / "registry_cache.json",
        max_bytes=ArchiveLimits.from_workspace(ws).max_bytes,
        seconds=download_seconds(ws),
        refresh=refresh,
    )


def resolve_registry(ws, node_id: str, version: str | None, name: str | None = None, refresh: bool = False) -> NodeSpec:
    if not is_valid_name(node_id):
        raise UsageError(f"{node_id!r} is not a registry id", hint="registry ids look like 'comfyui-impact-pack'")
    if version is not None and not is_valid_version(version):
        raise UsageError(f"{version!r} is not a version", hint="versions look like '1.2.3'")
    client = registry_client(ws, refresh)
    info = client.node(node_id)
    canonical = info.get("id")
    if not is_valid_name(canonical) or canonical.lower() != node_id.lower():
        raise client.bad_answer(f"node id {canonical!r} when asked for {node_id!r}")
    if version is None:
        latest = info.get("latest_version")
        if latest is None:
            latest = {}
        if not isinstance(latest, dict):
            raise client.bad_answer(f"a latest_version that is not an object for {canonical!r}")
        version = latest.get("version")
        if not version:
            raise ComfydockError(
                f"registry node {canonical!r} has no published version", hint="add it from its git repository URL instead"
            )
        if not is_valid_version(version):
            raise client.bad_answer(f"an invalid version {version!r} for {canonical!r}")
    else:
        known = [str(v.get("version")) for v in client.versions(canonical)]
        if version not in known:
            raise ComfydockError(
                f"registry node {canonical!r} has no version {version!r}",
                hint="available: " + (", ".join(known[:8]) or "none"),
            )
    repository = info.get("repository") or None
    if repository is not None and not isinstance(repository, str):
        raise client.bad_answer(f"a repository that is not a string for {canonical!r}")
    if name is not None:
        directory = check_directory_name(name)
    else:
        directory = repo_name(repository) if repository else canonical
        if not is_valid_name(directory):
            directory = canonical  # the repository's last part is no usable directory name
    return NodeSpec(canonical, "registry", directory, version=str(version), registry_id=canonical, url=repository)


def ls_remote(url: str, ref: str | None) -> str:
    """The commit `ref` (default HEAD) points at in the remote repository (annotated tags peeled)."""
    from comfydock.gitutil import git as _git

    git = _git()

    if ref is not None and (ref.startswith("-") or not ref.strip() or any(c in ref for c in "\0\n\r ~^:?*[\\")):
        raise UsageError(f"{ref!r} is not a git ref", hint="give a branch, a tag or a commit after '@'")
    patterns = [ref, f"{ref}^{{}}"] if ref else ["HEAD"]
    try:
        out = git.Git().ls_remote(url, *patterns)
    except git.GitCommandError as exc:
        from comfydock.gitutil import git_reason

        raise ComfydockError(
            f"cannot read git repository {url}: {git_reason(exc)}", hint="check the URL, and that you can reach it"
        ) from None
    refs = {}
    for line in out.splitlines():
        sha, _, refname = line.partition("\t")
        refs[refname] = sha
    if ref is None:
        if "HEAD" in refs:
            return refs["HEAD"]
        raise ComfydockError(f"git repository {url} has no HEAD", hint="give a branch or tag: URL@REF")
    # an annotated tag's own entry names the tag object; its '^{}' entry names the commit
    for refname in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if refname in refs:
            return refs[refname]
    if _SHA_RE.fullmatch(ref):
        return ref  # a commit: verified when it is fetched
    raise ComfydockError(f"git repository {url} has no branch or tag {ref!r}", hint="check the ref after '@'")


def resolve_git(url: str, ref: str | None, name: str | None = None) -> NodeSpec:
    check_git_url(url)
    commit = ls_remote(url, ref)
    if not _SHA_RE.fullmatch(commit or ""):
        raise ComfydockError(f"git repository {url} answered {commit!r} for {ref or 'HEAD'}, not a commit hash")
    directory = check_directory_name(name if name is not None else repo_name(url))
    return NodeSpec(directory, "git", directory, url=url, ref=ref, commit=commit)


# Last parts of a URL that name a mirror's layout, not the node ('…/rgthree-comfy/repo', '…/repo.git')
GENERIC_REPO_NAMES = frozenset({"repo", "repository", "repo.git", "git", "mirror", "src", "source", "code", "node"})


def package_name(env, spec: NodeSpec) -> tuple[str | None, str]:
    """A name for a git node whose URL ends in a generic part: its pyproject.toml [project].name
    (read from the node cache, where the fetch that follows finds it), else the URL's last part
    that is not generic. (None, '') when neither gives a valid name."""
    import tomllib

    from comfydock.limits import ArchiveLimits
    from comfydock.nodes.cache import NodeCache

    cache = NodeCache(env.workspace.node_cache_dir, ArchiveLimits.from_workspace(env.workspace))
    entry = cache.entry(spec.identity())
    if not entry.exists():
        entry = cache.add_git(spec.identity(), spec.url, spec.commit, {"source": "git", "id": spec.id, "ref": spec.ref})
    pyproject = entry.content / "pyproject.toml"
    try:
        if pyproject.is_file() and not pyproject.is_symlink():
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project") or {}
            name = project.get("name")
            if isinstance(name, str) and is_valid_name(name):
                return name, "its pyproject.toml's [project].name"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        pass
    parts = [p for p in re.split(r"[/:\\]+", spec.url.rstrip("/")) if p]
    for part in reversed(parts):
        part = part.removesuffix(".git")
        if part and part.lower() not in GENERIC_REPO_NAMES and is_valid_name(part):
            return part, "the last meaningful part of its URL"
    return None, ""


def resolve(env, identifier: str, dev: bool, name: str | None = None) -> NodeSpec:
    if dev:
        if name is not None:
            raise UsageError("--name does not apply to --dev", hint="a development node is the directory you name")
        dirname = Path(identifier.rstrip("/")).name.removesuffix(".disabled")
        check_directory_name(dirname)
        return NodeSpec(dirname, "development", dirname, asked=identifier)
    target, ref = split_ref(identifier)
    if is_git_url(target):
        spec = resolve_git(target, ref, name)
        if name is None and spec.directory.lower() in GENERIC_REPO_NAMES:
            better, why = package_name(env, spec)
            if better and better != spec.directory:
                spec.id = spec.directory = better
                spec.named_by = why
    elif "/" in target or target.startswith("."):
        raise UsageError(
            f"{identifier!r} is neither a registry id nor a git URL",
            hint="for a directory in custom_nodes/, use 'comfydock node add NAME --dev'",
        )
    else:
        spec = resolve_registry(env.workspace, target, ref, name)
    spec.asked = identifier
    return spec
