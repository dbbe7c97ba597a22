"""A run directory as one object: readers that never write or run code, and an owner that checks what it opens.

Each test here names the defect it pins (the numbers of the run-directory issue); each failed on the code before
``pbt.rundir.RunDir`` and ``pbt.store.StoreReader``."""

from __future__ import annotations

import ast
import json
import sqlite3
import time
from pathlib import Path

import pytest

from pbt.lock import LOCK_NAME
from pbt.rundir import RunDir
from pbt.store import STORE_VERSION, StoreReader
from tests.conftest import cli
from tests.test_robustness import assert_one_line_error

REPO = Path(__file__).resolve().parents[1]
TOY_RUN = ["run", "toy", "--budget-steps", "40", "--quiet"]


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, but the lock file (whoever takes the lock writes its PID there):
    what a reader, or a refused owner, must leave as it found it."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


def toy_run(cli_env: dict[str, str], out: Path, *flags: str) -> Path:
    cli([*TOY_RUN, "--out", str(out), *flags], cli_env)
    return out


def edit_meta(run_dir: Path, **values: object) -> None:
    """Change a stored run's metadata by hand (as a crafted, shared run directory would arrive)."""
    with sqlite3.connect(run_dir / "pbt.sqlite") as db:
        for key, value in values.items():
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
    db.close()


# -- 1: reading a run directory never runs code it names ------------------------------------------------------------


