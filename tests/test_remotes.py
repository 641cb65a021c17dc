"""Teams: remote, push, pull, create --from. Two workspaces play two machines; a bare git
repository in the test's temp dir is the remote (real git, real uv, real node installs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import venv_has
from test_history import SDXL, UPSCALER, _save_workflow, _tree_digest

from comfydock.environment import Environment

pytestmark = pytest.mark.slow


def _bare(tmp_path: Path) -> Path:
    path = tmp_path / "shared" / "env.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


@pytest.fixture
def machine_b(tmp_path, fixture_assets, comfyui_source, run_cli):
    """A second workspace (another machine), same ComfyUI source and wheels."""
    ws = tmp_path / "ws-b"
    assert run_cli("init", ws, "--models-dir", tmp_path / "models-b", "--no-interactive").code == 0
    for key, value in (
        ("comfyui-source", comfyui_source.as_uri()),
        ("find-links", fixture_assets["wheels"]),
        ("no-index", "true"),
        ("node-map-url", "http://127.0.0.1:9/extension-node-map.json"),
    ):
        assert run_cli("-w", ws, "config", key, value).code == 0
    from comfydock.workspace import Workspace

    return Workspace.open(ws)


def _b(run_cli, ws):
    return lambda *argv: run_cli("-w", ws.root, *argv)


def _state(env) -> dict:
    """What a refusal must leave alone: .cec/ files, nodes, workflows, the branch and the tags."""
    git = ["git", "-C", str(env.cec_dir)]
    refs = subprocess.run(
        [*git, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags"], capture_output=True, text=True
    ).stdout
    return {
        "cec": _tree_digest(env.cec_dir),
        "nodes": _tree_digest(env.custom_nodes_dir),
        "workflows": _tree_digest(env.workflows_dir),
        "refs": refs,
    }


def _dev_node(env, name="my-dev-node"):
    dev = env.custom_nodes_dir / name
    dev.mkdir(parents=True)
    (dev / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    return dev


def test_team_round_trip_create_from_push_pull(env, workspace, run_cli, node_repo, registry, machine_b, tmp_path):
    remote = _bare(tmp_path)
    b = _b(run_cli, machine_b)
    # machine A: a node, a package, a workflow and a development node, pushed
    _save_workflow(env, SDXL)
    assert run_cli("node", "add", f"{node_repo.as_uri()}@v1.0").code == 0
    assert run_cli("py", "add", "cdfix-beta").code == 0
    _dev_node(env)
    assert run_cli("node", "add", "my-dev-node", "--dev").code == 0
    assert run_cli("commit", "-m", "team set-up", "--no-interactive").code == 0
    assert run_cli("push").code == 1  # no remote yet
    assert run_cli("remote", "add", "origin", remote.as_uri()).code == 0
    assert run_cli("remote", "list", "--json").json == [{"name": "origin", "url": remote.as_uri(), "upstream": False}]
    pushed = run_cli("push", "--json")
    assert pushed.code == 0, pushed.err
    assert pushed.json["tags"] == ["v1", "v2"]
    assert run_cli("status", "--json").json["upstream"] == {"remote": "origin", "branch": "main", "ahead": 0, "behind": 0}

    # machine B: the same environment from the remote; the dev node's source is not in git
    created = b("create", "main", "--from", remote.as_uri())
    assert created.code == 0, created.err
    assert "my-dev-node" in created.err and "not in git" in created.err
    env_b = Environment.open(machine_b, "main")
    assert (env_b.custom_nodes_dir / "ComfyUI-Git-Node" / "__init__.py").exists()
    assert venv_has(env_b, "cdfix_gamma") == "0.1" and venv_has(env_b, "cdfix_beta") == "2.0"
    assert (env_b.workflows_dir / "sdxl_simple_example.json").read_bytes() == SDXL.read_bytes()
    assert [v["version"] for v in b("log", "--json").json] == ["v2", "v1"]
    assert env_b.uv_lock_path.read_bytes() == env.uv_lock_path.read_bytes()
    assert sorted(p.name for p in env_b.root.iterdir() if p.name.startswith(".cec")) == [".cec"]
    assert b("status", "--json").json["uncommitted_changes"] == []

    # A adds a node and changes the workflow: v3; B pulls it in
    assert run_cli("config", "registry-url", registry.url).code == 0
    assert b("config", "registry-url", registry.url).code == 0
    assert run_cli("node", "add", "comfyui-fixture-pack@1.0.0").code == 0
    wf = env.workflows_dir / "sdxl_simple_example.json"
    wf.write_text(wf.read_text().replace("sd_xl_base_1.0", "sd_xl_base_1.1"))
    assert run_cli("commit", "-m", "fixture pack", "--no-interactive").code == 0
    assert run_cli("status", "--json").json["upstream"]["ahead"] == 1
    assert "1 commit(s) ahead of origin/main" in run_cli("status").out
    assert run_cli("push").code == 0
    assert b("status", "--json").json["upstream"]["behind"] == 0  # no network in status: not fetched yet
    assert b("status", "--json").json["missing_dev_nodes"] == [{"id": "my-dev-node", "path": "ComfyUI/custom_nodes/my-dev-node"}]
    # B never had the development node (its source is not in git): the pull applies the rest and says so
    pulled = b("pull", "--json")
    assert pulled.code == 0, pulled.err
    assert pulled.json["how"] == "fast-forward" and pulled.json["versions"] == ["v3"]
    assert pulled.json["applied"]["nodes_installed"] == ["comfyui-fixture-pack"]
    assert pulled.json["dev_nodes_missing"] == ["my-dev-node"] and "custom_nodes/my-dev-node" in pulled.json["dev_nodes_hint"]
    assert (env_b.workflows_dir / "sdxl_simple_example.json").read_bytes() == wf.read_bytes()
    assert venv_has(env_b, "cdfix_beta") == "1.0"  # the pack pins cdfix-beta<2
    status_b = b("status", "--json").json
    assert status_b["venv_in_sync"] and status_b["uncommitted_changes"] == []
    assert status_b["upstream"]["behind"] == 0
    assert [n["id"] for n in status_b["missing_dev_nodes"]] == ["my-dev-node"]
    again = b("pull")
    assert again.code == 0 and "my-dev-node are not on this machine" in again.err
    shutil.copytree(env.custom_nodes_dir / "my-dev-node", env_b.custom_nodes_dir / "my-dev-node")  # as the hint says
    assert b("status", "--json").json["missing_dev_nodes"] == []
    assert b("pull", "--json").json["dev_nodes_missing"] == []

    # B removes the development node and pushes; A pulls: disabled, never deleted
    assert b("node", "remove", "my-dev-node").code == 0
    assert b("commit", "-m", "no dev node", "--no-interactive").code == 0
    assert b("push").code == 0
    pulled = run_cli("pull")
    assert pulled.code == 0, pulled.err
    assert not (env.custom_nodes_dir / "my-dev-node").exists()
    assert (env.custom_nodes_dir / "my-dev-node.disabled" / "__init__.py").exists()
    assert [v["version"] for v in run_cli("log", "--json").json][:2] == ["v4", "v3"]
    assert run_cli("pull").out.startswith("Already up to date")


@pytest.fixture
def two_machines(env, run_cli, machine_b, tmp_path):
    """A pushed v2 (one workflow); B was created from the remote."""
    remote = _bare(tmp_path)
    _save_workflow(env, SDXL)
    assert run_cli("commit", "-m", "shared", "--no-interactive").code == 0
    assert run_cli("remote", "add", "origin", remote.as_uri()).code == 0
    assert run_cli("push").code == 0
    b = _b(run_cli, machine_b)
    assert b("create", "main", "--from", remote, "--torch-backend", "cpu").code == 0
    return env, Environment.open(machine_b, "main"), b, remote


def _edit(env, old: str, new: str):
    wf = env.workflows_dir / "sdxl_simple_example.json"
    wf.write_text(wf.read_text().replace(old, new))


def test_refusals_leave_both_machines_byte_for_byte(two_machines, run_cli):
    env_a, env_b, b, remote = two_machines
    # both sides change the same workflow line and commit
    _edit(env_a, "sd_xl_base_1.0", "base_from_a")
    assert run_cli("commit", "-m", "A's edit", "--no-interactive").code == 0
    assert run_cli("push").code == 0
    _edit(env_b, "sd_xl_base_1.0", "base_from_b")
    assert b("commit", "-m", "B's edit", "--no-interactive").code == 0
    before = (_state(env_a), _state(env_b))

    refused = b("push")
    assert refused.code == 1 and "pull first" in refused.err and "Traceback" not in refused.err
    conflict = b("pull")
    assert conflict.code == 1
    assert "workflows/sdxl_simple_example.json" in conflict.err and "nothing was changed" in conflict.err
    assert (_state(env_a), _state(env_b)) == before

    # uncommitted work is never pulled over
    _save_workflow(env_b, UPSCALER)
    before_b = _state(env_b)
    dirty = b("pull")
    assert dirty.code == 1 and "comfydock commit" in dirty.err and "rollback" in dirty.err
    dirty_push = b("push")
    assert dirty_push.code == 1 and "commit" in dirty_push.err
    assert _state(env_b) == before_b
    assert (_state(env_a), _state(env_b))[0] == before[0]


def test_version_tag_on_remote_for_another_commit_is_refused_not_overwritten(two_machines, run_cli):
    env_a, env_b, b, remote = two_machines
    # A publishes v3, then the remote's branch is put back to v2 (a forced push elsewhere): its v3 tag stays
    _edit(env_a, "sd_xl_base_1.0", "base_from_a")
    assert run_cli("commit", "-m", "A's v3", "--no-interactive").code == 0
    assert run_cli("push").code == 0
    v2 = subprocess.run(["git", "-C", str(remote), "rev-parse", "v2"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(remote), "update-ref", "refs/heads/main", v2], check=True)
    remote_v3 = subprocess.run(["git", "-C", str(remote), "rev-parse", "v3"], capture_output=True, text=True).stdout
    _save_workflow(env_b, UPSCALER)
    assert b("commit", "-m", "B's v3", "--no-interactive").code == 0
    before = _state(env_b)
    refused = b("push")
    assert refused.code == 1
    assert "version v3 exists on origin for another commit" in refused.err and "A's v3" in refused.err
    assert subprocess.run(["git", "-C", str(remote), "rev-parse", "v3"], capture_output=True, text=True).stdout == remote_v3
    assert _state(env_b) == before


def test_clean_merge_renumbers_unpushed_versions_and_relocks(two_machines, run_cli):
    env_a, env_b, b, remote = two_machines
    assert run_cli("py", "add", "cdfix-beta").code == 0
    assert run_cli("commit", "-m", "A adds beta", "--no-interactive").code == 0
    assert run_cli("push").code == 0
    _save_workflow(env_b, UPSCALER)
    assert b("commit", "-m", "B adds upscaler", "--no-interactive").code == 0
    _save_workflow(env_b, UPSCALER, "second-upscaler.json")
    assert b("commit", "-m", "B adds a second upscaler", "--no-interactive").code == 0

    merged = b("pull", "--json")
    assert merged.code == 0, merged.err
    assert merged.json["how"] == "merge"
    # B's unpushed v3 (the remote's v3 is A's) and its child v4 move up together, in order
    assert merged.json["renamed"] == {"v3": "v4", "v4": "v5"}
    assert merged.json["versions"] == ["v3", "v6"]
    log = {v["version"]: v["message"] for v in b("log", "--json").json}
    assert log["v3"] == "A adds beta" and log["v4"] == "B adds upscaler" and log["v5"] == "B adds a second upscaler"
    assert log["v6"].startswith("Merge")
    assert "cdfix-beta" in env_b.pyproject_path.read_text() and "cdfix-beta" in env_b.uv_lock_path.read_text()
    assert "<<<<<<<" not in env_b.uv_lock_path.read_text()
    assert venv_has(env_b, "cdfix_beta") == "2.0"
    assert (env_b.workflows_dir / "utility-gan_upscaler.json").exists()
    assert b("status", "--json").json["uncommitted_changes"] == []
    assert b("push").code == 0
    assert run_cli("pull").code == 0
    assert (env_a.workflows_dir / "utility-gan_upscaler.json").exists()


def test_pull_that_fails_midway_restores_the_machine(two_machines, run_cli, node_repo, machine_b):
    env_a, env_b, b, remote = two_machines
    assert run_cli("node", "add", f"{node_repo.as_uri()}@v1.0").code == 0
    _edit(env_a, "sd_xl_base_1.0", "base_from_a")
    assert run_cli("commit", "-m", "git node", "--no-interactive").code == 0
    assert run_cli("push").code == 0
    shutil.rmtree(node_repo)  # B cannot fetch the node: the install step fails after files were written
    before = _state(env_b)
    failed = b("pull")
    assert failed.code == 1 and "Traceback" not in failed.err
    assert _state(env_b) == before
    status = b("status", "--json").json
    assert status["venv_in_sync"] and status["uncommitted_changes"] == []


def test_create_from_a_history_holding_a_symlink_is_refused_and_leaves_nothing(workspace, run_cli, tmp_path):
    src = tmp_path / "hostile"
    src.mkdir()
    git = ["git", "-C", str(src)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (src / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    (src / "workflows").symlink_to(Path.home())
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "x"], check=True)
    result = run_cli("create", "evil", "--from", src.as_uri())
    assert result.code == 1
    assert "workflows is a symbolic link" in result.err and "Traceback" not in result.err
    assert not (workspace.environments_dir / "evil").exists()


def test_remote_names_and_urls_that_git_would_misread_are_refused(env, run_cli):
    for name, url in (("-x", "file:///x"), ("origin", "--upload-pack=touch /tmp/x"), ("../up", "file:///x"), ("o", "a\nb")):
        result = run_cli("remote", "add", "--", name, url)
        assert result.code == 2 and "invalid remote" in result.err, (name, url)
    assert run_cli("remote", "list", "--json").json == []
    assert run_cli("remote", "remove", "origin").code == 1


def _raw_push(remote: Path, tmp_path: Path, change) -> None:
    """Someone else's commits, made with plain git on a clone of the remote."""
    work = tmp_path / "raw-clone"
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True)
    for message in change(work):
        subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
        subprocess.run(
            ["git", "-C", str(work), "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", message], check=True
        )
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "main"], check=True)


