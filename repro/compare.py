"""Compare runs read from their stores: did PBT beat random search at equal compute, and what schedule did it find?

    pbt-repro compare RUN_DIR [RUN_DIR ...] --out DIR [--allow-unequal]

Reads finished or still-running run directories (it never trains anything) and writes into ``--out``:

- ``comparison.md`` and ``comparison.csv``: one row per run (method, domain, seed, population, compute used, the best
  member's final score, the population's mean and median final score), plus mean ± std across seeds for each method
  given more than one run;
- four figures, each as PNG and SVG: ``score_vs_compute`` (every method in one figure: the best-so-far score against
  compute, its mean over seeds with the min–max band over seeds and each seed as a thin line, and the population
  median's mean over seeds), and for one PBT run: ``schedule`` (the hyperparameters of the final best member
  followed back through its lineage, over every member's own values in light grey), ``lineage_tree`` (the phylogeny:
  members as lines, copies as edges, the final best lineage highlighted) and ``member_scores`` (each member's score
  over its steps, exploit events marked). That run is the PBT run of ``--seed``, by default the seed whose best final
  score is the median over the PBT runs (``median_seed``), so the figures show a typical run rather than the luckiest;
- ``best_schedule.json``: that lineage as data (who trained which stretch, from which step to which, with what), with
  the run's seed.

Runs of different domains are never compared; runs that planned different compute (population × steps per member)
are refused unless ``allow_unequal``, and the table then says so. matplotlib is imported only to draw.

The same stores give the same files, byte for byte: figures are saved without dates or version strings, and SVG ids
come from a fixed salt.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pbt.lineage import Segment, copies, hparam_history, lineage, lineage_copies, training_spans
from pbt.space import ConfigError
from pbt.store import Event, MemberRow, ScoreRow, Store

FIGURES = ("score_vs_compute", "schedule", "lineage_tree", "member_scores")
METHOD_TITLES = {"pbt": "PBT", "random_search": "random search", "grid_search": "grid search"}
METHOD_COLOURS = {"pbt": "tab:blue", "random_search": "tab:orange", "grid_search": "tab:green"}
FINAL_STATES = ("pending", "done")  # members whose latest score counts as a final score (dropped/failed do not)


@dataclass
class Run:
    """Everything ``compare`` needs from one run directory, read once (the store is closed afterwards)."""

    run_dir: Path
    meta: dict[str, Any]
    members: list[MemberRow]
    scores: list[ScoreRow]
    events: list[Event]
    compute: dict[str, Any]

    @property
    def domain(self) -> str:
        return str(self.meta.get("domain", "?"))

    @property
    def method(self) -> str:
        return str(self.meta.get("method", "?"))

    @property
    def seed(self) -> int:
        return int(self.meta.get("seed", self.meta.get("config", {}).get("pbt", {}).get("seed", 0)))

    @property
    def finals(self) -> list[float]:
        """The latest score of every member still in the population (a finished run: each member's final score)."""
        return [m.score for m in self.members if m.score is not None and m.status in FINAL_STATES]

    @property
    def best_member(self) -> MemberRow | None:
        scored = [m for m in self.members if m.score is not None and m.status in FINAL_STATES]
        return max(scored, key=lambda m: (m.score, -m.id)) if scored else None  # type: ignore[arg-type]


def load_run(run_dir: Path | str) -> Run:
    """Read a run directory's store into memory (safe while another process is still writing it)."""
    store = Store.open_existing(run_dir)
    try:
        return Run(run_dir=Path(run_dir), meta=store.meta(), members=store.members(), scores=store.scores(),
                   events=store.events(), compute=store.compute())
    finally:
        store.close()


def domain_metric(run: Run) -> str:
    """What the run's score means, as recorded with it (``"score"`` for a store that does not say)."""
    return str(run.meta.get("metric") or "score")


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


def run_row(run: Run) -> Row:
    finals = run.finals
    best = run.best_member
    return Row(label=str(run.run_dir), method=run.method, domain=run.domain, seeds=[run.seed],
               population=len(run.members), used_steps=run.compute["used_steps"],
               planned_steps=run.compute["planned_steps"], wall_seconds=run.compute["wall_seconds"],
               best_final=None if best is None else best.score,
               mean_final=statistics.fmean(finals) if finals else None,
               median_final=statistics.median(finals) if finals else None,
               finished=f"{len(finals)}/{len(run.members)}", status=str(run.meta.get("status", "?")),
               per_seed_best=[] if best is None or best.score is None else [best.score],
               max_weight_age=run.compute.get("max_weight_age"))


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), (statistics.stdev(present) if len(present) > 1 else 0.0)


