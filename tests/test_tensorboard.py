"""TensorBoard logging (``--tensorboard DIR``): each member's event files hold the scores, hyperparameters and copies
its store holds, each once, a resumed run adds only its new points, and a missing package is one line before a run
directory is made."""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

import experiments.toy.task as toy
from pbt.experiment import run_experiment
from pbt.space import ConfigError
from pbt.store import StoreReader
from repro.api import run
from repro.cli import main
from repro.tensorboard_log import INSTALL, TensorBoardLogger
from tests.conftest import only_line

TOY = "experiments.toy.task"
README = Path(__file__).resolve().parents[1] / "README.md"


def toy_config(steps: int = 24) -> toy.Config:
    base = toy.Config()
    return dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, budget_steps=steps))


def board(directory: Path) -> EventAccumulator:
    # without purging, a point logged twice (a resume repeating one) stays visible instead of replacing the first
    return EventAccumulator(
        str(directory), size_guidance={"scalars": 0, "tensors": 0}, purge_orphaned_data=False
    ).Reload()


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def assert_board_holds_the_store(tensorboard: Path, run_dir: Path) -> None:
    store = StoreReader(run_dir)
    initial = store.meta()["initial_hparams"]
    events = store.events()
    assert any(e.kind == "exploit" for e in events)  # there were copies to log
    for member in store.members():
        acc = board(tensorboard / f"member-{member.id}")
        rows = sorted(store.scores(member.id), key=lambda s: s.step)
        assert scalars(acc, "score") == [(s.step, pytest.approx(s.score, rel=1e-6)) for s in rows]
        assert scalars(acc, "eval/theta0") == [(s.step, pytest.approx(s.metrics["eval/theta0"])) for s in rows]
        for name in ("h0", "h1"):  # the hyperparameters that trained the member up to each step
            changes = [e for e in events if e.member == member.id and e.new_hparams is not None]
            in_effect = [
                ([initial[member.id]] + [e.new_hparams for e in changes if e.step < s.step])[-1][name] for s in rows
            ]
            assert scalars(acc, f"hparams/{name}") == [
                (s.step, pytest.approx(v, abs=1e-6)) for s, v in zip(rows, in_effect)
            ]
        copies = [e for e in events if e.member == member.id and e.kind == "exploit"]
        assert scalars(acc, "pbt/cloned_from") == [(e.step, e.donor) for e in copies]
        assert scalars(acc, "pbt/exploit") == [(e.step, 1) for e in copies]
        texts = acc.Tensors("pbt/exploit/text_summary") if copies else []
        assert [t.step for t in texts] == [e.step for e in copies]
        for t, e in zip(texts, copies):
            assert f"copies member {e.donor}" in make_ndarray(t.tensor_proto).item().decode()


def test_the_readmes_tensorboard_command_writes_each_members_scores_hparams_and_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (command,) = re.findall(r"^(pbt-repro run \S+ .*--tensorboard \S+)$", README.read_text(), flags=re.M)
    monkeypatch.chdir(tmp_path)
    assert main([*shlex.split(command)[1:], "--quiet"]) == 0  # as the README gives it, quiet
    argv = shlex.split(command)
    run_dir, tensorboard = tmp_path / argv[argv.index("--out") + 1], tmp_path / argv[argv.index("--tensorboard") + 1]
    assert sorted(p.name for p in tensorboard.iterdir()) == ["member-0", "member-1"]
    assert_board_holds_the_store(tensorboard, run_dir)


def test_a_resumed_run_adds_only_its_new_points(tmp_path: Path) -> None:
    run_dir, tensorboard = tmp_path / "run", tmp_path / "tb"
    calls = 0

    def stop_after_some_commits(member, scores, events) -> None:
        nonlocal calls
        calls += 1
        if calls == 7:
            raise KeyboardInterrupt

    config = toy_config(steps=40)
    logger = TensorBoardLogger(tensorboard)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(TOY, config, run_dir, domain="toy", listeners=[logger, stop_after_some_commits])
    logger.close()
    stopped_at = [m.step for m in StoreReader(run_dir).members()]
    assert min(stopped_at) > 0 and max(stopped_at) < 40  # stopped halfway

    logger = TensorBoardLogger(tensorboard)
    run_experiment(TOY, config, run_dir, domain="toy", resume=True, listeners=[logger])
    logger.close()
    assert all(len(list((tensorboard / f"member-{i}").glob("events.out.tfevents.*"))) == 2 for i in (0, 1))
    assert_board_holds_the_store(tensorboard, run_dir)


def test_without_tensorboard_installed_nothing_is_made_and_one_line_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    run_dir, tensorboard = tmp_path / "run", tmp_path / "tb"
    assert main(["run", "toy", "--out", str(run_dir), "--quiet", "--tensorboard", str(tensorboard)]) == 2
    assert INSTALL in only_line(capsys.readouterr().err)
    with pytest.raises(ConfigError, match=INSTALL.replace("[", r"\[").replace("]", r"\]")):
        run(TOY, toy_config(), run_dir, quiet=True, tensorboard=tensorboard)
    assert not run_dir.exists() and not tensorboard.exists()
