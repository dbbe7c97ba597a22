import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from pbt.checkpoints import verify_checkpoint
from pbt.store import StoreReader
from pbt.store_writer import Store
from tests.conftest import REPO, cli, only_line


def test_core_does_not_import_torch():
    code = (
        "import sys, pbt.space, pbt.exploit, pbt.config, pbt.store, pbt.algorithm, pbt.executor, pbt.controller,"
        " repro.progress, pbt.task, baselines; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["run", "toy", "--help"],
        ["baseline", "toy", "--help"],
        ["resume", "--help"],
        ["status", "--help"],
        ["toy", "--help"],
        ["demo", "--help"],
    ],
)
def test_help_works_everywhere(args, cli_env):
    out = cli(args, cli_env).stdout
    assert "usage" in out.lower() or "commands" in out.lower()
    if args[:2] == ["run", "toy"]:
        for flag in ("--population", "--workers", "--seed", "--out", "--exploit", "--explore", "--ready-every", "--lr"):
            assert flag in out
        assert "Step size of gradient ascent" in out  # help text comes from the config dataclass


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "toy", "--population", "1"], "population must be >= 2"),
        (["run", "toy", "--ready-every", "0"], "ready_every must be > 0"),
        (["run", "toy", "--priors", "h0=uniform:1:0"], "priors: h0: Uniform: lower bound 1.0 is greater than upper"),
        (["run", "nope"], "unknown domain 'nope'"),
        (["run", "toy", "--profile", "huge"], "unknown profile 'huge'"),
        (["status", "does-not-exist"], "is not a run directory"),
    ],
)
def test_bad_input_gives_one_line_error(args, message, cli_env, tmp_path):
    proc = cli(args + (["--out", str(tmp_path / "r")] if args[0] == "run" else []), cli_env, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_config_file_with_unknown_key_is_refused(cli_env, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"pbt": {"popsize": 3}}))
    proc = cli(["run", "toy", "--config", str(path), "--out", str(tmp_path / "r")], cli_env, check=False)
    assert proc.returncode == 2 and "unknown config key 'pbt.popsize'" in proc.stderr


def test_run_baseline_status_and_refusal_to_overwrite(cli_env, tmp_path):
    run_dir, rs_dir = tmp_path / "pbt", tmp_path / "rs"
    out = cli(["run", "toy", "--seed", "2", "--out", str(run_dir), "--quiet"], cli_env).stdout
    assert "toy / pbt — finished" in out
    cli(["baseline", "toy", "--seed", "2", "--out", str(rs_dir), "--quiet"], cli_env)
    rs = StoreReader(rs_dir)
    assert rs.meta()["method"] == "random_search" and rs.events() == []
    assert rs.meta()["config"]["pbt"]["exploit"] == "none"
    status = cli(["status", str(run_dir)], cli_env).stdout
    assert "member" in status and "h0=" in status
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that has gone away, as in `status DIR | head -1`
    closed = subprocess.run(
        [sys.executable, "-m", "repro.cli", "status", str(run_dir)],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
        cwd=REPO,
        timeout=60,
    )
    os.close(write_end)
    assert closed.returncode == 141 and closed.stderr == ""
    again = cli(["run", "toy", "--seed", "2", "--out", str(run_dir)], cli_env, check=False)
    assert again.returncode == 2 and "holds a run" in again.stderr


def test_kill_9_mid_run_then_resume_completes_every_member(cli_env, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "run",
        "toy",
        "--executor",
        "local",
        "--workers",
        "2",
        "--population",
        "4",
        "--budget-steps",
        "80",
        "--ready-every",
        "8",
        "--eval-every",
        "8",
        "--seconds-per-step",
        "0.01",
        "--out",
        str(run_dir),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "repro.cli", *args],
        cwd=REPO,
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    progressed = False
    while time.monotonic() < deadline and proc.poll() is None:  # poll the store until a few intervals committed
        if Store.exists(run_dir):
            store = StoreReader(run_dir)
            steps = sum(m.step for m in store.members())
            store.close()
            if steps >= 4 * 8 * 3:
                progressed = True
                break
        time.sleep(0.05)
    assert progressed and proc.poll() is None, "run finished or stalled before it could be killed"
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 2  # the worker processes
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while any(os.path.exists(f"/proc/{pid}") for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in children), "workers outlived their controller"

    store = StoreReader(run_dir)
    assert store.meta()["status"] == "running"  # killed: it never wrote its end
    before = {m.id: m.step for m in store.members()}
    assert any(step < 80 for step in before.values())
    store.close()

    cli(["resume", str(run_dir), "--quiet"], cli_env)
    store = StoreReader(run_dir)
    members = store.members()
    assert len(members) == 4
    for m in members:
        assert m.status == "done" and m.step == 80  # nobody lost, nobody trained past the budget
        verify_checkpoint(store.checkpoint_path(m), m.checksum)
        steps = [s.step for s in store.scores(m.id)]
        assert steps == sorted(set(steps)) == list(range(8, 81, 8))  # no interval recorded twice
    assert store.meta()["status"] == "finished"
    referenced = {m.checkpoint for m in members}
    assert {p.name for p in store.checkpoint_dir.iterdir()} == referenced  # uncommitted files were cleaned up