def aggregate_row(method: str, rows: Sequence[Row]) -> Row:
    """Mean ± std (sample standard deviation) over the runs of one method; compute is the mean per run."""
    best, best_std = _mean_std([r.best_final for r in rows])
    mean, mean_std = _mean_std([r.mean_final for r in rows])
    median, median_std = _mean_std([r.median_final for r in rows])
    return Row(label=f"{METHOD_TITLES.get(method, method)}: mean ± std over {len(rows)} runs", method=method,
               domain=rows[0].domain, seeds=[s for r in rows for s in r.seeds], population=rows[0].population,
               used_steps=statistics.fmean(r.used_steps for r in rows),
               planned_steps=statistics.fmean(r.planned_steps for r in rows),
               wall_seconds=statistics.fmean(r.wall_seconds for r in rows), best_final=best, mean_final=mean,
               median_final=median, finished=", ".join(r.finished for r in rows),
               status=", ".join(sorted({r.status for r in rows})), best_final_std=best_std, mean_final_std=mean_std,
               median_final_std=median_std, per_seed_best=[v for r in rows for v in r.per_seed_best],
               max_weight_age=max((r.max_weight_age for r in rows if r.max_weight_age is not None), default=None))


def fmt(value: float | None, std: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.4g}"
    return text if std is None else f"{text} ± {std:.2g}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def check_comparable(runs: Sequence[Run], allow_unequal: bool = False) -> bool:
    """Raise ``ConfigError`` for runs of different domains, or of unequal planned compute unless ``allow_unequal``.

    Returns:
        Whether every run planned the same compute.
    """
    if not runs:
        raise ConfigError("no runs to compare")
    domains = sorted({r.domain for r in runs})
    if len(domains) > 1:
        raise ConfigError(f"cannot compare runs of different domains ({', '.join(domains)}): their scores measure "
                          "different things")
    planned = {str(r.run_dir): r.compute["planned_steps"] for r in runs}
    equal = len(set(planned.values())) == 1
    if not equal and not allow_unequal:
        plans = ", ".join(f"{d} plans {p}" for d, p in planned.items())
        raise ConfigError(f"unequal compute (member-steps = population × steps per member): {plans}; pass "
                          "--allow-unequal to compare anyway")
    mislabelled = [f"{r.run_dir} ({r.method})" for r in runs
                   if r.method in ("random_search", "grid_search") and any(e.kind in ("exploit", "explore")
                                                                            for e in r.events)]
    if mislabelled:
        raise ConfigError(f"{', '.join(mislabelled)}: labelled a baseline but its events show exploits or explores; "
                          "its label and what it did disagree, so it is not compared")
    over = over_trained(runs)
    if over and not allow_unequal:
        raise ConfigError(f"{'; '.join(over)}: more training than any member of the comparison ran; pass "
                          "--allow-unequal to compare anyway")
    return equal and not over


def over_trained(runs: Sequence[Run]) -> list[str]:
    """Runs whose weights received more training than any member slot of the comparison trained: a member's weights
    may only be as old as the most training one member could do alone (per-member equal compute, not just equal
    totals). A store written before weight ages were recorded cannot show it either way and is not flagged here."""
    ceiling = max(r.compute.get("max_member_steps", 0) for r in runs)
    return [f"{r.run_dir}: weights trained for {r.compute['max_weight_age']} steps (ceiling {ceiling})"
            for r in runs if (r.compute.get("max_weight_age") or 0) > ceiling]