def test_pull_refuses_a_history_that_ever_held_a_symlink(two_machines, run_cli, tmp_path):
    env_a, env_b, b, remote = two_machines

    def change(work):
        (work / "workflows" / "link.json").symlink_to("/etc/hostname")
        yield "add a link"
        (work / "workflows" / "link.json").unlink()
        yield "remove it again"

    _raw_push(remote, tmp_path, change)
    before = _state(env_b)
    refused = b("pull")
    assert refused.code == 1 and "workflows/link.json is a symbolic link" in refused.err
    assert _state(env_b) == before


def test_create_from_a_bare_repository_whose_head_names_an_unpushed_branch(env, machine_b, run_cli, tmp_path):
    # 'git init --bare' without -b names 'master' (git < 2.28 defaults, or init.defaultBranch):
    # the push goes to 'main', the remote's HEAD points nowhere; create --from still finds main
    remote = tmp_path / "plain.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    subprocess.run(["git", "-C", str(remote), "symbolic-ref", "HEAD", "refs/heads/master"], check=True)
    assert run_cli("remote", "add", "origin", remote.as_uri()).code == 0
    assert run_cli("push").code == 0
    b = _b(run_cli, machine_b)
    created = b("create", "copy", "--from", remote.as_uri())
    assert created.code == 0, created.err
    assert [v["version"] for v in b("log", "-e", "copy", "--json").json] == ["v1"]


