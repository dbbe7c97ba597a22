"""The paper's analysis section (§5): studies of PBT's design choices at equal compute per member, and one beyond it
(strategies that are less greedy than PBT).

    pbt-repro study DOMAIN --study population|exploit|transfer|schedule|strategy|all --profile P --seeds K
                    [--seed S0] [--values V ...] --out DIR [--dry-run] [setting flags]

A study runs its variants for K seeds (S0, S0+1, ...). Each variant is the reference (PBT with the profile's
settings, any setting flags applied) with one thing changed, and keeps its steps per member, ready interval and
everything else:

- ``population``: the population size (``--values``, default 2 4 8 16 32); reference: the profile's population;
- ``exploit``: the exploit rule, truncation, ttest and tournament; reference: the profile's rule;
- ``transfer``: what an exploit copies (``PBTConfig.transfer``), both, weights and hparams; reference: both;
- ``schedule``: ``pbt`` (the reference), ``replay`` (the best member's discovered schedule, followed from scratch by as
  many fresh members as PBT has: ``repro.replay``) and ``final`` (its final hyperparameters held fixed from scratch);
- ``strategy`` (not in ``all``): ``pbt`` (the reference), ``tournament`` (the binary tournament exploit), ``pb2``,
  ``fire`` (``PBTConfig.strategy``) and ``random_search`` (the baseline at the same member-steps). Its table adds, for
  a domain that knows its best (and greedy) schedules in closed form (``Domain.known_schedules``: the toys), each
  variant's distance from them and how often its population coalesced, and a figure of the schedules.

Every run has its own directory under ``DIR/runs/`` (the reference run of a seed, ``pbt-sSEED``, is shared by all
studies), and is opened with resume: running the same command again skips finished runs and continues unfinished
ones. Each study then writes ``DIR/STUDY/``: ``table.md``, ``table.csv`` and ``table.json`` (per variant, the mean over
seeds of the best member's final score and of the population's mean final score with 95% t-intervals, and the paired
difference variant − reference by seed with its 95% t-interval and the seeds the variant won: ``repro.stats``), the
figure ``STUDY.png`` / ``.svg``, and a ``README.md`` (config, seeds, commit, machine, wall time and the command that
regenerates it; what follows its notes marker is kept).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from baselines import baseline_config, replay_config
from pbt.algorithm import Schedule
from pbt.config import replace_fields
from pbt.domain import Domain
from pbt.rows import run_mode
from pbt.rundir import git_commit, machine, run_differences
from pbt.space import ConfigError
from pbt.store_writer import Store
from repro.compare import METHOD_TITLES, load_run, run_meta, run_row
from repro.compare.figures import pyplot, save_figure
from repro.replay import replay
from repro.reproduce import run_arm
from repro.stats import Interval, PairedDifference, fmt_interval, mean_interval, paired_difference
from repro.text import duration

PAPER_STUDIES = ("population", "exploit", "transfer", "schedule")  # the paper's §5; ``--study all`` runs these
STUDIES = (*PAPER_STUDIES, "strategy")
DEFAULT_VALUES = {
    "population": ("2", "4", "8", "16", "32"),
    "exploit": ("truncation", "ttest", "tournament"),
    "transfer": ("both", "weights", "hparams"),
    "schedule": ("pbt", "replay", "final"),
    "strategy": ("pbt", "tournament", "pb2", "fire", "random_search"),
}
# the strategy study's variants: the PBT settings each changes, or the baseline it runs instead
STRATEGIES = {
    "pbt": {},
    "tournament": {"exploit": "tournament"},
    "pb2": {"strategy": "pb2"},
    "fire": {"strategy": "fire"},
    "random_search": {},
}
STRATEGY_TITLES = {
    "pbt": "PBT (reference's exploit)",
    "tournament": "PBT, binary tournament",
    "pb2": "PB2",
    "fire": "FIRE PBT",
    "random_search": "random search",
}
FINDINGS = {  # what the paper (§5, as far as its sources say) found, for each study's README
    "population": "With 10 or fewer members, variance is high and performance poor (PBT is greedy and gets stuck); "
    "with 20–40 members improvements are strong and consistent; larger populations help, with "
    "diminishing returns.",
    "exploit": "Truncation selection (bottom 20% copy the top 20%) worked best; one source says it was more stable "
    "than the binary tournament.",
    "transfer": "Copying only the weights, or only the hyperparameters, is worse than copying both.",
    "schedule": "Training from scratch with PBT's final hyperparameters is worse than PBT's online schedule; a "
    '"replay the discovered schedule from scratch" experiment is recalled but unverified.',
    "strategy": "(Not in the paper.) FIRE PBT (Dalibard & Jaderberg 2021) was proposed because PBT's selection is "
    'greedy; "To Be Greedy, or Not to Be" (Chebykin et al., TMLR 2025) found no PBT variant '
    "consistently better, and that PB2 optimises the greedy objective even harder.",
}
VARIED = {
    "population": "the population size",
    "exploit": "the exploit rule",
    "transfer": "what an exploit copies",
    "schedule": "how the hyperparameters are set (PBT online, its best member's schedule replayed from scratch, "
    "or its final hyperparameters from scratch)",
    "strategy": "the strategy (PBT with the binary tournament, PB2, FIRE PBT) or random search in its place, at "
    "the same member-steps",
}
NOTES_MARKER = "<!-- notes: written by hand, kept when study rewrites this file -->"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One arm of a study: the reference config with ``overrides`` applied (PBT settings), run as ``method``."""

    study: str
    name: str
    overrides: dict[str, Any]
    method: str = "pbt"  # pbt, random_search, or replay / final (of the seed's reference run)

    @property
    def reference(self) -> bool:
        return self.method == "pbt" and not self.overrides

    @property
    def title(self) -> str:
        if self.study == "population":
            return f"population {self.name}"
        if self.study == "transfer":
            return {"both": "copy both", "weights": "copy weights only", "hparams": "copy hyperparameters only"}.get(
                self.name, self.name
            )
        if self.study == "strategy":
            return STRATEGY_TITLES.get(self.name, self.name)
        return METHOD_TITLES.get(self.method, self.name) if self.study == "schedule" else self.name

    def run_name(self, seed: int) -> str:
        return f"pbt-s{seed}" if self.reference else f"{self.study}-{self.name}-s{seed}"


