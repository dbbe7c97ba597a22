"""The Python API (``repro.api``) as a user calls it: the domain's own start, the baselines, W&B, the results of a run,
errors in Python's words, and Ctrl-C."""

from __future__ import annotations

import dataclasses
import json
import pickle
import sys
import textwrap
from pathlib import Path

import pytest

import baselines
import experiments.toy.task as toy
from pbt.checkpoints import CorruptCheckpoint
from pbt.results import Results
from pbt.space import ConfigError
from repro.api import grid_search, random_search, run
from repro.cli import main
from tests.conftest import only_line

TOY = "experiments.toy.task"


def toy_config(population: int = 2, steps: int = 24) -> toy.Config:
    base = toy.Config()
    return dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, population=population, budget_steps=steps))


def test_run_starts_from_the_domains_own_initial_hyperparameters(tmp_path: Path) -> None:
    results = run(TOY, toy_config(), tmp_path / "pbt", quiet=True)
    assert results.meta["initial_hparams"] == [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}]  # the paper's two
    assert [row["h/h0"] for row in results.table()] != [1.0, 0.0]  # and then explored away from them
    given = [{"h0": 0.5, "h1": 0.5}, {"h0": 0.25, "h1": 0.75}]
    assert (
        run(TOY, toy_config(), tmp_path / "given", quiet=True, initial_hparams=given).meta["initial_hparams"] == given
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"h0": 100, "h1": 0.5}, "h0=100 is outside its prior [0.0, 1.0] (uniform)"),
        ({"h0": -1, "h1": 0.5}, "h0=-1 is outside its prior [0.0, 1.0] (uniform)"),
        ({"h0": 1e308, "h1": 0.5}, "h0=1e+308 is outside its prior [0.0, 1.0] (uniform)"),
        ({"h0": float("nan"), "h1": 0.5}, "h0=nan is outside its prior [0.0, 1.0] (uniform)"),
        ({"h0": 0.5, "h1": 0.5, "lr": 0.1}, "'lr' is not a hyperparameter of this task (it has: h0, h1)"),
        ({}, "h0 is missing (its prior: [0.0, 1.0] (uniform))"),
        ("h0=0.5", "must be a dict of hyperparameters (h0, h1), got str 'h0=0.5'"),
    ],
)
def test_initial_hyperparameters_outside_the_space_are_refused_before_any_member_starts(
    bad, message, tmp_path: Path
) -> None:
    """They all used to train: out of range, with an unknown key that exploits spread, or as failures."""
    from pbt.experiment import run_experiment

    with pytest.raises(ConfigError) as refused:
        run(TOY, toy_config(), tmp_path / "api", quiet=True, initial_hparams=[{"h0": 0.5, "h1": 0.5}, bad])
    assert only_line(str(refused.value)).startswith("initial hyperparameters of member 1") and message in str(
        refused.value
    )
    with pytest.raises(ConfigError, match="initial hyperparameters of member 1"):
        run_experiment(TOY, toy_config(), tmp_path / "core", initial_hparams=[{"h0": 0.5, "h1": 0.5}, bad])
    assert not (tmp_path / "api").exists() and not (tmp_path / "core").exists()


def test_errors_name_python_arguments_not_flags(tmp_path: Path) -> None:
    run(TOY, toy_config(), tmp_path / "run", quiet=True)
    with pytest.raises(ConfigError) as refused:
        run(TOY, toy_config(), tmp_path / "run", quiet=True)
    assert "resume=True" in str(refused.value) and "force=True" in str(refused.value)
    assert "--resume" not in str(refused.value) and "--force" not in str(refused.value)
    with pytest.raises(ConfigError) as different:  # the baselines go through the same door
        random_search(TOY, toy_config(steps=12), tmp_path / "run", quiet=True, resume=True)
    assert "choose another out" in str(different.value) and "--out" not in str(different.value)


