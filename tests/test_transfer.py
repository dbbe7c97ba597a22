"""What an exploit copies (``--transfer both|weights|hparams``): exactly the weights (checkpoint, checksum, score and
age) and/or the hyperparameters it says, recorded truthfully so lineages follow weights only where they moved."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from experiments.toy.task import SPACE
from experiments.toy.task import Config as ToyConfig
from pbt.algorithm import after_failure, exploit_and_explore
from pbt.config import PBTConfig
from pbt.experiment import run_experiment
from pbt.interval import IntervalResult
from pbt.results import Results
from pbt.rows import MemberRow

ME = MemberRow(
    id=0,
    seed=0,
    hparams={"h0": 0.1, "h1": 0.2},
    step=8,
    score=0.1,
    samples=(0.05, 0.1),
    checkpoint="mine.ckpt",
    checksum="mine",
    weight_age=8,
)
DONOR = MemberRow(
    id=1,
    seed=1,
    hparams={"h0": 0.9, "h1": 0.8},
    step=8,
    score=0.9,
    samples=(0.8, 0.9),
    checkpoint="donor.ckpt",
    checksum="donor",
    weight_age=6,
)  # its weights are younger: copied once
WEIGHTS = {"checkpoint": "donor.ckpt", "checksum": "donor", "score": 0.9, "samples": (0.8, 0.9), "weight_age": 6}
OWN_WEIGHTS = {"checkpoint": "mine.ckpt", "checksum": "mine", "score": 0.1, "samples": (0.05, 0.1), "weight_age": 8}


def weights_of(m: MemberRow) -> dict:
    return {k: getattr(m, k) for k in WEIGHTS}


@pytest.mark.parametrize(
    "transfer, weights, hparams, kind",
    [
        ("both", WEIGHTS, DONOR.hparams, "exploit"),
        ("weights", WEIGHTS, ME.hparams, "exploit"),
        ("hparams", OWN_WEIGHTS, DONOR.hparams, "exploit_hparams"),
    ],
)
def test_each_mode_copies_exactly_what_it_says(transfer: str, weights: dict, hparams: dict, kind: str) -> None:
    cfg = PBTConfig(population=2, exploit="truncation", explore="none", transfer=transfer)
    new, events = exploit_and_explore(ME, [ME, DONOR], SPACE, cfg, seed=0)
    assert weights_of(new) == weights and new.hparams == hparams
    assert (new.id, new.seed, new.step) == (0, 0, 8)  # the slot's own compute is its own in every mode
    [event] = events
    assert (event.kind, event.donor, event.donor_step) == (kind, 1, 8)
    assert event.old_hparams == ME.hparams and event.new_hparams == hparams
    assert event.weight_age == weights["weight_age"]  # the age of the weights the member holds after the copy


@pytest.mark.parametrize("transfer", ["both", "weights", "hparams"])
def test_explore_perturbs_what_the_copy_left_in_every_mode(transfer: str) -> None:
    cfg = PBTConfig(population=2, exploit="truncation", explore="noise", noise_std=0.05, transfer=transfer)
    copied, _ = exploit_and_explore(ME, [ME, DONOR], SPACE, dataclasses.replace(cfg, explore="none"), seed=0)
    new, events = exploit_and_explore(ME, [ME, DONOR], SPACE, cfg, seed=0)
    assert [e.kind for e in events][1:] == ["explore"]
    assert events[1].old_hparams == copied.hparams and new.hparams == events[1].new_hparams != copied.hparams
    assert weights_of(new) == weights_of(copied)  # explore changes hyperparameters only


def test_a_failed_member_is_replaced_by_both_whatever_the_transfer() -> None:
    cfg = PBTConfig(population=2, exploit="truncation", explore="none", transfer="hparams")
    outcome = after_failure(ME, IntervalResult(member=0, error="boom"), [ME, DONOR], SPACE, cfg)
    assert weights_of(outcome.member) == WEIGHTS and outcome.member.hparams == DONOR.hparams
    assert [e.kind for e in outcome.events] == ["failure", "replace"]


def toy(transfer: str) -> ToyConfig:
    base = ToyConfig()
    return dataclasses.replace(
        base,
        pbt=dataclasses.replace(base.pbt, population=4, budget_steps=60, seed=3, explore="none", transfer=transfer),
    )


@pytest.mark.parametrize("transfer", ["both", "weights", "hparams"])
def test_a_serial_toy_run_copies_what_its_mode_says_at_every_exploit(tmp_path: Path, transfer: str) -> None:
    published: dict[int, MemberRow] = {}
    checked: list[str] = []

    def listener(member: MemberRow, scores: object, events: list) -> None:
        for e in events:
            if e.kind in ("exploit", "exploit_hparams"):
                before, donor = published[e.member], published[e.donor]
                assert donor.step == member.step  # serial: members level, so the donor's latest is what it copied
                took_weights = transfer != "hparams"
                assert member.checksum == (donor if took_weights else before).checksum
                assert member.checkpoint == (donor if took_weights else before).checkpoint
                assert member.weight_age == (donor if took_weights else before).weight_age
                assert member.hparams == (before if transfer == "weights" else donor).hparams
                checked.append(e.kind)
        published[member.id] = member

    run = tmp_path / transfer
    run_experiment("experiments.toy.task", toy(transfer), run, domain="toy", listeners=[listener]).close()
    assert len(checked) > 5 and set(checked) == {"exploit_hparams" if transfer == "hparams" else "exploit"}
    results = Results(run)
    assert results.meta["config"]["pbt"]["transfer"] == transfer  # recorded with the run
    lineages = {m.id: {s.member for s in results.schedule(m.id)} for m in results.members}
    if transfer == "hparams":  # no weights changed hands: every lineage is the member's own
        assert all(members == {m} for m, members in lineages.items())
    else:
        assert any(len(members) > 1 for members in lineages.values())


def test_the_lineage_of_an_hparams_copy_shows_the_copied_values_on_the_members_own_weights(tmp_path: Path) -> None:
    run_experiment("experiments.toy.task", toy("hparams"), tmp_path / "run", domain="toy").close()
    results = Results(tmp_path / "run")
    copy = next(e for e in results.events if e.kind == "exploit_hparams")
    segments = results.schedule(copy.member)
    after = [s for s in segments if s.start == copy.step]
    assert after and after[0].hparams == copy.new_hparams and after[0].age_start == copy.step


def test_reproduce_compares_a_copy_ablation_with_random_search(tmp_path: Path) -> None:
    from repro.reproduce import reproduce

    config = toy("weights")
    config = dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, population=2, budget_steps=24))
    summary = reproduce("toy", config, "smoke", seeds=2, out=tmp_path / "out", runs=tmp_path / "runs")
    assert summary is not None and summary["pbt"]["best_final"] is not None
    assert summary["paired"]["best_final"]["n"] == 2 and "schedule" in summary["figures"]
    assert summary["trains_faster"]["n"] == 2
    assert "PBT, copying weights only" in (tmp_path / "out" / "comparison.md").read_text()
