"""Which PyTorch build this machine uses: the backend ('cpu', 'cu128', 'rocm6.4', ..., or PyPI's
own build), detected or set per machine and per environment, never shared through .cec/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from comfydock.errors import UsageError
from comfydock.pep440 import parse_version

TORCH_BACKENDS = (
    "cpu",
    "cu118",
    "cu121",
    "cu124",
    "cu126",
    "cu128",
    "cu129",
    "cu130",
    "rocm6.2",
    "rocm6.3",
    "rocm6.4",
    "xpu",
)
# Minimum NVIDIA driver for each CUDA build (CUDA toolkit release notes), newest first.
_CUDA_BY_DRIVER = ((580, "cu130"), (570, "cu128"), (560, "cu126"), (550, "cu124"), (530, "cu121"), (520, "cu118"))


_detected: list[str] = []


def detect_torch_backend() -> str:
    """'auto': NVIDIA driver -> the newest CUDA build it supports; ROCm -> its ROCm build;
    Apple silicon -> the PyPI build (it has MPS); else the CPU build. Asked once per process."""
    if not _detected:
        _detected.append(_detect())
    return _detected[0]


def _detect() -> str:
    import platform

    if platform.system() == "Darwin":
        return "pypi"  # PyPI's macOS wheels are the MPS (Apple silicon) build
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            major = int(out.strip().splitlines()[0].split(".")[0])
            for min_driver, backend in _CUDA_BY_DRIVER:
                if major >= min_driver:
                    return backend
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            pass
    rocm = rocm_backend(Path(os.environ.get("ROCM_PATH") or "/opt/rocm"))
    return rocm or "cpu"


def pypi_without_gpu_note(backend: str | None) -> str | None:
    """A word before a long download: PyPI's Linux torch is a CUDA build (~3 GB of nvidia-* wheels
    come with it) even where no GPU is found. None when it does not apply (backend None = pypi)."""
    import platform

    if backend is not None or platform.system() != "Linux" or detect_torch_backend() != "cpu":
        return None
    return (
        "the pypi torch backend on Linux is PyPI's CUDA build: it downloads about 3 GB of nvidia-* wheels, "
        "and no GPU was found here; '--torch-backend cpu' (or 'comfydock config torch-backend cpu') installs "
        "the CPU build instead"
    )


def rocm_backend(rocm_root: Path) -> str | None:
    """The newest PyTorch ROCm build not newer than the installed ROCm (from .info/version)."""
    try:
        text = (rocm_root / ".info" / "version").read_text(encoding="utf-8").strip()
        installed = parse_version(re.match(r"\d+\.\d+", text).group())
    except (OSError, AttributeError):
        return None
    builds = sorted((parse_version(b[4:]), b) for b in TORCH_BACKENDS if b.startswith("rocm"))
    usable = [b for v, b in builds if v <= installed]
    return usable[-1] if usable else None


def resolve_torch_backend(requested: str) -> str | None:
    """Map the --torch-backend value to a concrete PyTorch index name (None: plain PyPI)."""
    if requested == "auto":
        detected = detect_torch_backend()
        return None if detected == "pypi" else detected
    if requested in {"pypi", "none"}:
        return None
    if requested not in TORCH_BACKENDS:
        raise UsageError(
            f"unknown torch backend {requested!r}",
            hint="use auto, pypi, or one of: " + ", ".join(TORCH_BACKENDS),
        )
    return requested


def requested_torch_backend(env) -> tuple[str, str]:
    """This machine's torch backend for `env` and where it was set: $COMFYDOCK_TORCH_BACKEND,
    the environment's own choice ('create --torch-backend', kept in .comfydock/, not shared),
    'comfydock config torch-backend', a legacy manifest's backend, else 'auto'."""
    from comfydock import torch_family

    if os.environ.get("COMFYDOCK_TORCH_BACKEND"):
        return os.environ["COMFYDOCK_TORCH_BACKEND"].strip(), "$COMFYDOCK_TORCH_BACKEND"
    try:
        own = (env.state_dir / "torch-backend").read_text(encoding="utf-8").strip()
    except OSError:
        own = ""
    if own:
        return own, "this environment's own choice (made by create, adopt or import)"
    configured = env.workspace.config.get("torch_backend")
    if configured:
        return str(configured), "comfydock config torch-backend"
    legacy = torch_family.legacy_backend(env.manifest_data())
    if legacy:
        return legacy, "the manifest (made before per-machine backends)"
    return "auto", "default"


def set_environment_torch_backend(env, requested: str | None) -> None:
    """Remember `requested` as this environment's own backend on this machine (None: forget)."""
    from comfydock.fsutil import atomic_write_text

    path = env.state_dir / "torch-backend"
    if requested is None:
        path.unlink(missing_ok=True)
        return
    resolve_torch_backend(requested)  # refuse an unknown name before it is stored
    env.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, requested + "\n")


def adopt_machine_backend(env, torch_backend: str | None, source: str) -> str | None:
    """A received manifest (a bundle, a remote's history) meets this machine's torch backend:
    never the sender's. Returns a warning when the manifest had no variant for it (it is added as
    its own extra and uv.lock re-resolved, an uncommitted change)."""
    from comfydock import torch_family

    if torch_backend is not None:
        set_environment_torch_backend(env, torch_backend)
    if torch_family.backend_ready(env.manifest_data(), env.torch_backend()):
        return None
    return (
        f"the {source} has no torch variant for this machine's backend ({env.torch_backend() or 'pypi'}): "
        "it is added and uv.lock re-resolved"
    )
