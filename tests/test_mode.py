"""A run that minimises its score (``PBTConfig.mode`` / ``Domain.mode``): a loss is reported as it is, every decision
copies from the members with the lowest loss, and every reader of the run (results, status, progress, compare,
reproduce's paired statistics) calls the lowest score the best, reading the mode from the store alone."""

from __future__ import annotations

import dataclasses
import random
import textwrap
from pathlib import Path

import pytest

from pbt.algorithm import after_failure, choose_donor
from pbt.config import PBTConfig
from pbt.domain import import_module
from pbt.experiment import run_experiment
from pbt.interval import IntervalResult
from pbt.results import Results, best_of
from pbt.rows import EventKind, IntervalRow, MemberRow, ScoreRow, run_mode
from pbt.space import ConfigError, LogUniform
from repro.compare import check_comparable, compare, load_run, progress_curve
from repro.progress import PrintProgress, member_table
from repro.reproduce import paired_summary
from tests.conftest import cli

# loss = x², with x shrinking by (1 - 2 lr) per step: the larger lr, the lower (better) the loss
LOSS_TASK = textwrap.dedent("""
    import json
    from dataclasses import dataclass, field

    from pbt.config import PBTConfig
    from pbt.space import LogUniform

    METRIC = "loss"


    @dataclass
    class Config:
        pbt: PBTConfig = field(default_factory=lambda: PBTConfig(population=5, budget_steps=24, ready_every=6,
                                                                 eval_every=2, executor="serial", workers=1))


    class Bowl:
        space = {"lr": LogUniform(0.01, 0.4)}

        def __init__(self, config):
            self.config = config

        def make(self, hparams, seed):
            return {"x": 5.0}

        def train(self, state, hparams, steps):
            state["x"] *= (1 - 2 * hparams["lr"]) ** steps
            return {}

        def evaluate(self, state):
            return state["x"] ** 2

        def save(self, state, path):
            path.write_text(json.dumps(state))

        def load(self, path):
            return json.loads(path.read_text())


    def make_task(config):
        return Bowl(config)
""")
DECLARED = (
    LOSS_TASK + '\nDOMAIN = Domain(make_task=make_task, config=Config, profiles={"default": Config()}, mode="min")\n'
)


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    (tmp_path / "loss_task.py").write_text(LOSS_TASK)  # no DOMAIN: maximises unless told
    (tmp_path / "declared_loss.py").write_text("from pbt.domain import Domain\n" + DECLARED)
    (tmp_path / "module_mode.py").write_text(LOSS_TASK + '\nMODE = "min"\n')
    return tmp_path


def config_of(task_file: Path, **pbt: object):
    config = import_module(str(task_file)).Config()
    return dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, **pbt))


def assert_copies_go_to_lower_losses(run_dir: Path) -> None:
    copies = [e for e in Results(run_dir).events if e.kind == EventKind.EXPLOIT]
    assert copies, "the run made no copy to check"
    for e in copies:
        assert e.donor_score < e.score, f"member {e.member} (loss {e.score}) copied a worse member ({e.donor_score})"


def assert_best_is_lowest(run_dir: Path) -> None:
    results = Results(run_dir)
    assert results.mode == "min"
    assert results.best is not None and results.best.score == min(results.finals)
    assert results.best.score > 0  # the store keeps the loss as the task reported it, not negated


def test_mode_min_on_the_command_line_copies_lower_losses_and_every_reader_says_so(tasks: Path) -> None:
    proc = cli(["run", "loss_task.py", "--mode", "min", "--out", "run"], cwd=tasks, timeout=180)
    assert_copies_go_to_lower_losses(tasks / "run")
    assert_best_is_lowest(tasks / "run")
    lowest = min(Results(tasks / "run").finals)
    # the progress line (no terminal: plain lines) and status both name the lowest loss the best
    assert any("best (lowest) score" in line and f"{lowest:.4g}" in line for line in proc.stdout.splitlines())
    status = cli(["status", "run"], cwd=tasks).stdout.splitlines()
    assert "lowest score is best" in status[0]
    best = Results(tasks / "run").best
    assert next(line for line in status if line.strip().startswith(f"{best.id}*"))


