"""Sharing an environment's history through git remotes: `remote`, `push`, `pull`, `create --from`.

`.cec/` is a git repository, so any remote git accepts carries it (a bare repo on a share, a
hosting service), with the user's own credentials. What comfydock adds is safety:

- push never forces: a remote that moved on is "pull first"; a `vN` tag on the remote for another
  commit is a conflict, never overwritten;
- pull refuses with uncommitted changes, merges only what git merges cleanly (uv.lock is
  re-resolved from the merged pyproject.toml, never text-merged), checks the incoming tree before
  anything is touched, then applies it to the machine in one transaction (versioning.apply_commit,
  as rollback does) and moves the branch in that same transaction;
- fetched tags go to `refs/remote-tags/<remote>/`, so fetching never changes the local versions.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from comfydock import history
from comfydock.errors import ComfydockError, ExternalToolError, UsageError
from comfydock.fsutil import names_git_dir
from comfydock.gitutil import git as _git
from comfydock.gitutil import git_reason
from comfydock.limits import ArchiveLimits
from comfydock.torch_backend import adopt_machine_backend, resolve_torch_backend

_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^v(\d+)$")
TAG_NAMESPACE = "refs/remote-tags"
_BAD_MODES = {"120000": "a symbolic link", "160000": "a submodule"}


def validate_remote_name(name: str) -> str:
    if not _REMOTE_NAME.match(name or "") or name.endswith((".lock", ".")) or ".." in name:
        raise UsageError(
            f"invalid remote name {name!r}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. origin)",
        )
    return name


def validate_url(url: str) -> str:
    """Any URL or path git accepts; nothing that git would read as an option, that hides lines,
    or that names a transport helper ('ext::' runs a command, 'fd::' reads a descriptor)."""
    if not url or url.startswith("-") or any(ord(c) < 32 or ord(c) == 127 for c in url) or "::" in url.split("/")[0]:
        raise UsageError(
            f"invalid remote URL {url!r}", hint="give a URL git understands: https://…, ssh://…, file://…, or a path"
        )
    return url


def _run(repo, *args, what: str, hint: str | None = None):
    git = _git()
    try:
        return repo.git.execute(["git", *args])
    except git.GitCommandError as exc:
        raise ExternalToolError(f"{what}: {git_reason(exc)}", hint=hint, details=str(getattr(exc, "stderr", "") or "")) from None


# --- remote add / remove / list ------------------------------------------------------------


def list_remotes(env) -> list[dict]:
    repo = history.open_repo(env.cec_dir)
    out = []
    for r in repo.remotes:
        try:
            url = r.url
        except Exception:
            url = None
        out.append({"name": r.name, "url": url, "upstream": r.name == _upstream_remote(repo)})
    return sorted(out, key=lambda r: r["name"])


def add_remote(env, name: str, url: str) -> dict:
    validate_remote_name(name)
    validate_url(url)
    with env.process_lock():
        repo = history.open_repo(env.cec_dir)
        if name in [r.name for r in repo.remotes]:
            raise ComfydockError(
                f"remote {name!r} already exists ({repo.remotes[name].url})",
                hint=f"remove it first with 'comfydock remote remove {name}'",
            )
        _run(repo, "remote", "add", "--", name, url, what=f"cannot add remote {name}")
    return {"name": name, "url": url}


def remove_remote(env, name: str) -> None:
    validate_remote_name(name)
    with env.process_lock():
        repo = history.open_repo(env.cec_dir)
        if name not in [r.name for r in repo.remotes]:
            known = ", ".join(r.name for r in repo.remotes) or "none"
            raise ComfydockError(f"no remote named {name!r}", hint=f"remotes: {known} (see 'comfydock remote list')")
        _run(repo, "remote", "remove", name, what=f"cannot remove remote {name}")
        for ref in _refs(repo, f"{TAG_NAMESPACE}/{name}/"):
            _run(repo, "update-ref", "-d", ref, what="cannot clean up fetched tags")


# --- helpers --------------------------------------------------------------------------------


def _branch(repo) -> str:
    try:
        return repo.active_branch.name
    except TypeError:
        raise ComfydockError(
            "the environment's history is not on a branch (detached HEAD)",
            hint=f"check out its branch in {repo.working_tree_dir} ('git checkout main')",
        ) from None


def _upstream_remote(repo) -> str | None:
    try:
        branch = repo.active_branch.name
        return repo.git.config("--get", f"branch.{branch}.remote") or None
    except Exception:
        return None


def _choose_remote(repo, remote: str | None) -> str:
    names = [r.name for r in repo.remotes]
    if remote is not None:
        validate_remote_name(remote)
        if remote not in names:
            raise ComfydockError(
                f"no remote named {remote!r}",
                hint=f"remotes: {', '.join(names) or 'none'}; add one with 'comfydock remote add NAME URL'",
            )
        return remote
    upstream = _upstream_remote(repo)
    if upstream in names:
        return upstream
    if "origin" in names:
        return "origin"
    if len(names) == 1:
        return names[0]
    if not names:
        raise ComfydockError("this environment has no remote", hint="add one with 'comfydock remote add origin URL'")
    raise ComfydockError(f"which remote? this environment has {', '.join(names)}", hint="name it: 'comfydock push REMOTE'")


def _refs(repo, prefix: str) -> list[str]:
    out = repo.git.for_each_ref("--format=%(refname)", prefix)
    return [line for line in out.splitlines() if line]


def _version_tags(repo, prefix: str = "refs/tags/", merged: str | None = None) -> dict[str, str]:
    """vN -> commit, for tags below `prefix` (annotated tags peeled); with `merged`, only those
    whose commit is in that commit's history."""
    options = [f"--merged={merged}"] if merged else []
    out = repo.git.for_each_ref("--format=%(refname)%00%(objectname)%00%(*objectname)", *options, prefix)
    tags = {}
    for line in out.splitlines():
        ref, obj, peeled = (line.split("\0") + ["", ""])[:3]
        name = ref[len(prefix) :]
        if _VERSION.match(name):
            tags[name] = peeled or obj
    return tags


