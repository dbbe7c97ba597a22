"""Reproduce one domain: PBT, then random search at the same compute, then the comparison and a results folder.

    pbt-repro reproduce DOMAIN --profile smoke|cpu|paper [--seeds K] [--out DIR] [--runs DIR] [setting flags]

For each seed ``s`` of ``seed, seed+1, ..., seed+K-1`` it runs the PBT arm into ``RUNS/pbt-s<s>``, then the
random-search arm (``baselines.baseline_config``: the same population, budget and seed, exploit and explore off)
into ``RUNS/random_search-s<s>``. Every run is opened with ``resume``, so running the same command again continues
a killed run where it stopped and skips finished ones. Then ``compare`` writes the tables and figures into ``OUT``,
with ``summary.json`` (the format every domain shares; ``pbt-repro report`` reads it) and a short ``README.md``.

A strategy arm (``--arms fire`` or ``pb2``) runs PBT with that ``PBTConfig.strategy`` into ``RUNS/fire-s<s>``, at the
same member-steps. Its runs may come in a later sitting, on some of the seeds only: whenever both main arms are
compared, every finished strategy run of the seeds in ``RUNS`` is compared with them (``summary["strategies"]``: the
arm's summary with its paired statistics against PBT and against random search).

A domain module may define ``extra_results(run_dir) -> dict`` (test BLEU, FID, ... of the run's best member). It is
called once per run, as soon as the run has finished and while its checkpoints still exist, and what it returns is
recorded in the run's own store (metadata ``extra_results``), so a committed store without its checkpoints keeps
it; ``summary.json`` gathers them per arm and seed.

Statistics across seeds (``repro.stats``): the two arms of one seed start from the same seed, so they are compared
as pairs. ``summary["paired"]`` holds, for the best member's final score, the population's mean and median final
score and every number of ``extra_results`` (``test_bleu.test_2016_flickr``, ``fid``), each arm's mean over seeds
with its 95% t-interval, the paired difference PBT − random search with its 95% paired t-interval over seeds, and
how many seeds PBT won (lower is better for FID, ``LOWER_IS_BETTER``, and for the scores of runs that minimise them,
``PBTConfig.mode``; the difference stays PBT − random search, and ``higher_is_better`` says which sign is better).
``summary["trains_faster"]`` says at what fraction of random search's compute PBT's best so far first reached random
search's final best, and the reverse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from baselines import baseline_config
from pbt.controller import Controller
from pbt.domain import Domain
from pbt.experiment import open_experiment
from pbt.rows import RunStatus, oriented
from pbt.rundir import git_commit, machine
from pbt.space import ConfigError
from pbt.store import StoreReader
from pbt.store_writer import Store
from repro.compare import (
    METHOD_TITLES,
    Comparison,
    Row,
    coalescence,
    compare,
    markdown_table,
    one_or_mean,
    progress_curve,
)
from repro.compare.figures import FIT_FROM
from repro.domains import label, load_domain, registered
from repro.stats import (
    Interval,
    fmt_interval,
    interquartile_mean,
    mean_std,
    paired_difference,
    probability_of_improvement,
    sign_flip_p,
    trains_faster,
)
from repro.text import duration, fmt

ARMS = ("pbt", "random_search")
# PBT with another strategy (``PBTConfig.strategy``) at the same member-steps, compared with both arms above.
STRATEGY_ARMS = ("pb2", "fire")
# Everything below this line in a results README is the authors' reading of the run; reproduce keeps it.
NOTES_MARKER = "<!-- notes: written by hand, kept when reproduce rewrites this file -->"
# The run's own scores, as paired metrics: summary key -> Row attribute and title. Better as the runs' mode says.
SCORE_METRICS = {
    "best_final": ("best_final", "best member's final score"),
    "population_mean_final": ("mean_final", "population mean final"),
    "population_median_final": ("median_final", "population median final"),
}
# Numbers of extra_results where lower is better, by the last part of their dotted name.
LOWER_IS_BETTER = frozenset({"fid"})


def paired_header(first: str = "PBT", second: str = "random search") -> list[str]:
    """The paired table's header."""
    header = (
        f"| | {first} | {second} | {first} − {second} (paired) | {first} won | sign-flip p | P({first} better) | "
        f"IQM {first} | IQM {second} |"
    )
    return [header, "|---" + "|---:" * (header.count("|") - 2) + "|"]