@dataclass
class Comparison:
    """What ``compare`` found and wrote."""

    domain: str
    metric: str
    runs: list[Run]
    rows: list[Row]  # one per run, then one aggregate per method with several runs
    equal_compute: bool
    figures: dict[str, list[str]]  # figure name -> files written (relative to the output directory)
    best_schedule: dict[str, Any] | None
    figure_seed: int | None = None  # the seed of the PBT run the schedule, lineage and member-score figures show

    def method_rows(self, method: str) -> list[Row]:
        return [r for r in self.rows[: len(self.runs)] if r.method == method]


def table_rows(runs: Sequence[Run]) -> list[Row]:
    rows = [run_row(r) for r in runs]
    for method in dict.fromkeys(r.method for r in runs):
        group = [row for row in rows if row.method == method]
        if len(group) > 1:
            rows.append(aggregate_row(method, group))
    return rows


def markdown_table(comparison: Comparison, intro: bool = True) -> str:
    lines = [f"Domain `{comparison.domain}`; metric: {comparison.metric} (higher is better); compute: member-steps "
             "(population × steps per member) and wall time."] if intro else []
    if not comparison.equal_compute:
        lines.append("\n**Unequal compute** (compared with `--allow-unequal`): the runs planned different budgets; "
                     "see the planned column.")
    lines += ["", "| run | method | seed | population | steps used / planned | oldest weights | wall time | best final | "
              "population mean final | population median final | members counted | status |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in comparison.rows:
        seeds = ", ".join(map(str, r.seeds))
        lines.append(
            f"| {r.label} | {METHOD_TITLES.get(r.method, r.method)} | {seeds} | {r.population} | "
            f"{r.used_steps:.6g} / {r.planned_steps:.6g} | "
            f"{'–' if r.max_weight_age is None else f'{r.max_weight_age:.6g}'} | {duration(r.wall_seconds)} | "
            f"{fmt(r.best_final, r.best_final_std)} | {fmt(r.mean_final, r.mean_final_std)} | "
            f"{fmt(r.median_final, r.median_final_std)} | {r.finished} | {r.status} |")
    lines.append("\nFinal scores are each member's latest score (its own: a member does not exploit at the end of its "
                 "budget); dropped or failed members are not counted. ± is the sample standard deviation over runs. "
                 "Oldest weights: the most training any member's weights received through their copies (at most "
                 "the steps one member trains).")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("row", "label", "method", "domain", "seeds", "population", "used_steps", "planned_steps",
               "wall_seconds", "best_final", "best_final_std", "mean_final", "mean_final_std", "median_final",
               "median_final_std", "members_counted", "status", "equal_compute", "max_weight_age")


def csv_table(comparison: Comparison) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i, r in enumerate(comparison.rows):
        blank = lambda v: "" if v is None else repr(v)  # noqa: E731 - repr keeps floats exact
        writer.writerow(["run" if i < len(comparison.runs) else "mean_std", r.label, r.method, r.domain,
                         " ".join(map(str, r.seeds)), r.population, r.used_steps, r.planned_steps,
                         round(r.wall_seconds, 3), blank(r.best_final), blank(r.best_final_std), blank(r.mean_final),
                         blank(r.mean_final_std), blank(r.median_final), blank(r.median_final_std), r.finished,
                         r.status, comparison.equal_compute, blank(r.max_weight_age)])
    return buffer.getvalue()


# -- curves and lineages as data --------------------------------------------------------------------------------


def progress_curve(scores: Sequence[ScoreRow]) -> tuple[list[int], list[float], list[float]]:
    """Best-so-far and population-median score against compute, from a run's scores in recorded order.

    Compute at a score is the sum over members of the latest step each had reported by then; the median is over
    each member's latest score.
    """
    latest_step: dict[int, int] = {}
    latest_score: dict[int, float] = {}
    xs: list[int] = []
    best: list[float] = []
    median: list[float] = []
    for s in sorted(scores, key=lambda s: (s.time, s.member, s.step)):
        latest_step[s.member] = max(latest_step.get(s.member, 0), s.step)
        latest_score[s.member] = s.score
        xs.append(sum(latest_step.values()))
        best.append(max(s.score, best[-1]) if best else s.score)
        median.append(statistics.median(latest_score.values()))
    return xs, best, median


def best_lineage(run: Run) -> tuple[MemberRow, list[Segment]] | None:
    """The final best member of ``run`` and the segments of its lineage (None when no member has a score)."""
    best = run.best_member
    if best is None:
        return None
    initial = run.meta.get("initial_hparams") or []
    if len(initial) != len(run.members):  # runs made before initial_hparams was recorded: unknown starting points
        return None
    return best, lineage(best.id, initial, run.events, {m.id: m.step for m in run.members})


# -- figures ----------------------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "pbt-repro"  # stable SVG ids: same run, same file
    return plt


def _save(fig: Any, out: Path, name: str) -> list[str]:
    from matplotlib.ticker import EngFormatter

    for ax in fig.axes:  # every x axis counts steps: 2.5M reads better than 2.5 with a detached "1e6"
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    # no date and no matplotlib version in the files: the same runs give the same bytes (svg.hashsalt: _pyplot)
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
    written = []
    for ext in ("png", "svg"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=120, metadata=metadata[ext])
        written.append(path.name)
    _pyplot().close(fig)
    return written


def step_on_grid(xs: Sequence[float], ys: Sequence[float], grid: Any) -> Any:
    """A step function given at sorted points ``xs`` (a run's best so far), sampled at ``grid``: the value of the last
    point at or before each x, NaN before the first point (no score yet), the final value after the last one (a run
    that has stopped keeps its best so far). This puts seeds with different x points onto one grid to average."""
    import numpy as np

    index = np.searchsorted(np.asarray(xs, dtype=float), grid, side="right") - 1
    values = np.asarray(ys, dtype=float)[np.clip(index, 0, None)]
    values[index < 0] = np.nan
    return values


def _method_curves(runs: Sequence[Run]) -> dict[str, list[tuple[list[int], list[float], list[float]]]]:
    """The progress curves of the runs that have a score, by method in the order given."""
    curves: dict[str, list[tuple[list[int], list[float], list[float]]]] = {}
    for run in runs:
        curve = progress_curve(run.scores)
        if curve[0]:
            curves.setdefault(run.method, []).append(curve)
    return curves


def plot_score_vs_compute(runs: Sequence[Run], metric: str, out: Path) -> list[str]:
    """Per method: the best-so-far curve's mean over seeds (on a common grid of 200 compute points), the min–max band
    over seeds and each seed as a thin step line; dashed, the population median's mean over seeds. Where a seed has
    no score yet, the mean and band are left out (they are always over every seed of the method)."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    curves = _method_curves(runs)
    top = max((xs[-1] for group in curves.values() for xs, _, _ in group), default=0)
    grid = np.linspace(0.0, float(top), 200)
    for method, group in curves.items():
        colour = METHOD_COLOURS.get(method, "tab:grey")
        title = METHOD_TITLES.get(method, method)
        if len(group) == 1:  # one seed: its own curves, nothing to average
            xs, best, median = group[0]
            ax.plot(xs, best, color=colour, linewidth=1.6, drawstyle="steps-post", label=f"{title}: best so far")
            ax.plot(xs, median, color=colour, linewidth=1.0, linestyle="--", alpha=0.8, drawstyle="steps-post",
                    label=f"{title}: population median")
            continue
        for i, (xs, best, _) in enumerate(group):
            ax.plot(xs, best, color=colour, linewidth=0.6, alpha=0.45, drawstyle="steps-post",
                    label=f"{title}: best so far, each seed" if i == 0 else None)
        bests = np.vstack([step_on_grid(xs, best, grid) for xs, best, _ in group])  # NaN where a seed has none yet
        medians = np.vstack([step_on_grid(xs, median, grid) for xs, _, median in group])
        ax.fill_between(grid, bests.min(axis=0), bests.max(axis=0), color=colour, alpha=0.18, linewidth=0,
                        label=f"{title}: best so far, min–max over seeds")
        ax.plot(grid, bests.mean(axis=0), color=colour, linewidth=2.0,
                label=f"{title}: best so far, mean over {len(group)} seeds")
        ax.plot(grid, medians.mean(axis=0), color=colour, linewidth=1.0, linestyle="--", alpha=0.8,
                label=f"{title}: population median, mean over seeds")
    planned = max(r.compute["planned_steps"] for r in runs)
    if planned:
        ax.axvline(planned, color="0.6", linewidth=0.8, linestyle=":")
    ax.set(xlabel="compute: member training steps, summed over the population", ylabel=metric,
           title=f"{runs[0].domain}: best-so-far score against compute (" + ", ".join(
               f"{METHOD_TITLES.get(m, m)}: {len(g)} run{'s' if len(g) > 1 else ''}" for m, g in curves.items()) + ")")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out, "score_vs_compute")


def log_scaled(run: Run) -> set[str] | None:
    """The hyperparameters whose prior is log-uniform (drawn on a log axis), from the priors stored with the run;
    None for a store that does not hold them (values are then drawn as they are)."""
    space = run.meta.get("space")
    if not isinstance(space, dict):
        return None
    return {name for name, prior in space.items() if str(prior).startswith("loguniform:")}


def _numeric(values: Sequence[Any]) -> tuple[list[float], list[str] | None]:
    """Numbers as they are; categorical values as their position among the sorted distinct values (and the labels)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values], None
    labels = sorted({str(v) for v in values})
    return [float(labels.index(str(v))) for v in values], labels