def test_dry_run_prints_the_plan_and_trains_nothing(cli_env, tmp_path):
    out = cli(
        ["run", "toy", "--population", "6", "--workers", "2", "--dry-run", "--out", str(tmp_path / "r")], cli_env
    ).stdout
    assert "6 members x 200 steps = 1,200 steps" in out and "members at a time" in out
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "executor, workers, expected", [("serial", 0, 1), ("serial", 4, 1), ("local", 3, 3), ("local", 16, 6)]
)
def test_the_plan_trains_as_many_members_at_once_as_the_executor(executor, workers, expected):
    import experiments.toy as toy_package
    import experiments.toy.task as toy
    from pbt.executor import concurrency
    from repro.plan import plan

    config = toy.Config()
    config.pbt = dataclasses.replace(config.pbt, population=6, executor=executor, workers=workers)
    assert concurrency(config.pbt, 6) == expected
    text = plan(toy_package.DOMAIN, config, capacity={"CPU": 64.0, "GPU": 0.0})  # a large machine changes nothing
    assert f"-> {expected} members at a time" in text


def test_resume_may_change_where_it_runs_but_not_what_it_computes(cli_env, tmp_path):
    run_dir = tmp_path / "run"
    cli(["run", "toy", "--executor", "serial", "--out", str(run_dir), "--quiet"], cli_env)
    out = cli(["resume", str(run_dir), "--executor", "local", "--workers", "2", "--quiet"], cli_env).stdout
    assert "finished" in out
    proc = cli(["run", "toy", "--executor", "local", "--resume", "--out", str(run_dir), "--quiet"], cli_env)
    assert proc.returncode == 0
    proc = cli(["run", "toy", "--lr", "0.02", "--resume", "--out", str(run_dir)], cli_env, check=False)
    assert proc.returncode == 2 and "belongs to a different run (config.lr: 0.01 != 0.02)" in proc.stderr


def test_ctrl_c_stops_a_run_with_one_line_whose_command_resumes_it(cli_env, tmp_path, interrupt_training):
    run_dir = tmp_path / "toy run"
    proc = interrupt_training(
        [sys.executable, "-m", "repro.cli", "run", "toy", "--seconds-per-step", "0.02", "--out", str(run_dir)],
        run_dir,
        REPO,
    )
    assert proc.returncode == 130
    line = only_line(proc.stderr)
    command = re.search(r"`(.*)`", line).group(1)
    assert command == f"pbt-repro resume {shlex.quote(str(run_dir))}"  # the run's own directory, ready to paste
    assert StoreReader(run_dir).meta()["status"] == "interrupted"
    resumed = cli([*shlex.split(command)[1:], "--quiet"], cli_env)
    assert "finished" in resumed.stdout


def test_a_run_stopped_by_max_failures_resumes_with_a_larger_max_failures(cli_env, tmp_path):
    run_dir = tmp_path / "run"
    # member 0's second interval raises once (after a step was trained, so the run is not started over on resume; no
    # exploit, which would hand member 0 another member's state); with --max-failures 0 that stops the run
    stopped = cli(
        [
            "run",
            "tests.fake_tasks",
            "--fail-member",
            "0",
            "--fail-at-step",
            "10",
            "--failure",
            "raise",
            "--marker-dir",
            str(tmp_path),
            "--exploit",
            "none",
            "--max-failures",
            "0",
            "--on-failure",
            "retry",
            "--out",
            str(run_dir),
            "--quiet",
        ],
        cli_env,
        check=False,
    )
    assert stopped.returncode == 1, stopped.stderr
    assert "member 0 failed 1 times (max_failures=0)" in stopped.stderr
    # the same limit: it cannot go on (a run of an unregistered task resumes with the module named: --task)
    refused = cli(["resume", str(run_dir), "--task", "tests.fake_tasks", "--quiet"], cli_env, check=False)
    assert refused.returncode == 1 and "resume with a larger --max-failures" in refused.stderr
    done = cli(
        ["resume", str(run_dir), "--task", "tests.fake_tasks", "--max-failures", "5", "--quiet"], cli_env
    )  # the hint, followed
    assert "finished" in done.stdout
    store = StoreReader(run_dir)
    assert store.state()[0] == "finished" and all(m.status == "done" for m in store.members())
    store.close()
