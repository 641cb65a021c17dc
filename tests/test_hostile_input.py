"""Hostile inputs run nothing and leave nothing: trees comfydock only reads (an install, a
node's checkout) cannot make git run a program, and a bundle or remote cannot smuggle in a
program, a local file or terminal control sequences. One fixture per hostile input."""

from __future__ import annotations

import os
import stat

import git
import pytest

from comfydock.environment import Environment


def arm(repo_dir, marker):
    """A checkout whose git config names an fsmonitor program and a content filter for every
    file, and whose hooks each write `marker`: any git command that honours them leaves the file
    behind. Its .gitignore or requirements.txt is changed in place (same size, old mtime): 'git status' must
    run the clean filter on it to compare."""
    script = repo_dir.parent / f"{repo_dir.name}-evil.sh"
    script.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\ncat\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    repo = git.Repo(repo_dir)
    tracked = repo.git.ls_files().splitlines()  # before arming: plain git would run it
    with repo.config_writer() as config:
        config.set_value("core", "fsmonitor", str(script))
        config.set_value('filter "ev\'il"', "clean", str(script))
        config.set_value('filter "ev\'il"', "smudge", str(script))
    (repo_dir / ".git" / "info").mkdir(exist_ok=True)
    (repo_dir / ".git" / "info" / "attributes").write_text("* filter=ev'il\n")
    name = next(n for n in (".gitignore", "requirements.txt") if n in tracked)
    (repo_dir / name).write_bytes((repo_dir / name).read_bytes().swapcase())  # same size, same meaning
    os.utime(repo_dir / name, (1e9, 1e9))
    hooks = repo_dir / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("post-checkout", "pre-commit", "post-commit", "post-index-change", "reference-transaction", "pre-auto-gc"):
        (hooks / hook).write_text(script.read_text())
        (hooks / hook).chmod(0o755)
    return script


def test_the_armed_fixture_does_run_under_plain_git(tmp_path, node_repo):
    """The fixture is real: plain git (what comfydock must not do) runs it."""
    marker = tmp_path / "ran"
    arm(node_repo, marker)
    git.Repo(node_repo).git.status()
    assert marker.exists()
    marker.unlink()
    git.Repo(node_repo).git.execute(["git", "-c", "core.fsmonitor=false", "status"])
    assert marker.exists()  # the clean filter alone


@pytest.fixture
def armed_install(tmp_path, comfyui_source, node_repo):
    """An install whose ComfyUI checkout and git node both carry an fsmonitor and hooks."""
    marker = tmp_path / "hook-ran"
    comfy = tmp_path / "old" / "ComfyUI"
    git.Repo.clone_from(comfyui_source.as_uri(), comfy)
    node = comfy / "custom_nodes" / "ComfyUI-Git-Node"
    git.Repo.clone_from(str(node_repo), node)
    (comfy / "README.md").write_text("my local edit\n")  # a dirty tree: git status must look at files
    arm(comfy, marker)
    arm(node, marker)
    return comfy, marker


def test_adopt_runs_no_hook_or_fsmonitor_of_the_install(workspace, armed_install, run_cli):
    comfy, marker = armed_install
    result = run_cli("adopt", comfy, "--name", "adopted", "--torch-backend", "cpu")
    assert result.code == 0, result.err
    assert not marker.exists(), marker.read_text()


def test_status_node_add_and_commit_run_no_hook_of_checkouts_in_the_environment(env, node_repo, tmp_path, run_cli):
    marker = tmp_path / "hook-ran"
    arm(env.comfyui_dir, marker)
    arm(node_repo, marker)  # the source a git node is cloned from
    clone = env.custom_nodes_dir / "Dropped-In"
    git.Repo.clone_from(str(node_repo), clone).git.checkout("v1.0")  # dropped in by hand: status reads it as drift
    arm(clone, marker)
    assert run_cli("status").code == 0
    result = run_cli("node", "add", node_repo.as_uri() + "@v1.0", "--name", "git-node")
    assert result.code == 0, result.err
    dev = run_cli("node", "add", "--dev", "Dropped-In")
    assert dev.code == 0, dev.err
    committed = run_cli("commit", "-m", "with hostile checkouts")
    assert committed.code == 0, committed.err
    assert run_cli("status").code == 0
    assert not marker.exists(), marker.read_text()


# --- python_version: a version, never a path uv would run ------------------------------------------


