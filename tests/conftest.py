"""Fixtures: a real git ComfyUI source, real wheels, real workspaces; the CLI run in-process."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

import pytest

from comfydock.cli import main
from comfydock.demo.fixtures import build_comfyui_repo, build_wheels
from comfydock.environment import Environment


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self):
        import json

        return json.loads(self.out)


@pytest.fixture(scope="session")
def fixture_assets(tmp_path_factory):
    base = tmp_path_factory.mktemp("assets")
    wheels = build_wheels(base / "wheels")
    comfyui = build_comfyui_repo(base / "ComfyUI-source")
    return {"wheels": wheels, "comfyui": comfyui, "uv_cache": base / "uv-cache"}


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch, fixture_assets, tmp_path):
    """No COMFYDOCK_* from the outside; one uv cache for the session; never download Pythons."""
    for key in list(os.environ):
        if key.startswith(("COMFYDOCK_", "UV_")) or key == "VIRTUAL_ENV":
            monkeypatch.delenv(key)
    monkeypatch.setenv("UV_CACHE_DIR", str(fixture_assets["uv_cache"]))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    monkeypatch.setenv("COMFYDOCK_HTTP_BACKOFF", "0.01")  # retries still happen, without seconds of waiting
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def no_public_network(monkeypatch):
    """Tests never reach a public host: any connection from this process to anything but
    loopback fails at once (uv and git run with --no-index and file:// URLs)."""
    import socket

    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in _LOOPBACK:
            raise OSError(f"test tried to reach {host} (tests may only use 127.0.0.1)")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def comfyui_source(fixture_assets, tmp_path):
    """A private copy of the fixture ComfyUI repo, for tests that change or remove it."""
    dest = tmp_path / "ComfyUI-source"
    shutil.copytree(fixture_assets["comfyui"], dest, symlinks=True)
    return dest


@pytest.fixture
def run_cli(capsys):
    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def workspace_path(tmp_path, fixture_assets, comfyui_source, run_cli, monkeypatch):
    """An initialised workspace wired to the local ComfyUI source and wheels, as $COMFYDOCK_HOME."""
    ws = tmp_path / "ws"
    models = tmp_path / "models"
    assert run_cli("init", ws, "--models-dir", models, "--no-interactive").code == 0
    for key, value in (
        ("comfyui-source", comfyui_source.as_uri()),
        ("find-links", fixture_assets["wheels"]),
        ("no-index", "true"),
        # never GitHub: a port nothing listens on (tests that need the map serve one)
        ("node-map-url", "http://127.0.0.1:9/extension-node-map.json"),
    ):
        assert run_cli("-w", ws, "config", key, value).code == 0
    monkeypatch.setenv("COMFYDOCK_HOME", str(ws))
    return ws


@pytest.fixture
def workspace(workspace_path):
    from comfydock.workspace import Workspace

    return Workspace.open(workspace_path)


@pytest.fixture
def env(workspace, run_cli):
    """A created environment named 'main' (active)."""
    result = run_cli("create", "main", "--torch-backend", "cpu")
    assert result.code == 0, result.err
    return Environment.open(workspace, "main")


def venv_has(env, module: str) -> str | None:
    """The version of `module` importable in the env's venv, or None."""
    import subprocess

    proc = subprocess.run(
        [str(env.python), "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.fixture
def registry(workspace_path, run_cli):
    """A loopback Comfy Registry, configured as the workspace's registry-url."""
    from comfydock.demo.fixtures import node_zip_bytes
    from comfydock.demo.registry_server import FakeRegistry

    reg = FakeRegistry()
    reg.add_node(
        "comfyui-fixture-pack",
        {"1.0.0": node_zip_bytes("fixture-pack", "cdfix-beta<2\n"), "1.1.0": node_zip_bytes("fixture-pack", "cdfix-beta\n")},
        repository="https://github.com/fixture/ComfyUI-Fixture-Pack",
    )
    reg.add_node("comfyui-plain", {"0.1.0": node_zip_bytes("plain", "# nothing needed\n")})
    assert run_cli("config", "registry-url", reg.url).code == 0
    yield reg
    reg.close()


@pytest.fixture
def node_repo(tmp_path):
    """A git custom node with releases v1.0 (needs cdfix-gamma<0.2) and v2.0 (cdfix-gamma>=0.2)."""
    from comfydock.demo.fixtures import build_node_repo

    return build_node_repo(
        tmp_path / "repos" / "ComfyUI-Git-Node",
        "git-node",
        {"v1.0": "cdfix-gamma<0.2\n", "v2.0": "cdfix-gamma>=0.2\n"},
    )


@pytest.fixture
def stalling_index():
    """A loopback package index that holds every request until released (uv waits on it)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.set()
            release.wait(30)
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/simple/", asked
    release.set()
    server.shutdown()
    server.server_close()


def interrupt_when_uv_asks(asked, argv: list[str], cwd, check=lambda: None) -> tuple[int, str]:
    """Run `comfydock ARGV` in its own process group and, once uv asks the stalling index
    (`asked`), send SIGINT to the whole group, as a terminal's Ctrl-C does (comfydock and uv).
    `check()` runs just before the signal. Returns (exit code, stderr)."""
    import signal
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "comfydock", *argv],
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert asked.wait(60), "uv never asked the index"
        check()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


def in_child_as_nobody(work):
    """Run `work()` in a forked child that, as root, drops to 'nobody' first (so file
    permissions apply to it as to any user); returns what it returned, through JSON."""
    import json

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            os.write(write_fd, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.waitpid(pid, 0)
    return json.loads(data)