def study_variants(study: str, config: Any, values: Sequence[str] | None = None) -> list[Variant]:
    """The variants of ``study`` against the reference ``config``, the reference first (added if ``values`` leaves it
    out); a value that equals the reference's setting is the reference."""
    pbt = config.pbt
    field = study  # the PBT setting a study other than schedule varies
    reference = {
        "population": str(pbt.population),
        "exploit": pbt.exploit,
        "transfer": pbt.transfer,
        "schedule": "pbt",
        "strategy": "pbt",
    }.get(study)
    if reference is None:
        raise ConfigError(f"unknown study {study!r}; choose one of: {', '.join(STUDIES)}, all")
    chosen = list(dict.fromkeys([reference, *(values or DEFAULT_VALUES[study])]))
    variants = []
    for value in chosen:
        if study == "schedule":
            if value not in DEFAULT_VALUES["schedule"]:
                raise ConfigError(f"unknown schedule variant {value!r}; choose from pbt, replay, final")
            variants.append(Variant(study, value, {}, method=value))
            continue
        if study == "strategy":
            if value not in STRATEGIES:
                raise ConfigError(f"unknown strategy variant {value!r}; choose from {', '.join(STRATEGIES)}")
            replace_fields(config, STRATEGIES[value])  # refused here (FIRE's population, say) before any run
            variants.append(
                Variant(study, value, STRATEGIES[value], method="random_search" if value == "random_search" else "pbt")
            )
            continue
        setting = int(value) if study == "population" and value.lstrip("-").isdigit() else value
        replace_fields(config, {field: setting})  # refused here, with the field's own message, if it is no value
        variants.append(Variant(study, value, {} if value == reference else {field: setting}))
    return variants


