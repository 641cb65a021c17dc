"""The torch family (one PyTorch release, one backend build) and the backend as a machine setting.

Real uv against local file:// simple indexes of tiny fake wheels: torch 2.7-2.10, torchvision
0.22-0.25 and torchaudio 2.7-2.8 (the newest torch has no matching torchaudio), as PyPI builds
and as +cpu / +cu128 builds under a fake PyTorch index."""

from __future__ import annotations

import tomllib

import pytest

from comfydock import torch_family
from comfydock.demo.fixtures import make_wheel
from comfydock.environment import Environment

BUILDS = {"pypi": "", "cpu": "+cpu", "cu128": "+cu128"}


def _simple_index(wheels, root):
    by_name: dict[str, list] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        by_name.setdefault(wheel.name.split("-")[0].replace("_", "-").lower(), []).append(wheel)
    for name, files in by_name.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        links = "".join(f'<a href="{w.resolve().as_uri()}">{w.name}</a>' for w in files)
        (root / name / "index.html").write_text(f"<html><body>{links}</body></html>")


@pytest.fixture(scope="session")
def torch_indexes(tmp_path_factory):
    base = tmp_path_factory.mktemp("torch-indexes")
    for build, tag in BUILDS.items():
        wheels = base / "wheels" / build
        for minor in (7, 8, 9, 10):
            make_wheel(wheels, "torch", f"2.{minor}.0{tag}")
            make_wheel(wheels, "torchvision", f"0.{minor + 15}.0{tag}")
        for minor in (7, 8):
            make_wheel(wheels, "torchaudio", f"2.{minor}.0{tag}")
        _simple_index(wheels, base / "simple" / build)
    return base / "simple"


@pytest.fixture
def torch_ws(workspace_path, torch_indexes, run_cli):
    """The test workspace with PyPI = the fake PyPI builds, and the fake PyTorch index."""
    from comfydock.workspace import Workspace

    assert run_cli("config", "no-index", "--unset").code == 0
    assert run_cli("config", "python-index", (torch_indexes / "pypi").as_uri()).code == 0
    assert run_cli("config", "torch-index", torch_indexes.as_uri()).code == 0
    return Workspace.open(workspace_path)


def installed(env) -> dict[str, str]:
    from comfydock.uv_runner import site_packages

    found = {}
    for dist in site_packages(env.venv_dir).glob("torch*.dist-info"):
        name, version = dist.name.removesuffix(".dist-info").rsplit("-", 1)
        found[name] = version
    return found


# --- pure rules -----------------------------------------------------------------------------


def test_family_rule_pairs_torchvision_0_y_plus_15_with_torch_2_y():
    assert torch_family.problem({"torch": "2.8.0+cpu", "torchvision": "0.23.0+cpu", "torchaudio": "2.8.0+cpu"}) is None
    wrong = torch_family.problem({"torch": "2.15.0", "torchvision": "0.29.2", "torchaudio": "2.11.0"})
    assert wrong == "torch 2.15.0, torchvision 0.29.2 and torchaudio 2.11.0 are not one PyTorch release"
    mixed = torch_family.problem({"torch": "2.8.0+cu128", "torchaudio": "2.8.0+cpu"})
    assert "different backends" in mixed


def test_explicit_incoherent_pins_are_refused_naming_the_versions():
    from comfydock import manifest
    from comfydock.errors import ComfydockError

    doc = manifest.new_manifest("e", "3.11", ["torch", "torchaudio"], "v1", "c" * 40)
    doc["project"]["dependencies"].extend(["torch==2.10.0", "torchvision==0.23.0", "torchaudio==2.8.0"])
    with pytest.raises(ComfydockError) as info:
        torch_family.check_pins(doc)
    assert "torch 2.10.0, torchvision 0.23.0 and torchaudio 2.8.0" in info.value.message


def test_new_manifest_has_no_machine_specific_torch_index():
    from comfydock import manifest

    doc = manifest.new_manifest("e", "3.11", ["torch"], "v1", "c" * 40)
    assert "index" not in doc["tool"]["uv"] and "sources" not in doc["tool"]["uv"]
    assert "torch_backend" not in doc["tool"]["comfydock"]["environment"]


