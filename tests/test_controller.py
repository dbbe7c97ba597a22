import dataclasses
import json
import time

import pytest

from experiments.toy.figure2 import final_best_q, variant_config
from experiments.toy.task import Config as ToyConfig
from experiments.toy.task import initial_hparams
from pbt.checkpoints import CorruptCheckpoint, verify_checkpoint
from pbt.config import PBTConfig
from pbt.controller import RunFailed
from pbt.experiment import run_experiment
from pbt.interval import Job, StateCache, run_interval
from pbt.space import ConfigError
from pbt.store import StoreReader
from tests.fake_tasks import Config as FakeConfig
from tests.fake_tasks import CountingTask

FAKE = "tests.fake_tasks"


def fake(tmp_path, **pbt_overrides):
    pbt = dataclasses.replace(FakeConfig().pbt, **pbt_overrides)
    return FakeConfig(marker_dir=str(tmp_path), pbt=pbt)


def run_toy(tmp_path, name, seed=0, steps=200):
    config = variant_config(name, seed, steps)
    return run_experiment(
        "experiments.toy.task",
        config,
        tmp_path / f"{name}-{seed}",
        domain="toy",
        initial_hparams=initial_hparams(config),
    )


def history(store):
    return [(s.member, s.step, s.score) for s in store.scores()], [
        (e.kind, e.member, e.step, e.donor, json.dumps(e.new_hparams, sort_keys=True)) for e in store.events()
    ]


def test_toy_grid_plateaus_at_039_and_pbt_beats_it(tmp_path):
    grid = run_toy(tmp_path, "grid")
    for m in grid.members():
        assert m.score == pytest.approx(0.39, abs=1e-3)
    stores = [run_toy(tmp_path, "pbt", seed) for seed in range(3)]
    assert min(final_best_q(s) for s in stores) > 1.1
    assert all(len(s.events("exploit")) > 10 for s in stores)


def test_serial_executor_is_deterministic(tmp_path):
    a = history(run_toy(tmp_path / "a", "pbt", seed=3))
    b = history(run_toy(tmp_path / "b", "pbt", seed=3))
    c = history(run_toy(tmp_path / "c", "pbt", seed=4))
    assert a == b
    assert a != c


def test_ready_clock_counts_steps_since_last_ready_even_when_train_overshoots(tmp_path):
    config = dataclasses.replace(fake(tmp_path, population=2, budget_steps=60, ready_every=10), overshoot=3)
    store = run_experiment(FAKE, config, tmp_path / "run")
    explores = sorted({(e.member, e.step) for e in store.events() if e.kind in ("exploit", "explore")})
    steps_seen = sorted({s.step for s in store.scores(0)})
    # each interval asks for 10, takes 13, and is ready; the last asks for the 8 left of the budget and takes 11
    assert steps_seen == [13, 26, 39, 52, 63]
    assert {step for _, step in explores} <= {13, 26, 39, 52}  # never at the end of the budget
    assert all(m.step == 63 and m.status == "done" for m in store.members())


def test_a_train_that_takes_a_step_unit_or_more_past_what_was_asked_stops_the_run(tmp_path):
    """A task that reports a million steps on a 64-step budget is a task bug: the run stops at its first interval
    instead of recording a member that trained 15 000 times its budget."""
    config = dataclasses.replace(
        fake(tmp_path, population=2, budget_steps=64, ready_every=16), overshoot=10**6, step_unit=1
    )
    with pytest.raises(
        RunFailed,
        match=r"broke its contract: TaskContractError: train\(\) took 1000016 steps when 16 "
        r"were asked for",
    ):
        run_experiment(FAKE, config, tmp_path / "run")
    store = StoreReader(tmp_path / "run")
    assert len(store.events("failure")) == 1 and all(m.step == 0 for m in store.members())
    assert len(store.events("failure")[0].message.splitlines()) == 1
    # an overshoot below the unit the task declares is how whole unrolls end: allowed
    within = dataclasses.replace(config, overshoot=3, step_unit=4)
    assert all(
        m.status == "done" and 64 <= m.step < 64 + 4
        for m in run_experiment(FAKE, within, tmp_path / "within").members()
    )
    with pytest.raises(RunFailed, match=r"took 20 steps when 16 were asked for.*step_unit \(4\)"):
        run_experiment(FAKE, dataclasses.replace(config, overshoot=4, step_unit=4), tmp_path / "over")


