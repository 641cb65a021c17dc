"""ComfyUI itself: a cached clone of the configured source, checkouts of a ref, model paths."""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from comfydock.errors import ComfydockError, ExternalToolError
from comfydock.fsutil import atomic_write_text, remove_tree
from comfydock.gitutil import git as _git
from comfydock.gitutil import git_reason
from comfydock.pep440 import version_sort_key

_RELEASE_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")

# ComfyUI's folder_paths names, mapped to sub-directories of the models directory.
MODEL_FOLDERS = (
    "checkpoints",
    "clip",
    "clip_vision",
    "configs",
    "controlnet",
    "diffusers",
    "diffusion_models",
    "embeddings",
    "gligen",
    "hypernetworks",
    "loras",
    "photomaker",
    "style_models",
    "text_encoders",
    "unet",
    "upscale_models",
    "vae",
    "vae_approx",
    "audio_encoders",
    "model_patches",
    "latent_upscale_models",
)


@dataclass(frozen=True)
class ResolvedRef:
    name: str  # what the user asked for, or the chosen default
    commit: str


def cache_path(cache_root: Path, url: str) -> Path:
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_root / f"{key}.git"


def update_cache(cache_root: Path, url: str, warn=lambda msg: None):
    """A bare mirror of `url` under the cache; later calls only fetch what is new."""
    git = _git()
    path = cache_path(cache_root, url)
    if path.is_dir():
        repo = git.Repo(path)
        try:
            repo.git.fetch("origin", "--prune", "--tags", "+refs/heads/*:refs/heads/*")
        except git.GitCommandError as exc:
            warn(f"could not update ComfyUI from {url} ({git_reason(exc)}); using the cached copy")
        return repo
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=cache_root))
    try:
        repo = git.Repo.clone_from(url, tmp / "repo.git", bare=True)
        (tmp / "repo.git").rename(path)
    except git.GitCommandError as exc:
        raise ExternalToolError(
            f"cannot clone ComfyUI from {url}: {git_reason(exc)}",
            hint="check the URL: 'comfydock config comfyui-source URL' or $COMFYDOCK_COMFYUI_SOURCE",
        ) from None
    finally:
        remove_tree(tmp)
    return git.Repo(path)


def release_tags(repo) -> list[str]:
    """Release tags, newest first."""
    tags = [tag.name for tag in repo.tags if _RELEASE_TAG.match(tag.name)]
    return sorted(tags, key=version_sort_key, reverse=True)


_COMMIT_PREFIX = re.compile(r"[0-9a-fA-F]{7,40}")


def _release_at(repo, sha: str) -> str | None:
    """The newest release tag on commit `sha`, if one is."""
    try:
        on_commit = set(repo.git.tag("--points-at", sha).split())
    except _git().GitCommandError:
        return None
    return next((t for t in release_tags(repo) if t in on_commit), None)


def resolve_ref(repo, ref: str | None) -> ResolvedRef:
    """A tag, branch or commit; by default the newest release tag (or HEAD if there is none)."""
    if ref is None:
        tags = release_tags(repo)
        ref = tags[0] if tags else None
        if ref is None:
            return ResolvedRef(repo.head.commit.hexsha[:12], repo.head.commit.hexsha)
    git = _git()
    for candidate in (f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        try:
            # ^{commit} peels an annotated tag to the commit it tags, and fails for a tree or blob
            sha = repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}").strip()
        except git.GitCommandError:
            continue
        if candidate == ref and _COMMIT_PREFIX.fullmatch(ref):
            return ResolvedRef(_release_at(repo, sha) or sha[:12], sha)  # a commit: named by its release, if any
        return ResolvedRef(ref, sha)
    newest = ", ".join(release_tags(repo)[:5]) or "no release tags"
    raise ComfydockError(f"unknown ComfyUI ref {ref!r}", hint=f"use a tag, branch or commit; newest tags: {newest}")