PAIRED_NOTE = (
    "Means over seeds, with the 95% t-interval over seeds in brackets (none with one seed). The difference "
    "is paired by seed (a seed's PBT and random-search runs start from the same seed): the mean of the "
    "per-seed differences PBT − random search, with its 95% paired t-interval over seeds. *PBT won*: the "
    "seeds where PBT's number is better (lower for FID), of the seeds both arms have. *Sign-flip p*: the "
    "exact two-sided sign-flip test of the paired differences (its smallest possible value is 2/2^n: "
    "0.031 with 6 seeds, 0.25 with 3, so it cannot reach 0.05 below 6). *P(PBT better)*: the probability "
    "that a PBT run beats a random-search run, over all pairs of their runs (ties half), and *IQM*: the "
    "mean of the middle half of the seeds, each with a 95% percentile-bootstrap interval, as rliable "
    "computes them (here with scipy)."
)


def arm_config(domain: Domain, config: Any, seed: int, arm: str) -> Any:
    """One arm's config for one seed: PBT's is ``config`` with the seed (it starts from the domain's initial
    hyperparameters, if it has them: ``open_experiment`` takes them), a strategy arm's is PBT's with that strategy,
    and random search draws from the priors."""
    pbt_config = dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, seed=seed))
    if arm == "random_search":
        return baseline_config(domain, pbt_config, "random_search")[0]
    if arm in STRATEGY_ARMS:
        return dataclasses.replace(pbt_config, pbt=dataclasses.replace(pbt_config.pbt, strategy=arm))
    return pbt_config


