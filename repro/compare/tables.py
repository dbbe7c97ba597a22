"""The comparison as tables: one row per run, the mean ± std per method, in Markdown and CSV."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pbt.rows import Mode
from pbt.stopping import describe
from repro.compare.runs import Run, run_greediness, spent_unequal
from repro.stats import mean_std
from repro.text import duration, fmt

METHOD_TITLES = {
    "pbt": "PBT",
    "pb2": "PB2",
    "fire": "FIRE PBT",
    "random_search": "random search",
    "grid_search": "grid search",
    "pbt-transfer-weights": "PBT, copying weights only",
    "pbt-transfer-hparams": "PBT, copying hyperparameters only",
    "replay": "PBT's schedule replayed from scratch",
    "final": "PBT's final hyperparameters from scratch",
}

# -- the table --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the comparison: a run, or the mean ± std of one method over several runs (seeds)."""

    label: str
    method: str
    domain: str
    seeds: list[int]
    population: int
    used_steps: float
    planned_steps: float
    wall_seconds: float
    best_final: float | None
    mean_final: float | None
    median_final: float | None
    finished: str  # members counted / population
    status: str
    best_final_std: float | None = None
    mean_final_std: float | None = None
    median_final_std: float | None = None
    per_seed_best: list[float] = field(default_factory=list)
    max_weight_age: int | None = None  # the most training any member's weights received (None: not recorded)
    min_weight_age: int | None = None  # the least training a finished member's weights received
    # per PBT seed, from pbt.diagnostics (both empty for a baseline, which copies nothing):
    coalescence_steps: list[int | None] = field(default_factory=list)  # None: the seed never coalesced
    lineages_at_end: list[int] = field(default_factory=list)  # founding members whose weights survive
    stop: str = ""  # why the run stopped before its budget (pbt.stopping), or how many of the method's runs did


def run_row(run: Run) -> Row:
    finals = run.finals
    best = run.best_member
    greedy = run_greediness(run)
    return Row(
        label=str(run.run_dir),
        method=run.method,
        domain=run.domain,
        seeds=[run.seed],
        population=len(run.members),
        used_steps=run.compute["used_steps"],
        planned_steps=run.compute["planned_steps"],
        wall_seconds=run.compute["wall_seconds"],
        best_final=None if best is None else best.score,
        mean_final=statistics.fmean(finals) if finals else None,
        median_final=statistics.median(finals) if finals else None,
        finished=f"{len(finals)}/{len(run.members)}",
        status=str(run.meta.get("status", "?")),
        per_seed_best=[] if best is None or best.score is None else [best.score],
        max_weight_age=run.compute.get("max_weight_age"),
        min_weight_age=run.compute.get("min_weight_age"),
        coalescence_steps=[] if greedy is None else [greedy.coalescence_step],
        lineages_at_end=[] if greedy is None else [greedy.lineages_at_end],
        stop="" if run.stop is None else describe(run.stop),
    )


def aggregate_row(method: str, rows: Sequence[Row]) -> Row:
    """Mean ± std (sample standard deviation) over the runs of one method; compute is the mean per run."""
    best, best_std = mean_std([r.best_final for r in rows])
    mean, mean_spread = mean_std([r.mean_final for r in rows])
    median, median_std = mean_std([r.median_final for r in rows])
    return Row(
        label=f"{METHOD_TITLES.get(method, method)}: mean ± std over {len(rows)} runs",
        method=method,
        domain=rows[0].domain,
        seeds=[s for r in rows for s in r.seeds],
        population=rows[0].population,
        used_steps=statistics.fmean(r.used_steps for r in rows),
        planned_steps=statistics.fmean(r.planned_steps for r in rows),
        wall_seconds=statistics.fmean(r.wall_seconds for r in rows),
        best_final=best,
        mean_final=mean,
        median_final=median,
        finished=", ".join(r.finished for r in rows),
        status=", ".join(sorted({r.status for r in rows})),
        best_final_std=best_std,
        mean_final_std=mean_spread,
        median_final_std=median_std,
        per_seed_best=[v for r in rows for v in r.per_seed_best],
        max_weight_age=max((r.max_weight_age for r in rows if r.max_weight_age is not None), default=None),
        min_weight_age=min((r.min_weight_age for r in rows if r.min_weight_age is not None), default=None),
        coalescence_steps=[s for r in rows for s in r.coalescence_steps],
        lineages_at_end=[n for r in rows for n in r.lineages_at_end],
        stop=f"{stopped} of {len(rows)} runs stopped early" if (stopped := sum(bool(r.stop) for r in rows)) else "",
    )


