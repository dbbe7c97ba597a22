"""The run directory: one owner at a time, atomic creation, --force only on runs, a restart after a failed start,
and a status that tells a live run from a dead one."""

from __future__ import annotations

import dataclasses
import fcntl
from pathlib import Path

import pytest

from experiments.toy.task import SPACE
from experiments.toy.task import Config as ToyConfig
from pbt.controller import RunFailed
from pbt.experiment import run_experiment
from pbt.lock import LOCK_NAME, RunBusy, RunLock
from pbt.rundir import RunDir
from pbt.space import ConfigError
from pbt.store import STORE_VERSION, StoreReader, StoreVersionError
from pbt.store_writer import Store

TOY = "experiments.toy.task"


def toy(steps: int = 16, **fields: object) -> ToyConfig:
    base = ToyConfig(**fields)
    return dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, budget_steps=steps))


def test_a_second_owner_is_refused_at_once_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "run"
    store = RunDir.open(out, "toy", "pbt", toy(), None, SPACE)
    assert store.lock.fd >= 0 and RunLock.owner(out) is not None
    for kwargs in ({"resume": True}, {"force": True}, {}):
        with pytest.raises(RunBusy, match=r"in use by process \d+"):
            RunDir.open(out, "toy", "pbt", toy(), None, SPACE, **kwargs)
    assert StoreReader(out).state()[0] == "running"  # readers still read it
    store.close()  # the owner is done: the lock is free
    assert RunLock.owner(out) is None
    assert StoreReader(out).state()[0] == "interrupted"  # says running, but nobody owns it
    RunDir.open(out, "toy", "pbt", toy(), None, SPACE, resume=True).close()


