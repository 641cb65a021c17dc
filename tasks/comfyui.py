"""ComfyUI's checkout: put it back from the workspace's cached clone when it is missing."""

from __future__ import annotations

from comfydock import comfyui
from comfydock.errors import ComfydockError
from comfydock.fsutil import remove_tree


def _present(env) -> bool:
    return (env.comfyui_dir / "main.py").is_file()


def _restore(env) -> None:
    info = env.info()
    commit = info.get("comfyui_commit")
    if not commit:
        raise ComfydockError(
            "the manifest records no ComfyUI commit", hint=f"restore it with 'git -C {env.cec_dir} checkout -- pyproject.toml'"
        )
    if env.comfyui_dir.exists() and any(p.name != "custom_nodes" for p in env.comfyui_dir.iterdir()):
        raise ComfydockError(
            f"{env.comfyui_dir} exists but has no main.py",
            hint="move that directory away (keep what you need from it), then run 'comfydock build' to check ComfyUI out again",
        )
    ws = env.workspace
    source = ws.setting("comfyui-source")
    cache = comfyui.update_cache(ws.comfyui_cache_dir, source)
    ref = comfyui.ResolvedRef(str(info.get("comfyui_version") or commit), commit)
    custom_nodes = env.comfyui_dir / "custom_nodes"
    kept = None
    if custom_nodes.exists():  # only custom_nodes/ is left: keep it aside while cloning
        kept = env.root / ".custom_nodes.restoring"
        custom_nodes.rename(kept)
        env.comfyui_dir.rmdir()
    try:
        comfyui.checkout(cache, env.comfyui_dir, ref, source)
    finally:
        if kept is not None:
            env.comfyui_dir.mkdir(exist_ok=True)
            target = env.comfyui_dir / "custom_nodes"
            target.mkdir(exist_ok=True)
            for child in kept.iterdir():  # the nodes win over the checkout's own examples
                remove_tree(target / child.name)
                child.rename(target / child.name)
            kept.rmdir()
    comfyui.write_extra_model_paths(env.comfyui_dir, ws.models_dir)


def task_checkout_comfyui(env):
    """Check ComfyUI out at the manifest's commit from the workspace cache (skipped when it is there)."""
    yield {
        "basename": "checkout_comfyui",
        "targets": [env.comfyui_dir / "main.py"],
        "uptodate": [(_present, [env])],
        "actions": [(_restore, [env])],
    }
