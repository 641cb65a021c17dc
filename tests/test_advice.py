"""Advice that must not destroy work, and manifests that arrive from elsewhere (issue 22 items 6-8):
a damaged history is not 'half-made', delete names what it would lose, a manifest's node
directories are checked wherever it comes from, a bundle's uv.lock must match its pyproject."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from test_robustness import assert_one_line_error

WORKFLOW = {"last_node_id": 1, "nodes": [{"id": 1, "type": "KSampler", "widgets_values": []}], "links": []}


def _dev_node_and_workflow(env, run_cli) -> None:
    dev = env.custom_nodes_dir / "my-dev-node"
    dev.mkdir(parents=True)
    (dev / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    assert run_cli("node", "add", "my-dev-node", "--dev").code == 0
    assert run_cli("commit", "-m", "dev node").code == 0
    env.workflows_dir.mkdir(parents=True, exist_ok=True)
    (env.workflows_dir / "unsaved.json").write_text(json.dumps(WORKFLOW))


def test_damaged_history_is_its_own_state_and_following_its_hint_repairs_it(env, run_cli):
    _dev_node_and_workflow(env, run_cli)
    head = env.cec_dir / ".git" / "HEAD"
    head.write_bytes(b"\x00garbage\n")

    listed = {r["name"]: r for r in run_cli("list", "--json").json}
    assert listed["main"]["state"] == "history-damaged"
    assert "half-made" not in run_cli("list").out
    result = run_cli("status", "-e", "main")
    assert_one_line_error(result, 1, "history", "HEAD", "ref: refs/heads/main")
    assert "half-made" not in result.err and "delete" not in result.err
    assert_one_line_error(run_cli("create", "main"), 1, "already exists")

    head.write_text("ref: refs/heads/main\n")  # what the hint says
    assert run_cli("status", "-e", "main").code == 0
    assert (env.custom_nodes_dir / "my-dev-node").is_dir() and (env.workflows_dir / "unsaved.json").is_file()


def test_a_lost_branch_ref_names_the_commit_to_put_back(env, run_cli):
    refs = env.cec_dir / ".git" / "refs" / "heads" / "main"
    refs.unlink()
    (env.cec_dir / ".git" / "packed-refs").unlink(missing_ok=True)
    result = run_cli("status", "-e", "main")
    assert_one_line_error(result, 1, "history", "update-ref refs/heads/main")
    command = next(ln for ln in result.err.splitlines() if ln.startswith("hint:")).split("'")[1]
    assert command.startswith("git -C ")
    subprocess.run(command, shell=True, check=True)  # follow the hint as printed
    assert run_cli("status", "-e", "main").code == 0


def test_delete_names_development_nodes_and_uncommitted_workflows_before_removing_them(env, run_cli):
    _dev_node_and_workflow(env, run_cli)
    (env.cec_dir / ".git" / "HEAD").write_bytes(b"garbage\n")  # the case whose advice used to be 'delete --yes'

    result = run_cli("delete", "main")  # not a terminal: refused
    assert_one_line_error(result, 1, "my-dev-node", "unsaved")
    assert env.root.is_dir() and (env.custom_nodes_dir / "my-dev-node").is_dir()

    result = run_cli("delete", "main", "--yes")
    assert result.code == 0, result.err
    assert "my-dev-node" in result.err and "unsaved" in result.err  # said what went with it
    assert not env.root.exists()


def test_delete_of_a_healthy_environment_names_only_what_no_version_holds(env, run_cli):
    _dev_node_and_workflow(env, run_cli)
    assert run_cli("commit", "-m", "workflow").code == 0
    (env.workflows_dir / "later.json").write_text(json.dumps(WORKFLOW))
    result = run_cli("delete", "main")
    assert_one_line_error(result, 1, "my-dev-node", "later")
    assert "unsaved" not in result.err  # committed: its version holds it


def test_a_history_with_no_commit_left_names_its_remote_to_copy_from(env, run_cli, tmp_path):
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    assert run_cli("remote", "add", "origin", remote.as_uri()).code == 0
    assert run_cli("push").code == 0
    git_dir = env.cec_dir / ".git"
    for damaged in (git_dir / "refs" / "heads", git_dir / "logs"):
        subprocess.run(["rm", "-rf", str(damaged)], check=True)
    (git_dir / "packed-refs").unlink(missing_ok=True)
    result = run_cli("status", "-e", "main")
    assert_one_line_error(result, 1, "history", f"--from {remote.as_uri()}")
    assert run_cli("create", "copy", "--from", remote.as_uri(), "--torch-backend", "cpu").code == 0  # the hint, followed
    assert run_cli("status", "-e", "copy").code == 0
    assert env.root.is_dir()  # the damaged one is left as it was


# --- item 7: two nodes, one directory ----------------------------------------------------------


def _hostile_commit(clone, env_name_dir) -> str:
    """A commit whose manifest gives node 'evil' the directory of node 'good-node'."""
    import tomlkit

    path = clone / "pyproject.toml"
    doc = tomlkit.parse(path.read_text())
    nodes = doc["tool"]["comfydock"]["nodes"]
    evil = tomlkit.table()
    for key, value in nodes["good-node"].items():
        evil[key] = value
    evil["directory"] = "good-node"
    nodes["evil"] = evil
    path.write_text(tomlkit.dumps(doc))
    git = ["git", "-C", str(clone), "-c", "user.name=x", "-c", "user.email=x@x"]
    subprocess.run([*git, "commit", "-qam", "two nodes, one directory"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def _with_good_node(env, run_cli):
    dev = env.custom_nodes_dir / "good-node"
    dev.mkdir(parents=True)
    (dev / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    assert run_cli("node", "add", "good-node", "--dev").code == 0
    assert run_cli("commit", "-m", "good node").code == 0
    return dev


def test_pull_and_create_from_refuse_a_manifest_giving_two_nodes_one_directory(env, workspace, run_cli, tmp_path):
    dev = _with_good_node(env, run_cli)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    assert run_cli("remote", "add", "origin", remote.as_uri()).code == 0
    assert run_cli("push").code == 0
    clone = tmp_path / "attacker"
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True)
    _hostile_commit(clone, env)
    subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", "HEAD:main"], check=True)
    before = env.pyproject_path.read_bytes()

    result = run_cli("pull")
    assert_one_line_error(result, 1, "evil", "good-node", "refused")
    assert env.pyproject_path.read_bytes() == before and dev.is_dir()

    result = run_cli("create", "copy", "--from", remote.as_uri(), "--torch-backend", "cpu")
    assert_one_line_error(result, 1, "evil", "good-node", "refused")
    assert not (workspace.environments_dir / "copy").exists()


def test_rollback_refuses_a_version_giving_two_nodes_one_directory(env, run_cli):
    dev = _with_good_node(env, run_cli)
    hostile = _hostile_commit(env.cec_dir, env)  # made by hand in .cec (or fetched long ago)
    subprocess.run(["git", "-C", str(env.cec_dir), "reset", "-q", "--hard", "HEAD~1"], check=True)
    before = env.pyproject_path.read_bytes()
    result = run_cli("rollback", hostile, "--yes")
    assert_one_line_error(result, 1, "evil", "good-node")
    assert env.pyproject_path.read_bytes() == before and dev.is_dir()
    assert run_cli("node", "remove", "good-node").code == 0  # the environment works as before
    assert (env.custom_nodes_dir / "good-node.disabled").is_dir() or dev.is_dir()


def test_a_bundle_lock_and_a_manifest_share_one_check_of_node_directories():
    import pytest
    import tomlkit

    from comfydock.bundle.lockfile import loads
    from comfydock.errors import ComfydockError, CorruptFile
    from comfydock.nodes.spec import tracked_nodes

    nodes = '[[node]]\nid = "good-node"\nmethod = "development"\n[[node]]\nid = "evil"\nmethod = "development"\ndirectory = "Good-Node"\n'
    with pytest.raises(CorruptFile, match=r"node\[1\]\.directory repeats node\[0\]\.directory"):
        loads("lock_version = 1\n" + nodes)
    doc = tomlkit.parse(
        '[tool.comfydock.nodes.good-node]\nsource = "development"\n'
        '[tool.comfydock.nodes.evil]\nsource = "development"\ndirectory = "Good-Node"\n'
    )
    with pytest.raises(ComfydockError, match="'good-node' and 'evil' one directory"):
        tracked_nodes(doc)


# --- item 8: a bundle's uv.lock must agree with its pyproject.toml -------------------------------


def _bundle_with(tmp_path, run_cli, change_lock) -> Path:
    import re
    import tarfile

    from comfydock.bundle.archive import write_bundle

    made = tmp_path / "good.tar.gz"
    result = run_cli("export", "--output", made, "--no-interactive")
    assert result.code == 0, result.err
    with tarfile.open(made) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    text = members["uv.lock"].decode()
    members["uv.lock"] = change_lock(text, re).encode()
    assert members["uv.lock"].decode() != text
    out = tmp_path / "edited.tar.gz"
    write_bundle(members, out)
    return out


def _alpha_at_0_9(text, re):
    """cdfix-alpha locked at 0.9 (its real wheel), while ComfyUI's requirements ask for >=1.0."""
    return re.sub(
        r'(name = "cdfix-alpha"\nversion = ")[^"]+(".*?\n\n)',
        lambda m: m.group(1) + "0.9" + re.sub(r"cdfix_alpha-[0-9.]+-py3", "cdfix_alpha-0.9-py3", m.group(2)),
        text,
        count=1,
        flags=re.S,
    )