def test_push_to_a_missing_remote_says_why_once(env, run_cli, tmp_path):
    missing = tmp_path / "nowhere.git"
    assert run_cli("remote", "add", "gone", missing.as_uri()).code == 0
    try:
        result = run_cli("push", "gone")
        assert result.code == 1
        first = result.err.splitlines()[0]
        assert first.startswith("error: cannot fetch from gone") and "does not appear to be a git repository" in first
        assert result.err.count("does not appear to be a git repository") == 1, result.err
        assert "hint: check gone's URL" in result.err
    finally:
        assert run_cli("remote", "remove", "gone").code == 0


# --- hand-made trees: what plain git would never commit, made with git's plumbing ----------------


def _git_out(repo: Path, *args: str, data: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=True).stdout.decode().strip()


def _tree(repo: Path, entries: dict) -> str:
    """A tree object from {name: bytes (a file) | dict (a directory)}; names are taken as they are."""
    lines = []
    for name, value in entries.items():
        if isinstance(value, dict):
            lines.append(f"040000 tree {_tree(repo, value)}\t{name}")
        else:
            lines.append(f"100644 blob {_git_out(repo, 'hash-object', '-w', '--stdin', data=value)}\t{name}")
    return _git_out(repo, "mktree", "-z", data="".join(line + "\0" for line in lines).encode())


