import dataclasses
import json
import shutil

import pytest

import experiments.toy.task as toy
from pbt.report import PAPER, main, render
from pbt.reproduce import reproduce


@pytest.fixture(scope="module")
def toy_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    base = toy.Config()
    config = dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, budget_steps=40))
    reproduce("toy", config, "smoke", out=root / "results", runs=root / "runs")
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
    assert '`test_bleu`: `{"pbt": 31.0, "random_search": 29.5}`' in text
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