def test_import_refuses_a_uv_lock_installing_a_version_its_pyproject_excludes(env, workspace, run_cli, tmp_path):
    bundle = _bundle_with(tmp_path, run_cli, _alpha_at_0_9)
    for extra in ([], ["--skip-nodes"]):
        result = run_cli("import", bundle, "--env", "x", "--no-interactive", "--skip-models", *extra)
        assert_one_line_error(result, 1, "refused", "cdfix-alpha 0.9", "cdfix-alpha>=1.0")
        assert not (workspace.environments_dir / "x").exists()
        imports = workspace.root / "comfydock_cache" / "imports"
        assert not imports.exists() or not any(imports.iterdir())  # the import leaves nothing behind


def test_import_refuses_a_uv_lock_installing_a_package_its_pyproject_never_asks_for(env, workspace, run_cli, tmp_path):
    def vision_locked(text, re):  # the root installs cdfix-vision, locked too; pyproject.toml never names it
        text = re.sub(r'(source = \{ virtual = "\." \}\n)', r'\1dependencies = [\n    { name = "cdfix-vision" },\n]\n', text, count=1)
        return text + '\n[[package]]\nname = "cdfix-vision"\nversion = "1.0"\nsource = { registry = "x" }\n'

    bundle = _bundle_with(tmp_path, run_cli, vision_locked)
    result = run_cli("import", bundle, "--env", "x", "--no-interactive", "--skip-models")
    assert_one_line_error(result, 1, "refused", "cdfix-vision")
    assert not (workspace.environments_dir / "x").exists()


