import json
import shutil

import pytest

from repro.report import PAPER, main, render
from repro.stats import Interval, fmt_interval
from tests.toy_extras import reproduce_toy

OLD_HEADER = ("| results | paper: baseline → PBT | confidence | our metric | PBT (ours) | random search (ours) | "
              "compute per arm | profile | commit | substitute |")


@pytest.fixture(scope="module")
def toy_results(tmp_path_factory):
    """A 3-seed toy results folder, with paired statistics and extra_results."""
    root = tmp_path_factory.mktemp("toy")
    reproduce_toy(root, seeds=3)
    return root / "results"


def translation_summary():
    """A summary as a translation reproduction would write it (the toy's shape, other numbers)."""
    arm = lambda best: {"best_final": best, "best_final_std": None, "population_mean_final": best - 2,  # noqa: E731
                        "seeds": [0], "compute": {"population": 8, "steps_per_member": 720, "runs": 1,
                                                  "wall_seconds": 4000.0, "steps": 5760, "planned_steps": 5760}}
    return {"domain": "translation", "metric": "BLEU", "profile": "cpu", "pbt": arm(30.5), "random_search": arm(29.0),
            "equal_compute": True, "figures": {}, "test_bleu": {"pbt": 31.0, "random_search": 29.5},
            "provenance": {"git_commit": "0123456789abcdef+dirty", "config": {"pbt": {"dataset": "multi30k"}}}}


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
    assert "| test_bleu | 31 | 29.5 | 1.5 | 1/1 |" in text  # an older summary's further result, as a table row
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
    assert (f"| best {text(best['difference'])}, won {best['wins']}/3; mean {text(mean['difference'])}, "
            f"won {mean['wins']}/3 |") in toy_row and "[" in text(best["difference"])
    # an older summary in the same table: its means as before, and no paired numbers
    translation_row = next(line for line in lines if line.startswith("| [translation]"))
    assert "| best 30.5, mean 28.5 | best 29, mean 27 | — |" in translation_row
    assert "(superseded: made before the fair-copy fix)" in translation_row  # it predates paired seeds
    assert "(superseded" not in toy_row
    assert "95% paired t-interval over seeds" in "\n".join(lines)
    # further results of the new summary: a table of paired numbers, settings listed once
    further = "\n".join(lines).partition("### toy (toy)")[2].partition("###")[0]
    assert f"| fid (lower is better) | {text(paired['fid']['pbt'])} | {text(paired['fid']['baseline'])} | " in further
    assert f"| test.q | {text(paired['test.q']['pbt'])} |" in further and "- test.beam_size: 4" in further


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
    assert "Not in the summaries of translation" in section  # written before the diagnostics
    assert "[greediness](toy/greediness.png)" in text
    (tmp_path / "old" / "translation").mkdir(parents=True)
    shutil.copy(tmp_path / "translation" / "summary.json", tmp_path / "old" / "translation" / "summary.json")
    assert "Greediness" not in render(tmp_path / "old")  # nothing to say without a summary that has it


def test_older_summaries_alone_render_as_before(tmp_path):
    (tmp_path / "translation").mkdir()
    (tmp_path / "translation" / "summary.json").write_text(json.dumps(translation_summary()))
    lines = render(tmp_path).splitlines()
    assert OLD_HEADER in lines and not any("paired, ours" in line for line in lines)
    row = next(line for line in lines if line.startswith("| [translation]"))
    assert "| BLEU | best 30.5, mean 28.5 | best 29, mean 27 | 8 members × 720 steps; 66.7 min wall |" in row


def test_older_further_results_become_tables_not_json(tmp_path):
    summary = translation_summary()
    del summary["test_bleu"]
    summary |= {"domain": "gan", "fid": {"pbt": 111.59, "random_search": 99.66}, "classifier_test_accuracy": 0.8575,
                "best_members": {arm: {"member": 3, "fid": fid, "metric": "score", "step": 10, "fid_seconds": 1.0}
                                 for arm, fid in (("pbt", 111.586), ("random_search", 99.661))}}
    (tmp_path / "gan").mkdir()
    (tmp_path / "gan" / "summary.json").write_text(json.dumps(summary))
    further = render(tmp_path).partition("### gan (gan)")[2].partition("## Substitutes")[0]
    assert "| fid (lower is better) | 111.6 | 99.66 | 11.93 | 0/1 |" in further
    assert "| best_members.fid (lower is better) | 111.6 | 99.66 | 11.92 | 0/1 |" in further
    assert "- classifier_test_accuracy: 0.8575" in further and "- best_members.metric: `score`" in further
    assert "{" not in further and "member " not in further and "step" not in further and "seconds" not in further