def variant_config(variant: Variant, config: Any, seed: int) -> Any:
    """The config of ``variant``'s run of ``seed``; a replay or final run takes its settings from the seed's
    reference run (``baselines.replay_config``), random search the reference's compute (``baseline_config``)."""
    seeded = replace_fields(config, {"seed": seed, **variant.overrides})
    if variant.method == "random_search":
        return baseline_config(None, seeded, "random_search")[0]
    return replay_config(seeded, config.pbt.population) if variant.method in ("replay", "final") else seeded


RunHook = Callable[[str, Store, Any], Any]  # (title, store, config) -> context manager yielding listeners


def run_variant(
    domain: Domain,
    name: str,
    variant: Variant,
    config: Any,
    seed: int,
    runs: Path,
    force: bool,
    listeners_for: RunHook | None,
) -> Path:
    """Run (or continue; a finished run is left as it is) one variant's run of ``seed``; return its directory. A
    replay or final run follows the seed's reference run, which must exist."""
    run_dir = runs / variant.run_name(seed)
    title = f"{name} {variant.study} {variant.title} seed {seed}"
    if variant.method in ("pbt", "random_search"):
        seeded = variant_config(variant, config, seed)
        hook = None if listeners_for is None else (lambda store: listeners_for(title, store, seeded))
        run_arm(domain, name, variant.method, seeded, run_dir, force, hook, resume=not force)
    else:
        reference = runs / Variant(variant.study, "pbt", {}).run_name(seed)
        hook = None if listeners_for is None else (lambda store, cfg: listeners_for(title, store, cfg))
        replay(
            reference,
            run_dir,
            population=config.pbt.population,
            final=variant.method == "final",
            resume=not force,
            force=force,
            listeners_for=hook,
        )
    return run_dir


@dataclasses.dataclass(frozen=True)
class VariantResult:
    """A variant's numbers over seeds: each seed's best final and population mean final, their means with 95%
    t-intervals, and the paired differences variant − reference (None for the reference itself)."""

    variant: Variant
    runs: dict[int, Path]
    best: dict[int, float | None]
    mean: dict[int, float | None]
    best_interval: Interval
    mean_interval: Interval
    best_paired: PairedDifference | None
    mean_paired: PairedDifference | None
    wall_seconds: float  # its runs' wall times, summed
    run_commits: tuple[str, ...]  # the commits its runs were trained at
    coalescence: dict[int, int | None] = dataclasses.field(default_factory=dict)  # seed -> step (None: never)
    distances: dict[str, dict[int, float]] = dataclasses.field(default_factory=dict)  # known schedule -> seed -> d
    schedules: dict[int, list[tuple[int, dict[str, Any]]]] = dataclasses.field(default_factory=dict)  # best's

    def to_dict(self) -> dict[str, Any]:
        def paired(p: PairedDifference | None) -> dict[str, Any] | None:
            return (
                None
                if p is None
                else {
                    "variant": p.pbt.to_dict(),
                    "reference": p.baseline.to_dict(),
                    "difference": p.difference.to_dict(),
                    "wins": p.wins,
                    "ties": p.ties,
                    "n": p.n,
                }
            )

        return {
            "variant": self.variant.name,
            "title": self.variant.title,
            "reference": self.variant.reference,
            "method": self.variant.method,
            "overrides": self.variant.overrides,
            "runs": {str(s): str(d) for s, d in self.runs.items()},
            "best_final_per_seed": {str(s): v for s, v in self.best.items()},
            "population_mean_final_per_seed": {str(s): v for s, v in self.mean.items()},
            "best_final": self.best_interval.to_dict(),
            "population_mean_final": self.mean_interval.to_dict(),
            "best_final_vs_reference": paired(self.best_paired),
            "population_mean_final_vs_reference": paired(self.mean_paired),
            "coalescence_step_per_seed": {str(s): v for s, v in self.coalescence.items()},
            "best_schedule_distance_per_seed": {
                k: {str(s): v for s, v in d.items()} for k, d in self.distances.items()
            },
            "best_schedule_per_seed": {str(s): [[age, h] for age, h in c] for s, c in self.schedules.items()},
        }