def test_import_of_an_untouched_bundle_still_works(env, workspace, run_cli, tmp_path):
    bundle = _bundle_with(tmp_path, run_cli, lambda text, re: text + "\n")
    result = run_cli("import", bundle, "--env", "x", "--no-interactive", "--skip-models")
    assert result.code == 0, result.err


def test_the_lock_check_follows_overrides_constraints_and_included_groups():
    from comfydock.manifest import lock_contradiction

    root = {"name": "env", "version": "0.0.0", "source": {"virtual": "."}, "dev-dependencies": {"base": [{"name": "cdfix-alpha"}], "core": [{"name": "cdfix-alpha"}]}}
    alpha = {"name": "cdfix-alpha", "version": "0.9", "source": {"registry": "x"}}
    pyproject = {"project": {"name": "env"}, "dependency-groups": {"base": ["cdfix-alpha>=1.0"], "core": [{"include-group": "base"}]}}
    assert "cdfix-alpha 0.9" in lock_contradiction(pyproject, [root, alpha])
    overridden = pyproject | {"tool": {"uv": {"override-dependencies": ["cdfix-alpha==0.9"]}}}
    assert lock_contradiction(overridden, [root, alpha]) is None  # an override replaces the requirement, as uv does
    constrained = overridden | {"tool": {"uv": {"override-dependencies": ["cdfix-alpha==0.9"], "constraint-dependencies": ["cdfix-alpha<0.5"]}}}
    assert "constrains it to cdfix-alpha<0.5" in lock_contradiction(constrained, [root, alpha])
    assert "locks no project named 'other'" in lock_contradiction({"project": {"name": "other"}}, [root, alpha])


# --- also: export --output never replaces what is not a bundle ------------------------------------


def test_export_output_inside_the_environment_is_refused_and_nothing_is_replaced(env, run_cli, tmp_path):
    manifest = env.pyproject_path.read_bytes()
    for inside in (env.pyproject_path, env.root / "b.tar.gz", env.workflows_dir / "x.tar.gz"):
        for command in (["export"], ["build", "export"]):
            result = run_cli(*command, "--output", inside, *(["--no-interactive"] if command == ["export"] else []))
            assert_one_line_error(result, 1, "inside environment 'main'")
    assert env.pyproject_path.read_bytes() == manifest
    assert not (env.root / "b.tar.gz").exists()
    linked = tmp_path / "into-env"
    linked.symlink_to(env.cec_dir)  # through a linked folder: still inside
    assert_one_line_error(run_cli("export", "--output", linked / "pyproject.toml", "--no-interactive"), 1, "inside environment")
    assert env.pyproject_path.read_bytes() == manifest