def test_one_library_error_is_worded_with_flags_by_the_cli_and_with_arguments_by_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run {resume}"  # a path's braces are its own text, not a setting to word
    run(TOY, toy_config(), out, quiet=True)
    with pytest.raises(ConfigError) as refused:
        run(TOY, toy_config(), out, quiet=True)
    assert refused.value.path == out and refused.value.options == ("resume", "force")
    assert str(refused.value) == f"{out} holds a run; use resume=True to continue it or force=True to replace it"
    assert str(pickle.loads(pickle.dumps(refused.value))) == str(refused.value)  # the same on another process
    assert main(["run", "toy", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"pbt-repro: error: {out} holds a run; use --resume to continue it or --force to replace it\n"
    )


def test_random_search_draws_what_pbt_draws_and_never_exploits(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = toy_config(population=4)
    pbt = run(TOY, config, tmp_path / "pbt", quiet=True)
    rs = random_search(TOY, config, tmp_path / "rs", quiet=True)
    assert rs.meta["method"] == "random_search" and rs.meta["config"]["pbt"]["exploit"] == "none"
    assert rs.meta["initial_hparams"] == pbt.meta["initial_hparams"]  # same seed, same draws
    assert not [e for e in rs.events if e.kind in ("exploit", "explore")]
    assert [e for e in pbt.events if e.kind == "exploit"]
    assert all(row["status"] == "done" and row["step"] == 24 for row in rs.table())
    assert capsys.readouterr().out == ""  # quiet means quiet


def test_grid_search_honours_the_priors_and_sizes_the_population(tmp_path: Path) -> None:
    config = toy_config(population=2)
    config.pbt = dataclasses.replace(config.pbt, priors=("h0=uniform:0.4:0.6",))
    grid = grid_search(TOY, config, tmp_path / "grid", grid_points=3, quiet=True)
    initial = grid.meta["initial_hparams"]
    assert len(grid.members) == len(initial) == 9 and grid.meta["method"] == "grid_search"
    assert sorted({h["h0"] for h in initial}) == pytest.approx([0.4, 0.5, 0.6])
    assert sorted({h["h1"] for h in initial}) == [0.0, 0.5, 1.0]  # the task's own prior where none is given
    assert not [e for e in grid.events if e.kind in ("exploit", "explore")]


def test_the_plain_baselines_show_nothing_and_return_the_store(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = baselines.grid_search(TOY, toy_config(), tmp_path / "grid", grid_points=2, domain="toy")
    assert store.meta()["method"] == "grid_search" and len(store.members()) == 4
    store.close()
    store = baselines.random_search(TOY, toy_config(), tmp_path / "rs")
    assert store.meta()["method"] == "random_search" and not store.events("exploit")
    store.close()
    assert capsys.readouterr().out == ""


def test_wandb_logs_every_member_and_the_figures_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    run(TOY, toy_config(), tmp_path / "run", quiet=True, wandb=True, wandb_project="pbt-test")
    runs = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    records = [next(r.glob("run-*.wandb")).read_bytes() for r in runs]
    members = [r for r in records if b"/member-" in r]
    assert len(runs) == 3 and len(members) == 2  # each member, and the run's figures
    for data in members:
        assert all(key in data for key in (b"score", b"hparams/h0", b"pbt/exploit", b"pbt-test")), data[:200]
    assert any(b"schedule" in r for r in records if r not in members)


def test_results_give_the_member_table_and_a_verified_checkpoint(tmp_path: Path) -> None:
    results = run(TOY, toy_config(population=4), tmp_path / "run", quiet=True)
    table = results.table()
    assert [row["member"] for row in table] == [0, 1, 2, 3]
    assert all(row["step"] == 24 and row["status"] == "done" and {"h/h0", "h/h1"} <= set(row) for row in table)
    assert max(row["score"] for row in table) == results.best.score
    path = results.checkpoint(results.best)
    state = toy.make_task(toy_config()).load(path)
    assert toy.q(state["theta"]) == pytest.approx(results.best.score)  # the best member's own weights
    path.write_text(json.dumps({"theta": [0.0, 0.0], "steps": 24}))  # same shape, other weights
    with pytest.raises(CorruptCheckpoint, match="is corrupt"):
        Results(tmp_path / "run").checkpoint(results.best)


# -- Ctrl-C ---------------------------------------------------------------------------------------------------------


def test_ctrl_c_in_a_script_calling_run_prints_how_to_resume(tmp_path: Path, interrupt_training) -> None:
    (tmp_path / "train.py").write_text(
        textwrap.dedent("""
        import sys

        import experiments.toy.task as toy
        from repro.api import run

        if __name__ == "__main__":
            config = toy.Config(seconds_per_step=0.02)
            run("experiments.toy.task", config, sys.argv[1], quiet=True)
    """)
    )
    run_dir = tmp_path / "runs" / "toy run"
    proc = interrupt_training([sys.executable, "train.py", str(run_dir)], run_dir, tmp_path)
    assert proc.returncode == 130
    line = only_line(proc.stderr)
    assert "run(..., resume=True)" in line and f"pbt-repro resume '{run_dir}'" in line
    assert Results(run_dir).meta["status"] == "interrupted"
    results = run(TOY, toy.Config(seconds_per_step=0.02), run_dir, quiet=True, resume=True)
    assert results.meta["status"] == "finished" and all(row["step"] == 200 for row in results.table())