def schedule_distance(schedule: Schedule, known: Schedule, steps: int) -> float:
    """How far ``schedule`` is from ``known``: the mean over the training steps (weight ages 0 to steps − 1) of the
    mean absolute difference of the numeric hyperparameters ``known`` sets."""
    total = 0.0
    for age in range(steps):
        have, want = schedule.at(age), known.at(age)
        total += statistics.fmean(abs(float(have[k]) - float(v)) for k, v in want.items())
    return total / steps


def study_results(
    variants: Sequence[Variant], runs: dict[str, dict[int, Path]], known: Mapping[str, Schedule] | None = None
) -> list[VariantResult]:
    """Read every variant's runs (``runs[variant.name][seed]``) and pair each variant with the reference by seed;
    with ``known`` schedules (``Domain.known_schedules``), measure each run's best member's discovered schedule
    against them."""
    loaded = {v.name: {seed: load_run(d) for seed, d in runs[v.name].items()} for v in variants}
    rows = {name: {seed: run_row(run) for seed, run in by_seed.items()} for name, by_seed in loaded.items()}
    best = {name: {s: r.best_final for s, r in by_seed.items()} for name, by_seed in rows.items()}
    mean = {name: {s: r.mean_final for s, r in by_seed.items()} for name, by_seed in rows.items()}
    ref = next(v.name for v in variants if v.reference)
    higher = all(run.mode == "max" for run in loaded[ref].values())  # which way a variant wins (PBTConfig.mode)
    schedules = {
        name: {seed: run.discovered_schedule() for seed, run in by_seed.items() if run.best is not None}
        for name, by_seed in loaded.items()
    }
    return [
        VariantResult(
            v,
            runs[v.name],
            best[v.name],
            mean[v.name],
            mean_interval(best[v.name].values()),
            mean_interval(mean[v.name].values()),
            None if v.reference else paired_difference(best[v.name], best[ref], higher=higher),
            None if v.reference else paired_difference(mean[v.name], mean[ref], higher=higher),
            sum(r.wall_seconds for r in rows[v.name].values()),
            tuple(sorted({str(run.meta.get("git_commit")) for run in loaded[v.name].values()})),
            coalescence={s: (r.coalescence_steps or [None])[0] for s, r in rows[v.name].items()},
            distances={
                k: {
                    s: schedule_distance(sch, schedule, loaded[v.name][s].compute["budget_steps"])
                    for s, sch in schedules[v.name].items()
                }
                for k, schedule in (known or {}).items()
            },
            schedules={s: [(age, dict(h)) for age, h in sch.changes] for s, sch in schedules[v.name].items()},
        )
        for v in variants
    ]


# -- what a study writes -----------------------------------------------------------------------------------------


def wins_text(p: PairedDifference | dict[str, Any] | None) -> str:
    """The seeds a variant won, k/n (ties said apart), of a paired difference or its ``table.json`` form."""
    if p is None:
        return "reference"
    wins, ties, n = (p["wins"], p["ties"], p["n"]) if isinstance(p, dict) else (p.wins, p.ties, p.n)
    return f"{wins}/{n}" + (f" ({ties} tied)" if ties else "")


