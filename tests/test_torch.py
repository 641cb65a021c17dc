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


# --- exact pairing, the import probe and its record (issue 24) ----------------------------------
# A fake PyPI like today's: torch's Linux builds say '+cu130' in __version__ (none in their
# metadata), torch 2.12.0 has no torchaudio, torchaudio 2.11.1 is a patch newer than any torch 2.11
# and fails against torch 2.11.0 the way the real one does, and torchaudio 2.10.0 is a broken build
# that never imports.

_AUDIO_INIT = """import torch
__version__ = {version!r}
if torch.__version__.split("+")[0] != {own!r}:
    raise OSError("libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace")
"""


@pytest.fixture(scope="session")
def pairing_index(tmp_path_factory):
    base = tmp_path_factory.mktemp("pairing-index")
    wheels = base / "wheels"
    for minor in (9, 10, 11, 12):
        make_wheel(wheels, "torch", f"2.{minor}.0", init=f"__version__ = '2.{minor}.0+cu130'\n")
        make_wheel(wheels, "torchvision", f"0.{minor + 15}.0")
    for version, own in (("2.9.0", "2.9.0"), ("2.10.0", "2.10.99"), ("2.11.0", "2.11.0"), ("2.11.1", "2.11.1")):
        make_wheel(wheels, "torchaudio", version, init=_AUDIO_INIT.format(version=version, own=own))
    _simple_index(wheels, base / "simple")
    return base / "simple"


@pytest.fixture
def pypi_env(workspace_path, pairing_index, run_cli):
    """An environment 'a' on the pypi backend, PyPI being the fake index above."""
    from comfydock.workspace import Workspace

    assert run_cli("config", "no-index", "--unset").code == 0
    assert run_cli("config", "python-index", pairing_index.as_uri()).code == 0
    assert run_cli("create", "a", "--torch-backend", "pypi").code == 0
    return Environment.open(Workspace.open(workspace_path), "a")


def test_release_pairs_are_exact_with_the_torch_2_0_exceptions():
    assert torch_family.pairing("2.9.1") == {"torch": "2.9.1", "torchvision": "0.24.1", "torchaudio": "2.9.1"}
    assert torch_family.pairing("2.0.1") == {"torch": "2.0.1", "torchvision": "0.15.2", "torchaudio": "2.0.2"}
    assert torch_family.problem({"torch": "2.0.0", "torchvision": "0.15.1", "torchaudio": "2.0.1"}) is None
    wrong = torch_family.problem({"torch": "2.11.0", "torchaudio": "2.11.1"})
    assert wrong == "torch 2.11.0 and torchaudio 2.11.1 are not one PyTorch release"
    # the build is read from the distribution's version: PyPI's own has no tag, a PyTorch index's has one
    assert torch_family.build_problem({"torch": "2.11.0", "torchaudio": "2.11.0"}, None) is None
    assert "not the pypi build" in torch_family.build_problem({"torch": "2.11.0+cpu", "torchaudio": "2.11.0+cpu"}, None)
    assert "not the cu130 build" in torch_family.build_problem({"torch": "2.11.0", "torchaudio": "2.11.0"}, "cu130")


def test_lock_picks_the_exact_pairing_when_torchaudio_has_a_newer_patch(pypi_env, run_cli):
    env = pypi_env
    result = run_cli("py", "add", "torch", "torchvision", "torchaudio")
    assert result.code == 0, result.err
    # uv alone locks torch 2.12.0 with torchaudio 2.11.1; release 2.11.1 has no torch, so every member
    # is bounded to it, and then torchaudio 2.11.1 beside torch 2.11.0 (which does not import) gives 2.11.0
    assert installed(env) == {"torch": "2.11.0", "torchvision": "0.26.0", "torchaudio": "2.11.0"}
    data = tomllib.loads(env.pyproject_path.read_text())
    assert data["tool"]["comfydock"]["torch"]["release"] == "2.11.0"
    assert {"torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0"} <= set(data["tool"]["uv"]["constraint-dependencies"])
    # torch says 2.11.0+cu130 (PyPI's Linux build): the pypi backend accepts it, and run starts
    assert run_cli("run", "--no-sync").code == 0
    assert run_cli("status", "--json").json["torch_family"]["coherent"]

    before = env.pyproject_path.read_bytes()
    refused = run_cli("py", "add", "torchaudio==2.11.1")  # no torch 2.11.1 exists: no pairing can be locked
    # (uv keeps the locked torch 2.11.0 and torchvision 0.26.0 beside the pin)
    assert refused.code == 1
    assert "torch 2.11.0, torchvision 0.26.0 and torchaudio 2.11.1 are not one PyTorch release" in refused.err
    assert "change the pins (torchaudio==2.11.1)" in refused.err
    assert env.pyproject_path.read_bytes() == before and installed(env)["torchaudio"] == "2.11.0"