def _is_ancestor(repo, a: str, b: str) -> bool:
    git = _git()
    try:
        repo.git.merge_base("--is-ancestor", a, b)
        return True
    except git.GitCommandError:
        return False


def _rev(repo, ref: str) -> str | None:
    git = _git()
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}")
    except git.GitCommandError:
        return None


def fetch(repo, remote: str) -> None:
    """Branches to refs/remotes/R/, tags to refs/remote-tags/R/ (local versions never change)."""
    _run(
        repo,
        "fetch",
        "--prune",
        "--no-tags",
        "--quiet",
        remote,
        f"+refs/heads/*:refs/remotes/{remote}/*",
        f"+refs/tags/*:{TAG_NAMESPACE}/{remote}/*",
        what=f"cannot fetch from {remote}",
        hint=f"check {remote}'s URL ('comfydock remote list') and that you can reach it",
    )


def _short(repo, commit: str) -> str:
    try:
        message = repo.commit(commit).message.strip().splitlines()[0]
    except Exception:
        message = ""
    return f"{commit[:10]} {message!r}" if message else commit[:10]


def _refuse_uncommitted(env, doing: str, keep: str) -> None:
    from comfydock.versioning import uncommitted

    pending = uncommitted(env)
    if pending:
        shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
        raise ComfydockError(f"{doing} refused: uncommitted changes ({shown})", hint=keep)


# --- push ------------------------------------------------------------------------------------


@dataclass
class PushResult:
    remote: str
    branch: str
    commit: str
    up_to_date: bool
    tags: list[str] = field(default_factory=list)  # version tags sent

    def to_json(self) -> dict:
        return asdict(self)


def _start_exchange(env, remote: str | None, command: str, hint: str):
    """push and pull begin alike: .cec's repository, the remote (named or the upstream's), the
    branch, and a refusal when anything is uncommitted."""
    repo = history.open_repo(env.cec_dir)
    remote = _choose_remote(repo, remote)
    branch = _branch(repo)
    _refuse_uncommitted(env, command, hint)
    return repo, remote, branch


