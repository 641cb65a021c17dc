"""The one undo mechanism: what a failed or interrupted command puts back, and what a finished one keeps."""

import shutil

import pytest

from comfydock.errors import BuildFailed, ComfydockError
from comfydock.transaction import Transaction


def tree(root):
    """Every path under `root` with its bytes (None for a directory): what a user would see."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def place(tmp_path):
    root = tmp_path / "place"
    (root / "nodes" / "old-node").mkdir(parents=True)
    (root / "nodes" / "old-node" / "__init__.py").write_text("old\n")
    (root / "nodes" / "dev-node").mkdir()
    (root / "nodes" / "dev-node" / "mine.py").write_text("my work\n")
    (root / "workflows").mkdir()
    (root / "workflows" / "a.json").write_text("{}")
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "link").symlink_to("nodes/old-node")
    return root


def change_everything(tx, root):
    tx.save_file(root / "pyproject.toml")
    (root / "pyproject.toml").write_text("changed\n")
    tx.save_file(root / "uv.lock")  # absent before: removed again
    (root / "uv.lock").write_text("new lock\n")
    tx.save_tree(root / "workflows")
    (root / "workflows" / "a.json").write_text("edited")
    (root / "workflows" / "b.json").write_text("new")
    tx.move_aside(root / "nodes" / "old-node")
    tx.created(root / "nodes" / "old-node")
    (root / "nodes" / "old-node").mkdir()
    (root / "nodes" / "old-node" / "__init__.py").write_text("new version\n")
    tx.move(root / "nodes" / "dev-node", root / "nodes" / "dev-node.disabled")
    tx.created(root / "nodes" / "brand-new")
    (root / "nodes" / "brand-new").mkdir()


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), ComfydockError("lock_deps: no solution")])
def test_a_failure_or_ctrl_c_puts_every_file_and_directory_back(place, tmp_path, interruption):
    before = tree(place)
    with pytest.raises(type(interruption)):
        with Transaction(tmp_path / "undo") as tx:
            change_everything(tx, place)
            raise interruption
    assert tree(place) == before
    assert (place / "link").is_symlink()
    assert list((tmp_path / "undo").iterdir()) == []  # nothing left in the scratch area


def test_a_finished_change_is_kept_and_what_was_moved_aside_is_gone(place, tmp_path):
    with Transaction(tmp_path / "undo") as tx:
        change_everything(tx, place)
    assert (place / "pyproject.toml").read_text() == "changed\n"
    assert (place / "nodes" / "old-node" / "__init__.py").read_text() == "new version\n"
    assert (place / "nodes" / "dev-node.disabled" / "mine.py").read_text() == "my work\n"
    assert (place / "workflows" / "b.json").exists()
    assert list((tmp_path / "undo").iterdir()) == []


def test_steps_are_undone_newest_first(tmp_path):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with Transaction(tmp_path / "undo") as tx:
            tx.on_undo(lambda: done.append("first registered"))
            tx.on_undo(lambda: done.append("last registered"))
            raise KeyboardInterrupt
    assert done == ["last registered", "first registered"]


def test_a_step_that_cannot_be_undone_is_named_in_the_hint_and_the_others_still_run(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("before")

    def broken():
        raise OSError("disk gone")

    with pytest.raises(ComfydockError) as info:
        with Transaction(tmp_path / "undo") as tx:
            tx.save_file(target)
            tx.on_undo(broken, "the version tags")
            target.write_text("after")
            raise ComfydockError("commit failed", hint="try again")
    assert target.read_text() == "before"
    assert info.value.hint == "try again; could not restore: the version tags: disk gone"


def test_move_never_overwrites_what_is_already_there(place, tmp_path):
    (place / "nodes" / "dev-node.disabled").mkdir()
    with pytest.raises(FileExistsError):
        with Transaction(tmp_path / "undo") as tx:
            tx.move(place / "nodes" / "dev-node", place / "nodes" / "dev-node.disabled")
    assert (place / "nodes" / "dev-node" / "mine.py").read_text() == "my work\n"
    assert list((place / "nodes" / "dev-node.disabled").iterdir()) == []


def test_a_failed_build_names_its_task_as_data():
    from comfydock.engine import BuildReport, TaskEvent, build_failure

    report = BuildReport(
        [TaskEvent("scan_requirements:x", "ran"), TaskEvent("lock_deps", "failed", 1.0, "uv could not resolve", "loosen a pin")],
        exit_code=1,
    )
    error = build_failure(report)
    assert isinstance(error, BuildFailed) and error.task == "lock_deps"
    assert (error.message, error.hint) == ("lock_deps: uv could not resolve", "loosen a pin")
    assert build_failure(BuildReport([], exit_code=1)).task is None


def test_an_undo_that_fails_keeps_what_was_moved_aside_and_says_where(tmp_path):
    root = tmp_path / "place"
    (root / "nodes" / "my-node").mkdir(parents=True)
    (root / "nodes" / "my-node" / "work.py").write_text("hours of work\n")
    scratch = tmp_path / "undo"
    with pytest.raises(ComfydockError) as info:
        with Transaction(scratch) as tx:
            tx.move_aside(root / "nodes" / "my-node")
            shutil.rmtree(root / "nodes")
            (root / "nodes").write_text("a file where the directory was")  # the undo cannot move it back
            raise ComfydockError("the change failed", hint="try again")
    kept = [p for p in scratch.rglob("work.py")]
    assert [p.read_text() for p in kept] == ["hours of work\n"]  # not deleted with the scratch area
    assert "could not restore" in info.value.hint and str(kept[0].parent.parent) in info.value.hint


def test_ctrl_c_carries_what_could_not_be_restored_as_a_note(tmp_path):
    def broken_undo():
        raise OSError("disk on fire")

    with pytest.raises(KeyboardInterrupt) as info:
        with Transaction(tmp_path / "undo") as tx:
            tx.on_undo(broken_undo, "the venv")
            raise KeyboardInterrupt
    assert any("could not restore: the venv: disk on fire" in n for n in info.value.__notes__)
