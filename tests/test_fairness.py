"""Fairness: no member's weights ever receive more training than the budget, however the population is time-sliced.

An asynchronous run with more members than workers lets some members train further than others between decisions.
A member that copies a donor which is ahead must take the donor's weights as they were at the copier's own step (its
snapshot), or each such copy hands the lineage up to one ready interval of free training that no random-search member
can ever get.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from experiments.toy.task import Config as ToyConfig
from pbt.config import PBTConfig
from pbt.controller import MAX_LEAD
from pbt.experiment import run_experiment
from pbt.lineage import lineage, training_spans
from pbt.space import ConfigError
from pbt.store_writer import Store
from repro.compare import check_comparable, compare, load_run
from tests.fake_tasks import Config as FakeConfig


def toy_async(tmp_path: Path, seed: int, population: int = 8, workers: int = 2, steps: int = 200) -> Store:
    base = ToyConfig()
    pbt = dataclasses.replace(
        base.pbt, population=population, workers=workers, executor="local", seed=seed, budget_steps=steps
    )
    return run_experiment(
        "experiments.toy.task", dataclasses.replace(base, pbt=pbt), tmp_path / f"run-{seed}", domain="toy"
    )


def lineage_training(store: Store, member: int) -> tuple[int, int]:
    """The training the member's final weights received, rebuilt from the events by adding up the lineage's
    segments, and as the schedule figure reads it (from the recorded weight ages)."""
    members = store.members()
    segments = lineage(member, store.meta()["initial_hparams"], store.events(), {m.id: m.step for m in members})
    return sum(s.end - s.start for s in segments), training_spans(segments)[-1][1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_time_sliced_async_run_never_trains_weights_past_the_budget(tmp_path: Path, seed: int) -> None:
    budget = 200
    store = toy_async(tmp_path, seed, steps=budget)
    members = store.members()
    assert all(m.status == "done" and m.step == budget for m in members)
    copies = [e for e in store.events() if e.kind in ("exploit", "replace")]
    assert copies, "the run must exploit for the test to mean anything"
    for e in copies:  # at every copy, the weights taken are no older than the copier's own step
        assert e.weight_age is not None and e.weight_age <= e.step
        assert e.donor_step is not None and e.donor_step <= e.step
    for m in members:
        assert m.weight_age <= budget
        assert lineage_training(store, m.id) == (m.weight_age, m.weight_age)
    compute = store.compute()
    assert compute["used_steps"] == compute["planned_steps"] == 8 * budget
    assert compute["max_weight_age"] <= budget
    store.close()


def test_superseded_checkpoints_are_removed_once_no_member_can_copy_them(tmp_path: Path) -> None:
    store = toy_async(tmp_path, seed=5, steps=120)
    # finished: nobody will copy again, so only the members' current checkpoints remain
    on_disk = {p.name for p in store.checkpoint_dir.iterdir()}
    assert on_disk == {m.checkpoint for m in store.members()}
    kept = store.snapshots()
    assert len(kept) <= len(store.members()) * (MAX_LEAD + 2)
    store.close()


def test_compare_refuses_a_run_whose_weights_trained_past_what_any_member_ran(tmp_path: Path) -> None:
    store = toy_async(tmp_path, seed=0, population=4, steps=40)
    run = load_run(store.run_dir)
    store.close()
    assert check_comparable([run])
    run.compute["max_weight_age"] = run.compute["max_member_steps"] + 4  # as an unresolved async copy would leave it
    with pytest.raises(ConfigError, match="more training than any member"):
        check_comparable([run])
    assert check_comparable([run], allow_unequal=True) is False


def uneven_async(tmp_path: Path, population: int, seed: int, transfer: str) -> Store:
    """Population on 2 workers whose intervals take 0.5x to 2x a base time (seeded), so members finish out of order
    and a ready member often meets others still running their interval towards its step."""
    cfg = FakeConfig(
        seconds_per_step=0.002,
        score="rate",
        pbt=PBTConfig(
            population=population,
            budget_steps=100,
            ready_every=5,
            workers=2,
            executor="local",
            seed=seed,
            exploit="truncation",
            explore="perturb",
            transfer=transfer,
        ),
    )
    return run_experiment("tests.fake_tasks", cfg, tmp_path / f"run-{population}-{seed}-{transfer}")


@pytest.mark.parametrize("transfer", ["both", "weights"])
@pytest.mark.parametrize(("population", "seed"), [(4, 0), (4, 1), (8, 0), (8, 1), (8, 2)])
def test_a_copy_never_takes_weights_with_less_training_than_the_copiers_step(
    tmp_path: Path, population: int, seed: int, transfer: str
) -> None:
    store = uneven_async(tmp_path, population, seed, transfer)
    copies = [e for e in store.events() if e.kind in ("exploit", "replace")]
    assert copies, "the run must exploit for the test to mean anything"
    for e in copies:  # the invariant at every copy: the weights taken trained exactly as long as the copier has
        assert (e.weight_age, e.donor_step) == (e.step, e.step), (
            f"member {e.member} at step {e.step} copied "
            f"member {e.donor}'s weights of age {e.weight_age} (its state at step {e.donor_step})"
        )
    for m in store.members():  # and at the end, as the weights themselves count their training
        assert m.status == "done" and m.weight_age == m.step == 100
        trained = json.loads((store.checkpoint_dir / m.checkpoint).read_text())["steps"]
        assert trained == m.step, f"member {m.id}'s final weights trained {trained} steps, not {m.step}"
    assert store.compute()["min_weight_age"] == 100
    store.close()


def test_the_runs_table_shows_the_least_training_a_members_weights_received(tmp_path: Path) -> None:
    store = toy_async(tmp_path, seed=0, population=4, steps=40)
    run_dir = store.run_dir
    store.close()
    with sqlite3.connect(run_dir / "pbt.sqlite") as db:  # as a copy from a member that was behind left a store
        db.execute("UPDATE member SET weight_age = 35 WHERE id = 2")
    comparison = compare([run_dir], tmp_path / "cmp", figures=False)
    assert (comparison.rows[0].max_weight_age, comparison.rows[0].min_weight_age) == (40, 35)
    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| oldest weights | youngest weights |" in markdown and "| 160 / 160 | 40 | 35 |" in markdown
    row = next(csv.DictReader((tmp_path / "cmp" / "comparison.csv").open()))
    assert (row["max_weight_age"], row["min_weight_age"]) == ("40", "35")