def test_force_replaces_a_run_or_an_empty_folder_and_nothing_else(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"not a run.*notes.txt.*force=True only replaces a run"):
        RunDir.open(notes, "toy", "pbt", toy(), None, SPACE, force=True)
    assert (notes / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    RunDir.open(empty, "toy", "pbt", toy(), None, SPACE, force=True).close()
    first = run_experiment(TOY, toy(), tmp_path / "run", domain="toy")
    first.close()
    again = run_experiment(TOY, toy(steps=8), tmp_path / "run", domain="toy", force=True)
    assert {m.step for m in again.members()} == {8} and again.meta()["status"] == "finished"
    assert not list(tmp_path.glob(".run.*"))  # no hidden left-overs beside it
    with pytest.raises(ConfigError, match="is a file"):
        RunDir.open(notes / "notes.txt", "toy", "pbt", toy(), None, SPACE)


def test_creation_is_atomic_a_kill_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"

    class Killed(BaseException):
        pass

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(Store, "initialise", killed)  # killed half-way through writing the new run
    with pytest.raises(Killed):
        RunDir.open(out, "toy", "pbt", toy(), None, SPACE)
    monkeypatch.undo()
    assert not out.exists()  # nothing at the run's name; the half-built folder is hidden beside it
    store = RunDir.open(out, "toy", "pbt", toy(), None, SPACE, resume=True)
    assert store.store.meta()["domain"] == "toy" and len(store.store.members()) == 2
    store.close()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the killed creation's left-overs were cleared


def test_a_run_that_failed_before_training_can_start_again_with_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    bad = toy(theta_init=(0.9, 0.9))

    def broken_prepare(config: object) -> None:
        raise FileNotFoundError("data not found at /nowhere (from --data-path)")

    import experiments.toy as toy_package

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(toy_package, "DOMAIN", dataclasses.replace(toy_package.DOMAIN, prepare=broken_prepare))
        with pytest.raises(FileNotFoundError):
            run_experiment(TOY, bad, out, domain="toy")
    state, why = StoreReader(out).state()
    assert state == "failed" and "data not found" in why
    fixed = toy(lr=0.02)  # a different config: refused for a run that trained, accepted for one that never did
    store = run_experiment(TOY, fixed, out, domain="toy", resume=True)
    assert store.meta()["status"] == "finished" and store.meta()["config"]["lr"] == 0.02
    with pytest.raises(ConfigError, match="different run"):
        run_experiment(TOY, toy(lr=0.03), out, domain="toy", resume=True)


def test_status_names_the_failure_of_a_stopped_run(tmp_path: Path) -> None:
    from tests.test_controller import FAKE, fake

    config = dataclasses.replace(fake(tmp_path, max_failures=0, on_failure="retry"), fail_member=0, failure="raise")
    with pytest.raises(RunFailed):
        run_experiment(FAKE, config, tmp_path / "run")
    state, why = StoreReader(tmp_path / "run").state()
    assert state == "failed" and "member 0 failed 1 times" in why and "injected failure" in why
    assert (tmp_path / "run" / LOCK_NAME).exists() and RunLock.owner(tmp_path / "run") is None


def test_a_store_without_a_layout_version_is_refused_not_resumed(tmp_path: Path) -> None:
    """A store of the layouts before versions were recorded (SQLite's ``user_version`` 0) is neither resumed nor
    read in part: refused in one line naming the file and both versions, and left as it was."""
    import sqlite3

    out = tmp_path / "run"
    run_experiment(TOY, toy(steps=8), out, domain="toy").close()
    with sqlite3.connect(out / "pbt.sqlite") as db:
        db.execute("PRAGMA user_version = 0")
    db.close()
    before = (out / "pbt.sqlite").read_bytes()
    for attempt in (
        lambda: run_experiment(TOY, toy(steps=16), out, domain="toy", resume=True),
        lambda: StoreReader(out),
        lambda: Store(out),
    ):
        with pytest.raises(StoreVersionError) as refused:
            attempt()
        assert str(refused.value) == (
            f"{out / 'pbt.sqlite'} is a run store of layout version 0; this code reads layout version "
            f"{STORE_VERSION} only"
        )
    assert (out / "pbt.sqlite").read_bytes() == before and not (out / "pbt.sqlite-wal").exists()


def test_a_waiter_on_a_run_replaced_by_force_is_refused_not_made_a_second_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that opened ``pbt.lock`` just before ``--force`` moved the old run away gets the lock of the moved
    file when the forcer lets it go: it must notice that file is no longer the run's, and find the new run owned."""
    import threading

    import pbt.lock as lock_module
    import pbt.rundir as rundir

    out = tmp_path / "run"
    run_experiment(TOY, toy(steps=8), out, domain="toy").close()
    blocked = threading.Event()
    real_flock = lock_module.fcntl.flock

    def flock(fd: int, operation: int) -> None:
        try:
            real_flock(fd, operation)
        except BlockingIOError:
            if threading.current_thread().name == "waiter":
                blocked.set()  # the waiter has the old lock file open and is waiting for it
            raise

    monkeypatch.setattr(
        lock_module,
        "fcntl",
        type(
            "fcntl",
            (),
            {
                "flock": staticmethod(flock),
                "LOCK_EX": fcntl.LOCK_EX,
                "LOCK_SH": fcntl.LOCK_SH,
                "LOCK_NB": fcntl.LOCK_NB,
            },
        ),
    )
    outcome: dict[str, object] = {}

    def waiter() -> None:
        try:
            outcome["owner"] = RunDir.open(out, "toy", "pbt", toy(steps=8), None, SPACE, resume=True)
        except RunBusy as exc:
            outcome["busy"] = exc

    thread = threading.Thread(target=waiter, name="waiter")
    real_build = rundir._build_run

    def build_while_a_waiter_waits(*args: object) -> object:
        if threading.current_thread() is not thread:  # (a waiter wrongly made owner would rebuild the run too)
            thread.start()  # the forcer holds the old run's lock now
            assert blocked.wait(30), "the waiter never reached the lock"
        return real_build(*args)

    monkeypatch.setattr(rundir, "_build_run", build_while_a_waiter_waits)
    forced = RunDir.open(out, "toy", "pbt", toy(steps=8), None, SPACE, force=True)
    thread.join(60)
    assert "owner" not in outcome, "two processes own the run"
    assert "in use by process" in str(outcome["busy"])
    assert forced.lock is not None and RunLock.owner(out) is not None
    assert not forced.store.trained_any() and (out / LOCK_NAME).exists()
    forced.close()
    assert RunLock.owner(out) is None


def test_a_new_run_is_owned_from_the_moment_it_appears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new run's lock is taken in the hidden folder it is built in, before it is renamed into place: there is
    no moment at which another process could resume it."""
    import os as os_module

    import pbt.rundir as rundir

    out = tmp_path / "run"
    seen: list[int | None] = []
    real_rename = os_module.rename

    def rename(src: object, dst: object) -> None:
        real_rename(src, dst)
        if Path(dst) == out:
            seen.append(RunLock.owner(out))  # the instant the run appears under its name

    monkeypatch.setattr(rundir.os, "rename", rename)
    store = RunDir.open(out, "toy", "pbt", toy(), None, SPACE)
    monkeypatch.undo()
    assert seen and seen[0] is not None, "the new run was visible without an owner"
    store.close()


@pytest.mark.parametrize("kwargs", [{"force": True}, {}, {"resume": True}])
def test_a_refused_folder_that_is_not_a_run_keeps_no_lock_file(tmp_path: Path, kwargs: dict[str, bool]) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError):
        RunDir.open(notes, "toy", "pbt", toy(), None, SPACE, **kwargs)
    assert sorted(p.name for p in notes.iterdir()) == ["notes.txt"]


def test_a_setting_added_since_a_run_was_stored_reads_as_its_default(tmp_path: Path) -> None:
    """A store written before a PBTConfig field existed resumes (and ``reproduce`` reuses it) when the field's default
    is what the run computed; a missing setting whose default is not the run's value is still another run."""
    out = tmp_path / "run"
    config = toy()
    run_experiment(TOY, config, out, domain="toy")
    with Store(out) as store:
        stored = store.meta()["config"]
        del stored["pbt"]["ttest_window"]  # as if stored before the field existed: its default, 10, is the run's
        store.set_meta(config=stored)
    assert run_experiment(TOY, config, out, domain="toy", resume=True).meta()["status"] == "finished"
    with Store(out) as store:
        stored = store.meta()["config"]
        del stored["pbt"]["population"]  # reads as the default, 8, where the run has 2
        store.set_meta(config=stored)
    with pytest.raises(ConfigError, match=r"different run \(config\.pbt\.population: 8 != 2"):
        run_experiment(TOY, config, out, domain="toy", resume=True)
