import csv
import dataclasses
import json
import statistics
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

import experiments.toy as toy_package
import experiments.toy.task as toy
from baselines import baseline_config
from pbt.experiment import run_experiment
from pbt.rows import ScoreRow
from pbt.space import ConfigError
from pbt.store import StoreReader
from repro.compare import FIGURES, compare, load_run, median_seed, progress_curve, step_on_grid
from repro.reproduce import NOTES_MARKER, reproduce
from repro.stats import Interval, fmt_interval, sign_flip_p
from tests.conftest import REPO, cli
from tests.fake_tasks import Config as FakeConfig
from tests.toy_extras import reproduce_toy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def toy_config(seed=0, steps=60, population=2):
    base = toy.Config()
    return dataclasses.replace(
        base, pbt=dataclasses.replace(base.pbt, seed=seed, budget_steps=steps, population=population)
    )


def run_toy(out, method="pbt", seed=0, steps=60):
    config = toy_config(seed, steps)
    initial = toy.initial_hparams(config)
    if method == "random_search":
        config, initial = baseline_config(toy, config, "random_search")
    run_experiment("experiments.toy.task", config, out, method=method, domain="toy", initial_hparams=initial)
    return out


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "pbt": run_toy(root / "pbt"),
        "pbt1": run_toy(root / "pbt1", seed=1),
        "rs": run_toy(root / "rs", "random_search"),
        "rs_short": run_toy(root / "rs_short", "random_search", steps=40),
    }


def test_compare_writes_both_tables_and_all_the_figures(toy_runs, tmp_path):
    out = tmp_path / "cmp"
    comparison = compare([toy_runs["pbt"], toy_runs["rs"]], out)
    for name in FIGURES:
        for ext in ("png", "svg"):
            path = out / f"{name}.{ext}"
            assert path.stat().st_size > 1000, path
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
        assert b"<svg" in (out / f"{name}.svg").read_bytes()[:2000]
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["method"] for r in rows] == ["pbt", "random_search"]
    for row, run_dir in zip(rows, (toy_runs["pbt"], toy_runs["rs"])):
        store = StoreReader(run_dir)
        scores = [m.score for m in store.members()]
        assert float(row["best_final"]) == max(scores)
        assert float(row["mean_final"]) == pytest.approx(statistics.fmean(scores))
        assert float(row["median_final"]) == pytest.approx(statistics.median(scores))
        assert int(row["used_steps"]) == int(row["planned_steps"]) == 120
        assert row["equal_compute"] == "True"
    markdown = (out / "comparison.md").read_text()
    assert "| PBT |" in markdown and "| random search |" in markdown and "Q(θ)" in markdown
    assert "Unequal" not in markdown
    # the lineage written as data ends at the best member's final step with its final hyperparameters
    schedule = json.loads((out / "best_schedule.json").read_text())
    best = max(StoreReader(toy_runs["pbt"]).members(), key=lambda m: (m.score, -m.id))
    assert schedule["member"] == best.id and schedule["segments"][-1]["end"] == 60
    assert schedule["segments"][-1]["hparams"] == best.hparams
    assert comparison.best_schedule == schedule


def test_compare_reports_each_pbt_runs_coalescence_and_draws_the_greediness_figure(toy_runs, tmp_path):
    """With two members, the first copy leaves both descending from one founder for good, so each PBT run coalesces
    at its first exploit; random search copies nothing and gets no diagnostics."""
    out = tmp_path / "cmp"
    comparison = compare([toy_runs["pbt"], toy_runs["pbt1"], toy_runs["rs"]], out)
    assert comparison.figures["greediness"] == ["greediness.png", "greediness.svg"]
    assert (out / "greediness.png").read_bytes()[:8] == PNG_MAGIC and (out / "greediness.png").stat().st_size > 1000
    first = {name: min(e.step for e in StoreReader(toy_runs[name]).events("exploit")) for name in ("pbt", "pbt1")}
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [(r["coalescence_step"], r["coalesced_seeds"], r["lineages_at_end"]) for r in rows] == [
        (str(first["pbt"]), "1/1", "1"),
        (str(first["pbt1"]), "1/1", "1"),
        ("", "", ""),
        (repr(statistics.fmean(first.values())), "2/2", "1.0"),
    ]
    markdown = (out / "comparison.md").read_text()
    assert f"| 2/2 | {first['pbt']} | 1 | finished |" in markdown
    assert "| 2/2 | — | — | finished |" in markdown  # random search
    assert f"| {statistics.fmean(first.values()):.6g} (2/2 seeds) | 1 | finished |" in markdown


