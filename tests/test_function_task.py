"""A training loop written as a generator function runs as a task (``pbt.function_task``): each yield is one step, a
member's state has exactly the training of its step through every copy, the function is closed after each interval,
a killed run resumes to the same scores, and a function that breaks the shape is stopped in one line."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from pbt.controller import RunFailed
from pbt.domain import import_module
from pbt.experiment import run_experiment
from pbt.function_task import FunctionTask
from pbt.store import StoreReader
from pbt.task import TaskContractError
from tests.function_tasks import CLOSED, RUNNING, STARTED, Config, make_task
from tests.test_durability import Killed, killer
from tests.test_golden import run_log
from tests.test_readme import RAY_PORTS, example_files

MODULE = "tests.function_tasks"


@pytest.fixture(autouse=True)
def fresh_notes():
    STARTED.clear()
    CLOSED.clear()
    yield
    RUNNING.clear()


def task(misbehave: str = "none") -> FunctionTask:
    return make_task(Config(misbehave=misbehave))


def test_train_takes_exactly_the_steps_asked_and_closes_the_function_each_time() -> None:
    counting = task()
    member = counting.make({"lr": 0.1}, seed=3)
    assert counting.train(member, {"lr": 0.1}, 3) == {}
    assert member.state["count"] == 3 and STARTED == [0] and CLOSED == [3]  # closed at its third yield
    counting.train(member, {"lr": 0.5}, 2)  # continues from its state, with the new hyperparameters
    assert member.state["count"] == 5 and STARTED == [0, 3] and CLOSED == [3, 5]
    assert counting.evaluate(member).score == member.state["x"] and counting.evaluate(member).metrics == {"count": 5}


def test_weights_have_exactly_the_training_of_their_step_through_every_copy(tmp_path: Path) -> None:
    config = Config()
    store = run_experiment(MODULE, config, tmp_path / "run")
    assert store.meta()["status"] == "finished" and len(store.events("exploit")) >= 3
    scores = store.scores()
    assert scores and all(row.metrics["eval/count"] == row.step for row in scores)
    counting = task()
    for member in store.members():
        assert member.step == 30 and counting.load(store.checkpoint_path(member)).state["count"] == 30
    # every call of the function was closed: 4 members x 6 intervals x 3 calls (eval_every 2 of ready_every 5)
    assert len(STARTED) == len(CLOSED) == 4 * 6 * 3


def test_a_killed_run_resumes_to_the_same_scores_and_events(tmp_path: Path) -> None:
    config = Config()
    reference = run_log(run_experiment(MODULE, config, tmp_path / "whole"))
    for after in (4, 17):
        with pytest.raises(Killed):
            run_experiment(MODULE, config, tmp_path / "killed", resume=True, listeners=[killer(after)])
    assert StoreReader(tmp_path / "killed").meta()["status"] == "interrupted"
    resumed = run_experiment(MODULE, config, tmp_path / "killed", resume=True)
    assert run_log(resumed) == reference  # the states came back from their files, seeds included


@pytest.mark.parametrize(
    "misbehave, message",
    [
        ("return", r"counting returned after 2 of 5 steps; it must yield once per step .*while True"),
        ("shape", r"must yield \(score, state\), the score a number or a pbt.task.Evaluation; it yielded float"),
        ("score", r"must yield \(score, state\), .*; its score is str 'high'"),
        ("plain", r"counting must be a generator function that yields \(score, state\)"),
        ("tuple", r"state must be JSON data .*; state\['pair'\] is a tuple"),
    ],
)
def test_a_function_that_breaks_the_shape_is_refused_in_one_line(
    misbehave: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # a torch-free task module: its state is saved as JSON
    broken = task(misbehave)
    member = broken.make({"lr": 0.1}, seed=0)
    with pytest.raises(TaskContractError, match=message) as refused:
        broken.train(member, {"lr": 0.1}, 5)
        broken.save(member, Path("/nonexistent/never-written"))
    assert "\n" not in str(refused.value)


def test_a_run_whose_function_breaks_the_shape_stops_at_once(tmp_path: Path) -> None:
    config = Config(misbehave="shape")
    with pytest.raises(RunFailed, match=r"the task broke its contract: TaskContractError: counting must yield"):
        run_experiment(MODULE, config, tmp_path / "run")
    assert len(StoreReader(tmp_path / "run").events("failure")) == 1


def test_a_checkpoint_that_is_not_a_function_tasks_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.ckpt"
    other.write_text('{"x": 1.0}')
    with pytest.raises(ValueError, match="is not a function task's checkpoint"):
        task().load(other)


def test_the_state_of_a_task_module_that_imports_torch_is_saved_with_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    counting = task()
    member = counting.make({"lr": 0.1}, seed=5)
    member.state = {"weights": torch.arange(3.0), "count": 7}
    counting.save(member, tmp_path / "m.ckpt")
    assert (tmp_path / "m.ckpt").read_bytes()[:2] == b"PK"
    loaded = counting.load(tmp_path / "m.ckpt")
    assert loaded.seed == 5 and loaded.state["count"] == 7 and torch.equal(loaded.state["weights"], torch.arange(3.0))


def test_the_readmes_function_port_of_ray_tunes_example_runs_as_its_class_port_does(tmp_path: Path) -> None:
    """The same loop as a class and as a function gives the same serial run, score for score: the function task adds
    nothing to, and takes nothing from, the training."""
    files = example_files()
    logs = []
    for name in RAY_PORTS:
        (tmp_path / name).write_text(files[name])
        module = import_module(str(tmp_path / name))
        config = module.Config()
        config.pbt = dataclasses.replace(config.pbt, executor="serial", workers=1, budget_steps=60)
        logs.append(run_log(run_experiment(str(tmp_path / name), config, tmp_path / name.removesuffix(".py"))))
    assert logs[0]["events"] and logs[0] == logs[1]