@pytest.mark.parametrize("domain", ["evil", "toy"])
def test_a_crafted_run_directory_makes_no_command_import_the_module_it_names(domain, cli_env, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "victim_code" / "evil.py"
    evil.parent.mkdir()
    evil.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n")
    victim = toy_run(cli_env, tmp_path / "victim")
    edit_meta(victim, domain=domain, module=str(evil), space=None)  # no stored priors: nothing to fall back on
    commands = [
        ["compare", str(victim), "--out", str(tmp_path / "cmp")],
        ["replay", str(victim), "--out", str(tmp_path / "replayed"), "--quiet"],
        ["status", str(victim)],
    ]
    for command in commands:
        cli(command, cli_env, check=False)
        assert not marker.exists(), f"`{' '.join(command[:1])}` imported the module the store names"
    edit_meta(victim, status="interrupted")
    resumed = cli(["resume", str(victim), "--quiet"], cli_env, check=False)
    assert not marker.exists(), "resume imported the module the store names"
    if domain == "evil":  # not registered: resume asks for the module by name, and only then imports it
        assert_one_line_error(resumed, "not a registered domain", f"--task {evil}")
    else:  # a registered name resumes with the registered code, whatever module the store records
        assert resumed.returncode == 0, resumed.stderr


# -- 8 and 9: readers never write (2, 3 and the read-only mount are process-level: tests/test_faults.py) -----------


def test_status_and_compare_refuse_a_file_that_is_not_a_run_store_and_leave_it_alone(cli_env, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    db = sqlite3.connect(foreign / "pbt.sqlite")
    db.execute("CREATE TABLE notes (text TEXT)")
    db.execute("INSERT INTO notes VALUES ('mine')")
    db.commit()
    db.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "pbt.sqlite").write_bytes(b"")
    for run_dir in (foreign, empty):
        before = listing(run_dir)
        assert_one_line_error(cli(["status", str(run_dir)], cli_env, check=False), str(run_dir / "pbt.sqlite"))
        assert_one_line_error(
            cli(["compare", str(run_dir), "--out", str(tmp_path / "cmp")], cli_env, check=False),
            str(run_dir / "pbt.sqlite"),
        )
        assert listing(run_dir) == before and sorted(p.name for p in run_dir.iterdir()) == ["pbt.sqlite"]


@pytest.mark.parametrize("version", [0, STORE_VERSION + 1])  # none recorded (the first layouts), a later one
def test_a_store_of_another_layout_version_is_refused_in_one_line_and_left_alone(cli_env, tmp_path, version):
    run_dir = toy_run(cli_env, tmp_path / "run")
    with sqlite3.connect(run_dir / "pbt.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == STORE_VERSION  # recorded when the store was made
        db.execute(f"PRAGMA user_version = {version}")
    db.close()
    before = listing(run_dir)
    said = f"{run_dir / 'pbt.sqlite'} is a run store of layout version {version}; this code reads layout version"
    for command in (["status", str(run_dir)], ["compare", str(run_dir), "--out", str(tmp_path / "cmp")]):
        assert_one_line_error(cli(command, cli_env, check=False), said, f"version {STORE_VERSION} only")
    assert_one_line_error(cli(["resume", str(run_dir)], cli_env, check=False), said)
    assert_one_line_error(cli([*TOY_RUN, "--out", str(run_dir), "--resume"], cli_env, check=False), said)
    assert listing(run_dir) == before


def test_reading_a_finished_run_creates_no_file(cli_env, tmp_path):
    run_dir = toy_run(cli_env, tmp_path / "run")
    before = listing(run_dir)
    cli(["status", str(run_dir)], cli_env)
    cli(["compare", str(run_dir), "--out", str(tmp_path / "cmp"), "--no-figures"], cli_env)
    assert listing(run_dir) == before  # not even SQLite's -wal and -shm files


# -- 10, 13: where a run may go, and the smaller ones ---------------------------------------------------------------


def test_out_inside_another_run_is_refused(cli_env, tmp_path):
    outer = toy_run(cli_env, tmp_path / "outer")
    inner = outer / "checkpoints" / "inner"
    assert_one_line_error(
        cli([*TOY_RUN, "--out", str(inner)], cli_env, check=False), "inside the run directory", str(outer)
    )
    assert not inner.exists()
    edit_meta(outer, status="interrupted")
    cli(["resume", str(outer), "--quiet"], cli_env)


def test_force_on_a_symlinked_run_replaces_the_run_and_keeps_the_link(cli_env, tmp_path):
    target = toy_run(cli_env, tmp_path / "target")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    cli([*TOY_RUN, "--budget-steps", "8", "--out", str(link), "--force"], cli_env)
    assert link.is_symlink() and link.resolve() == target.resolve()
    with StoreReader(target) as store:
        assert store.compute()["budget_steps"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]  # no .link.old-PID left behind


def test_compare_without_figures_says_what_it_wrote(cli_env, tmp_path):
    run_dir = toy_run(cli_env, tmp_path / "run")
    done = cli(["compare", str(run_dir), "--out", str(tmp_path / "cmp"), "--no-figures"], cli_env)
    line = done.stdout.strip().splitlines()[-1]
    assert "  " not in line and line.endswith(f"in {tmp_path / 'cmp'}") and "comparison.csv" in line


def test_status_counts_the_wall_time_of_the_interval_in_progress(tmp_path):
    from experiments.toy.task import SPACE
    from experiments.toy.task import Config as ToyConfig
    from repro.progress import member_table

    run_dir = RunDir.open(tmp_path / "run", "toy", "pbt", ToyConfig(), None, SPACE)
    try:
        run_dir.store.set_meta(wall_seconds=5.0, wall_at=time.time() - 100.0)  # last commit 100 s ago, still training
        with StoreReader(run_dir.path) as reader:
            head = member_table(reader).splitlines()[0]
    finally:
        run_dir.close()
    wall = float(head.rsplit(" s wall", 1)[0].rsplit(" ", 1)[1])
    assert "running" in head and 105.0 <= wall < 110.0, head


# -- the layout: one owner, one reader ------------------------------------------------------------------------------


def test_only_the_run_directory_and_the_store_open_a_store_or_take_the_lock():
    allowed = {"pbt/store.py", "pbt/store_writer.py", "pbt/rundir.py"}
    found = []
    for package in ("pbt", "repro", "baselines", "experiments", "bench"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call) or rel in allowed:
                    continue
                func = node.func
                name = getattr(func, "id", "") or getattr(func, "attr", "")
                sqlite = isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "sqlite3"
                if (sqlite and name == "connect") or name in ("RunLock", "Store"):  # a store opened, the lock taken
                    found.append(f"{rel}:{node.lineno} calls {name}")
    assert not found, found


def test_member_states_and_event_kinds_are_compared_as_typed_constants():
    """``m.status == "done"`` or ``e.kind in ("exploit", ...)`` written out as strings, in any file, is how two
    readers came to disagree on which members count; compare with ``MemberStatus`` / ``EventKind`` instead."""
    found = []
    for package in ("pbt", "repro", "baselines", "experiments"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Compare):
                    continue
                sides = [node.left, *node.comparators]
                if not any(isinstance(s, ast.Attribute) and s.attr in ("kind", "status") for s in sides):
                    continue
                literals = [
                    c
                    for s in sides
                    for c in ([s] if not isinstance(s, (ast.Tuple, ast.List, ast.Set)) else s.elts)
                    if isinstance(c, ast.Constant)
                ]
                if any(isinstance(c.value, str) for c in literals):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, found