def test_unequal_compute_is_refused_unless_allowed(toy_runs, tmp_path):
    with pytest.raises(ConfigError, match=r"unequal compute.*--allow-unequal"):
        compare([toy_runs["pbt"], toy_runs["rs_short"]], tmp_path / "no", figures=False)
    assert not (tmp_path / "no" / "comparison.md").exists()
    compare([toy_runs["pbt"], toy_runs["rs_short"]], tmp_path / "yes", allow_unequal=True, figures=False)
    assert "**Unequal compute**" in (tmp_path / "yes" / "comparison.md").read_text()
    rows = list(csv.DictReader((tmp_path / "yes" / "comparison.csv").open()))
    assert {r["planned_steps"] for r in rows} == {"120", "80"} and {r["equal_compute"] for r in rows} == {"False"}


def test_different_domains_are_refused_even_with_allow_unequal(toy_runs, tmp_path):
    other = tmp_path / "fake"
    run_experiment("tests.fake_tasks", FakeConfig(marker_dir=str(tmp_path)), other)
    with pytest.raises(ConfigError, match="different domains"):
        compare([toy_runs["pbt"], other], tmp_path / "out", allow_unequal=True, figures=False)


def test_several_seeds_get_a_mean_and_std_row(toy_runs, tmp_path):
    compare([toy_runs["pbt"], toy_runs["pbt1"], toy_runs["rs"]], tmp_path / "out", figures=False)
    rows = list(csv.DictReader((tmp_path / "out" / "comparison.csv").open()))
    assert [r["row"] for r in rows] == ["run", "run", "run", "mean_std"]
    best = [float(r["best_final"]) for r in rows[:2]]
    assert float(rows[3]["best_final"]) == pytest.approx(statistics.fmean(best))
    assert float(rows[3]["best_final_std"]) == pytest.approx(statistics.stdev(best))
    assert rows[3]["seeds"] == "0 1"


def test_progress_curve_counts_compute_over_the_population():
    scores = [
        ScoreRow(0, 10, 1.0, time=1.0),
        ScoreRow(1, 10, 3.0, time=2.0),
        ScoreRow(0, 20, 2.0, time=3.0),
        ScoreRow(1, 20, 0.5, time=4.0),
    ]
    xs, best, median = progress_curve(scores, "max")
    assert xs == [10, 20, 30, 40]
    assert best == [1.0, 3.0, 3.0, 3.0]
    assert median == [1.0, 2.0, 2.5, 1.25]


def test_a_running_run_can_be_compared(toy_runs, tmp_path):
    """compare reads a store mid-run (here: one member has not started) without touching it."""
    run = load_run(toy_runs["pbt"])
    assert run.meta["status"] == "finished"
    partial = tmp_path / "partial"
    config = toy_config(steps=60)
    from pbt.rundir import RunDir

    RunDir.open(partial, "toy", "pbt", config, toy.initial_hparams(config), toy.SPACE).close()
    comparison = compare([partial], tmp_path / "out")
    assert comparison.rows[0].used_steps == 0 and comparison.rows[0].best_final is None
    assert (tmp_path / "out" / "score_vs_compute.png").exists()


