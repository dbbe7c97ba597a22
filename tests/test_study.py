"""``pbt-repro study`` on the toy at smoke size: every study writes its table (markdown, CSV, JSON), figure and README,
pairs each variant with the reference by seed, shares the reference runs, and resumes what a kill left."""

from __future__ import annotations

import contextlib
import csv
import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from pbt.config import replace_fields
from pbt.results import Results
from repro.commands.study import main as study
from repro.domains import load_domain
from repro.stats import mean_interval, paired_difference
from repro.study import PAPER_STUDIES, Variant, VariantResult, run_variant, study_variants, write_study

ARGS = ["toy", "--study", "all", "--seeds", "2", "--budget-steps", "12", "--quiet"]


def test_study_all_writes_each_study_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toy = load_domain("toy")
    small = replace_fields(toy.profiles["smoke"], {"budget_steps": 12})

    class Killed(BaseException):
        pass

    def kill_after(title: str, store: object, cfg: object) -> contextlib.AbstractContextManager:
        def listener(member: object, scores: object, events: object) -> None:
            raise Killed

        return contextlib.nullcontext([listener])

    reference = Variant("population", "2", {})
    with pytest.raises(Killed):  # the reference run of seed 0 is killed at its first commit
        run_variant(toy, "toy", reference, small, 0, tmp_path / "study" / "runs", False, kill_after)
    assert Results(tmp_path / "study" / "runs" / "pbt-s0").state[0] != "finished"

    commits = iter(["c0", *["c0+dirty"] * 10])  # the first study's files would mark the tree dirty for the next
    monkeypatch.setattr("repro.commands.study.git_commit", lambda: next(commits))
    monkeypatch.setattr("repro.study.git_commit", lambda: next(commits))
    assert study([*ARGS, "--out", str(tmp_path / "study")]) == 0
    for name in PAPER_STUDIES:  # the commit is read once, before any study wrote its files
        assert json.loads((tmp_path / "study" / name / "table.json").read_text())["provenance"]["git_commit"] == "c0"
    runs = sorted(p.name for p in (tmp_path / "study" / "runs").iterdir())
    assert {"pbt-s0", "population-32-s1", "schedule-replay-s1", "transfer-hparams-s0"} <= set(runs)
    assert not any(name.startswith(("population-2-", "exploit-truncation-", "transfer-both-")) for name in runs)
    for name in PAPER_STUDIES:
        out = tmp_path / "study" / name
        assert {p.name for p in out.iterdir()} == {
            "table.md",
            "table.csv",
            "table.json",
            f"{name}.png",
            f"{name}.svg",
            "README.md",
        }
        table = json.loads((out / "table.json").read_text())
        variants = table["variants"]
        assert variants[0]["reference"] and all(not v["reference"] for v in variants[1:])
        assert [v["variant"] for v in variants] == {
            "population": ["2", "4", "8", "16", "32"],
            "exploit": ["truncation", "ttest", "tournament"],
            "transfer": ["both", "weights", "hparams"],
            "schedule": ["pbt", "replay", "final"],
        }[name]
        ref = variants[0]["best_final_per_seed"]
        for v in variants[1:]:
            paired = v["best_final_vs_reference"]
            diffs = [v["best_final_per_seed"][s] - ref[s] for s in ("0", "1")]
            assert paired["n"] == 2 and paired["difference"]["mean"] == pytest.approx(statistics.fmean(diffs))
            assert paired["wins"] == sum(d > 0 for d in diffs)
            assert v["best_final"]["low"] <= v["best_final"]["mean"] <= v["best_final"]["high"]
        assert variants[0]["runs"] == {
            "0": str(tmp_path / "study" / "runs" / "pbt-s0"),
            "1": str(tmp_path / "study" / "runs" / "pbt-s1"),
        }
        rows = list(csv.DictReader((out / "table.csv").open()))
        assert [r["variant"] for r in rows] == [v["variant"] for v in variants]
        readme = (out / "README.md").read_text()
        assert table["provenance"]["git_commit"] in readme and "pbt-repro study toy --study all" in readme
        assert table["provenance"]["run_commits"] and table["provenance"]["run_commits"][0] in readme
        assert f"![{name}]({name}.png)" in readme and "Seeds: 0, 1" in readme
    schedule = json.loads((tmp_path / "study" / "schedule" / "table.json").read_text())["variants"]
    replayed = Results(tmp_path / "study" / "runs" / "schedule-replay-s0")
    assert replayed.meta["replay_of"]["run"] == "../pbt-s0"  # relative: no machine path in a committed store
    assert len(replayed.members) == 2  # as many fresh members as PBT has: equal compute per member and in all
    assert schedule[1]["best_final_per_seed"] == schedule[0]["best_final_per_seed"]  # the toy retraces its lineage

    # the killed reference was resumed to the same result a run made in one go has
    run_variant(toy, "toy", reference, small, 0, tmp_path / "fresh", False, None)
    resumed, whole = (Results(d / "pbt-s0").best for d in (tmp_path / "study" / "runs", tmp_path / "fresh"))
    assert resumed is not None and whole is not None and resumed.score == whole.score

    # again: nothing is trained (the stores are untouched), the tables are the same, hand-written notes are kept
    stores = {p: p.read_bytes() for p in (tmp_path / "study" / "runs").rglob("pbt.sqlite")}
    tables = {n: json.loads((tmp_path / "study" / n / "table.json").read_text())["variants"] for n in PAPER_STUDIES}
    readme = tmp_path / "study" / "exploit" / "README.md"
    readme.write_text(
        readme.read_text() + "\n<!-- notes: written by hand, kept when study rewrites this file -->\nMine.\n"
    )
    assert study([*ARGS, "--out", str(tmp_path / "study")]) == 0
    assert {p: p.read_bytes() for p in (tmp_path / "study" / "runs").rglob("pbt.sqlite")} == stores
    assert {
        n: json.loads((tmp_path / "study" / n / "table.json").read_text())["variants"] for n in PAPER_STUDIES
    } == tables
    assert readme.read_text().endswith("Mine.\n")