def plot_schedule(run: Run, metric: str, out: Path) -> list[str]:
    plt = _pyplot()
    found = best_lineage(run)
    names = sorted(run.members[0].hparams) if run.members else []
    fig, axes = plt.subplots(max(1, len(names)), 1, figsize=(8, 2.4 * max(1, len(names))), sharex=True, squeeze=False)
    if found is None or not names:
        axes[0][0].text(0.5, 0.5, "no scored member yet", ha="center", transform=axes[0][0].transAxes)
        return _save(fig, out, "schedule")
    best, segments = found
    spans = training_spans(segments)
    logs = log_scaled(run)
    initial = run.meta["initial_hparams"]
    for ax, name in zip((row[0] for row in axes), names):
        every: list[Any] = [h[name] for h in initial] + [s.hparams[name] for s in segments]
        every += [e.new_hparams[name] for e in run.events if e.new_hparams and name in e.new_hparams]
        _, labels = _numeric(every)
        to_y = (lambda v: float(v)) if labels is None else (lambda v: float(labels.index(str(v))))  # noqa: E731
        for m in run.members:
            history = hparam_history(m.id, initial, run.events)
            xs, ys = [], []
            for (start, h), (stop, _) in zip(history, history[1:] + [(m.step, {})]):
                xs += [start, max(start, stop)]
                ys += [to_y(h[name])] * 2
            ax.plot(xs, ys, color="0.8", linewidth=0.8, zorder=1)
        xs, ys = [], []
        for s, (start, stop) in zip(segments, spans):
            xs += [start, stop]
            ys += [to_y(s.hparams[name])] * 2
        ax.plot(xs, ys, color="tab:red", linewidth=1.8, zorder=3)
        for a, (b, (start, _)) in zip(segments, zip(segments[1:], spans[1:])):
            if a.member != b.member:  # a copy
                ax.axvline(start, color="tab:red", linewidth=0.5, linestyle=":", zorder=2)
        numbers = [v for v in every if isinstance(v, (int, float))]
        spread = bool(numbers) and min(numbers) > 0 and max(numbers) / min(numbers) >= 20
        if labels is None and (name in logs if logs is not None else spread):
            ax.set_yscale("log")
        if labels is not None:
            ax.set_yticks(range(len(labels)), labels)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("step: red, training steps the final weights received along the lineage; "
                           "grey, each member's own step", fontsize=9)
    # wrapped: a long metric name (the GAN's) would run off the figure
    title = (f"{run.domain}: hyperparameter schedule of the final best member {best.id} ({metric} {fmt(best.score)}), "
             "followed back through its lineage (red); each member's own values in grey; dotted lines: copies")
    fig.suptitle(textwrap.fill(title, 110), fontsize=10)
    fig.tight_layout()
    return _save(fig, out, "schedule")