def test_reproduce_writes_a_results_folder_resumes_and_merges_extra_results(tmp_path, monkeypatch):
    calls = []

    def extra_results(run_dir):
        calls.append(run_dir.name)
        (run_dir / "extra.txt").write_text("x")
        return {"member": 1, "test_score": {"a": 1.0 if run_dir.name.startswith("pbt") else 0.5}}

    monkeypatch.setattr(toy_package, "DOMAIN", dataclasses.replace(toy_package.DOMAIN, extra_results=extra_results))
    config = toy_config(steps=40)
    summary = reproduce("toy", config, "smoke", seeds=2, out=tmp_path / "results", runs=tmp_path / "runs")
    out = tmp_path / "results"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["domain"] == "toy" and on_disk["metric"] == toy.METRIC and on_disk["equal_compute"] is True
    for arm in ("pbt", "random_search"):
        a = on_disk[arm]
        assert set(a) >= {"best_final", "population_mean_final", "compute"}
        assert a["compute"]["steps"] == a["compute"]["planned_steps"] == 2 * 2 * 40
        assert a["seeds"] == [0, 1] and len(a["best_final_per_seed"]) == 2
        assert a["best_final"] == pytest.approx(statistics.fmean(a["best_final_per_seed"]))
    assert on_disk["pbt"]["best_final"] > on_disk["random_search"]["best_final"]
    # each run's extra results are computed once, when it finishes, and kept in its own store
    assert sorted(calls) == ["pbt-s0", "pbt-s1", "random_search-s0", "random_search-s1"]
    assert on_disk["extra_results"]["pbt"]["1"] == {"member": 1, "test_score": {"a": 1.0}}
    assert on_disk["extra_results"]["random_search"]["0"]["test_score"] == {"a": 0.5}
    assert StoreReader(tmp_path / "runs" / "pbt-s1").meta()["extra_results"]["test_score"] == {"a": 1.0}
    p = on_disk["provenance"]
    assert set(p) >= {"config", "seeds", "git_commit", "machine", "date", "wall_seconds", "command"}
    assert p["config"]["random_search"]["pbt"]["exploit"] == "none" and p["seeds"] == [0, 1]
    for files in on_disk["figures"].values():
        assert all((out / f).stat().st_size > 0 for f in files)
    assert sorted(on_disk["figures"]) == sorted(FIGURES)
    readme = (out / "README.md").read_text()
    assert "![schedule](schedule.png)" in readme and "| test_score.a | 1 | 1 | 0.5 | 0.5 |" in readme
    # the PBT arm's greediness per seed (random search copies nothing), in the summary and the README
    greediness = on_disk["pbt"]["greediness"]
    assert "greediness" not in on_disk["random_search"] and len(greediness["coalescence_step_per_seed"]) == 2
    assert "![greediness](greediness.png)" in readme and "Greediness: PBT's population" in readme
    assert (
        "| test_score.a | 1 [1, 1] | 0.5 [0.5, 0.5] | 0.5 [0.5, 0.5] | 2/2 | 0.5 | 1 [1, 1] | 1 [1, 1] | 0.5 [0.5, 0.5] |"
        in readme
    )  # paired, over 2 seeds
    figures = {f.name: f.read_bytes() for f in out.iterdir() if f.suffix in (".png", ".svg")}
    figures["best_schedule.json"] = (out / "best_schedule.json").read_bytes()

    # rerunning continues instead of retraining: finished runs are left as they are, and so are the hand-written
    # notes at the end of the README, while the generated part is rewritten
    (out / "README.md").write_text("stale\n" + NOTES_MARKER + "\n## Discussion\nPBT won.\n")
    before = {d.name: len(StoreReader(d).scores()) for d in (tmp_path / "runs").iterdir()}
    committed = {f: f.stat().st_mtime_ns for f in out.iterdir()}

    def commit_of_tree():  # the results folder is tracked: once reproduce rewrites a file, git calls the tree dirty
        touched = {f: f.stat().st_mtime_ns for f in out.iterdir()} != committed
        return "c0ffee" + ("+dirty" if touched else "")

    monkeypatch.setattr("repro.reproduce.git_commit", commit_of_tree)
    reproduce("toy", config, "smoke", seeds=2, out=out, runs=tmp_path / "runs")
    assert commit_of_tree() == "c0ffee+dirty"  # the fake can tell
    assert json.loads((out / "summary.json").read_text())["provenance"]["git_commit"] == "c0ffee"
    after = {d.name: len(StoreReader(d).scores()) for d in (tmp_path / "runs").iterdir()}
    assert before == after and len(before) == 4 and len(calls) == 4  # and no extra results computed again
    # comparing the same stores again gives the same statistics and the same figure files, byte for byte (reopening
    # a finished run adds to its wall time, so the compute and provenance are left out)
    again = json.loads((out / "summary.json").read_text())
    for key in ("paired", "trains_faster", "figure_seed", "extra_results", "figures"):
        assert again[key] == on_disk[key], key
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.name in figures} == figures
    readme = (out / "README.md").read_text()
    assert readme.startswith("# toy") and "stale" not in readme
    assert readme.endswith(NOTES_MARKER + "\n## Discussion\nPBT won.\n") and readme.count(NOTES_MARKER) == 1