def push(env, remote: str | None = None, *, on_wait=None) -> PushResult:
    with env.process_lock(on_wait):
        repo, remote, branch = _start_exchange(
            env,
            remote,
            "push",
            "keep them as a version with 'comfydock commit' first (or discard them: 'comfydock rollback --yes'; workflows never committed are kept by rollback: move them out of ComfyUI's workflows folder)",
        )
        head = repo.head.commit.hexsha
        fetch(repo, remote)
        theirs = _rev(repo, f"refs/remotes/{remote}/{branch}")
        if theirs and not _is_ancestor(repo, theirs, head):
            raise ComfydockError(
                f"{remote} has changes to {branch} this environment does not have: pull first",
                hint=f"run 'comfydock pull {remote}', then push again (comfydock never overwrites a remote's history)",
            )
        local = _version_tags(repo, merged=head)
        remote_tags = _version_tags(repo, f"{TAG_NAMESPACE}/{remote}/")
        clashes = sorted((t for t in local if t in remote_tags and remote_tags[t] != local[t]), key=lambda t: int(t[1:]))
        if clashes:
            t = clashes[0]
            raise ComfydockError(
                f"version {t} exists on {remote} for another commit ({_short(repo, remote_tags[t])}) than here "
                f"({_short(repo, local[t])}); version tags are never overwritten",
                hint=f"someone published a different {t}; compare with 'git -C {env.cec_dir} log {TAG_NAMESPACE}/{remote}/{t}', "
                f"and if theirs is a mistake delete it on the remote ('git push {remote} :refs/tags/{t}'), then push again",
            )
        new_tags = sorted((t for t in local if t not in remote_tags), key=lambda t: int(t[1:]))
        if theirs == head and not new_tags:
            _set_upstream(repo, remote, branch)
            return PushResult(remote, branch, head, True)
        refspecs = [f"refs/heads/{branch}:refs/heads/{branch}"] + [f"refs/tags/{t}:refs/tags/{t}" for t in new_tags]
        git = _git()
        try:
            repo.git.execute(["git", "push", "--atomic", "--porcelain", "--set-upstream", remote, *refspecs])
        except git.GitCommandError as exc:
            text = f"{exc.stdout or ''}\n{exc.stderr or ''}"
            if "non-fast-forward" in text or "fetch first" in text or "[rejected]" in text:
                raise ComfydockError(
                    f"{remote} was changed while pushing: pull first",
                    hint=f"run 'comfydock pull {remote}', then push again",
                ) from None
            raise ExternalToolError(f"cannot push to {remote}: {git_reason(exc)}", details=text.strip()) from None
        fetch(repo, remote)
        return PushResult(remote, branch, head, False, new_tags)


def _set_upstream(repo, remote: str, branch: str) -> None:
    with repo.config_writer() as cw:
        cw.set_value(f'branch "{branch}"', "remote", remote)
        cw.set_value(f'branch "{branch}"', "merge", f"refs/heads/{branch}")


# --- status ----------------------------------------------------------------------------------


def upstream_status(env) -> dict | None:
    """Ahead/behind the branch's upstream as of the last fetch (no network)."""
    try:
        repo = history.open_repo(env.cec_dir)
        branch = repo.active_branch.name
        remote = _upstream_remote(repo)
    except Exception:
        return None
    if not remote:
        return None
    theirs = _rev(repo, f"refs/remotes/{remote}/{branch}")
    if theirs is None:
        return {"remote": remote, "branch": branch, "ahead": None, "behind": None}
    counts = repo.git.rev_list("--left-right", "--count", f"HEAD...{theirs}").split()
    return {"remote": remote, "branch": branch, "ahead": int(counts[0]), "behind": int(counts[1])}


# --- pull ------------------------------------------------------------------------------------


