"""The Ray executor on a local Ray instance with 2 CPUs (the ``ray`` extra is part of the test install)."""

import dataclasses
import sqlite3
import time

import pytest
import ray

from experiments.toy.task import Config as ToyConfig
from pbt.experiment import run_experiment
from pbt.ray_executor import check_address
from pbt.space import ConfigError
from repro.plan import plan
from tests.conftest import cli
from tests.fake_tasks import Config as FakeConfig


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def schema(store):
    return sorted(sqlite3.connect(store.path).execute("SELECT name, sql FROM sqlite_master").fetchall())


def toy(executor, **overrides):
    cfg = ToyConfig()
    settings = {"executor": executor, "workers": 2, "population": 4, "budget_steps": 40, **overrides}
    return dataclasses.replace(cfg, pbt=dataclasses.replace(cfg.pbt, **settings))


def test_toy_on_ray_gives_the_same_kind_of_results_as_local(tmp_path):
    ray_store = run_experiment("experiments.toy.task", toy("ray"), tmp_path / "ray", domain="toy")
    local_store = run_experiment("experiments.toy.task", toy("local"), tmp_path / "local", domain="toy")
    assert schema(ray_store) == schema(local_store)
    for store in (ray_store, local_store):
        members = store.members()
        assert [m.status for m in members] == ["done"] * 4 and all(m.step == 40 for m in members)
        assert {s.step for s in store.scores()} == set(range(1, 41))
        assert store.meta()["status"] == "finished"
    # same seed, same initial population and same first interval, whichever executor ran it
    first = lambda store: {s.member: s.score for s in store.scores() if s.step == 4}  # noqa: E731
    assert first(ray_store) == pytest.approx(first(local_store))


@pytest.mark.parametrize("strategy", ["pb2", "fire"])
def test_pb2_and_fire_run_on_ray_copying_only_states_at_the_copiers_step(tmp_path, strategy):
    store = run_experiment(
        "experiments.toy.task",
        toy("ray", population=8, strategy=strategy, explore="perturb"),
        tmp_path / "run",
        domain="toy",
    )
    copies = store.events("exploit")
    assert copies and all((e.weight_age, e.donor_step) == (e.step, e.step) for e in copies)
    assert all(m.status == "done" and m.step == m.weight_age == 40 for m in store.members())
    assert store.compute()["used_steps"] == 8 * 40
    if strategy == "fire":  # evaluators take parents' weights, and decide after the other members of their step
        assert any(e.ops["fire"] == "evaluate" for e in copies)
    else:  # after the first ready round (no data yet), PB2's bandit chose the copiers' new values
        assert any("pb2" in (e.ops or {}).values() for e in store.events("explore"))


def test_worker_dying_mid_interval_is_retried_from_its_checkpoint(tmp_path):
    cfg = FakeConfig(marker_dir=str(tmp_path), fail_member=1, fail_at_step=10, failure="die")
    cfg = dataclasses.replace(cfg, pbt=dataclasses.replace(cfg.pbt, executor="ray", workers=2, exploit="none"))
    store = run_experiment("tests.fake_tasks", cfg, tmp_path / "run")
    failure = store.events("failure")[0]
    assert failure.member == 1 and "Ray worker died" in failure.message
    assert store.events("retry")[0].member == 1
    assert all(m.status == "done" and m.step == 40 for m in store.members())
    assert [s.step for s in store.scores(1)] == [10, 20, 30, 40]  # the lost interval was redone once


@pytest.mark.timeout(180)  # without the limit the run never ends
def test_an_interval_past_interval_timeout_has_its_actor_replaced(tmp_path):
    cfg = FakeConfig(marker_dir=str(tmp_path), fail_member=1, fail_at_step=10, failure="hang")
    # generous: on Ray the clock starts at submission, and an actor's start-up counts
    cfg = dataclasses.replace(
        cfg, pbt=dataclasses.replace(cfg.pbt, executor="ray", workers=2, exploit="none", interval_timeout=8)
    )
    store = run_experiment("tests.fake_tasks", cfg, tmp_path / "run")
    (failure,) = store.events("failure")
    assert failure.member == 1 and failure.message == "interval exceeded --interval-timeout 8 s"
    assert all(m.status == "done" and m.step == 40 for m in store.members())


def test_bad_ray_address_fails_fast_with_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="is not auto or HOST:PORT"):
        check_address("nonsense")
    t0 = time.monotonic()
    proc = cli(
        ["run", "toy", "--executor", "ray", "--ray-address", "127.0.0.1:9", "--out", str(tmp_path / "r")],
        timeout=60,
        check=False,
    )
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 2 and "no Ray cluster answers there" in proc.stderr


def test_dry_run_plan_and_too_small_cluster():
    import experiments.toy as toy_module

    cfg = toy("ray", cpus_per_member=1.0)
    text = plan(toy_module.DOMAIN, cfg)
    assert "4 members x 40 steps" in text and "2 members at a time" in text
    with pytest.raises(ConfigError, match=r"cluster too small.*cannot hold one member.*1 GPUs"):
        plan(toy_module.DOMAIN, toy("ray", gpus_per_member=1.0))
    with pytest.raises(ConfigError, match="cluster too small"):
        plan(toy_module.DOMAIN, toy("ray", cpus_per_member=4.0))


def test_rl_smoke_on_ray_matches_the_local_executor(tmp_path):
    import experiments.rl.a2c as a2c

    def smoke(executor):
        cfg = dataclasses.replace(a2c.PROFILES["smoke"], device="cpu")
        return dataclasses.replace(cfg, pbt=dataclasses.replace(cfg.pbt, executor=executor, workers=2))

    ray_store = run_experiment("experiments.rl.a2c", smoke("ray"), tmp_path / "ray", domain="rl")
    local_store = run_experiment("experiments.rl.a2c", smoke("local"), tmp_path / "local", domain="rl")
    assert schema(ray_store) == schema(local_store)
    for store in (ray_store, local_store):
        budget = store.meta()["config"]["pbt"]["budget_steps"]
        assert all(m.status == "done" and m.step >= budget for m in store.members())
        assert all(m.score is not None and m.score >= 0 for m in store.members())  # game scores, unclipped
        assert {e.kind for e in store.events()} <= {"exploit", "explore"}
