"""The torch family proven to import: one probe after a sync, recorded per uv.lock.

Importing torch costs 25-90 s on a small machine, so it happens once, after a sync that
installed or changed the family (sync_venv), and the result is kept in
`.comfydock/torch-import.json` (not versioned), keyed by the uv.lock's SHA256, this machine's
torch extra and backend, and the installed distribution versions. `run` and `status` read that
record (a stat and a hash of uv.lock, a listing of site-packages' torch*.dist-info) and import
nothing. A sync whose lock changed something else carries a good result over without an import
when the family and everything it depends on in uv.lock (its closure) are the same.
"""

from __future__ import annotations

import hashlib
import json
import time

from comfydock import torch_family
from comfydock.fsutil import atomic_write_json, read_json_state
from comfydock.hashing import file_digest

_KEEP = 8  # records kept: a rollback to a recent lock finds its result


def record_path(env):
    return env.state_dir / "torch-import.json"


def _key(env) -> dict:
    try:
        lock = file_digest(env.uv_lock_path) if env.uv_lock_path.exists() else None
    except OSError:
        lock = None
    return {"uv_lock_sha256": lock, "torch_extra": env.torch_extra(), "torch_backend": env.torch_backend() or "pypi"}


def _records(env) -> list[dict]:
    data = read_json_state(record_path(env)) or {}
    found = data.get("records") if isinstance(data, dict) else None
    return [r for r in found or [] if isinstance(r, dict) and isinstance(r.get("versions"), dict)]


def _store(env, record: dict) -> dict:
    key = {k: record[k] for k in ("uv_lock_sha256", "torch_extra", "torch_backend")}
    kept = [r for r in _records(env) if {k: r.get(k) for k in key} != key]
    env.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record_path(env), {"records": [record, *kept][:_KEEP]})
    return record


def current(env) -> dict | None:
    """The record for this uv.lock, extra and backend whose versions are the ones installed
    (None: not checked yet, or the venv changed since). Imports nothing."""
    key = _key(env)
    installed = torch_family.installed_versions(env.venv_dir)
    for record in _records(env):
        if all(record.get(k) == v for k, v in key.items()) and record.get("versions") == installed:
            return record
    return None


def probe(env, fingerprint: str | None = None) -> dict:
    """Import the installed members now (in the venv's Python) and record the result."""
    versions, error = torch_family.probe_installed(env.python, env.venv_dir)
    backend = env.torch_backend()
    record = _key(env) | {
        "versions": torch_family.installed_versions(env.venv_dir),
        "import_error": error,
        "problem": error or torch_family.build_problem(versions, backend),
        "fingerprint": fingerprint,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return _store(env, record)


def after_sync(env) -> dict:
    """The record for what was just synced: a good one for this lock or for the same family
    closure (then copied to this lock, no import), else a probe. A failure is always probed
    again: a sync may have fixed it."""
    found = current(env)
    if found is not None and not found.get("problem"):
        return found
    installed = torch_family.installed_versions(env.venv_dir)
    fingerprint = family_fingerprint(env.uv_lock_text(), installed)
    key = _key(env)
    for record in _records(env):
        same_machine = all(record.get(k) == key[k] for k in ("torch_extra", "torch_backend"))
        if (
            same_machine
            and not record.get("problem")
            and record.get("fingerprint") == fingerprint
            and record.get("versions") == installed
        ):
            return _store(env, record | key | {"carried_over": True})
    return probe(env, fingerprint)


def ensure(env) -> dict:
    """The record for what is installed now: read, or probed when there is none (`run`)."""
    return current(env) or probe(env, family_fingerprint(env.uv_lock_text(), torch_family.installed_versions(env.venv_dir)))


def synced_and_checked(env) -> bool:
    """sync_venv's own check: the venv's family (if any) has a good record for this lock."""
    if not torch_family.installed_versions(env.venv_dir):
        return True
    found = current(env)
    return found is not None and not found.get("problem")


def family_fingerprint(uv_lock_text: str | None, installed: dict[str, str]) -> str:
    """A digest of the installed family and every package of uv.lock it depends on (by name,
    all locked versions): what an import of torch can be affected by."""
    from comfydock import manifest

    by_name: dict[str, list[dict]] = {}
    for package in manifest.uv_lock_packages(uv_lock_text):
        by_name.setdefault(str(package.get("name")), []).append(package)
    seen: set[str] = set()
    todo = list(installed)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for package in by_name.get(name, []):
            for dep in package.get("dependencies") or []:
                if isinstance(dep, dict) and dep.get("name"):
                    todo.append(str(dep["name"]))
    closure = sorted((n, str(p.get("version"))) for n in seen for p in by_name.get(n, []))
    text = json.dumps({"installed": installed, "closure": closure}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def family_state(env) -> tuple[bool | None, str | None]:
    """(imports: True / False / None for not checked yet, the import problem) for status."""
    from comfydock.errors import ComfydockError

    try:
        found = current(env)
    except ComfydockError:  # an unknown backend name in $COMFYDOCK_TORCH_BACKEND: status shows that error
        return None, None
    if found is None:
        return None, None
    return (not found.get("problem")), found.get("problem")