def test_reproduce_and_compare_from_the_command_line(tmp_path):
    proc = cli(
        [
            "reproduce",
            "toy",
            "--profile",
            "smoke",
            "--budget-steps",
            "40",
            "--out",
            str(tmp_path / "res"),
            "--runs",
            str(tmp_path / "runs"),
        ]
    )
    assert "PBT best final" in proc.stdout and (tmp_path / "res" / "summary.json").exists()
    cli(["baseline", "toy", "--budget-steps", "20", "--out", str(tmp_path / "short"), "--quiet"])
    refused = cli(
        ["compare", str(tmp_path / "runs" / "pbt-s0"), str(tmp_path / "short"), "--out", str(tmp_path / "c")],
        check=False,
    )
    assert refused.returncode == 2 and "unequal compute" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    for args in (["reproduce", "toy", "--help"], ["compare", "--help"], ["report", "--help"]):
        cli(args)


def test_tooling_modules_import_no_heavy_packages():
    code = (
        "import sys, pbt.lineage, repro.compare, repro.reproduce, repro.report, repro.progress, repro.wandb_log, "
        "repro.tensorboard_log, repro.listeners, repro.cli; "
        "heavy = [m for m in ('torch', 'matplotlib', 'rich', 'wandb', 'tensorboard') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_reproduce_can_run_one_arm_now_and_compare_later(tmp_path):
    config = toy_config(steps=24)
    runs, out = tmp_path / "runs", tmp_path / "results"
    assert reproduce("toy", config, "smoke", out=out, runs=runs, arms=["pbt"]) is None
    assert sorted(d.name for d in runs.iterdir()) == ["pbt-s0"] and not out.exists()
    scores = len(StoreReader(runs / "pbt-s0").scores())
    summary = reproduce("toy", config, "smoke", out=out, runs=runs)
    assert summary is not None and summary["pbt"]["seeds"] == [0] == summary["random_search"]["seeds"]
    # one seed: means without intervals
    best = summary["paired"]["best_final"]
    assert best["difference"] == {
        "mean": pytest.approx(best["pbt"]["mean"] - best["baseline"]["mean"]),
        "low": None,
        "high": None,
        "n": 1,
    }
    row = next(line for line in (out / "README.md").read_text().splitlines() if line.startswith("| best member's"))
    assert "[" not in row and f"| {best['wins']}/1 | 1 |" in row  # one seed: sign-flip p is 1
    assert len(StoreReader(runs / "pbt-s0").scores()) == scores  # the finished arm was not retrained
    with pytest.raises(ConfigError, match="unknown arm"):
        reproduce("toy", config, "smoke", out=out, runs=runs, arms=["grid"])


# -- several seeds: paired statistics, trains faster, the figures' seed, byte-identical output ----------------------


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    """A 3-seed toy reproduction (with extra_results), and each run's best and mean final score read from its store."""
    root = tmp_path_factory.mktemp("three")
    summary = reproduce_toy(root, seeds=3)
    finals = {}
    for arm in ("pbt", "random_search"):
        for seed in (0, 1, 2):
            scores = [m.score for m in StoreReader(root / "runs" / f"{arm}-s{seed}").members()]
            finals[arm, seed] = (max(scores), statistics.fmean(scores))
    return root, summary, finals


def test_paired_statistics_match_ttest_rel_on_the_stores(three_seeds):
    root, summary, finals = three_seeds
    assert json.loads((root / "results" / "summary.json").read_text())["paired"] == json.loads(
        json.dumps(summary["paired"])
    )
    for key, index in (("best_final", 0), ("population_mean_final", 1)):
        pbt = [finals["pbt", s][index] for s in range(3)]
        rs = [finals["random_search", s][index] for s in range(3)]
        paired = summary["paired"][key]
        ci = sps.ttest_rel(pbt, rs).confidence_interval(0.95)
        assert paired["difference"]["mean"] == pytest.approx(statistics.fmean(pbt) - statistics.fmean(rs))
        assert (paired["difference"]["low"], paired["difference"]["high"]) == pytest.approx((ci.low, ci.high))
        assert paired["pbt"]["mean"] == pytest.approx(statistics.fmean(pbt))
        assert paired["baseline"]["mean"] == pytest.approx(statistics.fmean(rs))
        low, high = sps.t.interval(0.95, 2, loc=np.mean(rs), scale=sps.sem(rs))
        assert (paired["baseline"]["low"], paired["baseline"]["high"]) == pytest.approx((low, high))
        assert paired["wins"] == sum(p > r for p, r in zip(pbt, rs)) and paired["n"] == 3
        assert paired["per_seed"] == [[s, pbt[s], rs[s]] for s in range(3)] and paired["higher_is_better"] is True
    # every number of extra_results is paired too; for FID lower is better, so PBT wins it where its best is higher
    best, fid, q = (summary["paired"][k] for k in ("best_final", "fid", "test.q"))
    assert fid["higher_is_better"] is False and q["higher_is_better"] is True
    assert fid["wins"] == best["wins"] == q["wins"]
    assert fid["difference"]["mean"] == pytest.approx(-best["difference"]["mean"])
    assert summary["paired"]["test.beam_size"]["difference"]["mean"] == 0.0
    # the robust statistics: P(PBT better) counts a lower FID as better, the sign-flip test is of the differences
    pbt, rs = ([row[i] for row in best["per_seed"]] for i in (1, 2))
    assert best["probability_of_improvement"]["mean"] == pytest.approx(
        statistics.fmean((p > r) + 0.5 * (p == r) for p in pbt for r in rs)
    )
    assert fid["probability_of_improvement"]["mean"] == best["probability_of_improvement"]["mean"]
    assert best["sign_flip_p"] == fid["sign_flip_p"] == sign_flip_p([p - r for p, r in zip(pbt, rs)])
    assert best["iqm"]["pbt"]["mean"] == pytest.approx(sps.trim_mean(pbt, 0.25))


def test_trains_faster_fractions(three_seeds):
    _, summary, _ = three_seeds
    speed = summary["trains_faster"]
    assert speed["n"] == 3
    for side in ("pbt", "baseline"):
        fractions = [f for f in speed[f"{side}_fraction_per_seed"].values() if f is not None]
        assert len(fractions) == speed[f"{side}_reached"]
        assert all(0 < f <= 1 for f in fractions)
        if fractions:
            assert speed[f"{side}_fraction"]["mean"] == pytest.approx(statistics.fmean(fractions))
    # a seed whose PBT run ends with the better best reaches the other's final best; the other never gets there
    for seed, pbt, rs in summary["paired"]["best_final"]["per_seed"]:
        assert (speed["pbt_fraction_per_seed"][seed] is not None) == (pbt >= rs)
        assert (speed["baseline_fraction_per_seed"][seed] is not None) == (rs >= pbt)


def test_the_pbt_figures_show_the_median_seed_unless_told(three_seeds, tmp_path):
    root, summary, finals = three_seeds
    median = sorted((finals["pbt", s][0], s) for s in range(3))[1][1]
    assert summary["figure_seed"] == median
    schedule = json.loads((root / "results" / "best_schedule.json").read_text())
    assert schedule["seed"] == median and schedule["run"].endswith(f"pbt-s{median}")
    other = (median + 1) % 3
    dirs = [root / "runs" / f"{arm}-s{s}" for arm in ("pbt", "random_search") for s in range(3)]
    comparison = compare(dirs, tmp_path / "other", seed=other, figures=False)
    assert comparison.figure_seed == other == comparison.best_schedule["seed"]
    with pytest.raises(ConfigError, match="no PBT run of seed 7"):
        compare(dirs, tmp_path / "none", seed=7, figures=False)


def test_median_seed_takes_the_lower_median_and_orders_ties_by_seed():
    assert median_seed({0: 2.0, 1: 1.0, 2: 3.0}) == 0
    assert median_seed({0: 4.0, 1: 3.0, 2: 2.0, 3: 1.0}) == 2  # scores 1, 2 | 3, 4: the lower median is 2, seed 2
    assert median_seed({5: 1.0, 3: 1.0}) == 3 and median_seed({5: 1.0, 3: 1.0, 4: 1.0}) == 4
    assert median_seed({0: None, 1: 2.0}) == 1 and median_seed({0: None}) is None and median_seed({}) is None


def test_the_readme_gives_the_paired_intervals_and_the_figures_seed(three_seeds):
    root, summary, _ = three_seeds
    readme = (root / "results" / "README.md").read_text()
    paired = summary["paired"]
    for key, title in (("best_final", "best member's final score"), ("population_mean_final", "population mean final")):
        p = paired[key]
        cells = [fmt_interval(Interval(**p[side])) for side in ("pbt", "baseline", "difference")]
        assert f"| {title} | {' | '.join(cells)} | {p['wins']}/3 |" in readme
        assert "[" in cells[2]
    assert "95% paired t-interval over seeds" in readme and "Trains faster:" in readme
    assert f"PBT seed {summary['figure_seed']}" in readme
    fid = paired["fid"]
    assert f"| fid (lower is better) | {fmt_interval(Interval(**fid['pbt']))} |" in readme
    assert "| test.beam_size |" not in readme.partition("### Per run")[0]  # a setting: only in the per-run table
    assert "| test.beam_size | 4 | 4 | 4 | 4 | 4 | 4 |" in readme
    # the same in both arms of each seed (the seed's setup): no paired row with a difference of zero, per run only
    assert "| scorer.accuracy |" not in readme.partition("### Per run")[0]
    assert "| scorer.accuracy | 0.8 | 0.81 | 0.82 | 0.8 | 0.81 | 0.82 |" in readme


def test_compare_twice_writes_byte_identical_files(toy_runs, tmp_path):
    dirs = [toy_runs["pbt"], toy_runs["pbt1"], toy_runs["rs"]]
    first, second = compare(dirs, tmp_path / "a"), compare(dirs, tmp_path / "b")
    assert first.figures == second.figures and first.figure_seed == second.figure_seed
    names = [f for files in first.figures.values() for f in files]
    assert len(names) == 2 * len(FIGURES)
    for name in names + ["best_schedule.json", "comparison.md", "comparison.csv"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    png, svg = (tmp_path / "a" / "schedule.png").read_bytes(), (tmp_path / "a" / "schedule.svg").read_text()
    assert b"Matplotlib" not in png and "<dc:date>" not in svg and "Matplotlib v" not in svg


def test_step_on_grid_holds_each_value_until_the_next_point():
    got = step_on_grid([10, 20, 20, 40], [1.0, 2.0, 3.0, 5.0], np.array([0.0, 10.0, 15.0, 20.0, 39.0, 40.0, 50.0]))
    np.testing.assert_array_equal(got, [np.nan, 1.0, 1.0, 3.0, 3.0, 5.0, 5.0])


def test_a_strategy_arm_run_earlier_is_compared_with_both_arms_paired_by_seed(tmp_path):
    config = toy_config(steps=40, population=8)
    runs, out = tmp_path / "runs", tmp_path / "results"
    assert reproduce("toy", config, "smoke", seeds=2, out=out, runs=runs, arms=["fire"]) is None
    assert sorted(d.name for d in runs.iterdir()) == ["fire-s0", "fire-s1"]
    summary = reproduce("toy", config, "smoke", seeds=2, out=out, runs=runs)  # finds the finished FIRE runs
    fire = summary["strategies"]["fire"]
    assert fire["seeds"] == summary["pbt"]["seeds"] == summary["random_search"]["seeds"] == [0, 1]
    assert fire["compute"]["steps"] == summary["pbt"]["compute"]["steps"] == 2 * 8 * 40
    assert StoreReader(runs / "fire-s0").meta()["config"]["pbt"]["strategy"] == "fire"
    for other in ("pbt", "random_search"):
        paired = fire[f"vs_{other}"]["best_final"]
        differences = [f - o for f, o in zip(fire["best_final_per_seed"], summary[other]["best_final_per_seed"])]
        assert paired["n"] == 2 and paired["difference"]["mean"] == pytest.approx(statistics.fmean(differences))
        assert paired["wins"] == sum(d > 0 for d in differences)
    # the FIRE runs are stored as PBT runs: they count in neither PBT's numbers nor its trains-faster curves
    assert len(summary["pbt"]["best_final_per_seed"]) == 2 and summary["trains_faster"]["n"] == 2
    readme = (out / "README.md").read_text()
    assert "## FIRE PBT, the strategy arm (2 seeds: 0, 1)" in readme
    assert "| | FIRE PBT | PBT | FIRE PBT − PBT (paired) | FIRE PBT won | sign-flip p | P(FIRE PBT better) |" in readme
    assert "| | FIRE PBT | random search | FIRE PBT − random search (paired) |" in readme
    with pytest.raises(ConfigError, match="choose from pbt, random_search, pb2, fire"):
        reproduce("toy", config, "smoke", out=out, runs=runs, arms=["pbt2"])


def test_score_vs_compute_fits_its_axis_to_the_best_so_far_curves_past_the_first_evaluations(tmp_path, monkeypatch):
    """An accuracy climbing from chance (0.1) to 0.85-0.93 was drawn over 0.1-0.93, squeezing where methods differ."""
    import types

    import repro.compare.figures as figures

    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, out, name: drawn.append(fig) or [f"{name}.png"])

    def run(method, final, seed):
        rows = []
        for step in range(1, 101):
            for member, ceiling in ((0, final), (1, 0.1)):  # member 1 never learns: the median stays at chance
                climb = min(1.0, step / 5)
                rows.append(ScoreRow(member, step, 0.1 + climb * (ceiling - 0.1), time=step + member / 10))
        return types.SimpleNamespace(
            scores=rows,
            method=method,
            domain="classifier",
            compute={"planned_steps": 200},
            seed=seed,
            stop=None,
            mode="max",
        )

    runs = [run("pbt", 0.93, 0), run("pbt", 0.91, 1), run("random_search", 0.85, 0), run("random_search", 0.87, 1)]
    figures.plot_score_vs_compute(runs, "accuracy", tmp_path)
    (fig,) = drawn
    low, high = fig.axes[0].get_ylim()
    assert 0.84 - 0.01 < low < 0.85 and 0.93 < high < 0.93 + 0.01  # the best-so-far range with a 5% margin
    figures.pyplot().close(fig)