def test_a_module_without_domain_maximises_unless_it_says_mode_min(tasks: Path) -> None:
    maximised = run_experiment(str(tasks / "loss_task.py"), config_of(tasks / "loss_task.py"), tasks / "max")
    assert run_mode(maximised.meta()["config"]) == "max"  # auto, resolved to the task's own when the run opened
    assert all(e.donor_score > e.score for e in maximised.events(EventKind.EXPLOIT))
    minimised = run_experiment(str(tasks / "module_mode.py"), config_of(tasks / "module_mode.py"), tasks / "min")
    assert minimised.meta()["config"]["pbt"]["mode"] == "min"
    assert_copies_go_to_lower_losses(tasks / "min")


def test_domain_mode_min_decides_and_reads_back_without_importing_the_task(tasks: Path) -> None:
    task_file = tasks / "declared_loss.py"
    store = run_experiment(str(task_file), config_of(task_file), tasks / "run")
    assert store.meta()["config"]["pbt"]["mode"] == "min"
    assert_copies_go_to_lower_losses(tasks / "run")
    task_file.unlink()  # whoever reads the run has only its store
    assert_best_is_lowest(tasks / "run")
    assert "lowest score is best" in member_table(store).splitlines()[0]


def test_the_ttest_rule_copies_lower_losses_under_min(tasks: Path) -> None:
    task_file = tasks / "declared_loss.py"
    run_experiment(str(task_file), config_of(task_file, exploit="ttest", ttest_window=3), tasks / "run")
    assert_copies_go_to_lower_losses(tasks / "run")


def test_fire_greedy_members_copy_lower_losses_and_evaluators_train_the_lowest_loss_hyperparameters(
    tasks: Path,
) -> None:
    from pbt import fire

    task_file = tasks / "declared_loss.py"
    config = config_of(task_file, strategy="fire", population=10, budget_steps=36)
    store = run_experiment(str(task_file), config, tasks / "run")
    greedy = fire.split(config.pbt).greedy
    copies = [e for e in store.events(EventKind.EXPLOIT) if e.member in greedy and e.ops == {fire.OP: fire.EXPLOIT}]
    assert copies and all(e.donor_score <= e.score for e in copies)  # equal: both hold the same weights by then
    evaluations = [e for e in store.events(EventKind.EXPLOIT) if (e.ops or {}).get(fire.OP) == fire.EVALUATE]
    assert evaluations
    for e in evaluations:  # the child: the greedy member with the lowest loss at that step (one that copied, aside)
        copied = {c.member for c in store.events(EventKind.EXPLOIT, step=e.step) if c.member in greedy}
        latest = {s.member: s.score for s in sorted(store.scores(), key=lambda s: s.step) if s.step <= e.step}
        assert latest[int(e.ops["child"])] == min(latest[m] for m in greedy if m not in copied)


def test_a_resume_refuses_another_mode_and_takes_auto_as_the_run_recorded_it(tasks: Path) -> None:
    task_file = tasks / "declared_loss.py"
    run_experiment(str(task_file), config_of(task_file), tasks / "run")
    with pytest.raises(ConfigError, match="mode"):
        run_experiment(str(task_file), config_of(task_file, mode="max"), tasks / "run", resume=True)
    run_experiment(str(task_file), config_of(task_file), tasks / "run", resume=True)  # auto: the domain's min


def test_compare_and_the_paired_statistics_follow_the_mode(tasks: Path) -> None:
    from baselines import random_search

    task_file = tasks / "declared_loss.py"
    run_experiment(str(task_file), config_of(task_file), tasks / "pbt")
    random_search(str(task_file), config_of(task_file), tasks / "rs")
    comparison = compare([tasks / "pbt", tasks / "rs"], tasks / "cmp", figures=False)
    assert comparison.mode == "min"
    assert "(lower is better)" in (tasks / "cmp" / "comparison.md").read_text()
    for row in comparison.rows:
        assert row.best_final == min(Results(tasks / row.label.replace("random_search", "rs")).finals)
    paired = paired_summary(comparison, {})["best_final"]
    pbt, rs = (r.best_final for r in comparison.rows)
    assert paired["higher_is_better"] is False and paired["wins"] == int(pbt < rs)
    # a run that maximises and one that minimises disagree on which score is better: never compared
    run_experiment(str(task_file), config_of(task_file, mode="max"), tasks / "max")
    with pytest.raises(ConfigError, match="minimises"):
        check_comparable([load_run(tasks / "pbt"), load_run(tasks / "max")])


# -- the decisions and readers on their own ---------------------------------------------------------------------