@pytest.mark.parametrize(
    "samples, message",
    [
        ("text", r"evaluate\(\) samples must be numbers; sample 0 is str 'a'"),
        ("nan", r"evaluate\(\) samples must be finite; sample 1 is nan"),
    ],
)
def test_evaluation_samples_that_are_not_finite_numbers_stop_the_run_in_one_line(tmp_path, samples, message):
    """Under the t-test exploit, text samples ended in a 35-line traceback from inside the comparison."""
    config = dataclasses.replace(
        fake(tmp_path, population=4, budget_steps=40, ready_every=10, exploit="ttest"), samples=samples
    )
    with pytest.raises(RunFailed, match=f"broke its contract: TaskContractError: {message}") as failed:
        run_experiment(FAKE, config, tmp_path / "run")
    assert len(str(failed.value).splitlines()) == 1
    assert len(StoreReader(tmp_path / "run").events("failure")) == 1
    numbers = dataclasses.replace(config, samples="numbers")  # and samples that are finite numbers are compared
    assert all(m.status == "done" for m in run_experiment(FAKE, numbers, tmp_path / "numbers").members())


@pytest.mark.parametrize("executor", ["serial", "local"])
def test_a_task_that_calls_sys_exit_is_a_member_failure(tmp_path, executor):
    """In the serial executor, sys.exit(4) in train used to end the whole run (exit 4, no output, 'interrupted')."""
    config = dataclasses.replace(
        fake(tmp_path, population=2, budget_steps=20, ready_every=10, executor=executor, workers=2),
        failure="exit",
        fail_member=1,
        fail_at_step=10,
    )
    store = run_experiment(FAKE, config, tmp_path / "run")
    assert store.meta()["status"] == "finished" and all(m.status == "done" for m in store.members())
    (failure,) = store.events("failure")
    # where it was raised follows: the task's file, or a library's that wraps sys.exit (W&B does once imported)
    assert failure.message.startswith("SystemExit: the task called sys.exit(4) (")


@pytest.mark.timeout(120)  # without the limit the run never ends
def test_an_interval_past_interval_timeout_is_stopped_and_counted_as_a_failure(tmp_path):
    config = dataclasses.replace(
        fake(
            tmp_path,
            population=2,
            budget_steps=30,
            ready_every=10,
            executor="local",
            workers=2,
            interval_timeout=1.5,
            exploit="none",
        ),
        failure="hang",
        fail_member=1,
        fail_at_step=10,
    )
    started = time.monotonic()
    store = run_experiment(FAKE, config, tmp_path / "run")
    assert time.monotonic() - started < 60
    assert store.meta()["status"] == "finished" and all(m.status == "done" for m in store.members())
    (failure,) = store.events("failure")
    assert failure.member == 1 and failure.message == "interval exceeded --interval-timeout 1.5 s"
    assert store.members()[1].failures == 1
    # an execution setting: the same run resumes with another limit
    unlimited = dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, interval_timeout=0))
    assert run_experiment(FAKE, unlimited, tmp_path / "run", resume=True).meta()["status"] == "finished"


def test_interval_timeout_is_refused_where_it_cannot_be_enforced():
    with pytest.raises(ConfigError, match=r"^interval_timeout needs worker processes .*--executor serial"):
        PBTConfig(executor="serial", interval_timeout=5)
    with pytest.raises(ConfigError, match="interval_timeout must be >= 0"):
        PBTConfig(interval_timeout=-1)
    assert PBTConfig(executor="serial", interval_timeout=0).interval_timeout == 0.0


def test_explore_happens_only_after_a_copy(tmp_path):
    store = run_experiment(FAKE, fake(tmp_path, population=4, budget_steps=100, ready_every=10), tmp_path / "run")
    events = store.events()
    exploits = [(e.member, e.step) for e in events if e.kind == "exploit"]
    explores = [(e.member, e.step) for e in events if e.kind == "explore"]
    assert exploits and explores == exploits
    for e in events:
        if e.kind == "exploit":
            assert e.donor_score >= e.score  # truncation copies from the top