def test_legacy_manifest_index_becomes_its_backends_extra():
    from comfydock import manifest

    doc = manifest.parse(
        '[project]\nname = "x"\nversion = "0"\ndependencies = []\n[dependency-groups]\ncomfyui-core = ["torch"]\n'
        '[tool.uv]\n[[tool.uv.index]]\nname = "pytorch-cu126"\nurl = "https://t.example/whl/cu126"\nexplicit = true\n'
        '[tool.uv.sources]\ntorch = { index = "pytorch-cu126" }\n'
    )
    assert torch_family.legacy_backend(doc) == "cu126" and torch_family.backend_ready(doc, "cu126")
    assert torch_family.ensure_backend(doc, "cpu", "https://t.example/whl")
    data = tomllib.loads(manifest.dumps(doc))
    assert data["project"]["optional-dependencies"] == {"torch-cu126": ["torch"], "torch-cpu": ["torch"]}
    assert [s["extra"] for s in data["tool"]["uv"]["sources"]["torch"]] == ["torch-cu126", "torch-cpu"]
    assert data["tool"]["uv"]["conflicts"] == [[{"extra": "torch-cu126"}, {"extra": "torch-cpu"}]]


def test_rocm_detection_picks_the_newest_build_not_newer_than_rocm(tmp_path):
    from comfydock.torch_backend import rocm_backend

    (tmp_path / ".info").mkdir()
    (tmp_path / ".info" / "version").write_text("6.3.2-99\n")
    assert rocm_backend(tmp_path) == "rocm6.3"
    assert rocm_backend(tmp_path / "absent") is None


# --- real locks ------------------------------------------------------------------------------


def test_lock_keeps_one_release_when_newest_torch_has_no_torchaudio(torch_ws, run_cli, monkeypatch):
    assert run_cli("create", "a", "--torch-backend", "cpu").code == 0
    result = run_cli("py", "add", "torch", "torchvision", "torchaudio")
    assert result.code == 0, result.err
    env = Environment.open(torch_ws, "a")
    assert installed(env) == {"torch": "2.8.0+cpu", "torchvision": "0.23.0+cpu", "torchaudio": "2.8.0+cpu"}
    data = tomllib.loads(env.pyproject_path.read_text())
    assert data["tool"]["comfydock"]["torch"]["release"] == "2.8.0"  # visible in the manifest
    assert "torchaudio==2.8.0" in data["tool"]["uv"]["constraint-dependencies"]
    status = run_cli("status", "--json").json
    assert status["torch_family"]["coherent"] and status["torch_family"]["versions"]["torch"] == "2.8.0+cpu"
    assert "(coherent, imports)" in run_cli("py", "list").out
    assert torch_family.check_installed(env.python, env.venv_dir, "cpu") is None
    assert "not the cu128 build" in torch_family.check_installed(env.python, env.venv_dir, "cu128")
    monkeypatch.setenv("COMFYDOCK_TORCH_BACKEND", "cu128")  # another backend, venv not rebuilt
    refused = run_cli("run", "--no-sync")
    assert refused.code == 1 and "not the cu128 build" in refused.err and "comfydock build" in refused.err
    monkeypatch.delenv("COMFYDOCK_TORCH_BACKEND")

    before = env.pyproject_path.read_bytes()
    refused = run_cli("py", "add", "torch==2.10.0", "torchaudio==2.8.0")
    assert refused.code == 1 and "torch 2.10.0 and torchaudio 2.8.0 are not one PyTorch release" in refused.err
    assert env.pyproject_path.read_bytes() == before and installed(env)["torch"] == "2.8.0+cpu"


def test_backend_is_a_machine_setting_and_build_switches_the_venv(torch_ws, run_cli):
    assert run_cli("config", "torch-backend", "cpu").code == 0
    assert run_cli("create", "a").code == 0
    assert run_cli("py", "add", "torch", "torchvision").code == 0
    env = Environment.open(torch_ws, "a")
    assert installed(env) == {"torch": "2.10.0+cpu", "torchvision": "0.25.0+cpu"}
    assert run_cli("commit", "-m", "torch").code == 0

    assert run_cli("config", "torch-backend", "cu128").code == 0
    result = run_cli("build")
    assert result.code == 0, result.err
    assert installed(env) == {"torch": "2.10.0+cu128", "torchvision": "0.25.0+cu128"}
    data = tomllib.loads(env.pyproject_path.read_text())
    assert set(data["project"]["optional-dependencies"]) == {"torch-cpu", "torch-cu128"}
    assert data["tool"]["uv"]["conflicts"] == [[{"extra": "torch-cpu"}, {"extra": "torch-cu128"}]]
    status = run_cli("status", "--json").json
    assert status["torch_backend"] == "cu128" and status["torch_backend_source"] == "comfydock config torch-backend"

    assert run_cli("config", "torch-backend", "cpu").code == 0
    assert run_cli("build").code == 0
    assert installed(env) == {"torch": "2.10.0+cpu", "torchvision": "0.25.0+cpu"}