@pytest.fixture
def evil_python(tmp_path):
    """An executable a hostile file names as its "Python"; running it leaves `ran`."""
    ran = tmp_path / "evil-python-ran"
    evil = tmp_path / "x" / "evil"
    evil.parent.mkdir()
    evil.write_text(f"#!/bin/sh\ntouch {ran}\nexit 1\n")
    evil.chmod(0o755)
    return evil, ran


def _pushed(env, run_cli, tmp_path):
    import subprocess

    remote = tmp_path / "shared" / "env.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    assert run_cli("remote", "add", "origin", remote.as_uri()).code == 0
    assert run_cli("push").code == 0
    return remote


def _raw_push(remote, work, change):
    """Someone else's commit, made with plain git on a clone of the remote."""
    import subprocess

    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True)
    change(work)
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "x"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "main"], check=True)


@pytest.mark.parametrize("where", [".python-version", "pyproject.toml"])
def test_pull_and_create_from_refuse_a_python_that_is_a_path(env, run_cli, tmp_path, evil_python, where):
    evil, ran = evil_python
    remote = _pushed(env, run_cli, tmp_path)

    def change(work):
        if where == ".python-version":
            (work / ".python-version").write_text(f"{evil}\n")
        else:
            text = (work / "pyproject.toml").read_text()
            (work / "pyproject.toml").write_text(text.replace('python_version = "3.11"', f'python_version = "{evil}"'))

    _raw_push(remote, tmp_path / "raw", change)
    before = (env.cec_dir / where).read_bytes()
    pulled = run_cli("pull")
    assert pulled.code == 1 and "is not a Python version" in pulled.err and str(evil) in pulled.err, pulled.err
    assert (env.cec_dir / where).read_bytes() == before
    created = run_cli("create", "copy", "--from", remote.as_uri())
    assert created.code == 1 and "is not a Python version" in created.err, created.err
    assert not (env.workspace.environments_dir / "copy").exists()
    assert not ran.exists()


def test_import_refuses_a_bundle_whose_python_is_a_path(workspace, run_cli, tmp_path, evil_python):
    from comfydock.bundle.archive import write_bundle

    evil, ran = evil_python
    pyproject = (
        '[project]\nname = "comfydock-env-x"\nversion = "0.1.0"\n'
        f'[tool.comfydock.environment]\npython_version = "{evil}"\ncomfyui_commit = "{"a" * 40}"\n'
    )
    bundle = tmp_path / "evil.tar.gz"
    write_bundle(
        {"comfydock.lock": b"lock_version = 1\n", "pyproject.toml": pyproject.encode(), "uv.lock": b"version = 1\n"}, bundle
    )
    result = run_cli("import", bundle, "--no-interactive")
    assert result.code == 1 and "is not a Python version" in result.err, result.err
    assert not (workspace.environments_dir / "x").exists()
    assert not any((workspace.root / "comfydock_cache" / "imports").iterdir())
    assert not ran.exists()


# --- bundle model URLs: http(s) only ------------------------------------------------------------


def test_import_takes_nothing_from_a_bundle_model_url_pointing_at_a_local_file(workspace, run_cli, tmp_path):
    """A lock naming a local file with its real hashes would pass the download's verification."""
    import hashlib

    from blake3 import blake3

    from comfydock.bundle.archive import write_bundle

    secret = tmp_path / "secret.txt"  # /etc/passwd, as far as the attacker is concerned
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    data = secret.read_bytes()
    lock = (
        f'lock_version = 1\n[comfyui]\ncommit = "{"a" * 40}"\n[[model]]\nhash = "0123456789abcdef"\nname = "passwd"\n'
        f'path = "checkpoints/passwd"\nurl = "{secret.as_uri()}"\nsha256 = "{hashlib.sha256(data).hexdigest()}"\n'
        f'blake3 = "{blake3(data).hexdigest()}"\nsize = {len(data)}\n'
    )
    bundle = tmp_path / "evil.tar.gz"
    pyproject = b'[project]\nname = "comfydock-env-x"\nversion = "0.1.0"\n'
    write_bundle({"comfydock.lock": lock.encode(), "pyproject.toml": pyproject, "uv.lock": b"version = 1\n"}, bundle)
    result = run_cli("import", bundle, "--no-interactive")
    assert result.code == 1 and "scheme 'file'" in result.err and "--models-from DIR" in result.err, result.err
    assert not list(workspace.models_dir.rglob("passwd*"))
    assert not (workspace.environments_dir / "x").exists()


# --- workflow links are never followed ----------------------------------------------------------

SECRET = b'{"private": "not a workflow of this environment"}\n'