@dataclass
class Comparison:
    """What ``compare`` found and wrote."""

    domain: str
    metric: str
    mode: Mode
    runs: list[Run]
    rows: list[Row]  # one per run, then one aggregate per method with several runs
    equal_compute: bool
    figures: dict[str, list[str]]  # figure name -> files written (relative to the output directory)
    best_schedule: dict[str, Any] | None
    figure_seed: int | None = None  # the PBT run's seed the schedule, lineage, member-score and greediness figures show
    planned_equal: bool = True  # every run planned the same compute (equal_compute: and spent it, see spent_unequal)

    def method_runs(self, method: str) -> list[Run]:
        """The runs of ``method``; when there are none, the runs stored under that label (``pbt``: a reproduction of
        a copy ablation, ``pbt-transfer-weights``, against random search)."""
        return [r for r in self.runs if r.method == method] or [r for r in self.runs if r.label == method]

    def method_rows(self, method: str) -> list[Row]:
        """The run rows of ``method_runs(method)``."""
        chosen = {id(run) for run in self.method_runs(method)}
        return [row for row, run in zip(self.rows, self.runs) if id(run) in chosen]


def table_rows(runs: Sequence[Run]) -> list[Row]:
    rows = [run_row(r) for r in runs]
    for method in dict.fromkeys(r.method for r in runs):
        group = [row for row in rows if row.method == method]
        if len(group) > 1:
            rows.append(aggregate_row(method, group))
    return rows


def one_or_mean(values: Sequence[int]) -> float | None:
    """A single value as it is (a step stays an integer), the mean of several, None of none."""
    return values[0] if len(values) == 1 else statistics.fmean(values) if values else None


def coalescence(steps: Sequence[int | None]) -> tuple[float | None, str]:
    """Over the seeds given, the coalescence step (the mean over the seeds that coalesced; None if none did) and
    how many coalesced (``k/n``; empty without diagnostics)."""
    done = [s for s in steps if s is not None]
    return one_or_mean(done), f"{len(done)}/{len(steps)}" if steps else ""


def coalescence_text(steps: Sequence[int | None]) -> str:
    """One run's coalescence step (or never); over several seeds, the mean over those that coalesced and how many
    did; — without diagnostics (a baseline)."""
    if not steps:
        return "—"
    step, done = coalescence(steps)
    text = "never" if step is None else f"{step:.6g}"
    return text if len(steps) == 1 else f"{text} ({done} seeds)"


def lineages_text(counts: Sequence[int]) -> str:
    mean = one_or_mean(counts)
    return "—" if mean is None else f"{mean:.3g}"


def age_text(age: int | None) -> str:
    return "–" if age is None else f"{age:.6g}"


def better_text(mode: str) -> str:
    return "lower is better" if mode == "min" else "higher is better"


