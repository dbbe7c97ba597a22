import json
import shutil

import pytest

from pbt.space import ConfigError
from repro.commands.report import main
from repro.report import PAPER, render
from repro.reproduce import paired_metric
from repro.stats import Interval, fmt_interval
from tests.toy_extras import reproduce_toy


@pytest.fixture(scope="module")
def toy_results(tmp_path_factory):
    """A 3-seed toy results folder, with paired statistics and extra_results."""
    root = tmp_path_factory.mktemp("toy")
    reproduce_toy(root, seeds=3)
    return root / "results"


def translation_summary():
    """A summary as a one-seed translation reproduction would write it (the toy's shape, other numbers)."""

    def arm(best):
        return {
            "best_final": best,
            "best_final_std": None,
            "population_mean_final": best - 2,
            "seeds": [0],
            "compute": {
                "population": 8,
                "steps_per_member": 720,
                "runs": 1,
                "wall_seconds": 4000.0,
                "steps": 5760,
                "planned_steps": 5760,
            },
        }

    return {
        "domain": "translation",
        "metric": "BLEU",
        "profile": "cpu",
        "pbt": arm(30.5),
        "random_search": arm(29.0),
        "equal_compute": True,
        "figures": {},
        "extra_results": {"pbt": {"0": {"test_bleu": 31.0}}, "random_search": {"0": {"test_bleu": 29.5}}},
        "paired": {
            name: paired_metric(name, {0: pbt}, {0: baseline})
            for name, pbt, baseline in (
                ("best_final", 30.5, 29.0),
                ("population_mean_final", 28.5, 27.0),
                ("test_bleu", 31.0, 29.5),
            )
        },
        "provenance": {"git_commit": "0123456789abcdef+dirty", "config": {"pbt": {"dataset": "multi30k"}}},
    }


