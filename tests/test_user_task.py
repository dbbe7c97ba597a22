"""A user's own task module is as first-class as the built-in domains: every command takes it by module path (or a
file path), a resume finds it again when the user names it (``--task``), and the baselines and the comparison work on it unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pbt.store import StoreReader
from tests import conftest
from tests.conftest import cli_environment

TASK = textwrap.dedent('''
    """A user's task: a quadratic bowl whose step size is the one hyperparameter."""
    import json
    from dataclasses import dataclass, field

    from pbt.config import PBTConfig, doc
    from pbt.domain import Domain
    from pbt.space import LogUniform


    @dataclass
    class Config:
        start: float = doc("Where every member starts.", default=5.0)
        pbt: PBTConfig = field(default_factory=lambda: PBTConfig(population=4, budget_steps=24, ready_every=6,
                                                                 executor="serial", workers=1))


    class Bowl:
        space = {"lr": LogUniform(0.01, 0.5)}

        def __init__(self, config):
            self.config = config

        def make(self, hparams, seed):
            return {"x": self.config.start}

        def train(self, state, hparams, steps):
            for _ in range(steps):
                state["x"] -= hparams["lr"] * 2 * state["x"]
            return {"x": state["x"]}

        def evaluate(self, state):
            return -state["x"] ** 2

        def save(self, state, path):
            path.write_text(json.dumps(state))

        def load(self, path):
            return json.loads(path.read_text())


    def make_task(config):
        return Bowl(config)
''')

PACKAGED = TASK + '\nDOMAIN = Domain(make_task=make_task, config=Config, profiles={"smoke": Config()}, metric="-x²")\n'


@pytest.fixture
def user_code(tmp_path: Path) -> Path:
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "mytask.py").write_text(PACKAGED)
    (tmp_path / "solo_task.py").write_text(TASK)  # no DOMAIN: make_task and Config are enough
    return tmp_path


def cli(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """The command line run in the user's folder, that folder importable (W&B offline: it may log)."""
    return conftest.cli(args, cli_environment(cwd, WANDB_MODE="offline"), cwd=cwd, timeout=180, check=check)


def installed_environment() -> dict[str, str]:
    """This environment without PYTHONPATH (W&B offline): a user who installed the project and set nothing."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"WANDB_MODE": "offline"}


def test_a_user_module_works_with_every_command(user_code: Path) -> None:
    cli(["run", "mypkg.mytask", "--profile", "smoke", "--out", "pbt", "--quiet"], user_code)
    store = StoreReader(user_code / "pbt")
    assert store.meta()["module"] == "mypkg.mytask" and store.meta()["metric"] == "-x²"
    assert store.meta()["space"] == {"lr": "loguniform:0.01:0.5"} and store.events("exploit")
    store.close()
    cli(["baseline", "mypkg.mytask", "--profile", "smoke", "--out", "rs", "--quiet"], user_code)
    rs = StoreReader(user_code / "rs")
    assert rs.meta()["method"] == "random_search" and not rs.events("exploit")
    rs.close()
    assert "finished" in cli(["status", "pbt"], user_code).stdout
    # the store names its module, but no command imports code on a store's say: the user names it
    refused = cli(["resume", "pbt", "--quiet"], user_code, check=False)
    assert refused.returncode == 2 and "--task mypkg.mytask" in refused.stderr
    cli(["resume", "pbt", "--task", "mypkg.mytask", "--quiet"], user_code)
    cli(["compare", "pbt", "rs", "--out", "cmp"], user_code)
    assert (user_code / "cmp" / "score_vs_compute.png").is_file()
    cli(
        [
            "reproduce",
            "mypkg.mytask",
            "--profile",
            "smoke",
            "--seeds",
            "2",
            "--runs",
            "runs",
            "--out",
            "res",
            "--quiet",
            "--wandb",
        ],
        user_code,
    )
    summary = json.loads((user_code / "res" / "summary.json").read_text())
    assert summary["domain"] == "mypkg.mytask" and summary["paired"]["best_final"]["n"] == 2
    assert list((user_code / "runs" / "wandb").glob("offline-run-*"))


def test_a_task_file_path_works_too(user_code: Path) -> None:
    cli(["run", "solo_task.py", "--out", "solo", "--population", "3", "--quiet"], user_code)
    assert StoreReader(user_code / "solo").meta()["status"] == "finished"
    cli(["resume", "solo", "--task", "solo_task.py", "--quiet"], user_code)
    bad = cli(["run", "nosuch.module", "--quiet"], user_code, check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "cannot import" in bad.stderr


def test_a_task_that_breaks_the_contract_stops_with_a_clear_message(user_code: Path) -> None:
    from pbt.controller import RunFailed
    from pbt.experiment import run_experiment

    broken = PACKAGED.replace('return {"x": state["x"]}', "return None")
    (user_code / "mypkg" / "broken.py").write_text(broken)
    sys.path.insert(0, str(user_code))
    try:
        import mypkg.broken as module

        with pytest.raises(RunFailed, match=r"train\(\) must return a mapping of metrics .*got None"):
            run_experiment("mypkg.broken", module.Config(), user_code / "run")
        failures = StoreReader(user_code / "run").events("failure")
        assert len(failures) == 1  # not retried: every member would fail the same way
    finally:
        sys.path.remove(str(user_code))
        sys.modules.pop("mypkg.broken", None)
        sys.modules.pop("mypkg", None)


def test_a_module_with_only_make_task_is_told_in_one_line_what_to_add(user_code: Path) -> None:
    (user_code / "bare_task.py").write_text("def make_task(config):\n    raise NotImplementedError\n")
    for command in ("run", "reproduce"):
        bad = cli([command, "bare_task.py", "--out", "bare", "--quiet"], user_code, check=False)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "defines make_task but no Config" in bad.stderr and "pbt: PBTConfig" in bad.stderr
    assert not (user_code / "bare").exists()


def test_a_task_file_trains_in_worker_processes_from_another_folder(user_code: Path, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # neither the task's folder nor the checkout
    env = installed_environment()
    args = ["run", str(user_code / "solo_task.py"), "--out", "solo", "--population", "3", "--executor", "local"]
    conftest.cli([*args, "--workers", "2", "--quiet"], env, cwd=elsewhere, timeout=180)
    assert StoreReader(elsewhere / "solo").meta()["status"] == "finished"


def test_a_task_module_in_the_current_folder_needs_no_pythonpath_and_resumes_from_anywhere(
    user_code: Path, tmp_path_factory
) -> None:
    env = installed_environment()

    def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
        return conftest.cli([*args, "--quiet"], env, cwd=cwd, timeout=180, check=check)

    run(["run", "solo_task", "--out", "by_name", "--population", "3"], user_code)
    run(["run", "solo_task.py", "--out", "by_file", "--population", "3", "--budget-steps", "40"], user_code)
    recorded = StoreReader(user_code / "by_file").meta()["module"]
    assert recorded == str(user_code / "solo_task.py")  # by its absolute path, so resume finds it from anywhere
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    run(["resume", str(user_code / "by_file"), "--task", recorded], elsewhere)
    missing = run(["run", "solo_task", "--out", "x"], elsewhere, check=False)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "current folder" in missing.stderr and "path/to/task.py" in missing.stderr


def test_the_help_of_a_task_file_names_its_settings_by_the_file(user_code: Path) -> None:
    text = cli(["run", "solo_task.py", "--help"], user_code).stdout
    assert "\nsolo_task.py settings:" in text and "pbt_task_" not in text