def members(*scores: float, samples: bool = False) -> list[MemberRow]:
    return [
        MemberRow(
            id=i,
            seed=i,
            hparams={"lr": 0.1},
            step=10,
            score=s,
            samples=(s - 0.1, s, s + 0.1) if samples else (),
            checkpoint=f"m{i}",
        )
        for i, s in enumerate(scores)
    ]


@pytest.mark.parametrize("rule", ["truncation", "ttest", "tournament"])
def test_every_exploit_rule_copies_the_lower_score_under_min(rule: str) -> None:
    population = members(5.0, 1.0, samples=True)  # member 0 has the higher loss
    for mode, copier, donor in (("min", 0, 1), ("max", 1, 0)):
        cfg = PBTConfig(population=2, exploit=rule, truncation_fraction=0.5, mode=mode)
        me = population[copier]
        assert choose_donor(me, population, cfg, random.Random(0)) == donor, mode
        assert choose_donor(population[donor], population, cfg, random.Random(0)) is None, mode


def test_a_failed_member_is_replaced_by_the_lowest_loss_under_min() -> None:
    population = members(3.0, 1.0, 2.0)
    failed = IntervalResult(member=0, error="boom")
    for mode, donor in (("min", 1), ("max", 2)):
        outcome = after_failure(population[0], failed, population, {"lr": LogUniform(0.01, 1.0)}, PBTConfig(mode=mode))
        assert outcome.events[1].kind == EventKind.REPLACE and outcome.events[1].donor == donor, mode


def test_pb2_learns_from_the_fall_of_a_loss_under_min() -> None:
    from pbt import pb2

    falls = IntervalRow(member=0, start_step=0, end_step=10, hparams={"lr": 0.1}, start_score=2.0, end_score=1.0)
    rises = IntervalRow(member=1, start_step=0, end_step=10, hparams={"lr": 0.5}, start_score=1.0, end_score=2.0)
    dims = pb2.searched({"lr": LogUniform(0.01, 1.0)})
    history = pb2.History(intervals=(falls, rises))
    for mode, better in (("min", 0), ("max", 1)):
        _, y = pb2.training_data(history, dims, 10, PBTConfig(ready_every=10, mode=mode))
        assert y[better] > y[1 - better], mode


def test_fire_reads_a_faster_falling_loss_as_the_better_curve_under_min() -> None:
    from pbt import fire

    scores = {0: ((1, 4.0), (2, 3.0), (3, 2.0), (4, 1.0)), 1: ((1, 4.0), (2, 3.5), (3, 3.0), (4, 2.5))}
    minimised = fire.History(scores=scores, mode="min")
    assert fire.best_score_difference(minimised.curve(0), minimised.curve(1)) == 1.5
    assert fire.binomial_p(minimised.curve(0), minimised.curve(1)) < fire.binomial_p(
        minimised.curve(1), minimised.curve(0)
    )
    maximised = fire.History(scores=scores)
    assert fire.best_score_difference(maximised.curve(1), maximised.curve(0)) == 0.0
    assert maximised.curve(0) == scores[0]  # the raw scores, as stored


def test_best_of_and_the_best_so_far_curve_follow_the_mode() -> None:
    population = members(3.0, 1.0, 2.0)
    assert best_of(population, "min").id == 1 and best_of(population, "max").id == 0
    scores = [ScoreRow(member=0, step=s, score=v, time=float(s)) for s, v in ((1, 3.0), (2, 1.0), (3, 2.0))]
    assert progress_curve(scores, "min")[1] == [3.0, 1.0, 1.0]
    assert progress_curve(scores, "max")[1] == [3.0, 3.0, 3.0]


def test_the_progress_line_names_the_lowest_score_under_min() -> None:
    import io

    out = io.StringIO()
    progress = PrintProgress(PBTConfig(population=2, budget_steps=10, mode="min"), every_seconds=0.0, stream=out)
    for m in members(3.0, 1.0):
        progress(dataclasses.replace(m, status="done"), [], [])
    assert out.getvalue().splitlines()[-1].endswith("best (lowest) score 1, ETA done")


def test_a_domain_refuses_a_mode_it_does_not_know() -> None:
    from pbt.domain import Domain

    with pytest.raises(ConfigError, match="max or min"):
        Domain(make_task=lambda config: None, mode="minimise")  # type: ignore[arg-type]