def checkout(cache_repo, dest: Path, ref: ResolvedRef, origin_url: str) -> None:
    """Clone the cached mirror into `dest` (hard links, no network) at `ref`."""
    git = _git()
    try:
        repo = git.Repo.clone_from(cache_repo.git_dir, dest, no_checkout=True)
        repo.git.checkout("--detach", ref.commit)
        repo.remotes.origin.set_url(origin_url)
    except git.GitCommandError as exc:
        raise ExternalToolError(f"cannot check out ComfyUI {ref.name}: {git_reason(exc)}") from None


def write_extra_model_paths(comfyui_dir: Path, models_dir: Path | None) -> Path | None:
    """Point ComfyUI at the workspace's models directory (its own extra_model_paths.yaml)."""
    import yaml

    if models_dir is None:
        return None
    data = {
        "comfydock": {
            "base_path": str(models_dir),
            "is_default": True,
            **{folder: f"{folder}/" for folder in MODEL_FOLDERS},
        }
    }
    path = comfyui_dir / "extra_model_paths.yaml"
    header = "# Written by comfydock: ComfyUI reads models from the workspace's models directory.\n"
    atomic_write_text(path, header + yaml.safe_dump(data, sort_keys=False))
    return path


def checkout_commit(cache_repo, comfyui_dir: Path, commit: str, force: bool = False) -> str:
    """Move an environment's ComfyUI checkout to `commit` (fetched from the cached mirror, no
    network); returns the commit it was at. Files ComfyUI's git tracks and the user changed stop
    it (unless `force`); untracked files (custom_nodes/, user/, models) are left alone."""
    git = _git()
    try:
        repo = git.Repo(comfyui_dir)
        old = repo.head.commit.hexsha
    except Exception:
        raise ExternalToolError(f"{comfyui_dir} is not a ComfyUI git checkout", hint="'comfydock build' restores it") from None
    if old == commit:
        return old
    changed = [line[3:] for line in repo.git.status("--porcelain", "--untracked-files=no").splitlines()]
    if changed and not force:
        raise ComfydockError(
            f"ComfyUI's own files were changed in this environment: {', '.join(changed[:5])}",
            hint=f"save or revert them ('git -C {comfyui_dir} diff'), or use --force to discard them",
        )
    try:
        try:
            repo.commit(commit)
        except Exception:  # not here yet: take it from the mirror, never the network
            repo.git.fetch(str(cache_repo.git_dir), commit)
        repo.git.checkout("--detach", "--force" if force else "--quiet", commit)
    except git.GitCommandError as exc:
        raise ExternalToolError(f"cannot check out ComfyUI {commit[:12]}: {git_reason(exc)}") from None
    return old


def undo_checkout(cache_repo, comfyui_dir: Path, commit: str | None):
    """The undo step for a `checkout_commit` away from `commit`, to register BEFORE it runs: puts
    the checkout back at `commit` only if HEAD moved away from it. A checkout that was refused, or
    never started, left HEAD (and the user's own edits to ComfyUI's files) alone: so does this."""

    def undo() -> None:
        if commit and head_commit(comfyui_dir) not in (None, commit):
            checkout_commit(cache_repo, comfyui_dir, commit, force=True)

    return undo


def mirror_with(workspace, commit: str | None, warn=lambda msg: None):
    """The workspace's cached mirror of the ComfyUI source, fetched only when it lacks `commit`."""
    git = _git()
    source = workspace.setting("comfyui-source")
    path = cache_path(workspace.comfyui_cache_dir, source)
    if commit and path.is_dir():
        repo = git.Repo(path)
        try:
            repo.commit(commit)
            return repo
        except Exception:
            pass
    return update_cache(workspace.comfyui_cache_dir, source, warn=warn)


def head_commit(comfyui_dir: Path) -> str | None:
    try:
        return _git().Repo(comfyui_dir).head.commit.hexsha
    except Exception:
        return None
