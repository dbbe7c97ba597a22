"""The baseline arms: their search space is the run's (priors included), and a baseline label means no exploit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import experiments.toy as toy_package
import experiments.toy.task as toy
from baselines import baseline_config
from pbt.experiment import open_experiment, run_experiment
from pbt.space import ConfigError
from repro.compare import check_comparable, load_run


def test_grid_search_honours_the_priors() -> None:
    config = dataclasses.replace(
        toy.Config(), pbt=dataclasses.replace(toy.Config().pbt, priors=("h0=uniform:0.4:0.6",))
    )
    _, initial = baseline_config(toy_package.DOMAIN, config, "grid_search", grid_points=2)
    assert initial is not None and sorted({h["h0"] for h in initial}) == [0.4, 0.6]
    assert sorted({h["h1"] for h in initial}) == [0.0, 1.0]  # the task's own prior where none is given


def test_a_random_search_run_cannot_exploit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="random_search run cannot exploit"):
        open_experiment("experiments.toy.task", toy.Config(), tmp_path / "rs", method="random_search")
    config, _ = baseline_config(toy_package.DOMAIN, toy.Config(), "random_search")
    store = run_experiment("experiments.toy.task", config, tmp_path / "rs", method="random_search", domain="toy")
    assert not store.events("exploit") and not store.events("explore")


def test_compare_refuses_a_baseline_whose_events_show_exploits(tmp_path: Path) -> None:
    store = run_experiment("experiments.toy.task", toy.Config(), tmp_path / "pbt", domain="toy")
    assert store.events("exploit")
    run = load_run(tmp_path / "pbt")
    run.meta["method"] = "random_search"  # as a store written before labels were checked could say
    with pytest.raises(ConfigError, match="labelled a baseline or a replay but its events show exploits"):
        check_comparable([run])