def test_exploit_copies_weights_and_hyperparameters(tmp_path):
    store = run_experiment(
        FAKE, fake(tmp_path, population=4, budget_steps=20, ready_every=10, explore="none"), tmp_path / "run"
    )
    exploit = store.events("exploit")[0]
    copier, donor = store.members()[exploit.member], store.members()[exploit.donor]
    assert copier.hparams == donor.hparams
    # after the copy the copier trained 10 more steps from the donor's weights: x = donor_x@10 + lr*10
    assert copier.score == pytest.approx(exploit.donor_score + donor.hparams["lr"] * 10)


def test_random_search_has_no_exploit_and_same_initial_population(tmp_path):
    pbt = run_experiment(FAKE, fake(tmp_path, seed=5), tmp_path / "pbt")
    rs_config = fake(tmp_path, seed=5, exploit="none", explore="none", on_failure="drop")
    rs = run_experiment(FAKE, rs_config, tmp_path / "rs", method="random_search")
    assert rs.events() == []
    assert rs.meta()["initial_hparams"] == pbt.meta()["initial_hparams"]
    assert len({json.dumps(h) for h in pbt.meta()["initial_hparams"]}) == 4
    first_pbt = {s.member: s for s in pbt.scores() if s.step == 10}
    first_rs = {s.member: s for s in rs.scores() if s.step == 10}
    assert {m: s.score for m, s in first_pbt.items()} == {m: s.score for m, s in first_rs.items()}
    assert rs.compute()["planned_steps"] == pbt.compute()["planned_steps"] == 4 * 40


@pytest.mark.parametrize("failure", ["raise", "nan"])
def test_failed_member_is_replaced_by_a_good_one(tmp_path, failure):
    # no exploit, so member 2 still holds its own state (the fake task fails by the seed in its state)
    config = dataclasses.replace(
        fake(tmp_path, population=4, budget_steps=40, ready_every=10, exploit="none"),
        fail_member=2,
        fail_at_step=20,
        failure=failure,
    )
    store = run_experiment(FAKE, config, tmp_path / "run")
    kinds = [(e.kind, e.member) for e in store.events() if e.member == 2]
    assert ("failure", 2) in kinds and ("replace", 2) in kinds
    failure_event = next(e for e in store.events("failure"))
    assert ("injected failure" in failure_event.message) if failure == "raise" else ("nan" in failure_event.message)
    replace = store.events("replace")[0]
    # the donor is the best member published at that moment (scores are lr * steps, so compare at its step)
    donor_lr = replace.new_hparams["lr"]
    assert replace.donor != 2 and replace.donor_score == pytest.approx(donor_lr * replace.donor_step)
    others_then = [m.hparams["lr"] * replace.donor_step for m in store.members() if m.id not in (2, replace.donor)]
    assert replace.donor_score >= min(others_then)
    explored = next(e for e in store.events("explore") if e.member == 2)
    assert explored.old_hparams == replace.new_hparams and explored.new_hparams != explored.old_hparams
    assert all(m.status == "done" and m.step == 40 for m in store.members())
    assert store.members()[2].failures == 1


def test_member_failing_too_often_stops_the_run(tmp_path):
    config = dataclasses.replace(
        fake(tmp_path, max_failures=2, on_failure="retry"),
        fail_member=1,
        fail_at_step=0,
        failure="raise",
        fail_times=100,
    )
    with pytest.raises(RunFailed, match=r"member 1 failed 3 times .*injected failure"):
        run_experiment(FAKE, config, tmp_path / "run")
    store = StoreReader(tmp_path / "run")
    assert store.members()[1].status == "failed"
    assert store.meta()["status"] == "failed" and "member 1 failed 3 times" in store.meta()["failure"]
    store.close()
    # resuming cannot make it succeed: it says so at once instead of finishing the others and reporting success
    steps = sum(m.step for m in StoreReader(tmp_path / "run").members())
    with pytest.raises(
        RunFailed, match=r"member 1 failed 3 times, more than max_failures=2.*config.pbt.max_failures"
    ) as refused:
        run_experiment(FAKE, config, tmp_path / "run", resume=True)
    assert refused.value.member == 1 and refused.value.options == ("pbt.max_failures",)
    assert sum(m.step for m in StoreReader(tmp_path / "run").members()) == steps
    # a larger max_failures on resume retries the member (and it now succeeds: its injected failures are used up)
    for i in range(3, config.fail_times):
        (tmp_path / f"fail-{i}").write_text("x")
    retried = dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, max_failures=5))
    store = run_experiment(FAKE, retried, tmp_path / "run", resume=True)
    assert all(m.status == "done" for m in store.members()) and store.meta()["status"] == "finished"


