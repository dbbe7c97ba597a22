import csv
import dataclasses
import json
import statistics
import subprocess
import sys

import pytest

import experiments.toy.task as toy
from baselines import baseline_config
from pbt.compare import FIGURES, compare, load_run, progress_curve
from pbt.controller import run_experiment
from pbt.reproduce import NOTES_MARKER, reproduce
from pbt.space import ConfigError
from pbt.store import ScoreRow, Store
from tests.conftest import REPO
from tests.fake_tasks import Config as FakeConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def toy_config(seed=0, steps=60, population=2):
    base = toy.Config()
    return dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, seed=seed, budget_steps=steps,
                                                             population=population))


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
    return {"pbt": run_toy(root / "pbt"), "pbt1": run_toy(root / "pbt1", seed=1),
            "rs": run_toy(root / "rs", "random_search"),
            "rs_short": run_toy(root / "rs_short", "random_search", steps=40)}


def test_compare_writes_both_tables_and_all_four_figures(toy_runs, tmp_path):
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
        store = Store.open_existing(run_dir)
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
    best = max(Store.open_existing(toy_runs["pbt"]).members(), key=lambda m: (m.score, -m.id))
    assert schedule["member"] == best.id and schedule["segments"][-1]["end"] == 60
    assert schedule["segments"][-1]["hparams"] == best.hparams
    assert comparison.best_schedule == schedule


def test_unequal_compute_is_refused_unless_allowed(toy_runs, tmp_path):
    with pytest.raises(ConfigError, match="unequal compute.*--allow-unequal"):
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
    scores = [ScoreRow(0, 10, 1.0, time=1.0), ScoreRow(1, 10, 3.0, time=2.0), ScoreRow(0, 20, 2.0, time=3.0),
              ScoreRow(1, 20, 0.5, time=4.0)]
    xs, best, median = progress_curve(scores)
    assert xs == [10, 20, 30, 40]
    assert best == [1.0, 3.0, 3.0, 3.0]
    assert median == [1.0, 2.0, 2.5, 1.25]


def test_a_running_run_can_be_compared(toy_runs, tmp_path):
    """compare reads a store mid-run (here: one member has not started) without touching it."""
    run = load_run(toy_runs["pbt"])
    assert run.meta["status"] == "finished"
    partial = tmp_path / "partial"
    config = toy_config(steps=60)
    from pbt.controller import prepare_run_dir

    prepare_run_dir(partial, "toy", "pbt", config, toy.initial_hparams(config), toy.SPACE).close()
    comparison = compare([partial], tmp_path / "out")
    assert comparison.rows[0].used_steps == 0 and comparison.rows[0].best_final is None
    assert (tmp_path / "out" / "score_vs_compute.png").exists()


def test_reproduce_writes_a_results_folder_resumes_and_merges_extra_results(tmp_path, monkeypatch):
    calls = []

    def extra_results(run_dir):
        calls.append(run_dir.name)
        (run_dir / "extra.txt").write_text("x")
        return {"member": 1, "test_score": {"a": 1.0 if run_dir.name.startswith("pbt") else 0.5}}

    monkeypatch.setattr(toy, "extra_results", extra_results, raising=False)
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
    assert Store.open_existing(tmp_path / "runs" / "pbt-s1").meta()["extra_results"]["test_score"] == {"a": 1.0}
    p = on_disk["provenance"]
    assert set(p) >= {"config", "seeds", "git_commit", "machine", "date", "wall_seconds", "command"}
    assert p["config"]["random_search"]["pbt"]["exploit"] == "none" and p["seeds"] == [0, 1]
    for files in on_disk["figures"].values():
        assert all((out / f).stat().st_size > 0 for f in files)
    assert sorted(on_disk["figures"]) == sorted(FIGURES)
    readme = (out / "README.md").read_text()
    assert "![schedule](schedule.png)" in readme and "| test_score.a | 1 | 1 | 0.5 | 0.5 |" in readme

    # rerunning continues instead of retraining: finished runs are left as they are, and so are the hand-written
    # notes at the end of the README, while the generated part is rewritten
    (out / "README.md").write_text("stale\n" + NOTES_MARKER + "\n## Discussion\nPBT won.\n")
    before = {d.name: len(Store.open_existing(d).scores()) for d in (tmp_path / "runs").iterdir()}
    committed = {f: f.stat().st_mtime_ns for f in out.iterdir()}

    def commit_of_tree():  # the results folder is tracked: once reproduce rewrites a file, git calls the tree dirty
        touched = {f: f.stat().st_mtime_ns for f in out.iterdir()} != committed
        return "c0ffee" + ("+dirty" if touched else "")

    monkeypatch.setattr("pbt.reproduce.git_commit", commit_of_tree)
    reproduce("toy", config, "smoke", seeds=2, out=out, runs=tmp_path / "runs")
    assert commit_of_tree() == "c0ffee+dirty"  # the fake can tell
    assert json.loads((out / "summary.json").read_text())["provenance"]["git_commit"] == "c0ffee"
    after = {d.name: len(Store.open_existing(d).scores()) for d in (tmp_path / "runs").iterdir()}
    assert before == after and len(before) == 4 and len(calls) == 4  # and no extra results computed again
    readme = (out / "README.md").read_text()
    assert readme.startswith("# toy") and "stale" not in readme
    assert readme.endswith(NOTES_MARKER + "\n## Discussion\nPBT won.\n") and readme.count(NOTES_MARKER) == 1


def test_reproduce_and_compare_from_the_command_line(cli_env, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pbt.cli", *args], capture_output=True, text=True, env=cli_env,
                              cwd=REPO, timeout=120)

    proc = cli("reproduce", "toy", "--profile", "smoke", "--budget-steps", "40", "--out", str(tmp_path / "res"),
               "--runs", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    assert "PBT best final" in proc.stdout and (tmp_path / "res" / "summary.json").exists()
    short = cli("baseline", "toy", "--budget-steps", "20", "--out", str(tmp_path / "short"), "--quiet")
    assert short.returncode == 0, short.stderr
    refused = cli("compare", str(tmp_path / "runs" / "pbt-s0"), str(tmp_path / "short"), "--out", str(tmp_path / "c"))
    assert refused.returncode == 2 and "unequal compute" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    for args in (["reproduce", "toy", "--help"], ["compare", "--help"], ["report", "--help"]):
        assert cli(*args).returncode == 0


def test_tooling_modules_import_no_heavy_packages():
    code = ("import sys, pbt.lineage, pbt.compare, pbt.reproduce, pbt.report, pbt.progress, pbt.wandb_log, pbt.cli; "
            "heavy = [m for m in ('torch', 'matplotlib', 'rich', 'wandb') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_reproduce_can_run_one_arm_now_and_compare_later(tmp_path):
    config = toy_config(steps=24)
    runs, out = tmp_path / "runs", tmp_path / "results"
    assert reproduce("toy", config, "smoke", out=out, runs=runs, arms=["pbt"]) is None
    assert sorted(d.name for d in runs.iterdir()) == ["pbt-s0"] and not out.exists()
    scores = len(Store.open_existing(runs / "pbt-s0").scores())
    summary = reproduce("toy", config, "smoke", out=out, runs=runs)
    assert summary is not None and summary["pbt"]["seeds"] == [0] == summary["random_search"]["seeds"]
    assert len(Store.open_existing(runs / "pbt-s0").scores()) == scores  # the finished arm was not retrained
    with pytest.raises(ConfigError, match="unknown arm"):
        reproduce("toy", config, "smoke", out=out, runs=runs, arms=["grid"])