def _commit_tree(repo: Path, entries: dict, parent: str | None = None, branch: str = "main") -> str:
    """Commit `entries` added over `parent`'s tree (or alone) and point `branch` at it."""
    base = {}
    if parent:
        for line in _git_out(repo, "ls-tree", "-z", parent).split("\0"):
            if line:
                meta, _, name = line.partition("\t")
                base[name] = meta
    lines = [f"{meta}\t{name}" for name, meta in base.items() if name not in entries]
    extra = _tree(repo, entries)
    lines += [line for line in _git_out(repo, "ls-tree", "-z", extra).split("\0") if line]
    tree = _git_out(repo, "mktree", "-z", data="".join(line + "\0" for line in lines).encode())
    ident = ["-c", "user.name=x", "-c", "user.email=x@x"]
    commit = subprocess.run(
        ["git", "-C", str(repo), *ident, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", "hand-made"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.strip()
    _git_out(repo, "update-ref", f"refs/heads/{branch}", commit)
    return commit


HOSTILE_ENTRIES = {
    "..": b"x",
    ".git": {"config": b"[core]\n\tfsmonitor = touch /tmp/owned\n"},
    ".GIT": {"config": b"[core]\n\tfsmonitor = touch /tmp/owned\n"},
    "git~1": {"config": b"[core]\n\tfsmonitor = touch /tmp/owned\n"},
    ".git.": {"HEAD": b"ref: refs/heads/main\n"},
    "workflows": {"..": {"x.json": b"{}"}},
}


@pytest.mark.parametrize("name", [*HOSTILE_ENTRIES, "nested .git"])
def test_create_from_a_tree_with_a_dot_dot_or_git_entry_is_refused_naming_it(workspace, run_cli, tmp_path, name):
    src = tmp_path / "hand-made.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(src)], check=True)
    entries = {"pyproject.toml": b'[project]\nname = "x"\nversion = "0"\n'}
    if name == "nested .git":
        entries["workflows"] = {".Git": {"config": b"[core]\n"}}
        shown = "workflows/.Git/config"
    else:
        entries[name] = HOSTILE_ENTRIES[name]
        shown = {"workflows": "workflows/../x.json"}.get(name, name if isinstance(HOSTILE_ENTRIES[name], bytes) else f"{name}/")
    _commit_tree(src, entries)
    result = run_cli("create", "evil", "--from", src.as_uri())
    assert result.code == 1, result
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and shown in errors[0] and "hint:" in result.err, result.err
    assert not (workspace.environments_dir / "evil").exists()


def test_create_from_a_remote_with_a_huge_pyproject_is_refused_at_once(workspace, run_cli, tmp_path):
    src = tmp_path / "huge.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(src)], check=True)
    huge = b'[project]\nname = "x"\nversion = "0"\n' + b"".join(b"[tool.t%d]\na = 1\n" % i for i in range(400_000))
    assert len(huge) > 4 << 20
    _commit_tree(src, {"pyproject.toml": huge})
    result = run_cli("create", "big", "--from", src.as_uri())
    assert result.code == 1 and "pyproject.toml has" in result.err and "Traceback" not in result.err, result.err
    assert not (workspace.environments_dir / "big").exists()


def test_pull_refuses_hand_made_trees_and_a_huge_pyproject_and_changes_nothing(two_machines, run_cli):
    env_a, env_b, b, remote = two_machines
    main = _git_out(remote, "rev-parse", "main")
    before = _state(env_b)
    _commit_tree(remote, {".GIT": {"config": b"[core]\n\tfsmonitor = touch /tmp/owned\n"}}, parent=main)
    refused = b("pull")
    assert refused.code == 1 and "'.GIT/config'" in refused.err and "Traceback" not in refused.err, refused.err
    assert _state(env_b) == before

    pyproject = env_a.pyproject_path.read_bytes()
    _commit_tree(remote, {"pyproject.toml": pyproject + b"#" + b"x" * (5 << 20) + b"\n"}, parent=main)
    refused = b("pull")
    assert refused.code == 1 and "pyproject.toml has" in refused.err and "Traceback" not in refused.err, refused.err
    assert _state(env_b) == before
    assert b("status", "--json").json["uncommitted_changes"] == []