def test_report_is_generated_from_the_summaries_and_is_byte_identical(toy_results, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(toy_results, results / "toy")
    (results / "translation").mkdir()
    (results / "translation" / "summary.json").write_text(json.dumps(translation_summary()))
    (results / "notes").mkdir()  # a folder without a summary is ignored

    assert main(["--results", str(results)]) == 0
    first = (results / "README.md").read_bytes()
    text = first.decode()
    summary = json.loads((results / "toy" / "summary.json").read_text())
    assert f"{summary['pbt']['best_final']:.4g}" in text and f"{summary['random_search']['best_final']:.4g}" in text
    assert PAPER["translation"]["number"] in text and "validation [S2], test [S]" in text
    assert "Multi30k En→De (task 1) for WMT14 En→De" in text and "`0123456789+dirty`" in text
    assert "[schedule](toy/schedule.png)" in text and (results / "toy" / "schedule.png").exists()
    assert f"(PBT figures: seed {summary['figure_seed']})" in text
    assert "| test_bleu | 31 | 29.5 | 1.5 | 1/1 |" in text  # a further result, as a table row
    assert "Not reproduced yet: rl, gan." in text

    (results / "README.md").write_text("hand edit")
    main(["--results", str(results)])
    assert (results / "README.md").read_bytes() == first
    # the same summaries in another place, created in another order, give the same bytes
    other = tmp_path / "other"
    (other / "translation").mkdir(parents=True)
    shutil.copy(results / "translation" / "summary.json", other / "translation" / "summary.json")
    shutil.copytree(toy_results, other / "toy")
    assert render(other).encode() == first


def test_report_marks_no_substitute_for_a_paper_scale_translation_run(tmp_path):
    summary = translation_summary()
    summary["provenance"]["config"]["pbt"]["dataset"] = "wmt14"
    (tmp_path / "translation").mkdir()
    (tmp_path / "translation" / "summary.json").write_text(json.dumps(summary))
    row = next(line for line in render(tmp_path).splitlines() if line.startswith("| [translation]"))
    assert row.endswith("| none |")


def test_the_main_table_shows_the_paired_numbers_where_a_summary_has_them(toy_results, tmp_path):
    shutil.copytree(toy_results, tmp_path / "toy")
    (tmp_path / "translation").mkdir()
    (tmp_path / "translation" / "summary.json").write_text(json.dumps(translation_summary()))
    lines = render(tmp_path).splitlines()
    paired = json.loads((tmp_path / "toy" / "summary.json").read_text())["paired"]
    assert "PBT − random search (paired, ours)" in next(line for line in lines if line.startswith("| results |"))
    toy_row = next(line for line in lines if line.startswith("| [toy]"))
    text = lambda interval: fmt_interval(Interval(**interval))  # noqa: E731
    best, mean = paired["best_final"], paired["population_mean_final"]
    assert f"| best {text(best['pbt'])}, mean {text(mean['pbt'])} |" in toy_row
    assert f"| best {text(best['baseline'])}, mean {text(mean['baseline'])} |" in toy_row
    assert (
        f"| best {text(best['difference'])}, won {best['wins']}/3; mean {text(mean['difference'])}, "
        f"won {mean['wins']}/3 |"
    ) in toy_row and "[" in text(best["difference"])
    # a one-seed summary in the same table: its numbers without intervals
    translation_row = next(line for line in lines if line.startswith("| [translation]"))
    assert "| best 30.5, mean 28.5 | best 29, mean 27 | best 1.5, won 1/1; mean 1.5, won 1/1 |" in translation_row
    assert "95% paired t-interval over seeds" in "\n".join(lines)
    # further results of the new summary: a table of paired numbers, settings listed once
    further = "\n".join(lines).partition("### toy (toy)")[2].partition("###")[0]
    assert f"| fid (lower is better) | {text(paired['fid']['pbt'])} | {text(paired['fid']['baseline'])} | " in further
    assert f"| test.q | {text(paired['test.q']['pbt'])} |" in further and "- test.beam_size: 4" in further
    # a number the same in both arms of each seed is the seed's setup: listed by seed, not compared
    assert "| scorer.accuracy |" not in further
    assert "- scorer.accuracy: 0.8 (seed 0), 0.81 (seed 1), 0.82 (seed 2)" in further


def test_the_greediness_of_each_pbt_arm_is_reported_where_its_summary_has_it(toy_results, tmp_path):
    shutil.copytree(toy_results, tmp_path / "toy")
    (tmp_path / "translation").mkdir()
    (tmp_path / "translation" / "summary.json").write_text(json.dumps(translation_summary()))
    text = render(tmp_path)
    greediness = json.loads((tmp_path / "toy" / "summary.json").read_text())["pbt"]["greediness"]
    steps = greediness["coalescence_step_per_seed"]
    assert len(steps) == 3 and greediness["coalesced_seeds"] == f"{sum(s is not None for s in steps)}/3"
    section = text.partition("## Greediness of PBT")[2].partition("\n## ")[0]
    toy_line = next(line for line in section.splitlines() if line.startswith("- **toy**"))
    assert f"in {greediness['coalesced_seeds']} seeds" in toy_line and "of 24 steps per member" in toy_line
    assert "translation" not in section  # its PBT arm made no copies to coalesce (no greediness recorded)
    assert "[greediness](toy/greediness.png)" in text
    (tmp_path / "old" / "translation").mkdir(parents=True)
    shutil.copy(tmp_path / "translation" / "summary.json", tmp_path / "old" / "translation" / "summary.json")
    assert "Greediness" not in render(tmp_path / "old")  # nothing to say without a summary that has it


def study_table(study, reference, variants):
    """A hand-made study ``table.json``: (name, title, best mean, difference mean, wins, ties) per variant; the
    population mean's numbers are the best member's minus 2 (its differences halved, one win fewer), so a row that
    took one measure's numbers for the other's would show."""
    interval = lambda m: {"mean": m, "low": m - 0.5, "high": m + 0.5, "n": 4}  # noqa: E731
    rows = [
        {
            "variant": reference[0],
            "title": reference[1],
            "reference": True,
            "best_final": interval(reference[2]),
            "population_mean_final": interval(reference[2] - 2),
            "best_final_vs_reference": None,
            "population_mean_final_vs_reference": None,
        }
    ]
    rows += [
        {
            "variant": name,
            "title": title,
            "reference": False,
            "best_final": interval(best),
            "population_mean_final": interval(best - 2),
            "best_final_vs_reference": {"difference": interval(diff), "wins": wins, "ties": ties, "n": 4},
            "population_mean_final_vs_reference": {
                "difference": interval(diff / 2),
                "wins": max(wins - 1, 0),
                "ties": ties,
                "n": 4,
            },
        }
        for name, title, best, diff, wins, ties in variants
    ]
    return {"study": study, "domain": "toy", "metric": "Q", "variants": rows}


def write_analysis(root, findings):
    analysis = root / "toy" / "analysis"
    for study, table in (
        (
            "transfer",
            study_table(
                "transfer",
                ("both", "copy both", 10.0),
                [
                    ("weights", "copy weights only", 8.25, -1.75, 1, 0),
                    ("hparams", "copy hyperparameters only", 3.5, -6.5, 0, 0),
                ],
            ),
        ),
        ("schedule", study_table("schedule", ("pbt", "PBT", 10.0), [("replay", "replayed", 10.0, 0.0, 0, 4)])),
    ):
        (analysis / study).mkdir(parents=True)
        (analysis / study / "table.json").write_text(json.dumps(table))
    (analysis / "findings.json").write_text(findings if isinstance(findings, str) else json.dumps(findings))
    return analysis


FINDINGS = {
    "findings": [
        {"finding": "copying both is best", "studies": {"transfer": ["weights", "hparams"]}, "verdict": "holds"},
        {
            "finding": "replay is as good",
            "studies": {"schedule": ["replay"], "transfer": ["weights"]},
            "verdict": "not testable here",
        },
    ]
}


def test_the_analysis_section_has_a_row_per_finding_with_the_study_tables_numbers(tmp_path):
    write_analysis(tmp_path, FINDINGS)
    text = render(tmp_path)
    section = text.partition("## The paper's analysis (§5)")[2].partition("\n## ")[0]
    assert "[toy/analysis/README.md](toy/analysis/README.md)" in section
    assert (
        "| copying both is best | reference copy both 10 [9.5, 10.5]; copy weights only 8.25 [7.75, 8.75], "
        "Δ -1.75 [-2.25, -1.25], won 1/4; copy hyperparameters only 3.5 [3, 4], Δ -6.5 [-7, -6], won 0/4 | "
        "reference copy both 8 [7.5, 8.5]; copy weights only 6.25 [5.75, 6.75], Δ -0.875 [-1.375, -0.375], "
        "won 0/4; copy hyperparameters only 1.5 [1, 2], Δ -3.25 [-3.75, -2.75], won 0/4 | "
        "**holds** | [transfer](toy/analysis/transfer/README.md) |"
    ) in section.splitlines()
    two = next(line for line in section.splitlines() if line.startswith("| replay is as good"))
    assert (
        "| *schedule*: reference PBT 10 [9.5, 10.5]; replayed 10 [9.5, 10.5], Δ 0 [-0.5, 0.5], won 0/4 (4 tied)"
        "<br>*transfer*: reference copy both 10 [9.5, 10.5]; copy weights only 8.25"
    ) in two
    assert (
        "| *schedule*: reference PBT 8 [7.5, 8.5]; replayed 8 [7.5, 8.5], Δ 0 [-0.5, 0.5], won 0/4 (4 tied)"
        "<br>*transfer*: reference copy both 8 [7.5, 8.5]; copy weights only 6.25"
    ) in two
    assert two.endswith(
        "| **not testable here** | [schedule](toy/analysis/schedule/README.md) · "
        "[transfer](toy/analysis/transfer/README.md) |"
    )
    assert "the study on a real domain is still to run" in section
    (tmp_path / "rl" / "analysis").mkdir(parents=True)  # another domain's analysis: no longer "still to run"
    text = render(tmp_path)
    assert "still to run" not in text
    assert "The study on rl has begun: its finished runs are in [rl/analysis/runs](rl/analysis/runs/README.md)" in text
    shutil.copytree(tmp_path / "toy" / "analysis", tmp_path / "rl" / "analysis", dirs_exist_ok=True)
    text = render(tmp_path)  # once its findings are written, its rows say the rest
    assert "has begun" not in text and "[rl/analysis/README.md](rl/analysis/README.md)" in text


def test_the_committed_findings_match_their_study_tables():
    from pathlib import Path

    results = Path(__file__).resolve().parent.parent / "results"
    section = render(results).partition("## The paper's analysis (§5)")[2]
    table = json.loads((results / "toy" / "analysis" / "transfer" / "table.json").read_text())
    weights = next(v for v in table["variants"] if v["variant"] == "weights")
    for measure in ("best_final", "population_mean_final"):
        assert fmt_interval(Interval(**weights[f"{measure}_vs_reference"]["difference"])) in section
    assert "**holds for hyperparameters only; weights only: same direction, interval includes 0**" in section


@pytest.mark.parametrize(
    "findings, error",
    [
        ("{not json", "findings.json is not valid JSON"),
        ({"findings": [{"finding": "x", "verdict": "holds"}]}, 'findings.json: expected {"findings": '),
        (
            {"findings": [{"finding": "x", "studies": {"transfer": ["copy"]}, "verdict": "holds"}]},
            "transfer/table.json has no variant 'copy' (it has both, weights, hparams)",
        ),
        (
            {"findings": [{"finding": "x", "studies": {"population": ["4"]}, "verdict": "holds"}]},
            "population/table.json is missing",
        ),
    ],
)
def test_a_malformed_analysis_is_one_clear_error(tmp_path, capsys, findings, error):
    from repro.cli import main as cli_main

    write_analysis(tmp_path, findings)
    assert cli_main(["report", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and error in err and "Traceback" not in err


def test_a_table_json_without_its_variants_is_one_clear_error(tmp_path):
    analysis = write_analysis(tmp_path, FINDINGS)
    (analysis / "transfer" / "table.json").write_text(json.dumps({"study": "transfer"}))
    with pytest.raises(ConfigError, match=r"transfer/table\.json is not a study table .*KeyError 'variants'"):
        render(tmp_path)


def _verdict_summary(low: float, high: float, higher_is_better: bool = True) -> dict:
    difference = {"mean": (low + high) / 2, "low": low, "high": high, "n": 3}
    return {
        "domain": "gan",
        "profile": "cpu",
        "metric": "FID",
        "paired": {"best_final": {"difference": difference, "wins": 2, "n": 3, "higher_is_better": higher_is_better}},
    }


@pytest.mark.parametrize(
    "low, high, higher, reading",
    [
        (0.5, 1.5, True, "PBT better"),
        (-1.5, -0.5, True, "random search better"),
        (-1.5, -0.5, False, "PBT better"),
        (-0.5, 1.5, True, "no clear difference"),
    ],
)
def test_a_verdict_names_a_difference_only_where_its_interval_excludes_zero(low, high, higher, reading):
    from repro.report import verdict

    line = verdict("gan", _verdict_summary(low, high, higher))
    assert line.startswith("gan (cpu profile, FID): best member PBT − random search ")
    assert line.endswith(f"PBT won 2/3 seeds: {reading}")


def test_the_demo_ends_saying_smoke_numbers_check_wiring_with_the_committed_verdicts(tmp_path):
    from repro.commands.demo import RESULTS, closing_lines

    (tmp_path / "translation").mkdir()
    (tmp_path / "translation" / "summary.json").write_text(json.dumps(_verdict_summary(2.0, 3.0)))
    lines = closing_lines(tmp_path)
    assert "only check that everything is wired together" in lines[0]
    assert lines[2].strip().startswith("translation (cpu profile") and lines[2].endswith("PBT better")
    assert lines[-1].startswith("A real comparison: pbt-repro reproduce DOMAIN --profile cpu")
    assert len(closing_lines(tmp_path / "absent")) == 2  # an installation without results/ still says what to run
    committed = [line for line in closing_lines(RESULTS) if line.startswith("  ")]
    assert {line.split()[0] for line in committed} >= {"rl", "gan", "translation"}  # a line per committed domain


def test_a_summary_that_minimises_says_lower_is_better_and_won_means_better(tmp_path):
    summary = translation_summary()
    (tmp_path / "translation").mkdir()
    (tmp_path / "translation" / "summary.json").write_text(json.dumps(summary))
    maximising = render(tmp_path)
    assert "(higher is better):" in maximising and "where PBT's score was higher." in maximising
    summary["mode"] = "min"
    (tmp_path / "translation" / "summary.json").write_text(json.dumps(summary))
    minimising = render(tmp_path)
    assert "(lower is better)" in next(line for line in minimising.splitlines() if line.startswith("| [translation]"))
    assert "(higher is better, or lower where the metric says so):" in minimising
    assert "where PBT's score was better." in minimising


def test_a_results_readme_of_a_summary_that_minimises_says_lower_is_better(toy_results, tmp_path):
    from repro.compare import compare
    from repro.reproduce import results_readme

    summary = json.loads((toy_results / "summary.json").read_text())
    runs = sorted(p for p in (toy_results.parent / "runs").iterdir() if p.is_dir())
    comparison = compare(runs, tmp_path, figures=False)
    assert "Metric: Q(θ) (higher is better)." in results_readme(summary, comparison)
    summary["mode"] = "min"
    assert "Metric: Q(θ) (lower is better)." in results_readme(summary, comparison)