def finished_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished run (read only)."""
    if not (run_dir / "pbt.sqlite").exists():
        return False
    with StoreReader(run_dir) as reader:
        return reader.meta().get("status") == RunStatus.FINISHED


def run_arm(
    domain: Domain,
    name: str,
    arm: str,
    config: Any,
    run_dir: Path,
    force: bool,
    listeners_for: Callable[[Store], Any] | None = None,
    resume: bool = True,
) -> None:
    """Run (or continue, with ``resume``) one arm's run directory to completion, then record the domain's
    ``extra_results`` for it (once: a store that already holds them is left as it is)."""
    try:
        opened, spec = open_experiment(domain.module, config, run_dir, arm, name, force=force, resume=resume)
    except ConfigError as exc:  # the library's settings stay named as settings, for the command line to word
        raise ConfigError(
            f"{exc.message} (reproduce: pass --runs DIR for another folder, or ⟨force⟩ to start over)",
            path=exc.path,
            member=exc.member,
            options=dict.fromkeys([*exc.options, "force"]),
        ) from exc
    with opened:
        store = opened.store
        if listeners_for is None:
            Controller(store, spec, []).run()
        else:
            with listeners_for(store) as listeners:
                Controller(store, spec, listeners).run()
        if domain.extra_results is not None and "extra_results" not in store.meta():
            store.set_meta(extra_results=dict(domain.extra_results(run_dir) or {}))


def arm_summary(rows: Sequence[Row], config: Any) -> dict[str, Any]:
    """The shared summary of one arm over its seeds: means over seeds, and ``_std`` the sample standard deviation
    over seeds (None with one seed)."""
    best, best_std = mean_std([r.best_final for r in rows])
    mean, mean_std_ = mean_std([r.mean_final for r in rows])
    median, median_std = mean_std([r.median_final for r in rows])
    steps = [s for r in rows for s in r.coalescence_steps]
    lineages = [n for r in rows for n in r.lineages_at_end]
    step_mean, coalesced = coalescence(steps)
    greediness = (
        {}
        if not steps
        else {
            "greediness": {
                "coalescence_step_per_seed": steps,
                "coalescence_step_mean": step_mean,
                "coalesced_seeds": coalesced,
                "lineages_at_end_per_seed": lineages,
                "lineages_at_end_mean": one_or_mean(lineages),
            }
        }
    )
    return {
        "best_final": best,
        "best_final_std": best_std,
        "best_final_per_seed": [r.best_final for r in rows],
        "population_mean_final": mean,
        "population_mean_final_std": mean_std_,
        "population_median_final": median,
        "population_median_final_std": median_std,
        "seeds": [s for r in rows for s in r.seeds],
        "members_counted": [r.finished for r in rows],
        "status": [r.status for r in rows],
        "compute": {
            "steps": sum(r.used_steps for r in rows),
            "planned_steps": sum(r.planned_steps for r in rows),
            "wall_seconds": round(sum(r.wall_seconds for r in rows), 3),
            "runs": len(rows),
            "population": config.pbt.population,
            "steps_per_member": config.pbt.budget_steps,
        },
        **greediness,
    }


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """The numbers and texts in a nested result, by dotted path (``test_bleu.test_2016_flickr``); lists and booleans
    are left out, and so are ids and bookkeeping (``member``, ``step``, ``*_seconds``)."""
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in leaves(sub, f"{prefix}{key}.").items()}
    name = prefix[:-1]
    last = name.rsplit(".", 1)[-1]
    if (
        isinstance(value, (int, float, str))
        and not isinstance(value, bool)
        and last not in ("member", "step")
        and not last.endswith("seconds")
    ):
        return {name: value}
    return {}


def numeric_leaves(value: Any, prefix: str = "") -> dict[str, float]:
    """The numbers of ``leaves``, as floats."""
    return {k: float(v) for k, v in leaves(value, prefix).items() if not isinstance(v, str)}


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the metric ``name`` (a dotted leaf name) is better: all but ``LOWER_IS_BETTER``."""
    return name.rsplit(".", 1)[-1] not in LOWER_IS_BETTER


# -- statistics across seeds -------------------------------------------------------------------------------------


def paired_metric(
    name: str, pbt: dict[int, float | None], baseline: dict[int, float | None], higher: bool | None = None
) -> dict[str, Any]:
    """``paired_difference(pbt, baseline).to_dict()`` with ``higher_is_better`` (``higher``, by default
    ``higher_is_better(name)``), and ``wins`` counting the seeds where PBT is better (below random search where lower
    is better); the difference stays PBT − random search, raw, and ``higher_is_better`` says which sign is better."""
    result = paired_difference(pbt, baseline)
    higher = higher_is_better(name) if higher is None else higher
    wins = result.wins if higher else sum(p < b for _, p, b in result.per_seed)
    sign = 1.0 if higher else -1.0  # P(PBT better): for a lower-is-better number, that PBT's is lower
    better = probability_of_improvement(
        [sign * p for _, p, _ in result.per_seed], [sign * b for _, _, b in result.per_seed]
    )
    return result.to_dict() | {
        "wins": wins,
        "higher_is_better": higher,
        "sign_flip_p": sign_flip_p([p - b for _, p, b in result.per_seed]),
        "probability_of_improvement": better.to_dict(),
        "iqm": {
            "pbt": interquartile_mean(p for _, p, _ in result.per_seed).to_dict(),
            "baseline": interquartile_mean(b for _, _, b in result.per_seed).to_dict(),
        },
    }


def extra_by_seed(extras: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[int, float]]]:
    """Every number of the runs' ``extra_results`` (``{arm: {seed: extra}}``), as ``{name: {arm: {seed: value}}}``,
    names in the order they first appear."""
    found: dict[str, dict[str, dict[int, float]]] = {}
    for arm in extras:
        for seed, extra in sorted(extras[arm].items(), key=lambda item: int(item[0])):
            for name, value in numeric_leaves(extra).items():
                found.setdefault(name, {a: {} for a in (*ARMS, *extras)})[arm][int(seed)] = value
    return found