def plot_lineage_tree(run: Run, metric: str, out: Path) -> list[str]:
    plt = _pyplot()
    n = len(run.members)
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.28 * n + 1.5)))
    for m in run.members:
        ax.plot([0, m.step], [m.id, m.id], color="0.75", linewidth=1.0, zorder=1)
    for c in copies(run.events):
        ax.annotate("", xy=(c.step, c.member), xytext=(c.donor_step, c.donor), zorder=2,
                    arrowprops={"arrowstyle": "->", "color": "0.55", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 0})
    found = best_lineage(run)
    if found is not None:
        best, segments = found
        for s in segments:
            ax.plot([s.start, s.end], [s.member, s.member], color="tab:red", linewidth=2.4, zorder=3)
        for c in lineage_copies(segments):
            ax.plot([c.donor_step, c.step], [c.donor, c.member], color="tab:red", linewidth=1.6, zorder=3)
        ax.plot([best.step], [best.id], marker="*", markersize=12, color="tab:red", zorder=4)
    ax.set(xlabel="step", ylabel="member", ylim=(-0.7, n - 0.3),
           title=f"{run.domain}: lineage tree, {len(copies(run.events))} copies (grey arrows: donor → member)\n"
                 "red: the lineage of the final best member (★)")
    if n <= 40:
        ax.set_yticks(range(n))
    ax.invert_yaxis()
    fig.tight_layout()
    return _save(fig, out, "lineage_tree")


