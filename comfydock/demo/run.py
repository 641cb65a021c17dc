"""`comfydock demo`: the main job end to end, offline, in a throw-away workspace."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from comfydock.demo.fixtures import build_comfyui_repo, build_node_repo, build_wheels
from comfydock.demo.model_server import ModelServer
from comfydock.errors import ComfydockError


@contextmanager
def _own_settings_only():
    """The demo is offline and self-contained: the user's COMFYDOCK_* variables (another
    workspace, environment, registry or CivitAI) must not reach its steps."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("COMFYDOCK_") and k not in _KEPT}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


_KEPT = {"COMFYDOCK_HTTP_RETRIES", "COMFYDOCK_HTTP_BACKOFF"}  # how to talk, not where to


def run_demo(app, base: Path | None) -> int:
    """Run each step through `app.run_command` (the CLI's entry point), as a user types it."""
    base = (base or Path(tempfile.mkdtemp(prefix="comfydock-demo-"))).absolute()
    if base.exists() and any(base.iterdir()):
        raise ComfydockError(f"demo directory {base} is not empty", hint="pass an empty or new --dir")
    base.mkdir(parents=True, exist_ok=True)
    app.say(f"[bold]comfydock demo[/] in {base}")
    app.say("Building the fixture ComfyUI (a local git repo with two releases) and tiny wheels ...")
    wheels = build_wheels(base / "wheels")
    comfyui = build_comfyui_repo(base / "fixture-ComfyUI")
    node = build_node_repo(base / "fixture-nodes" / "ComfyUI-Demo-Node", "demo-node", {"v1.0": "cdfix-beta<2\n"})
    models = base / "models" / "checkpoints"
    models.mkdir(parents=True)
    (models / "demo_model.safetensors").write_bytes(b"\0" * 4096)
    ws = base / "workspace"
    # a loopback stand-in for CivitAI: the export's source lookup finds the demo model there
    server = ModelServer()
    server.add_civitai_file(4384, "demo_model.safetensors", (models / "demo_model.safetensors").read_bytes())
    bundle = base / "demo-bundle.tar.gz"

    steps = [
        ["init", str(ws), "--models-dir", str(base / "models"), "--no-interactive"],
        ["config", "comfyui-source", comfyui.as_uri()],
        ["config", "find-links", str(wheels)],
        ["config", "no-index", "true"],
        ["config", "node-map-url", "http://127.0.0.1:9/offline-demo.json"],  # never the network
        ["config", "civitai-url", server.url],
        ["create", "demo", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", "--torch-backend", "cpu"],
        ["node", "add", f"{node.as_uri()}@v1.0"],
        ["node", "list"],
        ["py", "list"],
        ["models", "index"],
        ["models", "list"],
        ["status"],
        ["commit", "-m", "Add the demo node; resolve the demo workflow's model", "--no-interactive"],
        ["workflow", "show", "demo"],
        ["build"],
        ["run", "--quick-test-for-ci"],
        ["check"],  # does ComfyUI start with every node? (kept until the environment changes)
        ["log"],
        ["export", "--no-interactive", "--output", str(bundle)],
        ["build", "export"],  # nothing changed: every task is up to date
        ["import", str(bundle), "--env", "demo-copy", "--no-interactive"],  # the model is used in place (index)
        ["status", "-e", "demo-copy"],
        ["run", "-e", "demo-copy", "--quick-test-for-ci"],
        ["list"],
    ]
    with server, _own_settings_only():
        for argv in steps:
            app.say(f"\n[bold cyan]$ comfydock {shlex.join(argv)}[/]")
            code = app.run_command(["--workspace", str(ws), *argv])
            if code != 0:
                app.say(f"[red]demo step failed with exit code {code}[/]")
                return code
    app.say(f"\n[bold green]Demo complete.[/] Explore it with:\n  export COMFYDOCK_HOME={ws}\n  comfydock status")
    return 0
