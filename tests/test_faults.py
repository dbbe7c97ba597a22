"""Fault injection on a multi-process toy run, through the command line: kill -9 of the controller, of its whole
process group and of a worker at random moments, resuming until done; two concurrent resumes; kills during start-up;
a corrupt checkpoint and a corrupt store. After each, every invariant of a run directory must hold."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pbt.checkpoints import verify_checkpoint
from pbt.lock import LOCK_NAME, RunLock
from pbt.store import StoreReader
from pbt.store_writer import Store
from tests.conftest import REPO, cli, cli_environment
from tests.test_robustness import _unprivileged_user, assert_one_line_error, remove_read_only_tree
from tests.test_run_directory import edit_meta, listing, toy_run

BUDGET, READY, POPULATION = 160, 8, 4
RUN = [
    "run",
    "toy",
    "--executor",
    "local",
    "--workers",
    "2",
    "--population",
    str(POPULATION),
    "--budget-steps",
    str(BUDGET),
    "--ready-every",
    str(READY),
    "--eval-every",
    str(READY),
    "--seconds-per-step",
    "0.01",
    "--quiet",
]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "repro.cli", *args],
        cwd=REPO,
        env=cli_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def continue_args(run_dir: Path) -> list[str]:
    """Resume a run directory that holds a run; start it again when a kill left nothing there."""
    return ["resume", str(run_dir), "--quiet"] if Store.exists(run_dir) else [*RUN, "--out", str(run_dir)]


def group_alive(pgid: int) -> list[int]:
    """Processes of the process group ``pgid`` (the run's controller and its workers) that still exist."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def wait_gone(pgid: int, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(pgid), f"processes of the run outlived the kill: {group_alive(pgid)}"


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def check_invariants(run_dir: Path, finished: bool) -> None:
    store = StoreReader(run_dir)
    try:
        members = store.members()
        assert len(members) == POPULATION
        for m in members:
            assert m.weight_age <= m.step <= BUDGET
            steps = [s.step for s in store.scores(m.id)]
            assert steps == sorted(set(steps)), f"member {m.id} has repeated or unordered score steps {steps}"
            if m.checkpoint is not None:
                verify_checkpoint(store.checkpoint_path(m), m.checksum or "")
            if finished:
                assert m.status == "done" and m.step == BUDGET
        if finished:
            assert store.state()[0] == "finished"
            kept = {m.checkpoint for m in members}
            assert {p.name for p in store.checkpoint_dir.iterdir()} == kept, "orphan checkpoint files"
    finally:
        store.close()


def test_random_kill_9_of_controller_group_or_worker_then_resume_until_done(tmp_path: Path) -> None:
    rng = random.Random(0)
    run_dir = tmp_path / "run"
    kills = 0
    for attempt in range(30):
        proc = start(continue_args(run_dir))
        target = ("controller", "group", "worker")[attempt % 3]
        time.sleep(rng.uniform(0.3, 1.2))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read()
            break
        # One listing: a child may end between two listings, or between the listing and the kill.
        if target == "worker" and (workers := children(proc.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(workers), signal.SIGKILL)  # the controller replaces it and goes on
            time.sleep(0.3)
            target = "controller"
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL) if target == "group" else os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        wait_gone(proc.pid)
        if Store.exists(run_dir):
            check_invariants(run_dir, finished=False)
            state, _ = StoreReader(run_dir).state()
            assert state in ("interrupted", "finished")  # a dead run never claims to be running
    else:  # on a loaded machine a sitting of a second may end before any step: the last one runs to the end
        proc = start(continue_args(run_dir))
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert kills >= 3
    check_invariants(run_dir, finished=True)


def test_two_concurrent_resumes_one_owner(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = start([*RUN, "--out", str(run_dir)])
    deadline = time.monotonic() + 60
    while RunLock.owner(run_dir) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    # Paused while it owns the directory, so it cannot finish (and let go) before the others start on a loaded machine.
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        second = cli(["resume", str(run_dir), "--quiet"], timeout=60, check=False)
        forced = cli([*RUN, "--out", str(run_dir), "--force"], timeout=60, check=False)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert second.returncode == 2
    assert len(second.stderr.strip().splitlines()) == 1 and f"in use by process {first.pid}" in second.stderr
    assert forced.returncode == 2 and "in use by process" in forced.stderr
    assert first.wait(timeout=120) == 0, first.stderr.read()
    check_invariants(run_dir, finished=True)


def test_kills_during_start_up_leave_nothing_or_a_resumable_run(tmp_path: Path) -> None:
    rng = random.Random(1)
    for i in range(6):
        run_dir = tmp_path / f"run{i}"
        proc = start([*RUN, "--out", str(run_dir)])
        time.sleep(rng.uniform(0.05, 0.6))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_gone(proc.pid)
        assert not run_dir.exists() or Store.exists(run_dir)
        cli(continue_args(run_dir), timeout=120)
        check_invariants(run_dir, finished=True)


def test_a_corrupt_checkpoint_is_replaced_and_a_corrupt_store_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Without exploits no member copies another, so the victim's truncated file is the one it must load on resume
    # (with them, a pending decision may copy a donor first and never read it).
    proc = start([*RUN, "--exploit", "none", "--out", str(run_dir)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Store.exists(run_dir) and all(m.checkpoint for m in StoreReader(run_dir).members()):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = StoreReader(run_dir)
    victim = next(m for m in store.members() if m.step < BUDGET)
    path = store.checkpoint_path(victim)
    store.close()
    path.write_bytes(path.read_bytes()[:-3])  # truncated
    cli(["resume", str(run_dir), "--quiet"], timeout=120)
    check_invariants(run_dir, finished=True)
    failures = StoreReader(run_dir).events("failure")
    assert any("CorruptCheckpoint" in (e.message or "") and e.member == victim.id for e in failures)

    (run_dir / "pbt.sqlite").write_bytes(b"this is not a database" * 100)
    for command in ("resume", "status"):
        bad = cli([command, str(run_dir)], timeout=60, check=False)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_status_tells_a_killed_run_from_a_live_one(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start([*RUN, "--out", str(run_dir)])
    deadline = time.monotonic() + 60
    while RunLock.owner(run_dir) is None and time.monotonic() < deadline:
        time.sleep(0.02)

    def status() -> str:
        return cli(["status", str(run_dir)], timeout=60).stdout.splitlines()[0]

    assert f"— running (owned by process {proc.pid})" in status()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_gone(proc.pid)
    line = status()
    assert "— interrupted (no process owns it (it was killed)" in line and "running" not in line


# -- a full disk stops the run; no member pays for it ---------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path):
    """An 8 MB tmpfs with 7 MB of ballast on it (remove the ballast to free space); skipped where none can be
    mounted (mounting needs root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.decode().strip() or 'mount failed'})")
    try:
        (mount / "ballast").write_bytes(b"\0" * (7 << 20))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("what_fills_it", ["checkpoints", "the store"])
def test_a_full_disk_stops_the_run_in_one_line_replaces_no_member_and_resumes_once_freed(small_disk, what_fills_it):
    run_dir = small_disk / "run"
    if what_fills_it == "checkpoints":
        sizes = ["--checkpoint-bytes", "100000", "--budget-steps", "400", "--ready-every", "10"]
    else:  # tiny checkpoints, many score rows: the store's own writes meet the full disk
        sizes = ["--budget-steps", "6000", "--ready-every", "2000", "--eval-every", "1"]
    args = [
        "run",
        "tests.fake_tasks",
        "--executor",
        "local",
        "--workers",
        "2",
        "--population",
        "4",
        *sizes,
        "--out",
        str(run_dir),
        "--quiet",
    ]
    stopped = cli(args, timeout=300, check=False)
    lines = stopped.stderr.strip().splitlines()
    assert stopped.returncode != 0 and len(lines) == 1 and "disk full" in lines[0], stopped.stderr
    (small_disk / "ballast").unlink()
    with StoreReader(run_dir) as store:  # everything committed is there, and no member was blamed
        assert not [e for e in store.events() if e.kind in ("failure", "replace", "retry")]
        assert all(m.failures == 0 for m in store.members())
    cli(["resume", str(run_dir), "--task", "tests.fake_tasks", "--quiet"], timeout=300)
    with StoreReader(run_dir) as store:
        assert store.state()[0] == "finished" and all(m.status == "done" for m in store.members())


# -- the run directory's owner: a deleted lock file, a damaged store, a read-only mount ------------------------------


def test_deleting_the_lock_file_lets_no_second_owner_in_and_stops_the_first(cli_env, tmp_path):
    run_dir = tmp_path / "run"
    # intervals of about 3 s: the first owner is alive, between two commits, when the second one tries
    args = [
        "run",
        "toy",
        "--executor",
        "serial",
        "--budget-steps",
        "2000",
        "--ready-every",
        "1000",
        "--eval-every",
        "1000",
        "--seconds-per-step",
        "0.003",
        "--out",
        str(run_dir),
        "--quiet",
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "repro.cli", *args],
        cwd=REPO,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (RunLock.owner(run_dir) and StoreReader.exists(run_dir)):
            time.sleep(0.02)
        assert first.poll() is None, "the run ended before its lock file could be deleted"
        (run_dir / LOCK_NAME).unlink()
        status = cli(["status", str(run_dir)], cli_env)
        assert "running" in status.stdout.splitlines()[0], status.stdout
        second = cli(["resume", str(run_dir), "--quiet"], cli_env, check=False)
        assert_one_line_error(second, "in use by process", str(first.pid))
        _, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    ended = subprocess.CompletedProcess(first.args, first.returncode, stderr=stderr)
    assert_one_line_error(ended, LOCK_NAME, "deleted or replaced")
    with StoreReader(run_dir) as store:
        steps = [(s.member, s.step) for s in store.scores()]
        assert len(steps) == len(set(steps)), "two owners wrote the same steps"
        assert store.compute()["used_steps"] < 4000, "the first owner trained on after its lock file was deleted"
    cli(["resume", str(run_dir), "--quiet"], cli_env)  # the first owner gone, the run continues


def test_resume_refuses_a_damaged_store_and_leaves_it_as_it_was(cli_env, tmp_path):
    run_dir = toy_run(cli_env, tmp_path / "run", "--budget-steps", "400")
    edit_meta(run_dir, status="interrupted")
    store = run_dir / "pbt.sqlite"
    data = bytearray(store.read_bytes())
    assert len(data) >= 4 * 4096
    data[3 * 4096 + 8 : 3 * 4096 + 72] = bytes(range(64))  # 64 bytes flipped inside a page's cell area
    store.write_bytes(bytes(data))
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    assert db.execute("PRAGMA quick_check").fetchone()[0] != "ok", "the flipped bytes must damage a page"
    db.close()
    before = listing(run_dir)
    refused = cli(["resume", str(run_dir), "--quiet"], cli_env, check=False)
    assert_one_line_error(refused, str(store), "quick_check")
    assert listing(run_dir) == before


def test_a_finished_run_on_a_read_only_directory_can_be_read(cli_env):
    base = Path(tempfile.mkdtemp(prefix="pbt-ro-read-"))  # not under pytest's tmp_path: that one is private to us
    try:
        os.chmod(base, 0o755)
        run_dir = toy_run(cli_env, base / "run")
        out = base / "out"
        out.mkdir()
        os.chmod(out, 0o777)
        user = _unprivileged_user()
        for path in [run_dir / "checkpoints", run_dir]:
            os.chmod(path, 0o555)
        for path in run_dir.iterdir():
            if path.is_file():
                os.chmod(path, 0o444)
        status = cli(["status", str(run_dir)], cli_env, user=user)
        assert "finished" in status.stdout, status.stderr
        cli(["compare", str(run_dir), "--out", str(out / "cmp"), "--no-figures"], cli_env, user=user)
    finally:
        remove_read_only_tree(base)