def plot_member_scores(run: Run, metric: str, out: Path) -> list[str]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap("tab20" if len(run.members) > 10 else "tab10")
    for m in run.members:
        rows = sorted((s.step, s.score) for s in run.scores if s.member == m.id)
        if rows:
            xs, ys = zip(*rows)
            ax.plot(xs, ys, color=cmap(m.id % cmap.N), linewidth=1.0, label=f"member {m.id}")
    exploits = [e for e in run.events if e.kind == "exploit"]
    for e in exploits:
        colour = cmap(e.member % cmap.N)
        if e.score is not None and e.donor_score is not None:
            ax.plot([e.step, e.step], [e.score, e.donor_score], color=colour, linewidth=0.6, linestyle=":")
            ax.plot([e.step], [e.donor_score], marker="^", markersize=4, color=colour)
        if e.score is not None:
            ax.plot([e.step], [e.score], marker="o", markersize=3, color=colour, markerfacecolor="none")
    ax.set(xlabel="step", ylabel=metric, title=f"{run.domain}: each member's score, {len(exploits)} exploit events\n"
           "○ the member's score before the copy, ▲ the donor's score it took over")
    ax.grid(alpha=0.3)
    if 0 < len(ax.get_lines()) and len(run.members) <= 20:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save(fig, out, "member_scores")


# -- the command ------------------------------------------------------------------------------------------------