def markdown_table(comparison: Comparison, intro: bool = True) -> str:
    lines = (
        [
            f"Domain `{comparison.domain}`; metric: {comparison.metric} ({better_text(comparison.mode)}); compute: "
            "member-steps "
            "(population × steps per member) and wall time."
        ]
        if intro
        else []
    )
    if not comparison.planned_equal:
        lines.append(
            "\n**Unequal compute** (compared with `--allow-unequal`): the runs planned different budgets; "
            "see the planned column."
        )
    if spent_unequal(comparison.runs):
        lines.append(
            "\n**Unequal compute spent**: a run stopped early (a stop score or a time limit, see below the table) "
            "and the runs spent different compute; each is shown at the compute it spent (steps used, wall time), "
            "not at equal compute."
        )
    lines += [
        "",
        "| run | method | seed | population | steps used / planned | oldest weights | youngest weights | "
        "wall time | best final | "
        "population mean final | population median final | members counted | coalesced at step | "
        "lineages at end | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    run_rows = comparison.rows[: len(comparison.runs)]  # then the means over seeds
    for i, r in enumerate(comparison.rows):
        seeds = ", ".join(map(str, r.seeds))
        stop = "" if not r.stop else " (stopped)" if i < len(run_rows) else f" ({r.stop})"
        lines.append(
            f"| {r.label} | {METHOD_TITLES.get(r.method, r.method)} | {seeds} | {r.population} | "
            f"{r.used_steps:.6g} / {r.planned_steps:.6g} | "
            f"{age_text(r.max_weight_age)} | {age_text(r.min_weight_age)} | {duration(r.wall_seconds)} | "
            f"{fmt(r.best_final, r.best_final_std)} | {fmt(r.mean_final, r.mean_final_std)} | "
            f"{fmt(r.median_final, r.median_final_std)} | {r.finished} | {coalescence_text(r.coalescence_steps)} | "
            f"{lineages_text(r.lineages_at_end)} | {r.status}{stop} |"
        )
    stops = [f"- {r.label}: stopped early, {r.stop}" for r in run_rows if r.stop]
    if stops:
        lines += ["", "Stopped runs (no new interval started after the stop; those running finished):", *stops]
    lines.append(
        "\nFinal scores are each member's latest score (its own: a member does not exploit at the end of its "
        "budget); dropped or failed members are not counted. ± is the sample standard deviation over runs. "
        "Oldest weights: the most training any member's weights received through their copies (at most "
        "the steps one member trains); youngest weights: the least training a finished member's weights "
        "received (its steps, unless a copy took weights that had trained less). Coalesced at step: the "
        "first step from which on every PBT member's weights descend from one founding member, through "
        "copies (never: the run ended with several); "
        "lineages at end: how many founding members' weights survive; over several seeds, the mean over "
        "the seeds that coalesced (how many did) and the mean count; — for baselines, which copy nothing."
    )
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "row",
    "label",
    "method",
    "domain",
    "seeds",
    "population",
    "used_steps",
    "planned_steps",
    "wall_seconds",
    "best_final",
    "best_final_std",
    "mean_final",
    "mean_final_std",
    "median_final",
    "median_final_std",
    "members_counted",
    "status",
    "equal_compute",
    "max_weight_age",
    "min_weight_age",
    "coalescence_step",
    "coalesced_seeds",
    "lineages_at_end",
)


def csv_table(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i, r in enumerate(comparison.rows):
        blank = lambda v: "" if v is None else repr(v)  # noqa: E731 - repr keeps floats exact
        writer.writerow(
            [
                "run" if i < len(comparison.runs) else "mean_std",
                r.label,
                r.method,
                r.domain,
                " ".join(map(str, r.seeds)),
                r.population,
                r.used_steps,
                r.planned_steps,
                round(r.wall_seconds, 3),
                blank(r.best_final),
                blank(r.best_final_std),
                blank(r.mean_final),
                blank(r.mean_final_std),
                blank(r.median_final),
                blank(r.median_final_std),
                r.finished,
                f"{r.status} (stopped: {r.stop})" if r.stop else r.status,
                comparison.equal_compute,
                blank(r.max_weight_age),
                blank(r.min_weight_age),
                blank(coalescence(r.coalescence_steps)[0]),
                coalescence(r.coalescence_steps)[1],
                blank(one_or_mean(r.lineages_at_end)),
            ]
        )
    return buffer.getvalue()