def _other_workspace(run_cli, tmp_path, fixture_assets, comfyui_source, torch_indexes, backend):
    """A colleague's workspace: the same sources, another torch backend."""
    ws = tmp_path / "wsB"
    assert run_cli("init", ws, "--models-dir", tmp_path / "wsB-models", "--no-interactive").code == 0
    for key, value in (
        ("comfyui-source", comfyui_source.as_uri()),
        ("find-links", fixture_assets["wheels"]),
        ("python-index", (torch_indexes / "pypi").as_uri()),
        ("torch-index", torch_indexes.as_uri()),
        ("node-map-url", "http://127.0.0.1:9/extension-node-map.json"),
        ("civitai-url", "http://127.0.0.1:9"),
        ("torch-backend", backend),
    ):
        assert run_cli("-w", ws, "config", key, value).code == 0
    return ws


def test_two_workspaces_share_one_cec_and_each_venv_gets_its_variant(
    torch_ws, run_cli, tmp_path, fixture_assets, comfyui_source, torch_indexes
):
    from comfydock.workspace import Workspace

    assert run_cli("config", "torch-backend", "cu128").code == 0
    assert run_cli("create", "a").code == 0
    assert run_cli("py", "add", "torch", "torchaudio").code == 0
    assert run_cli("commit", "-m", "torch").code == 0
    a = Environment.open(torch_ws, "a")
    assert installed(a) == {"torch": "2.8.0+cu128", "torchaudio": "2.8.0+cu128"}
    # the colleague's machine (cpu) gets the same committed .cec/, unedited
    ws_b = _other_workspace(run_cli, tmp_path, fixture_assets, comfyui_source, torch_indexes, "cpu")
    assert run_cli("-w", ws_b, "create", "a").code == 0
    b = Environment.open(Workspace.open(ws_b), "a")
    assert "index" not in tomllib.loads(b.pyproject_path.read_text())["tool"]["uv"]  # nothing machine-specific
    for name in ("pyproject.toml", "uv.lock"):
        (b.cec_dir / name).write_bytes((a.cec_dir / name).read_bytes())
    result = run_cli("-w", ws_b, "build", "-e", "a")
    assert result.code == 0, result.err
    assert installed(b) == {"torch": "2.8.0+cpu", "torchaudio": "2.8.0+cpu"}
    # its new extra is a normal change: committed and pulled back, a's machine keeps its variant
    for name in ("pyproject.toml", "uv.lock"):
        (a.cec_dir / name).write_bytes((b.cec_dir / name).read_bytes())
    assert run_cli("build", "-e", "a").code == 0
    assert installed(a) == {"torch": "2.8.0+cu128", "torchaudio": "2.8.0+cu128"}
    data = tomllib.loads(a.pyproject_path.read_text())
    assert "torch_backend" not in data["tool"]["comfydock"]["environment"]
    assert [i["name"] for i in data["tool"]["uv"]["index"]] == ["pytorch-cu128", "pytorch-cpu"]
    assert set(data["project"]["optional-dependencies"]) == {"torch-cu128", "torch-cpu"}


def test_import_on_another_backend_installs_this_machines_variant(
    torch_ws, run_cli, tmp_path, fixture_assets, comfyui_source, torch_indexes
):
    from comfydock.workspace import Workspace

    assert run_cli("create", "a", "--torch-backend", "cu128").code == 0
    assert run_cli("py", "add", "torch", "torchvision", "torchaudio").code == 0
    assert run_cli("commit", "-m", "torch").code == 0
    assert run_cli("export", "--no-interactive", "--output", tmp_path / "a.tar.gz").code == 0
    ws_b = _other_workspace(run_cli, tmp_path, fixture_assets, comfyui_source, torch_indexes, "pypi")
    result = run_cli("-w", ws_b, "import", tmp_path / "a.tar.gz", "--no-interactive", "--skip-models")
    assert result.code == 0, result.err
    assert "no torch variant for this machine's backend (pypi)" in result.err
    b = Environment.open(Workspace.open(ws_b), "a")
    assert installed(b) == {"torch": "2.8.0", "torchvision": "0.23.0", "torchaudio": "2.8.0"}
    assert run_cli("-w", ws_b, "status", "-e", "a", "--json").json["torch_family"]["coherent"]


def test_unreachable_pytorch_index_names_pypi_backend_and_setting(torch_ws, run_cli):
    assert run_cli("config", "torch-index", "http://127.0.0.1:9/whl").code == 0
    assert run_cli("create", "a", "--torch-backend", "cpu").code == 0
    result = run_cli("py", "add", "torch")
    assert result.code == 1
    assert "PyTorch index is unreachable" in result.err and "--torch-backend pypi" in result.err
    assert "torch-index" in result.err