def median_seed(best_by_seed: Mapping[int, float | None]) -> int | None:
    """The seed whose best final score is the median: the lower median for an even count, equal scores ordered by
    seed. Seeds without a score are passed over; None when no seed has one."""
    ranked = sorted((score, seed) for seed, score in best_by_seed.items() if score is not None)
    return ranked[(len(ranked) - 1) // 2][1] if ranked else None


def figure_run(runs: Sequence[Run], seed: int | None = None) -> Run | None:
    """The PBT run the schedule, lineage and member-score figures show: the one of ``seed``, by default the median
    seed by best final score (the first PBT run when none has a score yet); None without PBT runs."""
    pbt_runs = [r for r in runs if r.method == "pbt"]
    if seed is None:
        best = {r.seed: None if r.best_member is None else r.best_member.score for r in pbt_runs}
        seed = median_seed(best)
        return next((r for r in pbt_runs if r.seed == seed), pbt_runs[0] if pbt_runs else None)
    chosen = next((r for r in pbt_runs if r.seed == seed), None)
    if chosen is None:
        have = ", ".join(str(r.seed) for r in pbt_runs) or "none"
        raise ConfigError(f"no PBT run of seed {seed} to draw the figures from (PBT seeds: {have})")
    return chosen


def compare(run_dirs: Sequence[Path | str], out: Path | str, allow_unequal: bool = False,
            metric: str | None = None, figures: bool = True, seed: int | None = None) -> Comparison:
    """Compare runs and write the tables and figures into ``out`` (see the module docstring).

    Args:
        run_dirs: Run directories (PBT, random search, grid search; any number of seeds each).
        out: Output directory; created if missing. Files of the same names are overwritten.
        allow_unequal: Compare runs that planned different compute (the table says so).
        metric: The score's name for labels; by default the domain module's ``METRIC``.
        figures: Draw the figures (False: the tables and ``best_schedule.json`` only).
        seed: The seed of the PBT run the schedule, lineage and member-score figures and ``best_schedule.json`` show
            (default: the median seed by best final score, see ``figure_run``).

    Returns:
        The comparison: rows, figures written, the chosen PBT run's seed and its best member's schedule.
    """
    runs = [load_run(d) for d in run_dirs]
    equal = check_comparable(runs, allow_unequal)
    run = figure_run(runs, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metric = metric or domain_metric(runs[0])
    drawn = {"score_vs_compute": plot_score_vs_compute(runs, metric, out)} if figures else {}
    best_schedule = None
    if run is not None:
        if figures:
            drawn["schedule"] = plot_schedule(run, metric, out)
            drawn["lineage_tree"] = plot_lineage_tree(run, metric, out)
            drawn["member_scores"] = plot_member_scores(run, metric, out)
        found = best_lineage(run)
        if found is not None:
            best, segments = found
            best_schedule = {"run": str(run.run_dir), "seed": run.seed, "member": best.id, "score": best.score,
                             "segments": [asdict(s) | {"trained_from": a, "trained_to": b}
                                          for s, (a, b) in zip(segments, training_spans(segments))]}
            (out / "best_schedule.json").write_text(json.dumps(best_schedule, indent=2) + "\n")
    comparison = Comparison(domain=runs[0].domain, metric=metric, runs=runs, rows=table_rows(runs),
                            equal_compute=equal, figures=drawn, best_schedule=best_schedule,
                            figure_seed=None if run is None else run.seed)
    (out / "comparison.md").write_text(markdown_table(comparison))
    (out / "comparison.csv").write_text(csv_table(comparison))
    return comparison


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="pbt-repro compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories (finished or still running)")
    parser.add_argument("--out", type=Path, required=True, help="where the tables and figures go")
    parser.add_argument("--allow-unequal", action="store_true", help="compare runs that planned different compute")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")
    parser.add_argument("--seed", type=int, default=None, help="the PBT run (by seed) the schedule, lineage and "
                        "member-score figures show (default: the median seed by best final score)")
    args = parser.parse_args(argv)
    comparison = compare(args.run_dirs, args.out, args.allow_unequal, figures=not args.no_figures, seed=args.seed)
    print(markdown_table(comparison))
    files = [f for names in comparison.figures.values() for f in names]
    print(f"wrote {args.out / 'comparison.md'}, {args.out / 'comparison.csv'} and {', '.join(files)} in {args.out}")
    if not args.no_figures and "schedule" not in comparison.figures:
        print("no PBT run given: the schedule, lineage and member-score figures need one")
    return 0