@dataclass
class PullResult:
    remote: str
    branch: str
    how: str  # up-to-date | fast-forward | merge
    old: str
    new: str
    versions: list[str] = field(default_factory=list)  # version tags new to this machine
    renamed: dict[str, str] = field(default_factory=dict)  # local unpushed vN -> new name
    applied: dict | None = None  # the rollback-style report of what changed on the machine
    dev_nodes_missing: list[str] = field(default_factory=list)  # tracked, not on this machine (not in git)
    dev_nodes_hint: str | None = None  # how to get them

    def to_json(self) -> dict:
        return asdict(self)


def check_history(repo, revisions: list[str], what: str, limits=None) -> None:
    """Every commit `revisions` brings in (rev-list syntax) holds plain files only: a later rollback
    to one of them must not check out a link or a submodule either."""
    commits = repo.git.rev_list(*revisions).split()
    for commit in commits:
        check_tree(repo, commit, what, need_manifest=False, limits=limits)


# The largest file pull and `create --from` parse (as bundle/archive.py caps what import parses):
# tomlkit needs 4-9 s per MiB of TOML, so a remote's 30 MiB pyproject.toml held `pull` for more
# than ten minutes; a real one is a few KiB to a few hundred. Checked on git's listing, before a byte is read.
PARSED_FILE_MAX = {"pyproject.toml": 4 << 20, "uv.lock": 64 << 20, ".python-version": 4 << 10}
# Characters macOS ignores in a file name (so ".g\u200cit" is ".git" there), as git's own check lists them.
def _entry_problem(path: str) -> str | None:
    """Why a tree entry's path must not be checked out into .cec/ (None: it is a plain path)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "holds control characters"
    if "\\" in path:
        return "holds a backslash (a path separator on Windows)"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"has a {part or 'empty'!r} part"
        if names_git_dir(part):
            return "names a .git directory (what git itself runs is kept there)"
    return None


def check_tree(repo, commit: str, what: str, need_manifest: bool = True, limits=None) -> None:
    """An incoming tree holds plain files only (no links, no submodules, no '..' or '.git'
    entries), no more and no larger than `limits` (the archive-max-* settings) and the
    PARSED_FILE_MAX caps allow, and a pyproject.toml."""
    limits = limits or ArchiveLimits()
    hint = "the remote may be damaged or hostile; nothing was changed"
    out = repo.git.ls_tree("-r", "-z", "-l", "--full-tree", commit)
    names = set()
    total = 0
    for entry in out.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        mode, _kind, _obj, size = meta.split()
        names.add(path)
        problem = _entry_problem(path)
        if problem:
            raise ComfydockError(f"{what} refused: its entry {path!r} {problem}", hint=hint)
        if mode in _BAD_MODES:
            raise ComfydockError(
                f"{what} refused: {path} is {_BAD_MODES[mode]}; an environment's history holds plain files only", hint=hint
            )
        size = int(size) if size.isdigit() else 0
        cap = PARSED_FILE_MAX.get(path)
        if cap is not None and size > cap:
            raise ComfydockError(f"{what} refused: its {path} has {size} bytes, more than the {cap} comfydock reads", hint=hint)
        total += size
        if total > limits.max_bytes:
            raise ComfydockError(
                f"{what} refused: its files add up to more than {limits.max_bytes} bytes (setting archive-max-bytes)",
                hint="if you trust it, raise the limit with 'comfydock config archive-max-bytes N'",
            )
        if len(names) > limits.max_members:
            raise ComfydockError(
                f"{what} refused: it holds more than {limits.max_members} files (setting archive-max-members)",
                hint="if you trust it, raise the limit with 'comfydock config archive-max-members N'",
            )
    if need_manifest and "pyproject.toml" not in names:
        raise ComfydockError(f"{what} refused: it has no pyproject.toml", hint="is this a comfydock environment's history?")
    if need_manifest and ".python-version" in names:  # uv reads it and runs what it names
        from comfydock import manifest

        text = repo.git.execute(["git", "cat-file", "blob", f"{commit}:.python-version"], strip_newline_in_stdout=False)
        try:
            manifest.check_python_version_text(text, ".python-version")
        except ComfydockError as exc:
            raise ComfydockError(f"{what} refused: {exc.message}", hint=hint) from None


_FIX_REMOTE = "nothing was changed; the remote may be damaged or hostile: ask whoever pushed it to fix .cec/pyproject.toml and push again"


def _parse_manifest(text: str, what: str):
    from comfydock import manifest
    from comfydock.nodes.spec import tracked_nodes

    try:
        doc = manifest.parse(text)
        tracked_nodes(doc)  # names and directories validated
        python = manifest.environment_info(doc).get("python_version")
        if python is not None:
            manifest.check_python_version(python, "pyproject.toml")
    except ComfydockError as exc:
        raise ComfydockError(f"{what} refused: {exc.message}", hint=_FIX_REMOTE) from None
    except Exception as exc:
        raise ComfydockError(f"{what} refused: its pyproject.toml does not parse ({exc})", hint=_FIX_REMOTE) from None
    return doc


def missing_dev_nodes(env, doc) -> list[str]:
    """Development nodes `doc` tracks that this machine does not have (their source is not in git)."""
    from comfydock.nodes.spec import tracked_nodes

    missing = []
    for node_id, spec in sorted(tracked_nodes(doc).items()):
        if spec.source != "development":
            continue
        if (
            not (env.custom_nodes_dir / spec.directory).is_dir()
            and not (env.custom_nodes_dir / f"{spec.directory}.disabled").is_dir()
        ):
            missing.append(node_id)
    return missing


def dev_node_hint(env, doc, missing: list[str]) -> str:
    from comfydock.nodes.spec import tracked_nodes

    specs = tracked_nodes(doc)
    dirs = ", ".join(f"custom_nodes/{specs[n].directory}" for n in missing)
    return (
        f"development nodes are not in git: copy each into {env.custom_nodes_dir} ({dirs}), e.g. from a bundle "
        "made with 'comfydock export' on a machine that has them, or from its own repository"
    )


def _merge(env, repo, head: str, theirs: str, remote: str) -> str:
    """A merge commit of HEAD and `theirs` (nothing checked out): refused, naming the files, when
    git cannot merge them cleanly; uv.lock is always re-resolved from the merged pyproject.toml."""
    from comfydock import uv_runner

    git = _git()
    if not repo.git.execute(["git", "merge-base", head, theirs], with_exceptions=False):
        raise ComfydockError(
            f"{remote} holds an unrelated history (no common version with this environment)",
            hint="is the URL right? 'comfydock remote list'; to start from it, 'comfydock create NAME --from URL'",
        )
    code, out, err = repo.git.execute(
        ["git", "merge-tree", "--write-tree", "--name-only", "--no-messages", head, theirs],
        with_exceptions=False,
        with_extended_output=True,
    )
    lines = out.splitlines()
    if code not in (0, 1) or not lines:
        raise ExternalToolError(
            f"cannot merge {remote}'s changes: {err.strip() or 'git merge-tree failed'}",
            hint="comfydock needs git 2.38 or newer to merge",
        )
    tree, conflicted = lines[0], sorted(set(lines[1:]) - {"uv.lock", ""})
    if conflicted:
        raise ComfydockError(
            f"pull refused: both sides changed {', '.join(conflicted)} in ways git cannot merge; nothing was changed",
            hint="settle it on one side: e.g. 'comfydock rollback' to an agreed version and commit, "
            "or make the same edit here and 'comfydock commit', then pull again",
        )
    pyproject = repo.git.execute(["git", "cat-file", "blob", f"{tree}:pyproject.toml"], strip_newline_in_stdout=False)
    _parse_manifest(pyproject, "the merged history")
    with tempfile.TemporaryDirectory(dir=env.state_dir, prefix="merge-") as tmp:
        work = Path(tmp)
        (work / "pyproject.toml").write_text(pyproject, encoding="utf-8")
        for name, source in ((".python-version", tree), ("uv.lock", head)):
            try:
                data = repo.git.execute(["git", "cat-file", "blob", f"{source}:{name}"], strip_newline_in_stdout=False)
                (work / name).write_text(data, encoding="utf-8")
            except git.GitCommandError:
                pass
        uv_runner.uv_lock(env.workspace, work)  # ours as the starting point: unchanged pins stay
        blob = repo.git.hash_object("-w", str(work / "uv.lock"))
        index = work / "index"
        genv = {"GIT_INDEX_FILE": str(index)}  # added to the process environment by GitPython
        repo.git.execute(["git", "read-tree", tree], env=genv)
        repo.git.execute(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},uv.lock"], env=genv)
        merged_tree = repo.git.execute(["git", "write-tree"], env=genv)
    actor = history._actor(repo)
    cenv = {
        "GIT_AUTHOR_NAME": actor.name,
        "GIT_AUTHOR_EMAIL": actor.email,
        "GIT_COMMITTER_NAME": actor.name,
        "GIT_COMMITTER_EMAIL": actor.email,
    }
    message = f"Merge {remote}'s changes"
    return repo.git.execute(["git", "commit-tree", merged_tree, "-p", head, "-p", theirs, "-m", message], env=cenv)


def _restore_tags(repo, saved: dict[str, str]) -> None:
    for t in _version_tags(repo):
        if t not in saved:
            repo.git.tag("-d", t)
    for t, c in saved.items():
        repo.git.tag("-f", t, c)


def pull(env, remote: str | None = None, *, listener=None, on_wait=None) -> PullResult:
    from comfydock.versioning import RollbackResult, apply_commit

    with env.process_lock(on_wait):
        repo, remote, branch = _start_exchange(
            env,
            remote,
            "pull",
            "keep them with 'comfydock commit' (pull then merges), or discard them with 'comfydock rollback --yes' (workflows never committed are kept: move them out of ComfyUI's workflows folder)",
        )
        fetch(repo, remote)
        head = repo.head.commit.hexsha
        theirs = _rev(repo, f"refs/remotes/{remote}/{branch}")
        if theirs is None:
            raise ComfydockError(
                f"{remote} has no branch {branch}", hint=f"publish this environment there first: 'comfydock push {remote}'"
            )
        if _is_ancestor(repo, theirs, head):
            how, target = "up-to-date", head
        elif _is_ancestor(repo, head, theirs):
            how, target = "fast-forward", theirs
        else:
            how, target = "merge", None
        if how != "up-to-date":
            limits = ArchiveLimits.from_workspace(env.workspace)
            check_tree(repo, theirs, f"{remote}'s {branch}", limits=limits)
            check_history(repo, [theirs, f"^{head}"], f"{remote}'s {branch}", limits)
            _parse_manifest(repo.git.show(f"{theirs}:pyproject.toml"), f"{remote}'s {branch}")
            if how == "merge":
                target = _merge(env, repo, head, theirs, remote)
        result = PullResult(remote, branch, how, head, target)
        saved_tags = _version_tags(repo)
        with env.transaction() as tx:
            if how != "up-to-date":
                applied = RollbackResult(f"{remote}/{branch}", target)
                apply_commit(env, repo, target, tx, applied, listener=listener)
                tx.on_undo(partial(_reset_branch, repo, head), "the branch")  # registered before the move
                repo.git.reset("-q", target)  # the branch moves; the files already match it
                result.applied = applied.to_json()
            tx.on_undo(lambda: _restore_tags(repo, saved_tags), "the version tags")
            _adopt_tags(repo, target, f"{TAG_NAMESPACE}/{remote}/", saved_tags, result, merge=how == "merge")
            _set_upstream(repo, remote, branch)
        # development nodes never travel through git, so one this machine lacks is named, never a
        # refusal: the rest of the version applies ('build' scans it once its directory is there)
        doc = env.manifest_data()
        result.dev_nodes_missing = missing_dev_nodes(env, doc)
        if result.dev_nodes_missing:
            result.dev_nodes_hint = dev_node_hint(env, doc, result.dev_nodes_missing) + "; then 'comfydock build'"
        return result


def _reset_branch(repo, head: str) -> None:
    """Undo of moving the branch: back to `head` (index too), only if it is not there already."""
    if repo.head.commit.hexsha != head:
        repo.git.reset("-q", head)


def _adopt_tags(repo, target: str, prefix: str, local: dict, result: PullResult, merge: bool) -> None:
    """Remote versions become local ones. A local unpushed vN the remote gave to another commit is
    renumbered after the remote's versions, and so is every local version after it (a child keeps a
    higher number than its parent); a merge commit gets the next version."""
    reachable = _version_tags(repo, prefix, merged=target)
    moving: list[str] = []
    for t in sorted(local, key=lambda t: int(t[1:])):
        if (t in reachable and reachable[t] != local[t]) or (moving and t not in reachable):
            moving.append(t)
    staying = (set(local) - set(moving)) | set(reachable)
    nxt = max((int(t[1:]) for t in staying), default=0) + 1
    for t in moving:
        repo.git.tag("-d", t)
    for t in moving:
        new = f"v{nxt}"
        nxt += 1
        repo.git.tag(new, local[t])
        result.renamed[t] = new
    for t, c in sorted(reachable.items(), key=lambda item: int(item[0][1:])):
        if local.get(t) != c:
            repo.git.tag("-f", t, c)
            result.versions.append(t)
    if merge:
        new = f"v{nxt}"
        repo.git.tag(new, target)
        result.versions.append(new)


# --- create --from ---------------------------------------------------------------------------


@dataclass
class CloneResult:
    environment: str
    path: str
    url: str
    version: str | None
    commit: str
    comfyui_commit: str
    python: str
    torch_backend: str | None
    nodes: list[str] = field(default_factory=list)
    dev_nodes_missing: list[str] = field(default_factory=list)
    workflows: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    active: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def create_from_remote(
    ws,
    name: str,
    url: str,
    *,
    torch_backend: str | None = None,
    use: bool = False,
    step=lambda message: None,
    warn=lambda message: None,
) -> CloneResult:
    """A new environment whose .cec/ is cloned from `url` (remote `origin`), then built: ComfyUI at
    the recorded commit, the recorded Python, nodes at their recorded versions, the venv synced to
    the cloned uv.lock, workflows copied into ComfyUI. No new version is made: the history is the
    remote's. All or nothing like `create`: on any failure the environment directory is removed.

    `torch_backend` (None: this machine's setting) is kept in the environment's .comfydock/, never
    in .cec/ (see torch_family): a backend the history has no variant for is added as an extra.
    """
    from comfydock import comfyui, engine, manifest, uv_runner
    from comfydock.engine import build_failure
    from comfydock.fsutil import remove_tree
    from comfydock.lifecycle import checkout_recorded_comfyui, creating
    from comfydock.workflows import tracking
    from comfydock.workspace import validate_name

    git = _git()
    validate_name(name)
    validate_url(url)
    if torch_backend is not None:
        resolve_torch_backend(torch_backend)  # an unknown name is refused before anything is made
    warnings: list[str] = []

    def _warn(msg):
        warnings.append(msg)
        warn(msg)

    root = ws.environments_dir / name
    with creating(ws, name) as (env, tx):  # any failure, Ctrl-C included, removes the half-made environment
        step(f"Cloning the history from {url}")
        # cloned beside .cec/, its git directory moved in last: until then the environment has
        # no commit, so an interrupted (even killed) create leaves a half-made one, as create does
        incoming = root / ".cec-clone"
        try:
            repo = git.Repo.clone_from(url, incoming, no_checkout=True, multi_options=["--origin=origin"])
        except git.GitCommandError as exc:
            raise ExternalToolError(
                f"cannot clone {url}: {git_reason(exc)}",
                hint="give the URL of an environment's history (what 'comfydock remote add' and 'push' use): "
                "check it with 'git ls-remote URL'",
            ) from None
        if not repo.head.is_valid():
            # a bare repository made by 'git init --bare' may name a default branch ('master')
            # that was never pushed while 'main' was: take main, or the only branch there is
            branches = {r.remote_head: r for r in repo.remotes.origin.refs if r.remote_head != "HEAD"}
            pick = branches.get("main") or (next(iter(branches.values())) if len(branches) == 1 else None)
            if pick is None:
                raise ComfydockError(f"{url} has no versions yet", hint="push an environment there first: 'comfydock push'")
            repo.git.symbolic_ref("HEAD", f"refs/heads/{pick.remote_head}")
            repo.git.update_ref(f"refs/heads/{pick.remote_head}", pick.commit.hexsha)
            repo.git.branch(f"--set-upstream-to={pick.name}", pick.remote_head)
        commit = repo.head.commit.hexsha
        limits = ArchiveLimits.from_workspace(ws)
        check_tree(repo, commit, url, limits=limits)
        check_history(repo, ["--all"], url, limits)
        doc = _parse_manifest(repo.git.show(f"{commit}:pyproject.toml"), url)
        env.cec_dir.mkdir()
        repo.git.execute(["git", f"--work-tree={env.cec_dir}", "checkout", "--quiet", commit, "--", "."])
        info = manifest.environment_info(doc)
        python = manifest.check_python_version(info.get("python_version") or "3.11", url)
        wanted = str(info.get("comfyui_commit") or "")
        if not wanted:
            raise ComfydockError(f"{url}'s manifest does not say which ComfyUI commit it needs")

        ref = checkout_recorded_comfyui(ws, env, wanted, info.get("comfyui_version"), step, _warn)
        comfyui.write_extra_model_paths(env.comfyui_dir, ws.models_dir)

        note = adopt_machine_backend(env, torch_backend, "history")
        recorded, backend = note is None, env.torch_backend()
        if note:
            _warn(note + ", an uncommitted change ('comfydock commit' + 'push' shares it)")

        step(f"Creating Python {python} venv")
        uv_runner.create_venv(ws, env.venv_dir, python)

        missing = missing_dev_nodes(env, doc)
        from comfydock.nodes.spec import tracked_nodes

        specs = tracked_nodes(doc)
        step("Installing nodes and dependencies")
        if not missing:
            from comfydock.tasks.nodes import scan_task_names

            report = engine.build(env, scan_task_names(env))
            if report.ok:
                report = engine.build(env, ["lock_deps", "sync_venv", "core_node_types"])
            if not report.ok:
                raise build_failure(report)
        else:  # the lock cannot be checked without their source: install what uv.lock says
            targets = [f"install_node:{n}" for n, s in sorted(specs.items()) if s.source != "development"]
            report = engine.build(env, targets) if targets else None
            if report is not None and not report.ok:
                raise build_failure(report)
            if not recorded:
                from comfydock.tasks.python import lock_coherent

                lock_coherent(env)
            uv_runner.uv_sync(ws, env.cec_dir, env.venv_dir, env.torch_extra())
            env.record_venv_synced(env.torch_extra())
            from comfydock import torch_probe

            torch_probe.after_sync(env)  # the family's import result, as sync_venv records it
            _warn(
                f"development node(s) {', '.join(missing)} are not in git and were not installed: "
                + dev_node_hint(env, doc, missing)
                + "; then 'comfydock build'"
            )

        workflows = []
        for wf_name, copy in sorted(tracking.versioned_copies(env).items()):
            dest = env.workflows_dir / f"{wf_name}{tracking.SUFFIX}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(copy.read_bytes())
            workflows.append(wf_name)
        fetch(repo, "origin")
        os.rename(incoming / ".git", env.cec_dir / ".git")
        remove_tree(incoming)
        repo = history.open_repo(env.cec_dir)
        repo.git.reset("-q")  # the index, re-read against the files where they now are
        if use or not ws.active_environment:
            tx.on_undo(partial(ws.set_active, ws.active_environment), "the active environment")
            ws.set_active(name)
    versions = history.versions(repo)
    at = next((v.version for v in versions if v.commit == commit), None)
    return CloneResult(
        environment=name,
        path=str(root),
        url=url,
        version=at,
        commit=commit,
        comfyui_commit=ref.commit,
        python=python,
        torch_backend=backend or "pypi",
        nodes=sorted(n for n, s in specs.items() if s.source != "development" or n not in missing),
        dev_nodes_missing=missing,
        workflows=workflows,
        warnings=warnings,
        active=ws.active_environment == name,
    )