def paired_summary(
    comparison: Comparison,
    extras: dict[str, dict[str, Any]],
    first: str = "pbt",
    second: str = "random_search",
    names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """``summary["paired"]``: the paired statistics (``paired_metric``, ``first`` − ``second``) of the runs' scores
    (better as the runs' mode says: ``Comparison.mode``), then of every number of their ``extra_results`` (of those
    in ``names`` when given); a name of both kinds keeps the score."""

    def by_seed(arm: str, attr: str) -> dict[int, float | None]:
        return {row.seeds[0]: getattr(row, attr) for row in comparison.method_rows(arm)}

    paired = {
        key: paired_metric(key, by_seed(first, attr), by_seed(second, attr), comparison.mode == "max")
        for key, (attr, _) in SCORE_METRICS.items()
    }
    for name, by_arm in extra_by_seed(extras).items():
        if names is None or name in names:
            paired.setdefault(name, paired_metric(name, by_arm[first], by_arm[second]))
    return paired


def extra_paired(
    extras: dict[str, dict[str, Any]], paired: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The paired statistics of each number of ``extra_results`` that is an outcome: not the same in every run
    (``shared_leaves``) nor in both arms of each seed (``seed_setup_leaves``). Taken from ``paired``
    (``summary["paired"]``) where it has them, else computed."""
    setup, paired = {**shared_leaves(extras), **seed_setup_leaves(extras)}, paired or {}
    return {
        name: paired.get(name) or paired_metric(name, by_arm["pbt"], by_arm["random_search"])
        for name, by_arm in extra_by_seed(extras).items()
        if name not in setup
    }


def best_so_far_curves(comparison: Comparison, arm: str) -> dict[int, list[tuple[float, float]]]:
    """Each seed's ``(compute, best so far)`` curve for one arm (``progress_curve``), by seed, as fitnesses
    (``pbt.rows.oriented``: higher better), which ``trains_faster`` compares."""
    return {
        r.seed: [(x, oriented(best, r.mode)) for x, best in zip(*progress_curve(r.scores, r.mode)[:2])]
        for r in comparison.method_runs(arm)
    }


def speed_summary(comparison: Comparison) -> dict[str, Any]:
    """``summary["trains_faster"]``: ``trains_faster`` on the arms' best-so-far curves against compute."""
    pbt, baseline = (best_so_far_curves(comparison, arm) for arm in ARMS)
    return trains_faster(pbt, baseline).to_dict()


def strategy_summary(
    comparison: Comparison, arm: str, config: Any, extras: dict[str, dict[str, Any]], outcomes: Sequence[str]
) -> dict[str, Any]:
    """A strategy arm's summary (``arm_summary``) with its paired statistics (``paired_summary``, the strategy
    first) against PBT (``vs_pbt``) and against random search (``vs_random_search``), over the seeds both have: the
    scores, then the numbers of ``extra_results`` in ``outcomes``."""
    return arm_summary(comparison.method_rows(arm), config) | {
        f"vs_{other}": paired_summary(comparison, extras, arm, other, outcomes) for other in ARMS
    }


def shared_leaves(extras: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The leaves of ``extra_results`` with one value in every run of both arms (settings such as ``beam_size``,
    protocols, the shared classifier): said once instead of as a difference of zero. Empty unless both arms have
    results."""
    if not all(extras.get(arm) for arm in ARMS):
        return {}
    runs = [leaves(extra) for arm in ARMS for extra in extras[arm].values()]
    return {k: v for k, v in runs[0].items() if all(k in other and other[k] == v for other in runs[1:])}


def seed_setup_leaves(extras: dict[str, dict[str, Any]]) -> dict[str, dict[int, Any]]:
    """The leaves of ``extra_results`` that differ between seeds but are the same in both arms of each seed, by
    seed: the seed's setup (the classifier that the seed's machine trained, say), not an outcome, so a difference
    of zero would say nothing. Empty unless both arms ran the same seeds."""
    runs = {arm: {int(seed): leaves(extra) for seed, extra in extras.get(arm, {}).items()} for arm in ARMS}
    seeds = sorted(runs["pbt"])
    if not seeds or seeds != sorted(runs["random_search"]):
        return {}
    shared = shared_leaves(extras)
    names = [k for k in runs["pbt"][seeds[0]] if k not in shared]
    return {
        k: {s: runs["pbt"][s][k] for s in seeds}
        for k in names
        if all(k in runs["pbt"][s] and runs["pbt"][s][k] == runs["random_search"][s].get(k) for s in seeds)
    }


# -- the README --------------------------------------------------------------------------------------------------


def interval_text(interval: dict[str, Any] | None) -> str:
    """``fmt_interval`` of an interval as ``summary.json`` holds it (``Interval.to_dict``)."""
    return "–" if not interval else fmt_interval(Interval(**interval))


def paired_row(title: str, paired: dict[str, Any]) -> str:
    """One table row: PBT mean [interval], random search mean [interval], the paired difference [interval], wins."""
    better = "" if paired.get("higher_is_better", True) else " (lower is better)"
    iqm = paired["iqm"]
    return (
        f"| {title}{better} | {interval_text(paired['pbt'])} | {interval_text(paired['baseline'])} | "
        f"{interval_text(paired['difference'])} | {paired['wins']}/{paired['n']} | {paired['sign_flip_p']:.3g} | "
        f"{interval_text(paired['probability_of_improvement'])} | {interval_text(iqm['pbt'])} | "
        f"{interval_text(iqm['baseline'])} |"
    )


def paired_table(
    paired: dict[str, dict[str, Any]], names: dict[str, str], first: str = "PBT", second: str = "random search"
) -> list[str]:
    """The paired statistics of ``names`` (summary key -> row title) as a markdown table, ``first`` − ``second``."""
    rows = [paired[key] | {"title": title} for key, title in names.items() if key in paired]
    return paired_header(first, second) + [paired_row(row["title"], row) for row in rows]


def trains_faster_text(speed: dict[str, Any]) -> str:
    """The trains-faster fractions in words, with their intervals and the seeds that got there."""

    def reach(side: str, who: str, whom: str) -> str:
        reached, n = speed[f"{side}_reached"], speed["n"]
        if not reached:
            return f"{who}'s best so far never reached {whom}'s final best (0/{n} seeds)"
        return (
            f"{who}'s best so far first reached {whom}'s final best at {interval_text(speed[f'{side}_fraction'])} "
            f"of {whom}'s compute (in {reached}/{n} seeds)"
        )

    return (
        f"Trains faster: {reach('pbt', 'PBT', 'random search')}; {reach('baseline', 'random search', 'PBT')}. "
        "PBT's fraction is the fraction of random search's compute at which PBT's best-so-far first reaches "
        "random search's final best (0.4: PBT got there with 40% of the compute random search spent; 1: only at "
        "the end), and random search's fraction the reverse; the mean and 95% t-interval are over the seeds "
        "where the arm got there."
    )


def greediness_text(arm: dict[str, Any]) -> str | None:
    """A PBT arm's coalescence in words (``pbt.diagnostics``); None for an arm without copies (random search)."""
    g = arm.get("greediness")
    if not g:
        return None
    n = len(g["coalescence_step_per_seed"])
    step = g["coalescence_step_mean"]
    when = (
        "never coalesced to one founding lineage"
        if step is None
        else f"coalesced to one founding lineage in {g['coalesced_seeds']} seed{'s' if n > 1 else ''}, at step "
        f"{fmt(step)}{' on average over those' if n > 1 else ''}"
    )
    return (
        f"PBT's population {when} (of {arm['compute']['steps_per_member']} steps per member); "
        f"founding lineages alive at the end: {fmt(g['lineages_at_end_mean'])} of {arm['compute']['population']}"
        f"{' on average' if n > 1 else ''}."
    )


def extra_results_table(extras: dict[str, dict[str, Any]]) -> list[str]:
    """The domain's per-run results (test sets, FID, ...) as one table: a row per number, a column per arm and seed."""
    columns = [(arm, seed) for arm in (*ARMS, *STRATEGY_ARMS) for seed in sorted(extras.get(arm, {}), key=int)]
    if not columns:
        return []
    values = {c: numeric_leaves(extras[c[0]][c[1]]) for c in columns}
    names = list(dict.fromkeys(k for c in columns for k in values[c]))
    lines = [
        "### Per run",
        "",
        "| | "
        + " | ".join(f"{METHOD_TITLES[a]} s{s} (member {extras[a][s].get('member', '?')})" for a, s in columns)
        + " |",
        "|---|" + "---:|" * len(columns),
    ]
    lines += [f"| {name} | " + " | ".join(fmt(values[c].get(name)) for c in columns) + " |" for name in names]
    return lines + [""]


def further_results(summary: dict[str, Any]) -> list[str]:
    """The "Further results" section: the paired statistics of every number of ``extra_results`` that differs
    between runs, then the per-run table (``extra_results_table``)."""
    extras = summary.get("extra_results", {})
    if not extras:
        return []
    paired = extra_paired(extras, summary["paired"])
    lines = ["## Further results (the domain's `extra_results`, of each run's best member)", ""]
    if paired:
        lines += paired_table(paired, {name: name for name in paired}) + [
            "",
            "As above: means [95% t-interval over seeds], and the difference paired by seed. Numbers that are the "
            "same in every run (settings), or in both arms of each seed (the seed's setup), are only in the per-run "
            "table.",
            "",
        ]
    return lines + extra_results_table(extras)


def figure_captions(seed: int | None) -> dict[str, str]:
    """The README's caption of each figure; the PBT figures name the seed of the run they show."""
    run = f"PBT seed {seed}" if seed is not None else "PBT"
    return {
        "score_vs_compute": "Best-so-far score against compute: per method the mean over seeds (thick line), the "
        "min–max range over seeds (band), each seed (thin lines), and the population median "
        f"(dashed, mean over seeds); the score axis fits the best-so-far curves after the first {FIT_FROM:.0%} of "
        "compute, so the early climb runs below it",
        "schedule": f"Hyperparameter schedule of the final best member of {run}, followed back through its lineage",
        "lineage_tree": f"Lineage tree of the population of {run}",
        "member_scores": f"Each member's score over time ({run})",
        "greediness": f"Greediness of {run}: founding lineages alive over time (and the step the population "
        "coalesced to one), the fraction of the population replaced per ready round, and each "
        "hyperparameter's spread over the population (min–max band, median)",
    }


def strategy_lines(summary: dict[str, Any]) -> list[str]:
    """A section per strategy arm: its paired statistics against PBT and against random search, and its greediness."""
    lines = []
    for arm, result in summary.get("strategies", {}).items():
        title, seeds = METHOD_TITLES[arm], result["seeds"]
        names = {k: t for k, (_, t) in SCORE_METRICS.items()} | {
            name: name for name in result["vs_pbt"] if name not in SCORE_METRICS
        }
        lines += [
            "",
            f"## {title}, the strategy arm ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}: "
            f"{', '.join(map(str, seeds))})",
            "",
            f"PBT with `--strategy {arm}` at the same member-steps, paired by seed with each arm over the seeds "
            "both have (as above).",
            "",
        ]
        for other in ARMS:
            lines += [*paired_table(result[f"vs_{other}"], names, title, METHOD_TITLES[other]), ""]
        greedy = greediness_text(result)
        if greedy:
            lines.append(f"Greediness: {greedy.replace('PBT', title, 1)}")
    return lines


def results_readme(summary: dict[str, Any], comparison: Comparison) -> str:
    """The results folder's README: the paired statistics, trains faster, the runs, the figures, further results."""
    p = summary["provenance"]
    seed = summary.get("figure_seed")
    lines = [
        f"# {summary['domain']}: PBT against random search at equal compute ({summary['profile']} profile)",
        "",
        f"Made by `{p['command']}` at commit `{p['git_commit']}` on {p['date']} "
        f"({duration(p['wall_seconds'])} for this invocation). Metric: {summary['metric']} "
        f"({'lower' if summary.get('mode') == 'min' else 'higher'} is better).",
        "",
        *paired_table(summary["paired"], {k: title for k, (_, title) in SCORE_METRICS.items()}),
        "",
        PAIRED_NOTE,
        "",
        trains_faster_text(summary["trains_faster"]),
    ]
    greedy = greediness_text(summary["pbt"])
    if greedy:
        lines += [
            "",
            f"Greediness: {greedy} Coalescence is the first step from which on every member's weights "
            "descend from one founding member through copies (the greediness figure shows it over time, the "
            "runs table per seed).",
        ]
    lines += strategy_lines(summary)
    c = summary["pbt"]["compute"]
    lines += [
        "",
        f"Compute per arm: {c['population']} members × {c['steps_per_member']} steps × {c['runs']} "
        f"seed{'s' if c['runs'] > 1 else ''} = {c['planned_steps']:.6g} member-steps.",
        "",
        "## Runs",
        "",
        markdown_table(comparison, intro=False).strip(),
        "",
        "## Figures",
        "",
    ]
    if seed is not None:
        lines += [
            f"The schedule, lineage, member-score and greediness figures (and `best_schedule.json`) show one "
            f"PBT run: seed {seed}, by default the seed whose best final score is the median over seeds.",
            "",
        ]
    captions = figure_captions(seed)
    for name, files in summary["figures"].items():
        png = next((f for f in files if f.endswith(".png")), files[0])
        lines += [f"### {captions.get(name, name)}", "", f"![{name}]({png})", ""]
    lines += further_results(summary)
    lines += [
        "Files: `summary.json` (this summary, with the full configs and provenance), `comparison.md` / "
        "`comparison.csv` (one row per run), `best_schedule.json` (the best PBT member's lineage as data).",
        "",
    ]
    return "\n".join(lines)


def reproduce(
    domain: str | Domain,
    config: Any,
    profile: str,
    seeds: int = 1,
    out: Path | str | None = None,
    runs: Path | str | None = None,
    force: bool = False,
    listeners_for: Callable[[str, int, Store], Any] | None = None,
    command: str | None = None,
    arms: Sequence[str] = ARMS,
    figure_seed: int | None = None,
) -> dict[str, Any] | None:
    """Run both arms for ``seeds`` seeds (resuming what exists), compare them, and write the results folder.

    Args:
        domain: A registered domain's name, a task module's path, or a loaded ``Domain``.
        config: The domain's config (a profile with any overrides applied); its ``pbt.seed`` is the first seed.
        profile: The profile's name (recorded, and part of the default folders).
        seeds: Number of seeds per arm.
        out: The results folder (default ``runs/DOMAIN-PROFILE/results``).
        runs: Where the run directories go (default ``runs/DOMAIN-PROFILE``).
        force: Delete existing run directories and start over.
        listeners_for: ``(arm, seed, store) -> context manager yielding listeners`` (progress, W&B).
        command: The command line recorded in the provenance.
        arms: The arms to run now (both by default). With one arm, its runs are trained and nothing is compared
            (returns None): a long reproduction can be split over sittings, one arm at a time.
        figure_seed: The PBT seed the schedule, lineage, member-score and greediness figures show (default: the
            median seed).

    Returns:
        The summary written to ``OUT/summary.json``.
    """
    unknown = sorted(set(arms) - set(ARMS) - set(STRATEGY_ARMS))
    if unknown or not arms:
        raise ConfigError(
            f"unknown arm(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(ARMS + STRATEGY_ARMS)}"
        )
    if isinstance(domain, str):
        name, domain = domain, load_domain(domain)
    else:
        name = next((n for n, m in registered().items() if m == domain.module), domain.module)
    started_at, t0 = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), time.perf_counter()
    commit = git_commit()  # before this run rewrites its own results files, which would mark the tree dirty
    runs = Path(runs) if runs is not None else Path("runs") / f"{label(name)}-{profile}"
    out = Path(out) if out is not None else runs / "results"
    seed_list = [config.pbt.seed + k for k in range(seeds)]
    dirs: dict[str, list[Path]] = {arm: [] for arm in ARMS}
    configs: dict[str, Any] = {}
    for arm in [a for a in ARMS + STRATEGY_ARMS if a in arms]:  # PBT first, then random search, then a strategy
        for seed in seed_list:
            seeded = arm_config(domain, config, seed, arm)
            configs.setdefault(arm, seeded)
            run_dir = runs / f"{arm}-s{seed}"
            hook = None if listeners_for is None else (lambda store, a=arm, s=seed: listeners_for(a, s, store))
            run_arm(domain, name, arm, seeded, run_dir, force, hook)
            dirs.setdefault(arm, []).append(run_dir)
    if not set(ARMS) <= set(arms):
        return None
    for arm in (a for a in STRATEGY_ARMS if a not in arms):  # a strategy arm run earlier, on some of these seeds
        finished = [d for d in (runs / f"{arm}-s{seed}" for seed in seed_list) if finished_run(d)]
        if finished:
            dirs[arm] = finished
            configs[arm] = arm_config(domain, config, config.pbt.seed, arm)
    comparison = compare([d for ds in dirs.values() for d in ds], out, metric=domain.metric, seed=figure_seed)
    summary: dict[str, Any] = {
        "domain": name,
        "metric": comparison.metric,
        "mode": comparison.mode,
        "profile": profile,
        **{arm: arm_summary(comparison.method_rows(arm), configs[arm]) for arm in ARMS},
        "equal_compute": comparison.equal_compute,
        "figures": comparison.figures,
        "tables": ["comparison.md", "comparison.csv"],
        "best_schedule": "best_schedule.json" if comparison.best_schedule else None,
    }
    extras = {
        arm: {str(r.seed): r.meta["extra_results"] for r in comparison.method_runs(arm) if "extra_results" in r.meta}
        for arm in dirs
    }
    if any(extras.values()):
        summary["extra_results"] = extras
    summary["paired"] = paired_summary(comparison, extras)
    strategies = [arm for arm in STRATEGY_ARMS if arm in dirs]
    if strategies:
        outcomes = list(extra_paired(extras))
        summary["strategies"] = {
            arm: strategy_summary(comparison, arm, configs[arm], extras, outcomes) for arm in strategies
        }
    summary["trains_faster"] = speed_summary(comparison)
    summary["figure_seed"] = comparison.figure_seed
    summary["provenance"] = {
        "command": command or f"pbt-repro reproduce {name} --profile {profile} --seeds {seeds}",
        "config": {arm: dataclasses.asdict(c) for arm, c in configs.items()},
        "seeds": seed_list,
        "runs": {arm: [str(d) for d in ds] for arm, ds in dirs.items()},
        "git_commit": commit,
        "run_commits": sorted({str(r.meta.get("git_commit")) for r in comparison.runs}),
        "machine": machine(),
        "date": started_at,
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    readme = out / "README.md"
    notes = readme.read_text().partition(NOTES_MARKER)[2] if readme.exists() else ""
    readme.write_text(results_readme(summary, comparison) + (f"\n{NOTES_MARKER}{notes}" if notes else ""))
    return summary
