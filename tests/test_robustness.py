"""Reliability: workers never outlive a killed controller, bad input and damaged run directories end in one clear
line (exit 2) instead of a traceback, and values that could only fail later are refused up front."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

import pytest

from pbt.config import PBTConfig, from_dict, replace_fields
from pbt.space import ConfigError
from tests.conftest import REPO, cli

NOBODY = 65534

# A stand-in for ``pbt-repro`` whose main module is slow to import in the worker processes, as a script that imports
# torch is: a spawned worker re-imports the parent's main module before any of the executor's code runs.
DRIVER = """\
import os, sys, time
if __name__ == "__mp_main__":
    time.sleep(float(os.environ.get("PBT_TEST_IMPORT_DELAY", "0")))
else:
    from repro.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pbt-repro: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# -- item 4: workers die with their controller -----------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a live process, None if it is gone (a zombie counts as gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return None if state in ("Z", "X") else (state, int(ppid))


def _children(pid: int) -> dict[int, str]:
    """The live children of ``pid`` with their command lines, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None and stat[1] == pid:
            with contextlib.suppress(OSError):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("when", ["start-up", "mid-run"])
def test_workers_do_not_outlive_a_killed_controller(when, cli_env, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    run_dir = tmp_path / "run"
    env = dict(cli_env)
    if when == "start-up":
        # the workers are still importing when the controller dies, after it has sent them their first interval
        # (16 s long: a worker that runs it is still there when the test looks)
        env["PBT_TEST_IMPORT_DELAY"] = "3"
        slow = ["--budget-steps", "16", "--ready-every", "8", "--seconds-per-step", "2"]
    else:
        slow = ["--budget-steps", "80", "--ready-every", "8", "--seconds-per-step", "0.2"]
    args = [
        "run",
        "toy",
        "--executor",
        "local",
        "--workers",
        "2",
        "--eval-every",
        "8",
        *slow,
        "--out",
        str(run_dir),
        "--quiet",
    ]
    proc = subprocess.Popen(
        [sys.executable, str(driver), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    children: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            children.update(_children(proc.pid))
            workers = [p for p, cmd in children.items() if "spawn_main" in cmd]
            if len(workers) >= 2 and (when == "start-up" or any((run_dir / "checkpoints").glob("m*.ckpt"))):
                break
            time.sleep(0.02)
        assert proc.poll() is None and len(workers) >= 2, "the run ended or stalled before it could be killed"
        if when == "start-up":
            time.sleep(1.0)  # the controller hands out the first intervals right after starting its workers
        children.update(_children(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and any(_proc_stat(p) for p in children):
            time.sleep(0.05)
        survivors = {p: cmd for p, cmd in children.items() if _proc_stat(p)}
        assert not survivors, f"processes outlived their controller: {survivors}"
        _, stderr = proc.communicate(timeout=30)  # every writer of the controller's stderr is gone
        assert "Traceback" not in stderr and "Error" not in stderr, stderr
    finally:  # whatever happened, leave no process behind
        if proc.poll() is None:
            children.update(_children(proc.pid))
            proc.kill()
            proc.wait()
        for pid in children:
            if _proc_stat(pid):
                os.kill(pid, signal.SIGKILL)


# -- item 7: one line instead of a traceback -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "must hold a JSON object of settings, got a list"),
        ('{"population": "8"}', "pbt.population must be an integer, got '8'"),
        ('{"pbt": 5}', "pbt must be an object of settings"),
        ('{"theta_init": [0.5, "x"]}', "theta_init[1] must be a number, got 'x'"),
    ],
)
def test_config_file_of_the_wrong_shape_is_one_line(content, message, cli_env, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(content)
    proc = cli(["run", "toy", "--config", str(path), "--out", str(tmp_path / "r"), "--quiet"], cli_env, check=False)
    assert_one_line_error(proc, f"--config {path}", message)
    assert not (tmp_path / "r").exists()


def test_out_naming_a_file_is_one_line(cli_env, tmp_path):
    (tmp_path / "file").write_text("x")
    assert_one_line_error(cli(["run", "toy", "--out", str(tmp_path / "file"), "--quiet"], cli_env, check=False), "file")


@pytest.mark.parametrize("command", ["resume", "status"])
@pytest.mark.parametrize(
    "content, message", [(b"\x00garbage\xff" * 300, "is not a SQLite database"), (b"", "is empty")]
)
def test_a_damaged_store_is_one_line(command, content, message, cli_env, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "pbt.sqlite").write_bytes(content)
    assert_one_line_error(cli([command, str(run_dir)], cli_env, check=False), str(run_dir / "pbt.sqlite"), message)
    assert (run_dir / "pbt.sqlite").read_bytes() == content  # and it is left as it was


def _unprivileged_user() -> int | None:
    """The uid to run the CLI as so that file permissions apply: ours, or nobody's when we are root (root writes
    through chmod 555). None when no unprivileged user can be had."""
    if os.geteuid() != 0:
        return None
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, where chmod does not stop writes, and setpriv (to drop to nobody) is missing")
    probe = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-c",
            "import repro.cli",
        ],
        cwd=REPO,
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip("running as root, where chmod does not stop writes, and nobody cannot run this checkout")
    return NOBODY


def test_a_read_only_run_directory_is_one_line(cli_env):
    base = Path(tempfile.mkdtemp(prefix="pbt-ro-"))  # not under pytest's tmp_path: that one is private to us
    try:
        os.chmod(base, 0o755)
        run_dir = base / "run"
        cli(["run", "toy", "--budget-steps", "8", "--out", str(run_dir), "--quiet"], cli_env)
        user = _unprivileged_user()
        for path in [run_dir, run_dir / "checkpoints", base]:
            os.chmod(path, 0o555)
        for name in ("pbt.sqlite", "pbt.lock"):
            if (run_dir / name).exists():
                os.chmod(run_dir / name, 0o444)
        assert_one_line_error(cli(["resume", str(run_dir), "--quiet"], cli_env, user=user, check=False), str(run_dir))
        made = cli(["run", "toy", "--out", str(base / "new"), "--quiet"], cli_env, user=user, check=False)
        assert_one_line_error(made, str(base))
    finally:
        remove_read_only_tree(base)


def remove_read_only_tree(base: Path) -> None:
    """Make a tree that a test made read-only writable again, and remove it."""
    for root, dirs, _ in os.walk(base):
        os.chmod(root, 0o755)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    shutil.rmtree(base, ignore_errors=True)


def test_a_wal_deleted_mid_run_stops_it_at_the_next_commit_with_one_line(cli_env, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "run",
        "toy",
        "--executor",
        "serial",
        "--budget-steps",
        "400",
        "--seconds-per-step",
        "0.01",
        "--out",
        str(run_dir),
        "--quiet",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "repro.cli", *args],
        cwd=REPO,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wal = run_dir / "pbt.sqlite-wal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not any((run_dir / "checkpoints").glob("m*")):
        time.sleep(0.02)
    assert proc.poll() is None and wal.exists(), "the run ended before its WAL could be deleted"
    wal.unlink()
    _, stderr = proc.communicate(timeout=120)
    ended = subprocess.CompletedProcess(proc.args, proc.returncode, stderr=stderr)
    assert_one_line_error(ended, str(wal), "was deleted", "the run stopped")
    from pbt.store import StoreReader

    store = StoreReader(run_dir)
    used = store.compute()["used_steps"]
    state, why = store.state()
    store.close()
    assert used < 400, f"the run trained on after its WAL was deleted ({used} of 800 steps)"
    assert state == "failed" and "pbt.sqlite-wal was deleted" in why
    status = cli(["status", str(run_dir)], cli_env)
    assert "finished" not in status.stdout.splitlines()[0], status.stdout


def test_the_advice_on_a_damaged_store_fits_the_command(cli_env, tmp_path):
    from repro.cli import store_error

    run_dir = tmp_path / "run"
    cli(["run", "toy", "--budget-steps", "200", "--out", str(run_dir), "--quiet"], cli_env)
    store = run_dir / "pbt.sqlite"
    store.write_bytes(store.read_bytes()[: store.stat().st_size // 2])  # malformed: no command can read it now
    for command in ("status", "resume"):
        proc = cli([command, str(run_dir)], cli_env, check=False)
        assert_one_line_error(proc, str(store), "damaged from outside the run", "cannot be read")
        assert "pbt-repro status" not in proc.stderr  # not the command that just failed, nor one that would
    # a store that broke under a running command, and that status can still read: status is the advice
    advice = store_error(sqlite3.OperationalError("disk I/O error"), "resume")
    assert "`pbt-repro status DIR` shows what is left" in advice


# -- item 8: refused up front ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--noise-std", "nan"], "pbt.noise_std must be a finite number, got nan"),
        (["--cpus-per-member", "inf"], "pbt.cpus_per_member must be a finite number, got inf"),
        (["--lr", "nan"], "lr must be a finite number, got nan"),
        (["--theta-init", "1"], "theta_init must have 2 values (like its default (0.9, 0.9)), got 1"),
        (["--theta-init", "1", "2", "3"], "theta_init must have 2 values"),
        (["--theta-init", "nan", "1"], "theta_init[0] must be a finite number, got nan"),
        (["--priors", "h0=int:1.5:3"], "priors: h0: int bounds must be whole numbers"),
        (
            ["--interval-timeout", "5"],
            "interval_timeout needs worker processes to stop, which --executor serial does not",
        ),
    ],
)
def test_values_that_can_only_fail_later_are_refused_up_front(flags, message, cli_env, tmp_path):
    proc = cli(["run", "toy", *flags, "--out", str(tmp_path / "r"), "--quiet"], cli_env, check=False)
    assert_one_line_error(proc, message)
    assert not (tmp_path / "r").exists()


def _float_fields(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if hints[f.name] is float]


@pytest.mark.parametrize("domain", ["toy", "toy_deceptive", "rl", "translation", "gan"])
def test_every_float_setting_refuses_nan_and_inf(domain):
    from experiments import DOMAINS

    try:
        module = importlib.import_module(DOMAINS[domain])
    except ImportError as exc:  # an optional domain whose dependencies are not installed
        pytest.skip(f"{domain}: {exc}")
    profile = next(iter(module.PROFILES.values()))
    fields = [*_float_fields(module.Config), *(f"pbt.{n}" for n in _float_fields(PBTConfig))]
    assert "pbt.noise_std" in fields and "pbt.gpus_per_member" in fields
    for name in fields:
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
                replace_fields(profile, {name: bad})
    # every profile passes its own checks after a round trip through JSON, as runs store them
    for config in module.PROFILES.values():
        assert from_dict(module.Config, json.loads(json.dumps(dataclasses.asdict(config)))) == config


def test_python_configs_are_checked_as_the_cli_checks_them():
    for bad in (
        {"noise_std": math.nan},
        {"population": "8"},
        {"perturb_factors": (0.8, math.inf)},
        {"explore_every_ready": 1},
        {"seed": 1.5},
        {"priors": ("h0=int:0.5:2",)},
    ):
        with pytest.raises(ConfigError):
            PBTConfig(**bad)
    # perturb_factors may have any number of factors; int settings take ints, float settings take ints too
    assert PBTConfig(perturb_factors=(0.5, 0.8, 1.25, 2.0)).perturb_factors == (0.5, 0.8, 1.25, 2.0)
    assert PBTConfig(noise_std=1).noise_std == 1.0 and isinstance(PBTConfig(noise_std=1).noise_std, float)
    from experiments.toy.task import Config as ToyConfig

    with pytest.raises(ConfigError, match="theta_init must have 2 values"):
        from_dict(ToyConfig, {"theta_init": [0.1]})
    with pytest.raises(ConfigError, match="pbt must be an object of settings"):
        from_dict(ToyConfig, {"pbt": [1]})
    with pytest.raises(ConfigError, match="must hold an object of settings"):
        replace_fields(ToyConfig(), [1, 2])  # type: ignore[arg-type]
    assert from_dict(ToyConfig, {"theta_init": [1, 0.5]}).theta_init == (1.0, 0.5)