def test_a_run_in_which_every_member_was_dropped_fails(tmp_path):
    # one member, which always raises and is dropped: nothing finishes, and the run must not report success
    config = dataclasses.replace(
        fake(tmp_path, population=1, on_failure="drop", exploit="none", explore="none"),
        fail_member=0,
        failure="raise",
        fail_times=100,
    )
    with pytest.raises(RunFailed, match="no member finished"):
        run_experiment(FAKE, config, tmp_path / "run")
    meta = StoreReader(tmp_path / "run").meta()
    assert meta["status"] == "failed" and "no member finished" in meta["failure"]


def test_dropped_member_finishes_the_run_without_it(tmp_path):
    config = dataclasses.replace(
        fake(tmp_path, exploit="none", explore="none", on_failure="drop"), fail_member=0, fail_at_step=10, failure="nan"
    )
    store = run_experiment(FAKE, config, tmp_path / "run")
    members = store.members()
    assert members[0].status == "dropped" and members[0].step == 10
    assert all(m.status == "done" for m in members[1:])


def test_worker_process_that_dies_does_not_hang_the_run(tmp_path):
    config = dataclasses.replace(
        fake(tmp_path, executor="local", workers=2, exploit="none"), fail_member=1, fail_at_step=10, failure="die"
    )
    store = run_experiment(FAKE, config, tmp_path / "run")
    failure = store.events("failure")[0]
    assert failure.member == 1 and "worker process died" in failure.message
    assert all(m.status == "done" and m.step == 40 for m in store.members())


def test_corrupt_checkpoint_is_detected(tmp_path):
    store = run_experiment(FAKE, fake(tmp_path, population=2, exploit="none", explore="none"), tmp_path / "run")
    member = store.members()[0]
    path = store.checkpoint_path(member)
    verify_checkpoint(path, member.checksum)
    path.write_text(path.read_text()[:-2])  # truncated
    with pytest.raises(CorruptCheckpoint, match="corrupt"):
        verify_checkpoint(path, member.checksum)
    job = Job(
        member=0,
        seed=0,
        hparams=member.hparams,
        start_step=member.step,
        steps=10,
        eval_every=10,
        checkpoint_dir=str(store.checkpoint_dir),
        checkpoint=member.checkpoint,
        checksum=member.checksum,
    )
    result = run_interval(CountingTask(FakeConfig()), job, StateCache(1))
    assert result.error is not None and "CorruptCheckpoint" in result.error


def test_existing_run_dir_is_not_overwritten_and_resume_checks_the_config(tmp_path):
    out = tmp_path / "run"
    run_experiment(FAKE, fake(tmp_path), out)
    with pytest.raises(ConfigError, match=r"holds a run.*resume=True.*force=True"):
        run_experiment(FAKE, fake(tmp_path), out)
    with pytest.raises(ConfigError, match=r"belongs to a different run.*population"):
        run_experiment(FAKE, fake(tmp_path, population=3), out, resume=True)
    again = run_experiment(FAKE, fake(tmp_path), out, resume=True)  # finished: nothing left to do
    assert all(m.status == "done" for m in again.members())
    run_experiment(FAKE, fake(tmp_path, population=3), out, force=True)
    assert len(StoreReader(out).members()) == 3


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"population": 1}, "population must be >= 2 for exploit='truncation'"),
        ({"ready_every": 0}, "ready_every must be > 0"),
        ({"budget_steps": -5}, "budget_steps must be > 0"),
        ({"exploit": "best"}, "exploit must be one of truncation, ttest, tournament, none"),
        ({"truncation_fraction": 0.7}, "truncation_fraction must be in"),
        ({"perturb_factors": (0.8, -1.0)}, "perturb_factors must be positive"),
    ],
)
def test_bad_pbt_settings_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        PBTConfig(**overrides)