def _plant_links(workflows_dir, tmp_path):
    """A workflow that is a link to a file outside, and a folder of workflows that is a link."""
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.json").write_bytes(SECRET)
    (outside / "folder" / "inner.json").write_bytes(SECRET)
    workflows_dir.mkdir(parents=True, exist_ok=True)
    (workflows_dir / "stolen.json").symlink_to(outside / "secret.json")
    (workflows_dir / "linked").symlink_to(outside / "folder", target_is_directory=True)


def _holds_secret(root) -> list:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and SECRET in p.read_bytes()]


def test_commit_skips_workflow_links_and_names_them(env, run_cli, tmp_path):
    _plant_links(env.workflows_dir, tmp_path)
    result = run_cli("commit", "-m", "links", "--no-interactive")
    assert result.code == 0, result.err
    assert "stolen.json is a symbolic link" in result.err and "linked/ is a symbolic link" in result.err
    assert _holds_secret(env.cec_dir) == []
    assert "stolen" not in [w["name"] for w in run_cli("workflow", "list", "--json").json]


def test_export_bundles_no_workflow_link_and_names_it(env, run_cli, tmp_path):
    import tarfile

    assert run_cli("commit", "-m", "before", "--no-interactive").code == 0
    _plant_links(env.workflows_dir, tmp_path)
    out = tmp_path / "out.tar.gz"
    result = run_cli("export", "--output", out, "--no-interactive")
    assert result.code == 0, result.err
    assert "stolen.json is a symbolic link" in result.err
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert not any("stolen" in n or "inner" in n for n in names), names
        assert all(SECRET not in tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())


def test_adopt_copies_no_workflow_or_user_file_link_and_names_them(workspace, comfyui_source, run_cli, tmp_path):
    comfy = tmp_path / "old" / "ComfyUI"
    git.Repo.clone_from(comfyui_source.as_uri(), comfy)
    _plant_links(comfy / "user" / "default" / "workflows", tmp_path)
    (comfy / "user" / "default" / "comfy.settings.json").symlink_to(tmp_path / "outside" / "secret.json")
    result = run_cli("adopt", comfy, "--name", "adopted", "--torch-backend", "cpu", "--json")
    assert result.code == 0, result.err
    assert result.json["skipped_links"] == [
        "user/default/comfy.settings.json",
        "user/default/workflows/linked/",
        "user/default/workflows/stolen.json",
    ]
    env = Environment.open(workspace, "adopted")
    assert _holds_secret(env.root) == []


# --- terminal output: no control sequence from a file reaches the terminal ------------------------

ESC_WORKFLOW = {
    "last_node_id": 2,
    "last_link_id": 0,
    "nodes": [
        {"id": 1, "type": "Evil\x1b[31mNode\x07", "pos": [0, 0], "size": [1, 1], "widgets_values": []},
        {
            "id": 2,
            "type": "CheckpointLoaderSimple",
            "pos": [0, 0],
            "size": [1, 1],
            "widgets_values": ["red\x1b[31m\u202eckpt.safetensors"],
        },
    ],
    "links": [],
    "version": 0.4,
}


def test_no_escape_sequence_from_a_workflow_or_folder_name_reaches_the_terminal(env, run_cli):
    import json

    (env.workflows_dir / "esc\x1b[2J.json").write_text(json.dumps(ESC_WORKFLOW))
    (env.custom_nodes_dir / "evil\x1b]0;title\x07node").mkdir()
    (env.custom_nodes_dir / "evil\x1b]0;title\x07node" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    outputs = {
        "status": run_cli("status"),
        "workflow list": run_cli("workflow", "list"),
        "workflow show": run_cli("workflow", "show", "esc\x1b[2J"),
        "node list": run_cli("node", "list"),
        "commit": run_cli("commit", "-m", "esc", "--no-interactive"),
        "status after": run_cli("status"),
    }
    for what, result in outputs.items():
        text = result.out + result.err
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, (what, text)
    assert "Evil\\x1b[31mNode" in outputs["workflow show"].out + outputs["workflow show"].err
    assert "evil\\x1b]0;title\\x07node" in outputs["status"].out + outputs["status"].err


def test_printable_escapes_controls_and_keeps_unicode():
    from comfydock.cli.text import escape, printable

    assert printable("a\x1b[31mb\x07\x9b\u202ec") == "a\\x1b[31mb\\x07\\x9b\\u202ec"
    assert printable("line\nnext") == "line\\x0anext" and printable("line\nnext", keep_newlines=True) == "line\nnext"
    assert printable("Grüße 東京 👩‍💻") == "Grüße 東京 👩‍💻"
    assert escape("[red]x\x1b") == "\\[red]x\\x1b"