def test_export_replaces_a_bundle_but_a_file_that_is_not_one_only_with_force(env, run_cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    result = run_cli("export", "--output", notes, "--no-interactive")
    assert_one_line_error(result, 1, "not a comfydock bundle", "--force")
    assert notes.read_text() == "my notes\n"
    assert_one_line_error(run_cli("build", "export", "--output", notes), 1, "not a comfydock bundle")
    assert notes.read_text() == "my notes\n"

    bundle = tmp_path / "b.tar.gz"
    assert run_cli("export", "--output", bundle, "--no-interactive").code == 0
    (env.workflows_dir / "more.json").write_text(json.dumps(WORKFLOW))
    assert run_cli("export", "--output", bundle, "--no-interactive").code == 0  # a bundle: replaced by the new one
    assert run_cli("export", "--output", notes, "--no-interactive", "--force").code == 0
    from comfydock.bundle.exporting import is_bundle

    assert is_bundle(notes) and is_bundle(bundle)


def test_export_on_a_terminal_asks_before_replacing_a_file_that_is_not_a_bundle(env, run_cli, tmp_path, monkeypatch):
    import io

    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    result = run_cli("export", "--output", notes, "--interactive")
    assert result.code == 1 and "Replace it?" in result.err and "error: nothing exported" in result.err
    assert notes.read_text() == "my notes\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert run_cli("export", "--output", notes, "--interactive").code == 0
    assert notes.read_bytes()[:2] == b"\x1f\x8b"


# --- also: uv keeps its credentials lock in the workspace ---------------------------------------


def test_uv_writes_nothing_in_the_users_home_and_a_users_uv_login_is_still_read(workspace, fixture_assets, tmp_path, monkeypatch):
    import functools
    import http.server
    import os
    import threading
    from pathlib import Path

    from comfydock import uv_runner

    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    home = Path(os.environ["HOME"])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(fixture_assets["wheels"]))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        workspace.set_setting("no-index", None)  # an index over HTTP (its /simple/ answers 404), the wheels beside it
        workspace.set_setting("python-index", f"{url}/simple")
        workspace.set_setting("find-links", f"{url}/")
        project = tmp_path / "project"
        project.mkdir()
        (project / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\nrequires-python = ">=3.11"\ndependencies = ["cdfix-gamma"]\n')
        uv_runner.uv_lock(workspace, project)  # asks the (loopback) index over HTTP
    finally:
        server.shutdown()
    assert (project / "uv.lock").is_file()
    assert not (home / ".local" / "share" / "uv").exists()
    assert any((workspace.root / "uv" / "credentials").iterdir())

    login = home / ".local" / "share" / "uv" / "credentials" / "credentials.toml"
    login.parent.mkdir(parents=True)
    login.write_text("")  # the user ran 'uv auth login': uv must keep reading it
    assert "UV_CREDENTIALS_DIR" not in uv_runner.uv_environ(workspace)


def test_a_stale_create_marker_beside_versions_is_never_half_made_and_never_advises_delete(env, run_cli):
    # a create killed after its first version, before it removed its marker (attack, category 8)
    _dev_node_and_workflow(env, run_cli)
    (env.root / ".comfydock" / "creating").write_text("")
    listed = {r["name"]: r for r in run_cli("list", "--json").json}
    assert listed["main"]["state"] == "ok"
    status = run_cli("status", "-e", "main")
    assert status.code == 0 and "delete" not in status.err and "half-made" not in status.out + status.err


def test_export_output_among_the_workspaces_own_files_is_refused(env, run_cli):
    ws = env.workspace
    state = ws.metadata_file.read_bytes()
    for target in (ws.metadata_file, ws.models_db, ws.environments_dir / "x.tar.gz"):
        result = run_cli("export", "--output", target, "--force", "--no-interactive")
        assert_one_line_error(result, 1, "workspace's own files")
    assert ws.metadata_file.read_bytes() == state


def test_damaged_or_planted_deep_json_is_one_line_or_rebuilt_never_a_crash(env, run_cli):
    deep = "[" * 100_000 + "]" * 100_000
    for name in ("torch-import.json", "undeclared-imports.json", "venv-synced.json"):
        (env.state_dir / name).write_text(deep)
    result = run_cli("status")
    assert result.code in (0, 1) and "Traceback" not in result.err and "internal error" not in result.err


def test_a_cec_git_config_that_is_a_folder_is_damage_with_a_hint(env, run_cli):
    config = env.cec_dir / ".git" / "config"
    saved = config.read_bytes()
    config.unlink()
    config.mkdir()
    for argv in (["status"], ["log"]):
        assert_one_line_error(run_cli(*argv), 1, "is damaged")
    config.rmdir()
    config.write_bytes(saved)
    assert run_cli("status").code == 0


def test_create_from_something_that_is_no_history_says_what_to_give(workspace, run_cli, tmp_path):
    (tmp_path / "plain").mkdir()
    for url in ((tmp_path / "plain").as_uri(), str(tmp_path / "nothing-here")):
        assert_one_line_error(run_cli("create", "e2", "--from", url), 1, "cannot clone", "git ls-remote")
    assert "e2" not in [r["name"] for r in run_cli("list", "--json").json]