def test_study_values_are_checked_and_the_reference_is_always_there() -> None:
    config = load_domain("toy").profiles["smoke"]
    assert [v.name for v in study_variants("population", config, ["8", "4"])] == ["2", "8", "4"]
    assert [v.reference for v in study_variants("exploit", config, ["ttest", "truncation"])] == [True, False]
    with pytest.raises(Exception, match="exploit must be one of"):
        study_variants("exploit", config, ["best"])
    with pytest.raises(Exception, match="population must be >= 2"):
        study_variants("population", config, ["1"])


def test_study_dry_run_lists_each_run_once_trains_nothing_and_counts_what_is_left(tmp_path: Path, capsys) -> None:
    out = tmp_path / "study"
    small = ["--seeds", "2", "--budget-steps", "12", "--quiet", "--out", str(out)]
    assert study(["toy", "--study", "all", *small, "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert not out.exists()
    names = [line.split()[0] for line in plan.splitlines() if line.startswith("  ") and line[2] != " "]
    assert len(names) == len(set(names)) and names[:2] == ["pbt-s0", "pbt-s1"]  # the shared reference runs once
    # 2 seeds of: the reference, population 4/8/16/32 ((4+8+16+32)/2 references' worth), 2 exploit, 2 transfer and
    # 2 schedule variants
    assert len(names) == 2 * (1 + 4 + 2 + 2 + 2) and "= 74.00 runs the size of the reference (2 x 12)" in plan

    assert study(["toy", "--study", "population", "--values", "2", *small]) == 0  # trains the references only
    capsys.readouterr()
    assert study(["toy", "--study", "schedule", *small, "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert [line.split()[-3] for line in plan.splitlines() if line.startswith("  pbt-")] == ["finished", "finished"]
    assert "to train: 96 member-steps = 4.00 runs" in plan and "h more on this machine" in plan
    # at another budget the finished references are other runs, which the study would refuse: none counts as done
    assert study(["toy", "--study", "schedule", *small, "--budget-steps", "6", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert [line.split()[-4] for line in plan.splitlines() if line.startswith("  pbt-")] == ["another"] * 2
    assert plan.count("holds another run (config.pbt.budget_steps: 12 != 6)") == 2
    assert "to train: 72 member-steps = 6.00 runs" in plan and "h more on this machine" not in plan


def test_the_strategy_study_measures_each_variants_schedules_against_the_known_ones(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "study"
    args = ["toy", "--study", "strategy", "--seeds", "2", "--budget-steps", "16", "--population", "6", "--quiet"]
    assert study([*args, "--out", str(out)]) == 0
    table = json.loads((out / "strategy" / "table.json").read_text())
    assert [v["variant"] for v in table["variants"]] == ["pbt", "tournament", "pb2", "fire", "random_search"]
    runs = {v["variant"]: Results(Path(v["runs"]["0"])) for v in table["variants"]}
    assert (
        runs["fire"].meta["config"]["pbt"]["strategy"] == "fire"
        and runs["random_search"].meta["method"] == "random_search"
    )
    for v in table["variants"]:
        distances = v["best_schedule_distance_per_seed"]["best"]
        for seed, d in distances.items():  # h = (1, 1) is the toy's best schedule: the distance is the mean |h - 1|
            schedule = Results(Path(v["runs"][seed])).discovered_schedule()
            expected = statistics.fmean(
                statistics.fmean(abs(float(x) - 1.0) for x in schedule.at(age).values()) for age in range(16)
            )
            assert d == pytest.approx(expected) and 0.0 <= d <= 1.0
    assert table["variants"][-1]["coalescence_step_per_seed"] == {"0": None, "1": None}  # random search never copies
    readme = (out / "strategy" / "README.md").read_text()
    assert "best schedule's distance from the best one" in readme and "![schedules](schedules.png)" in readme
    assert (out / "strategy" / "schedules.png").stat().st_size > 0


def test_a_strategy_the_population_cannot_hold_is_refused_before_any_run(tmp_path: Path, capsys) -> None:
    from repro.cli import main as cli

    assert cli(["study", "toy", "--study", "strategy", "--seeds", "1", "--out", str(tmp_path / "s")]) == 2
    error = capsys.readouterr().err
    assert "strategy fire needs" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_the_study_figure_orders_populations_by_size_and_keeps_intervals_within_the_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over two seeds a t-interval of accuracies reached 1.19, and the reference (population 4) came before 2."""
    from matplotlib.collections import PathCollection

    import repro.study as study_module

    drawn = []
    monkeypatch.setattr(study_module, "save_figure", lambda fig, out, name: drawn.append(fig) or [f"{name}.png"])
    monkeypatch.setattr(study_module, "run_meta", lambda run_dir: {"config": {"pbt": {"mode": "max"}}})  # no stores
    config = replace_fields(load_domain("toy").profiles["smoke"], {"population": 4})
    reference = {0: 0.97, 1: 0.80}
    best = {"4": reference, "2": {0: 0.90, 1: 0.78}, "8": {0: 0.95, 1: 0.93}}
    results = []
    for variant in study_variants("population", config, ["2", "8"]):  # the reference first, as it is trained
        paired = None if variant.reference else paired_difference(best[variant.name], reference)
        interval = mean_interval(best[variant.name].values())
        results.append(
            VariantResult(
                variant,
                {0: tmp_path, 1: tmp_path},
                best[variant.name],
                best[variant.name],
                interval,
                interval,
                paired,
                paired,
                1.0,
                ("abc",),
            )
        )
    assert results[0].best_interval.high > 1.0  # what the figure used to draw
    provenance = {
        "command": "study",
        "git_commit": "abc",
        "machine": {"processor": "cpu", "cpus": 1, "platform": "linux", "python": "3.11"},
        "date": "d",
        "wall_seconds": 1.0,
        "runs_wall_seconds": 3.0,
        "run_commits": ["abc"],
    }
    table = write_study("population", "toy", "accuracy", "smoke", config, [0, 1], results, tmp_path, provenance)
    assert [v["variant"] for v in table["variants"]] == ["2", "4", "8"]

    (fig,) = drawn
    left, right = fig.axes[:2]
    names = [t.get_text() for t in left.child_axes[0].get_xticklabels()]
    assert names == ["population 2", "population 4 (ref.)", "population 8"]
    for ax in (left, right):
        points = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if isinstance(c, PathCollection)])
        for container in ax.containers:  # each mean's interval, as drawn
            (segment,) = container.lines[2][0].get_segments()
            assert points.min() - 1e-12 <= min(segment[:, 1]) and max(segment[:, 1]) <= points.max() + 1e-12
    assert left.get_ylim()[1] < 1.0
    assert "t-interval" in fig._suptitle.get_text()
    study_module.pyplot().close(fig)