def markdown_table(results: Sequence[VariantResult]) -> str:
    lines = [
        "| variant | seeds | best final | − reference (paired) | won | population mean final | − reference "
        "(paired) | won |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        name = f"**{r.variant.title}** (reference)" if r.variant.reference else r.variant.title
        diff = [("–" if p is None else fmt_interval(p.difference)) for p in (r.best_paired, r.mean_paired)]
        lines.append(
            f"| {name} | {r.best_interval.n} | {fmt_interval(r.best_interval)} | {diff[0]} | "
            f"{wins_text(r.best_paired)} | {fmt_interval(r.mean_interval)} | {diff[1]} | "
            f"{wins_text(r.mean_paired)} |"
        )
    return "\n".join(lines) + "\n"


def greed_table(results: Sequence[VariantResult]) -> str:
    """The strategy study's second table: how far each variant's best schedules are from the known ones, and how
    often and when its population coalesced to one founding lineage."""
    known = sorted({k for r in results for k in r.distances})
    lines = [
        "| variant | "
        + "".join(f"best schedule's distance from the {k} one | " for k in known)
        + "coalesced seeds | mean coalescence step |",
        "|---|" + "---:|" * (len(known) + 2),
    ]
    for r in results:
        cells = [fmt_interval(mean_interval(r.distances[k].values())) for k in known]
        steps = [v for v in r.coalescence.values() if v is not None]
        mean_step = f"{statistics.fmean(steps):.4g}" if steps else "never"
        coalesced = f"{len(steps)}/{len(r.coalescence)}" if r.variant.method != "random_search" else "— (no copies)"
        lines.append(
            f"| {r.variant.title} | " + "".join(f"{c} | " for c in cells) + f"{coalesced} | "
            f"{mean_step if r.variant.method != 'random_search' else '—'} |"
        )
    return "\n".join(lines) + "\n"


GREED_NOTE = (
    "*Distance*: the mean over training steps of the absolute difference between the hyperparameters of "
    "the best member's discovered schedule (by the age of its weights) and the known schedule's, averaged "
    "over the hyperparameters the known one sets; mean over seeds with its 95% t-interval. *Coalesced*: the "
    "seeds whose population came to descend from one founding member, and the mean step at which it did."
)


def plot_schedules(results: Sequence[VariantResult], known: Mapping[str, Schedule], steps: int, out: Path) -> list[str]:
    """One panel per variant: each seed's best schedule (the first hyperparameter the known schedules set) against
    the known schedules."""
    plt = pyplot()
    name = next(iter(next(iter(known.values())).changes[0][1]))
    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.4), sharey=True, squeeze=False)
    ages = list(range(0, steps + 1, max(1, steps // 200)))
    for ax, r in zip(axes[0], results):
        for changes in r.schedules.values():
            schedule = Schedule(tuple((age, h) for age, h in changes))
            ax.plot(ages, [float(schedule.at(a)[name]) for a in ages], color="tab:blue", alpha=0.45, linewidth=1)
        for (label, schedule), style in zip(known.items(), ("--", ":", "-.")):
            ax.plot(
                ages,
                [float(schedule.at(a)[name]) for a in ages],
                color="black",
                linestyle=style,
                linewidth=1.6,
                label=label,
            )
        ax.set(title=r.variant.title, xlabel="weights' age (steps)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(name)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("best member's schedule of each seed (blue) against the known schedules (black)")
    fig.tight_layout()
    return save_figure(fig, out, "schedules")


TABLE_NOTE = (
    "Means over seeds with their 95% t-intervals in brackets. *− reference (paired)*: the mean over seeds of "
    "the variant's number minus the reference run's number of the same seed, with its 95% paired "
    "t-interval; *won*: the seeds where the variant's number is higher (ties said apart). *Best final*: the "
    "best member's final score; *population mean final*: the mean of every member's final score."
)


LOWER_NOTE = " The runs minimise their score: lower is better, and *won* counts the seeds where it is lower."


def csv_table(results: Sequence[VariantResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = ["variant", "reference", "method", "seeds"]
    for key in ("best_final", "population_mean_final"):
        columns += [
            f"{key}_mean",
            f"{key}_low",
            f"{key}_high",
            f"{key}_diff_mean",
            f"{key}_diff_low",
            f"{key}_diff_high",
            f"{key}_wins",
            f"{key}_ties",
        ]
    writer.writerow(columns)
    blank = lambda v: "" if v is None else repr(v)  # noqa: E731 - repr keeps floats exact
    for r in results:
        row: list[Any] = [r.variant.name, r.variant.reference, r.variant.method, r.best_interval.n]
        for interval, p in ((r.best_interval, r.best_paired), (r.mean_interval, r.mean_paired)):
            d = None if p is None else p.difference
            row += [
                blank(interval.mean),
                blank(interval.low),
                blank(interval.high),
                *(["", "", ""] if d is None else [blank(d.mean), blank(d.low), blank(d.high)]),
                "" if p is None else p.wins,
                "" if p is None else p.ties,
            ]
        writer.writerow(row)
    return buffer.getvalue()


def in_value_order(study: str, results: Sequence[VariantResult]) -> list[VariantResult]:
    """The population study's variants by population size, the reference among them (it is trained first); the other
    studies' as given, since their values have no order."""
    if study != "population":
        return list(results)
    return sorted(results, key=lambda r: int(r.variant.name))


def plot_study(study: str, results: Sequence[VariantResult], metric: str, out: Path) -> list[str]:
    """Left: each variant's best final score per seed (dots) and its mean with the 95% t-interval; right: the paired
    difference to the reference per seed and its mean with the 95% paired t-interval.

    An interval is drawn only within the range of the values the panel shows (a triangle marks an end it reaches past
    it): over two seeds a t-interval is wide enough to leave the metric's own range (an accuracy above 1), and the
    table gives it whole. A metric's range is not known to the study, so the seeds' own values bound it."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    positions = list(range(len(results)))
    for ax, values, intervals, title in (
        (left, [r.best for r in results], [r.best_interval for r in results], f"best member's final {metric}"),
        (
            right,
            [None if r.best_paired is None else {s: p - b for s, p, b in r.best_paired.per_seed} for r in results],
            [None if r.best_paired is None else r.best_paired.difference for r in results],
            "variant − reference, paired by seed",
        ),
    ):
        shown = [v for per_seed in values for v in (per_seed or {}).values() if v is not None]
        floor, ceiling = min(shown, default=0.0), max(shown, default=0.0)
        for x, per_seed, interval in zip(positions, values, intervals):
            if per_seed is None or interval is None or interval.mean is None:
                continue
            points = [v for _, v in sorted(per_seed.items()) if v is not None]
            offsets = [0.25 * (i / max(1, len(points) - 1) - 0.5) for i in range(len(points))]  # spread, not random
            ax.scatter([x + o for o in offsets], points, s=14, color="tab:blue", alpha=0.6, linewidths=0)
            low = interval.mean if interval.low is None else interval.low
            high = interval.mean if interval.high is None else interval.high
            drawn_low, drawn_high = max(low, floor), min(high, ceiling)
            ax.errorbar(
                [x + 0.3],
                [interval.mean],
                yerr=[[interval.mean - drawn_low], [drawn_high - interval.mean]],
                fmt="o",
                color="black",
                capsize=4,
                markersize=5,
            )
            for cut, end, marker in ((low < floor, drawn_low, "v"), (high > ceiling, drawn_high, "^")):
                if cut:
                    ax.plot([x + 0.3], [end], marker=marker, color="black", markersize=5)
        if ax is right:
            ax.axhline(0.0, color="0.5", linewidth=0.8, linestyle="--")
        ax.set(ylabel=title, xlim=(-0.6, len(results) - 0.2))
        ax.tick_params(axis="x", bottom=False, labelbottom=False)
        ax.grid(axis="y", alpha=0.3)
        names = ax.secondary_xaxis("bottom")  # variant names (the figures' shared saver formats x as numbers)
        names.set_xticks(
            positions,
            [r.variant.title + (" (ref.)" if r.variant.reference else "") for r in results],
            rotation=20,
            ha="right",
            fontsize=8,
        )
    fig.suptitle(
        f"{study} study: dots are seeds; black: mean and 95% Student t-interval over seeds,\n"
        "drawn within the range of the values shown (▲/▼: it reaches past it; the table gives it whole)",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, out, study)


def provenance_text(p: dict[str, Any]) -> str:
    m = p["machine"]
    return (
        f"Made by `{p['command']}` at commit `{p['git_commit']}` on {p['date']}, on {m['processor']} with "
        f"{m['cpus']} CPUs ({m['platform']}, Python {m['python']}): {duration(p['wall_seconds'])} for this "
        f"invocation; the study's runs trained for {duration(p['runs_wall_seconds'])} in all (the sum of their "
        f"wall times, kept in their stores) at commit {', '.join(f'`{c}`' for c in p['run_commits'])}."
    )


def write_study(
    study: str,
    domain: str,
    metric: str,
    profile: str,
    config: Any,
    seeds: Sequence[int],
    results: Sequence[VariantResult],
    out: Path,
    provenance: dict[str, Any],
    known: Mapping[str, Schedule] | None = None,
) -> dict[str, Any]:
    """Write ``out`` (``DIR/STUDY``): the table as markdown, CSV and JSON, the figure and the README; the strategy
    study adds how greedy each variant was (``greed_table``) and, with ``known`` schedules, their figure."""
    out.mkdir(parents=True, exist_ok=True)
    results = in_value_order(study, results)
    reference_runs = next(r.runs for r in results if r.variant.reference).values()
    figure = plot_study(study, results, metric, out)
    if study == "strategy" and known:
        figure += plot_schedules(results, known, config.pbt.budget_steps, out)
    pbt = config.pbt
    table = {
        "study": study,
        "domain": domain,
        "metric": metric,
        "profile": profile,
        "seeds": list(seeds),
        "varied": VARIED[study],
        "reference_config": dataclasses.asdict(config),
        "variants": [r.to_dict() for r in results],
        "figure": figure,
        "provenance": provenance,
    }
    (out / "table.json").write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n")
    greed = ["", greed_table(results), GREED_NOTE, ""] if study == "strategy" else []
    (out / "table.md").write_text(markdown_table(results) + "\n".join(greed))
    (out / "table.csv").write_text(csv_table(results))
    png = next(f for f in figure if f.endswith(".png"))
    lines = [
        f"# {domain}: the {study} study ({profile} profile)",
        "",
        f"The paper: {FINDINGS[study]}",
        "",
        f"Each variant differs from the reference (PBT with the profile's settings) only in {VARIED[study]}; "
        f"every member trains {pbt.budget_steps} steps, ready every {pbt.ready_every}. Reference: population "
        f"{pbt.population}, exploit {pbt.exploit}, explore {pbt.explore}, transfer {pbt.transfer}, executor "
        f"{pbt.executor} (the full config is in `table.json`). Seeds: {', '.join(map(str, seeds))}.",
        "",
        provenance_text(provenance),
        "",
        markdown_table(results),
        TABLE_NOTE + (LOWER_NOTE if any(run_mode(run_meta(d)["config"]) == "min" for d in reference_runs) else ""),
        *greed,
        "",
        f"![{study}]({png})",
        *(["![schedules](schedules.png)", ""] if study == "strategy" and known else []),
        "",
        "Files: `table.md`, `table.csv`, `table.json` (with each seed's numbers and run directory), "
        f"`{study}.png` / `.svg`. The runs are in `../runs/`.",
        "",
    ]
    readme = out / "README.md"
    notes = readme.read_text().partition(NOTES_MARKER)[2] if readme.exists() else ""
    readme.write_text("\n".join(lines) + (f"\n{NOTES_MARKER}{notes}" if notes else ""))
    return table


def run_study(
    domain: Domain,
    name: str,
    config: Any,
    profile: str,
    study: str,
    seeds: Sequence[int],
    out: Path,
    values: Sequence[str] | None = None,
    force: bool = False,
    listeners_for: RunHook | None = None,
    command: str | None = None,
    trained: set[Path] | None = None,
    commit: str | None = None,
) -> dict[str, Any]:
    """Run (or continue) one study's runs into ``out/runs`` and write ``out/STUDY``; return its table.

    ``trained``: run directories already handled by this invocation (``--study all`` shares the reference runs), so a
    ``force`` replaces each run once. ``commit``: the code's commit, read once by an invocation that writes several
    studies (the files the first one writes would mark the tree dirty for the next); None reads it here."""
    started_at, t0 = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), time.perf_counter()
    commit = commit or git_commit()  # before this study rewrites its own files, which would mark the tree dirty
    variants = study_variants(study, config, values)
    trained = set() if trained is None else trained
    runs: dict[str, dict[int, Path]] = {v.name: {} for v in variants}
    for seed in seeds:
        for v in variants:  # the reference first: replay and final follow its run
            run_dir = out / "runs" / v.run_name(seed)
            if run_dir not in trained:
                run_variant(domain, name, v, config, seed, out / "runs", force, listeners_for)
                trained.add(run_dir)
            runs[v.name][seed] = run_dir
    known = None if domain.known_schedules is None else dict(domain.known_schedules(config))
    results = study_results(variants, runs, known)
    metric = str(load_run(runs[variants[0].name][seeds[0]]).meta.get("metric") or domain.metric)
    provenance = {
        "command": command or f"pbt-repro study {name} --study {study} --seeds {len(seeds)} --out {out}",
        "git_commit": commit,
        "machine": machine(),
        "date": started_at,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "runs_wall_seconds": round(sum(r.wall_seconds for r in results), 2),
        "run_commits": sorted({c for r in results for c in r.run_commits}),
    }
    return write_study(study, name, metric, profile, config, seeds, results, out / study, provenance, known)


def study_plan(
    domain: Domain,
    name: str,
    config: Any,
    studies: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    values: Sequence[str] | None = None,
    force: bool = False,
) -> str:
    """``study --dry-run``: every run the studies would train (each seed's reference run once), which of them
    ``out/runs`` already holds, and what the rest costs in member-steps and in runs of the reference's size; when some
    runs have finished, the wall time of the rest extrapolated from theirs (same machine assumed)."""
    pbt = config.pbt
    reference_steps = pbt.population * pbt.budget_steps
    lines, seen = (
        [
            f"plan: study {name} ({', '.join(studies)}), {len(seeds)} seed(s) "
            f"({', '.join(str(s) for s in seeds)}), into {out}"
        ],
        set(),
    )
    to_train, done_steps, done_seconds, refused = 0, 0, 0.0, 0
    for study in studies:
        for v in study_variants(study, config, values):
            population = int(v.overrides.get("population", pbt.population))
            steps = population * pbt.budget_steps  # a replay or final run has the reference's population
            for seed in seeds:
                run_dir = out / "runs" / v.run_name(seed)
                if run_dir in seen:
                    continue
                seen.add(run_dir)
                status, other = "to train", []
                if Store.exists(run_dir) and not force:
                    meta = run_meta(run_dir)
                    wanted = domain.resolve_mode(variant_config(v, config, seed))  # as open_experiment records it
                    other = run_differences(meta, name, v.method, wanted)
                    status = (
                        "another run"
                        if other
                        else "finished"
                        if meta.get("status") == "finished"
                        else f"to continue ({meta.get('status')})"
                    )
                    if status == "finished":
                        done_steps += steps
                        done_seconds += float(meta.get("wall_seconds") or 0.0)
                to_train += steps if status != "finished" else 0
                cost = f"{population} x {pbt.budget_steps:,} = {steps:,} steps,"
                lines.append(f"  {run_dir.name:<24} {cost:<28} {status:<11}  {study}: {v.title}")
                if other:
                    refused += 1
                    lines.append(f"    holds another run ({'; '.join(other[:2])}): the study would refuse it")
    if refused:
        lines.append(f"{refused} run folder(s) hold another run: choose another --out, or --force to replace them")
    lines.append(
        f"to train: {to_train:,} member-steps = {to_train / reference_steps:.2f} runs the size of the "
        f"reference ({pbt.population} x {pbt.budget_steps:,}); a continued run counts whole"
    )
    if done_steps and done_seconds:
        hours = to_train * done_seconds / done_steps / 3600
        lines.append(
            f"estimate from the {done_steps:,} finished member-steps here ({duration(done_seconds)}): about "
            f"{hours:.1f} h more on this machine"
        )
    if domain.estimate is not None:
        for key, value in domain.estimate(config).items():
            lines.append(f"estimate per reference run, {key}: {value}")
    return "\n".join(lines)
