"""Regenerate ``results/README.md`` from the committed ``results/*/summary.json`` files.

    pbt-repro report [--results results]

The reproduction table puts the paper's number (with the confidence the project's paper digest, ``docs/paper.md``, gives
it) beside ours: PBT, random search at equal compute, the metric, the compute budget and the commit, and marks each
substitute (Multi30k for WMT14, a CIFAR-10-classifier score for the ImageNet Inception Score, A2C on one Atari game for
FuN). The file is generated, never edited by hand: the same summaries give a byte-identical file (nothing in it depends
on the clock, the machine or the order the directory is listed in).

Each summary's paired statistics (``summary["paired"]``, see ``repro.reproduce``) give each arm's mean with its 95%
t-interval over seeds and the difference PBT − random search paired by seed, with how many seeds PBT won. Further
results (test sets, FID, ...), gathered per run (``extra_results``), are a table per domain.

The paper's analysis section (§5) gets a row per finding of each ``results/*/analysis/findings.json`` (hand-written:
the finding, the studies and variants that bear on it, the verdict; no numbers): the numbers come from those studies'
``table.json`` (``pbt-repro study``), the verdict from the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pbt.space import ConfigError
from repro.compare import FIGURES
from repro.reproduce import (
    extra_paired,
    greediness_text,
    interval_text,
    paired_table,
    seed_setup_leaves,
    shared_leaves,
)
from repro.study import wins_text
from repro.text import duration, fmt

# The paper's numbers, as the project's paper digest (docs/paper.md) reconstructs them, with its confidence tags:
# [Q] quote, [S2] two secondary sources agree, [S] one secondary source, [U] unverified. Baseline → PBT.
PAPER: dict[str, dict[str, str]] = {
    "toy": {
        # docs/paper.md §2 (Figure 2): exact Q values NOT FOUND; the qualitative result is tagged [S].
        "number": "no number given; PBT reaches the optimum Q = 1.2 fastest, grid search stalls (Figure 2)",
        "confidence": "[S]; exact values NOT FOUND",
        "source": "docs/paper.md §2",
    },
    "rl": {
        # docs/paper.md §3.1 and §5: FuN on Atari, human-normalised, 147% → 181%, single source [U].
        "number": "FuN on Atari, human-normalised score: 147% → 181%",
        "confidence": "[U]",
        "source": "docs/paper.md §3.1, §5",
    },
    "translation": {
        # docs/paper.md §3.2 and §5: validation BLEU (newstest2012) 23.71 → 24.23 [S2]; test BLEU 22.30 → 22.65 [S].
        "number": "WMT14 En→De BLEU, validation (newstest2012): 23.71 → 24.23; test: 22.30 → 22.65",
        "confidence": "validation [S2], test [S]",
        "source": "docs/paper.md §3.2, §5",
    },
    "gan": {
        # docs/paper.md §3.3 and §5: CIFAR Inception 6.39 → 6.80 [U]; ImageNet Inception 6.45 → 6.89 [U] (recollection).
        "number": "CIFAR-10 Inception score (CIFAR classifier): 6.39 → 6.80; ImageNet Inception score: 6.45 → 6.89",
        "confidence": "[U], [U] (recollection)",
        "source": "docs/paper.md §3.3, §5",
    },
}


def substitute(domain: str, summary: dict[str, Any]) -> str:
    """What our run stands in for, read from the run's own config (so a paper-scale run is not marked)."""
    config = summary.get("provenance", {}).get("config", {}).get("pbt", {})
    if domain == "translation":
        dataset = config.get("dataset", "multi30k")
        return "Multi30k En→De (task 1) for WMT14 En→De" if dataset == "multi30k" else "none"
    if domain == "gan":
        return "CIFAR-10-classifier score (Inception-score variant) for the ImageNet Inception Score"
    if domain == "rl":
        game = config.get("game", "?")
        return f"A2C on one Atari game ({game}, raw game score) for FuN on 4 Atari games (human-normalised)"
    if domain == "toy":
        return "none (the paper's own toy example; PBT against random search over its prior, not Figure 2's panels)"
    return "—"