def test_older_minor_release_form_is_upgraded_to_the_exact_one_on_the_next_lock(pypi_env, run_cli):
    env = pypi_env
    assert run_cli("py", "add", "torch", "torchaudio").code == 0
    text = env.pyproject_path.read_text()
    old = text.replace('release = "2.11.0"', 'release = "2.11"')
    old = old.replace('"torch==2.11.0"', '"torch==2.11.*"').replace('"torchvision==0.26.0"', '"torchvision==0.26.*"')
    old = old.replace('"torchaudio==2.11.0"', '"torchaudio==2.11.*"')
    env.pyproject_path.write_text(old)
    assert "kept to release 2.11\n" in run_cli("py", "list").out  # the older form still reads
    assert run_cli("build").code == 0
    data = tomllib.loads(env.pyproject_path.read_text())
    assert data["tool"]["comfydock"]["torch"]["release"] == "2.11.0"
    assert "torchaudio==2.11.*" not in data["tool"]["uv"]["constraint-dependencies"]
    assert "torchaudio==2.11.0" in data["tool"]["uv"]["constraint-dependencies"]


def test_run_imports_torch_only_when_the_family_changed_and_status_says_unchecked_until_then(pypi_env, run_cli):
    import shlex

    from comfydock import torch_probe

    env = pypi_env
    assert run_cli("py", "add", "torch", "torchaudio").code == 0
    record = torch_probe.record_path(env)
    stamp = record.stat().st_mtime_ns
    assert run_cli("run").code == 0 and run_cli("run", "--no-sync").code == 0
    assert record.stat().st_mtime_ns == stamp  # nothing changed: no probe, nothing recorded
    assert run_cli("py", "add", "cdfix-beta").code == 0  # another package: the family's result carries over
    assert torch_probe.current(env)["carried_over"]

    record.unlink()  # e.g. an environment synced before this record existed
    line = next(ln for ln in run_cli("status").out.splitlines() if ln.startswith("Torch family"))
    assert "coherent" not in line and "not checked yet" in line
    assert not run_cli("status", "--json").json["torch_family"]["coherent"]
    hint = line.split("run '", 1)[1].split("'", 1)[0]
    assert run_cli(*shlex.split(hint)[1:]).code == 0  # the hint, as printed
    after = next(ln for ln in run_cli("status").out.splitlines() if ln.startswith("Torch family"))
    assert "(coherent, imports)" in after and record.is_file()


def test_family_that_does_not_import_is_refused_and_the_next_release_chosen(pypi_env, run_cli):
    env = pypi_env
    # only torch 2.10.0 allowed, whose torchaudio build never imports: nothing is left, nothing changes
    before = env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()
    refused = run_cli("py", "add", "torch==2.10.0", "torchvision", "torchaudio")
    assert refused.code == 1
    assert "no importable torch family: torch 2.10.0, torchvision 0.25.0 and torchaudio 2.10.0 do not import" in refused.err
    assert "undefined symbol" in refused.err
    assert (env.pyproject_path.read_bytes(), env.uv_lock_path.read_bytes()) == before and installed(env) == {}

    # torch < 2.11: the newest pairing is 2.10.0 again; it is refused and 2.9.0 chosen
    result = run_cli("py", "add", "torch<2.11", "torchvision", "torchaudio")
    assert result.code == 0, result.err
    assert "refused torch release 2.10.0" in result.err and "undefined symbol" in result.err
    assert "chose torch 2.9.0, torchvision 0.24.0 and torchaudio 2.9.0" in result.err
    assert installed(env) == {"torch": "2.9.0", "torchvision": "0.24.0", "torchaudio": "2.9.0"}
    assert venv_imports(env, "torchaudio")
    data = tomllib.loads(env.pyproject_path.read_text())
    assert data["tool"]["comfydock"]["torch"] == {"release": "2.9.0", "refused": ["2.10.0"]}
    assert "torchaudio!=2.10.0" in data["tool"]["uv"]["constraint-dependencies"]
    status = run_cli("status", "--json").json
    assert status["torch_family"]["coherent"] and status["pending_tasks"] == []


def venv_imports(env, module) -> bool:
    import subprocess

    return subprocess.run([str(env.python), "-c", f"import {module}"], capture_output=True).returncode == 0