def test_unknown_config_keys_are_rejected():
    from pbt.config import from_dict, replace_fields

    with pytest.raises(ConfigError, match="unknown config key 'lerning_rate'"):
        from_dict(ToyConfig, {"lerning_rate": 0.1})
    with pytest.raises(ConfigError, match=r"unknown config key 'pbt.popsize'"):
        from_dict(ToyConfig, {"pbt": {"popsize": 4}})
    assert replace_fields(ToyConfig(), {"population": 4}).pbt.population == 4
    assert replace_fields(ToyConfig(), {"pbt": {"seed": 3}}).pbt.population == 2  # nested dicts merge


def test_a_ready_member_sees_members_ahead_at_its_own_step(tmp_path):
    """With more members than workers, others may have trained an interval more; they must not look better for it,
    and a copy must take the weights the comparison saw (the donor's snapshot at the copier's step)."""
    from pbt.controller import Controller
    from pbt.experiment import open_experiment

    run_dir, spec = open_experiment(FAKE, fake(tmp_path, population=3), tmp_path / "run")
    store = run_dir.store
    controller = Controller(store, spec)
    controller.started = 0.0
    m0, m1, m2 = controller.members
    for name in ("a", "b", "c"):
        (store.checkpoint_dir / name).write_text(name)
    controller._publish(dataclasses.replace(m0, step=10, weight_age=10, score=1.0, checkpoint="a", checksum="ha"))
    controller._publish(
        dataclasses.replace(m0, step=20, weight_age=20, score=2.0, checkpoint="b", checksum="hb", hparams={"lr": 0.5})
    )
    me = dataclasses.replace(m1, step=10, weight_age=10, score=1.5, checkpoint="c", checksum="hc")
    controller._publish(me)
    view = {m.id: m for m in controller._view(me)}
    assert {i: m.score for i, m in view.items()} == {0: 1.0, 1: 1.5, 2: None}  # member 0 as it was at step 10
    assert (view[0].checkpoint, view[0].step, view[0].weight_age) == ("a", 10, 10)
    assert view[0].hparams == m0.hparams  # its hyperparameters then, not the ones it has moved on to
    assert view[2].checkpoint is None  # nothing published yet: nothing to copy
    # seen from member 0 at step 20, member 1 (at 10, still training) has no state at step 20 yet: never compared, and
    # a decision of member 0's at 20 waits until it has one
    assert {m.id: m.score for m in controller._view(controller.members[0])} == {0: 2.0, 1: None, 2: None}
    assert (store.checkpoint_dir / "a").exists()  # kept while member 1 (at step 10) may still copy it
    controller.members[0] = ahead = dataclasses.replace(controller.members[0], decision_due=20)
    assert [m.id for m in controller._runnable(set())] == [1, 2]  # member 0's decision at 20 waits
    controller._publish(dataclasses.replace(me, step=20, weight_age=20))
    controller._publish(dataclasses.replace(m2, step=20, weight_age=20, score=0.5, checkpoint="c", checksum="hc"))
    controller.members[0] = ahead
    assert 0 in [m.id for m in controller._runnable(set())]


def test_a_member_whose_checkpoint_is_corrupt_is_not_replaced_by_a_member_sharing_that_file():
    from pbt.algorithm import after_failure
    from pbt.interval import IntervalResult
    from pbt.rows import MemberRow

    cfg = PBTConfig(population=3, budget_steps=40, ready_every=10, explore="none")
    shared = dict(checkpoint="bad.ckpt", checksum="x", step=10, weight_age=10)
    me = MemberRow(id=0, seed=0, hparams={"lr": 0.1}, score=0.5, **shared)
    twin = MemberRow(id=1, seed=1, hparams={"lr": 0.9}, score=9.0, **shared)  # it copied the same (bad) file
    good = MemberRow(
        id=2, seed=2, hparams={"lr": 0.3}, score=1.0, checkpoint="good.ckpt", checksum="y", step=10, weight_age=10
    )
    result = IntervalResult(member=0, error="CorruptCheckpoint: bad.ckpt is corrupt", corrupt_checkpoint=True)
    outcome = after_failure(me, result, [me, twin, good], {}, cfg)
    assert outcome.member.checkpoint == "good.ckpt" and outcome.stop is None  # not the better twin's bad file