def load_summaries(results: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(folder name, summary)`` for every ``results/*/summary.json``, sorted by folder name."""
    found = []
    for path in sorted(results.glob("*/summary.json"), key=lambda p: p.parent.name):
        found.append((path.parent.name, json.loads(path.read_text())))
    return found


def _budget(arm: dict[str, Any]) -> str:
    c = arm.get("compute", {})
    runs = c.get("runs", 1)
    return (
        f"{c.get('population', '?')} members × {c.get('steps_per_member', '?')} steps"
        f"{f' × {runs} seeds' if runs > 1 else ''}; {duration(float(c.get('wall_seconds', 0.0)))} wall"
    )


def _score(paired: dict[str, Any], side: str) -> str:
    """An arm's best and population-mean final score: its means [95% t-interval over seeds] on the ``side`` (``pbt``
    or ``baseline``) of the paired statistics."""
    return (
        f"best {interval_text(paired['best_final'][side])}, mean {interval_text(paired['population_mean_final'][side])}"
    )


def _difference(paired: dict[str, Any]) -> str:
    """The paired difference PBT − random search [95% t-interval] of the best and mean final score, and the wins."""
    return "; ".join(
        f"{name} {interval_text(paired[key]['difference'])}, won {paired[key]['wins']}/{paired[key]['n']}"
        for name, key in (("best", "best_final"), ("mean", "population_mean_final"))
    )


def verdict(folder: str, summary: dict[str, Any]) -> str:
    """One line: the best member's final score, PBT − random search paired by seed, with its interval, the seeds PBT
    won, and what the interval says (a difference only when it excludes zero)."""
    paired = summary.get("paired", {}).get("best_final")
    head = f"{folder} ({summary.get('profile', '?')} profile, {summary.get('metric')})"
    if not paired:
        return f"{head}: no paired seeds yet"
    difference = paired["difference"]
    higher = paired.get("higher_is_better", True)
    if difference.get("low") is None or difference["low"] <= 0 <= difference["high"]:
        reading = "no clear difference"
    else:
        reading = "PBT better" if (difference["mean"] > 0) == higher else "random search better"
    return (
        f"{head}: best member PBT − random search {interval_text(difference)}, PBT won "
        f"{paired['wins']}/{paired['n']} seeds: {reading}"
    )


def _commit(summary: dict[str, Any]) -> str:
    commit = str(summary.get("provenance", {}).get("git_commit", "unknown"))
    head, _, dirty = commit.partition("+")
    return f"`{head[:10]}{'+' + dirty if dirty else ''}`"


def reproduction_table(comparisons: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The reproduction table and its notes."""
    lines = [
        "| results | paper: baseline → PBT | confidence | our metric | PBT (ours) | random search (ours) |"
        " PBT − random search (paired, ours) | compute per arm | profile | commit | substitute |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for folder, s in comparisons:
        domain = str(s.get("domain"))
        paper = PAPER.get(domain, {"number": "—", "confidence": "—"})
        lines.append(
            f"| [{folder}]({folder}/README.md) | {paper['number']} | {paper['confidence']} | "
            f"{s.get('metric')}{' (lower is better)' if s.get('mode') == 'min' else ''} | "
            f"{_score(s['paired'], 'pbt')} | {_score(s['paired'], 'baseline')} | "
            f"{_difference(s['paired'])} | {_budget(s['pbt'])} | {s.get('profile', '?')} | {_commit(s)} | "
            f"{substitute(domain, s)} |"
        )
    some_minimise = any(s.get("mode") == "min" for _, s in comparisons)
    lines += [
        "",
        "Scores are final scores (higher is better"
        + (", or lower where the metric says so" if some_minimise else "")
        + "): *best* is the best member's, *mean* the "
        "population's, averaged over seeds (± standard deviation over seeds when there are several). "
        "Both arms get the same compute: the same population, steps per member and seeds.",
    ]
    return lines + [
        "Where the paired column is filled: means over seeds with their 95% t-interval over seeds in "
        "brackets (none with one seed), and the difference PBT − random search paired by seed (a seed's two "
        "runs start from the same seed) with its 95% paired t-interval over seeds; *won k/n*: the seeds "
        f"where PBT's score was {'better' if some_minimise else 'higher'}.",
        "The paper's numbers come from the project's paper digest; its confidence tags mean [Q] quoted, "
        "[S2] two secondary sources agree, [S] one secondary source, [U] unverified.",
    ]


def further_results(
    summary: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, dict[int, Any]]]:
    """A summary's further results: the paired statistics of each number that is an outcome (as ``reproduce``
    computes them), the values that are the same in every run (settings, protocols), and those that are the same in
    both arms of each seed (``seed_setup_leaves``), by seed."""
    extras = summary.get("extra_results", {})
    same = shared_leaves(extras)
    paired = {k: v for k, v in extra_paired(extras, summary["paired"]).items() if k not in same}
    return paired, same, seed_setup_leaves(extras)


def further_results_lines(folder: str, summary: dict[str, Any]) -> list[str]:
    """One domain's further results: a table (rows: numbers; columns: PBT, random search, paired difference, wins),
    then the values the same in every run as a list, and those the same in both arms of each seed, by seed; nothing
    when the summary has none."""
    paired, same, per_seed = further_results(summary)
    if not paired and not same and not per_seed:
        return []
    lines = [f"### {folder} ({summary.get('domain')})", ""]
    if paired:
        lines += paired_table(paired, {name: name for name in paired}) + [""]
    if same:
        lines += ["Same in every run:", ""]
        lines += [f"- {name}: {value_text(v)}" for name, v in same.items()]
        lines.append("")
    if per_seed:
        lines += ["Same in both arms of each seed (the seed's setup):", ""]
        lines += [
            f"- {name}: " + ", ".join(f"{value_text(v)} (seed {s})" for s, v in by_seed.items())
            for name, by_seed in per_seed.items()
        ]
        lines.append("")
    return lines


def value_text(value: Any) -> str:
    """A setting's value in the further results: texts as code, numbers to six significant digits."""
    return f"`{value}`" if isinstance(value, str) else f"{value:.6g}"


def greediness_lines(comparisons: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """How fast exploitation narrowed each PBT arm (``pbt.diagnostics``)."""
    found = [(folder, text) for folder, s in comparisons if (text := greediness_text(s["pbt"])) is not None]
    if not found:
        return []
    lines = [
        "",
        "## Greediness of PBT",
        "",
        "Coalescence is the first step from which on every member's weights descend from one founding member "
        "through copies; each folder's greediness figure shows the founding lineages alive over time, the "
        "fraction of the population replaced per ready round and each hyperparameter's spread.",
        "",
    ]
    return lines + [f"- **{folder}**: {text}" for folder, text in found]


def read_json(path: Path) -> Any:
    """A JSON file report needs; one clear line (``ConfigError``) when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None


def load_findings(path: Path) -> list[dict[str, Any]]:
    """The findings of an analysis folder's hand-written ``findings.json``: each the paper's ``finding``, the
    ``studies`` (study folder → the variants whose numbers bear on it) and the ``verdict``; refused in one line when
    it is not that shape."""
    findings = read_json(path)
    findings = findings.get("findings") if isinstance(findings, dict) else None
    ok = (
        isinstance(findings, list)
        and findings
        and all(
            isinstance(f, dict)
            and isinstance(f.get("finding"), str)
            and isinstance(f.get("verdict"), str)
            and isinstance(f.get("studies"), dict)
            and f["studies"]
            and all(isinstance(v, list) and all(isinstance(n, str) for n in v) for v in f["studies"].values())
            for f in findings
        )
    )
    if not ok:
        raise ConfigError(
            f'{path}: expected {{"findings": [{{"finding": TEXT, "studies": {{STUDY: [VARIANT, ...]}}, '
            f'"verdict": TEXT}}, ...]}}'
        )
    return findings


# The two final scores each analysis row gives: the best member's and the population's mean.
MEASURES = ("best_final", "population_mean_final")


def study_numbers(analysis: Path, study: str, names: list[str]) -> tuple[str, ...]:
    """A study's numbers for a finding, from one read of its ``table.json``, a text per measure of ``MEASURES``: the
    reference's final score, and each named variant's with its paired difference to the reference and the seeds it
    won."""
    path = analysis / study / "table.json"
    table = read_json(path)
    try:
        variants = {v["variant"]: v for v in table["variants"]}
        reference = next(v for v in variants.values() if v["reference"])
        for name in names:
            if name not in variants:
                raise ConfigError(
                    f"{path} has no variant {name!r} (it has {', '.join(variants)}), which "
                    f"{analysis / 'findings.json'} names"
                )

        def text(measure: str) -> str:
            texts = [f"reference {reference['title']} {interval_text(reference[measure])}"]
            for name in names:
                v, paired = variants[name], variants[name][f"{measure}_vs_reference"]
                texts.append(
                    f"{v['title']} {interval_text(v[measure])}, Δ {interval_text(paired['difference'])}, "
                    f"won {wins_text(paired)}"
                )
            return "; ".join(texts)

        return tuple(text(measure) for measure in MEASURES)
    except (KeyError, TypeError, StopIteration) as exc:
        raise ConfigError(
            f"{path} is not a study table (variants with their {' and '.join(MEASURES)}, the "
            f"reference and the paired differences): {type(exc).__name__} {exc}"
        ) from None


def analysis_lines(results: Path) -> list[str]:
    """The paper's analysis section: for every ``results/*/analysis/findings.json``, a row per paper finding with
    the numbers of the studies it names and the verdict of that folder's hand-written reading."""
    found = sorted(results.glob("*/analysis/findings.json"), key=lambda p: p.parent.parent.name)
    if not found:
        return []
    lines = [
        "",
        "## The paper's analysis (§5)",
        "",
        "Studies of PBT's design choices at equal compute per member (`pbt-repro study`). Numbers, from each "
        "study's `table.json`, of the best member's final score and of the population's mean final score (a "
        "copy-both population can lose its best member early, so its mean can carry a comparison the best "
        "member does not): the reference's mean over seeds [95% t-interval], each variant's, *Δ* = variant − "
        "reference paired by seed [95% paired t-interval], and the seeds the variant won. The verdicts are "
        "those of the folder's hand-written reading, which gives the reasons and caveats.",
    ]
    for path in found:
        analysis, folder = path.parent, path.parent.parent.name
        lines += [
            "",
            f"### {folder}",
            "",
            f"The {folder} domain's studies; the reading: [{folder}/analysis/README.md]({folder}/analysis/README.md).",
            "",
            "| paper's finding | best member (ours) | population mean (ours) | verdict | studies |",
            "|---|---|---|---|---|",
        ]
        for f in load_findings(path):
            many = len(f["studies"]) > 1  # then each study's numbers are named
            numbers = {study: study_numbers(analysis, study, names) for study, names in f["studies"].items()}
            best, mean = (
                "<br>".join(f"*{study}*: " * many + texts[i] for study, texts in numbers.items())
                for i in range(len(MEASURES))
            )
            links = " · ".join(f"[{study}]({folder}/analysis/{study}/README.md)" for study in f["studies"])
            lines.append(f"| {f['finding']} | {best} | {mean} | **{f['verdict']}** | {links} |")
    others = sorted(d for d in results.glob("*/analysis") if d.is_dir() and d.parent.name != "toy")
    if not others:
        lines += ["", "Only the toy's studies so far: the study on a real domain is still to run."]
    for begun in (d for d in others if not (d / "findings.json").exists()):
        # a real-domain study takes hours per run, so it is committed run by run before its tables exist
        domain = begun.parent.name
        lines += [
            "",
            f"The study on {domain} has begun: its finished runs are in [{domain}/analysis/runs]"
            f"({domain}/analysis/runs/README.md); its tables, verdicts and rows here come once every run is in.",
        ]
    return lines


def render(results: Path) -> str:
    """The text of ``results/README.md``."""
    summaries = load_summaries(results)
    comparisons = [(folder, s) for folder, s in summaries if "pbt" in s and "random_search" in s]
    figure2 = [(folder, s) for folder, s in summaries if "variants" in s]
    lines = [
        "# Results",
        "",
        "Generated by `pbt-repro report` from `results/*/summary.json`. Do not edit by hand: rerun the command.",
        "Each folder is written by `pbt-repro reproduce DOMAIN` (its README gives the exact command, config and "
        "provenance).",
        "",
        "## Reproduction table",
        "",
    ]
    if comparisons:
        lines += reproduction_table(comparisons)
    else:
        lines.append("No `results/*/summary.json` with a PBT and a random-search arm yet.")
    missing = [d for d in PAPER if d not in {str(s.get("domain")) for _, s in comparisons}]
    if missing:
        lines += ["", f"Not reproduced yet: {', '.join(missing)}."]
    if comparisons:
        lines += ["", "## Figures", ""]
        for folder, s in comparisons:
            figures = s.get("figures", {})
            links = [
                f"[{name.replace('_', ' ')}]({folder}/{next(f for f in figures[name] if f.endswith('.png'))})"
                for name in FIGURES
                if figures.get(name)
            ]
            seed = f" (PBT figures: seed {s['figure_seed']})" if s.get("figure_seed") is not None else ""
            lines.append(f"- **{folder}** ({s.get('domain')}): " + " · ".join(links) + seed)
    lines += greediness_lines(comparisons)
    further = [line for folder, s in comparisons for line in further_results_lines(folder, s)]
    if further:
        lines += [
            "",
            "## Further results",
            "",
            "Reported by each domain's `extra_results` (e.g. test-set scores of each run's best member): "
            "means over seeds [95% t-interval over seeds], the difference PBT − random search paired by seed, "
            "and the seeds PBT won.",
            "",
            *further[:-1],
        ]
    for folder, s in figure2:
        lines += [
            "",
            f"## The toy example, paper Figure 2 ([{folder}]({folder}))",
            "",
            "| variant | final Q of the best worker, mean | std | seeds |",
            "|---|---:|---:|---:|",
        ]
        for name, v in s["variants"].items():
            lines.append(f"| {name} | {fmt(v.get('final_q_mean'))} | {fmt(v.get('final_q_std'))} | {v.get('seeds')} |")
        lines.append(f"\nCommit {_commit(s)}.")
    lines += analysis_lines(results)
    lines += [
        "",
        "## Substitutes",
        "",
        "- Translation: Multi30k En→De replaces WMT14 En→De (the paper's data does not fit a CPU budget), with a "
        "smaller Transformer; the BLEU numbers are therefore not comparable in absolute terms.",
        "- GAN: members are selected and reported on a CIFAR-10-classifier score (an Inception-score variant, "
        "which is what the paper selected on); the ImageNet Inception Score needs the Inception network's "
        "classification head, which is not available offline.",
        "- RL: A2C on one Atari game, scored on the raw game score, replaces FuN on four games scored "
        "human-normalised.",
        "- The toy: PBT against random search over the toy's prior, beside the Figure 2 reproduction.",
        "",
    ]
    return "\n".join(lines)
