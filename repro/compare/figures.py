"""The comparison's figures: score against compute, the best member's schedule, the lineage tree, member scores,
greediness. matplotlib is imported only here, and only to draw; files come out byte for byte the same for the same
stores."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pbt.lineage import copies, hparam_history, lineage_copies, training_spans
from pbt.rows import EventKind
from repro.compare.runs import Run, best_lineage, progress_curve, run_greediness
from repro.compare.tables import METHOD_TITLES, fmt

FIGURES = ("score_vs_compute", "schedule", "lineage_tree", "member_scores", "greediness")
METHOD_COLOURS = {"pbt": "tab:blue", "pb2": "tab:purple", "random_search": "tab:orange", "grid_search": "tab:green"}
# score_vs_compute's y axis fits the best-so-far curves from this fraction of the compute on: the first evaluations
# (an accuracy at chance) would otherwise stretch it over the whole range and squeeze where the methods differ
FIT_FROM = 0.1

# -- figures ----------------------------------------------------------------------------------------------------


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files (imported on first use: only drawing needs it), with stable SVG ids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "pbt-repro"  # stable SVG ids: same run, same file
    return plt


def save_figure(fig: Any, out: Path, name: str) -> list[str]:
    """Write ``fig`` as ``out/NAME.png`` and ``.svg`` (the same figure gives the same bytes), close it and return the
    two file names."""
    from matplotlib.ticker import EngFormatter

    for ax in fig.axes:  # every x axis counts steps: 2.5M reads better than 2.5 with a detached "1e6"
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    # no date and no matplotlib version in the files: the same runs give the same bytes (svg.hashsalt: pyplot)
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
    written = []
    for ext in ("png", "svg"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=120, metadata=metadata[ext])
        written.append(path.name)
    pyplot().close(fig)
    return written


def step_on_grid(xs: Sequence[float], ys: Sequence[float], grid: Any, stopped_early: bool = False) -> Any:
    """A step function given at sorted points ``xs`` (a run's best so far), sampled at ``grid``: the value of the last
    point at or before each x, NaN before the first point (no score yet), the final value after the last one (a run
    that has ended keeps its best so far), unless the run ``stopped_early`` (a stop score or a time limit): it spent
    no compute beyond its last point, so it has no value there. This puts seeds with different x points onto one grid
    to average."""
    index = np.searchsorted(np.asarray(xs, dtype=float), grid, side="right") - 1
    values = np.asarray(ys, dtype=float)[np.clip(index, 0, None)]
    values[index < 0] = np.nan
    if stopped_early:
        values[np.asarray(grid, dtype=float) > xs[-1]] = np.nan
    return values


Curve = tuple[list[int], list[float], list[float], bool]  # compute, best so far, population median, stopped early


def _method_curves(runs: Sequence[Run]) -> dict[str, list[Curve]]:
    """The progress curves of the runs that have a score, by method in the order given, each with whether its run
    stopped early."""
    curves: dict[str, list[Curve]] = {}
    for run in runs:
        xs, best, median = progress_curve(run.scores, run.mode)
        if xs:
            curves.setdefault(run.method, []).append((xs, best, median, run.stop is not None))
    return curves


def _mark_stops(ax: Any, group: Sequence[Curve], colour: str, title: str) -> None:
    """An X where each run that stopped early ends: its spent compute and its best score by then."""
    ends = [(xs[-1], best[-1]) for xs, best, _, stopped in group if stopped]
    if ends:
        ax.plot(*zip(*ends), "X", color=colour, markersize=8, linestyle="none", label=f"{title}: stopped early")


def best_so_far_range(curves: dict[str, list[Curve]], start: float) -> tuple[float, float] | None:
    """The lowest and highest best-so-far score of any curve from compute ``start`` on (a best so far only moves one
    way, up or, under mode min, down: its value at ``start``, or its first one after, and its last bound it); None
    without curves."""
    ends: list[float] = []
    for group in curves.values():
        for xs, best, *_ in group:
            at_start = float(step_on_grid(xs, best, np.array([start]))[0])
            ends += [best[0] if np.isnan(at_start) else at_start, best[-1]]
    return (min(ends), max(ends)) if ends else None


def plot_score_vs_compute(runs: Sequence[Run], metric: str, out: Path) -> list[str]:
    """Per method: the best-so-far curve's mean over seeds (on a common grid of 200 compute points), the min–max band
    over seeds and each seed as a thin step line; dashed, the population median's mean over seeds. Where a seed has
    no score yet, the mean and band are left out (they are always over every seed of the method). Each run ends at the
    compute it spent; one that stopped early (a stop score or a time limit) is marked there with an X, and the mean and
    band end where the first seed of the method stopped. The y axis fits the best-so-far curves after the first
    ``FIT_FROM`` of the compute, with a margin of 5%: the early climb and a median below them run off the bottom."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    curves = _method_curves(runs)
    top = max((xs[-1] for group in curves.values() for xs, *_ in group), default=0)
    grid = np.linspace(0.0, float(top), 200)
    for method, group in curves.items():
        colour = METHOD_COLOURS.get(method, "tab:grey")
        title = METHOD_TITLES.get(method, method)
        if len(group) == 1:  # one seed: its own curves, nothing to average
            xs, best, median, _ = group[0]
            ax.plot(xs, best, color=colour, linewidth=1.6, drawstyle="steps-post", label=f"{title}: best so far")
            ax.plot(
                xs,
                median,
                color=colour,
                linewidth=1.0,
                linestyle="--",
                alpha=0.8,
                drawstyle="steps-post",
                label=f"{title}: population median",
            )
            _mark_stops(ax, group, colour, title)
            continue
        for i, (xs, best, *_) in enumerate(group):
            ax.plot(
                xs,
                best,
                color=colour,
                linewidth=0.6,
                alpha=0.45,
                drawstyle="steps-post",
                label=f"{title}: best so far, each seed" if i == 0 else None,
            )
        # NaN where a seed has no score yet, or has stopped early
        bests = np.vstack([step_on_grid(xs, best, grid, stopped) for xs, best, _, stopped in group])
        medians = np.vstack([step_on_grid(xs, median, grid, stopped) for xs, _, median, stopped in group])
        ax.fill_between(
            grid,
            bests.min(axis=0),
            bests.max(axis=0),
            color=colour,
            alpha=0.18,
            linewidth=0,
            label=f"{title}: best so far, min–max over seeds",
        )
        ax.plot(
            grid,
            bests.mean(axis=0),
            color=colour,
            linewidth=2.0,
            label=f"{title}: best so far, mean over {len(group)} seeds",
        )
        ax.plot(
            grid,
            medians.mean(axis=0),
            color=colour,
            linewidth=1.0,
            linestyle="--",
            alpha=0.8,
            label=f"{title}: population median, mean over seeds",
        )
        _mark_stops(ax, group, colour, title)
    planned = max(r.compute["planned_steps"] for r in runs)
    if planned:
        ax.axvline(planned, color="0.6", linewidth=0.8, linestyle=":")
    ax.set(
        xlabel="compute: member training steps, summed over the population",
        ylabel=axis_label(metric, runs[0].mode),
        title=f"{runs[0].domain}: best-so-far score against compute ("
        + ", ".join(f"{METHOD_TITLES.get(m, m)}: {len(g)} run{'s' if len(g) > 1 else ''}" for m, g in curves.items())
        + ")",
    )
    fitted = best_so_far_range(curves, FIT_FROM * top)
    if fitted is not None and fitted[1] > fitted[0]:
        margin = 0.05 * (fitted[1] - fitted[0])
        ax.set_ylim(fitted[0] - margin, fitted[1] + margin)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out, "score_vs_compute")


def axis_label(metric: str, mode: str) -> str:
    """A score axis's label: the metric, and under mode min that lower is better (the axis keeps the raw score)."""
    return f"{metric} (lower is better)" if mode == "min" else metric


def log_scaled(run: Run) -> set[str]:
    """The hyperparameters whose prior is log-uniform (drawn on a log axis), from the priors stored with the run. A
    reader never imports the task module a store names: a shared run directory must not be able to run code."""
    return {name for name, prior in run.meta["space"].items() if str(prior).startswith("loguniform:")}


def _numeric(values: Sequence[Any]) -> tuple[list[float], list[str] | None]:
    """Numbers as they are; categorical values as their position among the sorted distinct values (and the labels)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values], None
    labels = sorted({str(v) for v in values})
    return [float(labels.index(str(v))) for v in values], labels


def plot_schedule(run: Run, metric: str, out: Path) -> list[str]:
    plt = pyplot()
    found = best_lineage(run)
    names = sorted(run.members[0].hparams) if run.members else []
    fig, axes = plt.subplots(max(1, len(names)), 1, figsize=(8, 2.4 * max(1, len(names))), sharex=True, squeeze=False)
    if found is None or not names:
        axes[0][0].text(0.5, 0.5, "no scored member yet", ha="center", transform=axes[0][0].transAxes)
        return save_figure(fig, out, "schedule")
    best, segments = found
    spans = training_spans(segments)
    logs = log_scaled(run)
    initial = run.meta["initial_hparams"]
    for ax, name in zip((row[0] for row in axes), names):
        every: list[Any] = [h[name] for h in initial] + [s.hparams[name] for s in segments]
        every += [e.new_hparams[name] for e in run.events if e.new_hparams and name in e.new_hparams]
        _, labels = _numeric(every)
        to_y = float if labels is None else (lambda v, labels=labels: float(labels.index(str(v))))
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
        if labels is None and name in logs:
            ax.set_yscale("log")
        if labels is not None:
            ax.set_yticks(range(len(labels)), labels)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel(
        "step: red, training steps the final weights received along the lineage; grey, each member's own step",
        fontsize=9,
    )
    # wrapped: a long metric name (the GAN's) would run off the figure
    title = (
        f"{run.domain}: hyperparameter schedule of the final best member {best.id} ({metric} {fmt(best.score)}), "
        "followed back through its lineage (red); each member's own values in grey; dotted lines: copies"
    )
    fig.suptitle(textwrap.fill(title, 110), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, "schedule")


def plot_lineage_tree(run: Run, metric: str, out: Path) -> list[str]:
    plt = pyplot()
    n = len(run.members)
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.28 * n + 1.5)))
    for m in run.members:
        ax.plot([0, m.step], [m.id, m.id], color="0.75", linewidth=1.0, zorder=1)
    for c in copies(run.events):
        ax.annotate(
            "",
            xy=(c.step, c.member),
            xytext=(c.donor_step, c.donor),
            zorder=2,
            arrowprops={"arrowstyle": "->", "color": "0.55", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 0},
        )
    found = best_lineage(run)
    if found is not None:
        best, segments = found
        for s in segments:
            ax.plot([s.start, s.end], [s.member, s.member], color="tab:red", linewidth=2.4, zorder=3)
        for c in lineage_copies(segments):
            ax.plot([c.donor_step, c.step], [c.donor, c.member], color="tab:red", linewidth=1.6, zorder=3)
        ax.plot([best.step], [best.id], marker="*", markersize=12, color="tab:red", zorder=4)
    ax.set(
        xlabel="step",
        ylabel="member",
        ylim=(-0.7, n - 0.3),
        title=f"{run.domain}: lineage tree, {len(copies(run.events))} copies (grey arrows: donor → member)\n"
        "red: the lineage of the final best member (★)",
    )
    if n <= 40:
        ax.set_yticks(range(n))
    ax.invert_yaxis()
    fig.tight_layout()
    return save_figure(fig, out, "lineage_tree")


def plot_member_scores(run: Run, metric: str, out: Path) -> list[str]:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap("tab20" if len(run.members) > 10 else "tab10")
    for m in run.members:
        rows = sorted((s.step, s.score) for s in run.scores if s.member == m.id)
        if rows:
            xs, ys = zip(*rows)
            ax.plot(xs, ys, color=cmap(m.id % cmap.N), linewidth=1.0, label=f"member {m.id}")
    exploits = [e for e in run.events if e.kind == EventKind.EXPLOIT]
    for e in exploits:
        colour = cmap(e.member % cmap.N)
        if e.score is not None and e.donor_score is not None:
            ax.plot([e.step, e.step], [e.score, e.donor_score], color=colour, linewidth=0.6, linestyle=":")
            ax.plot([e.step], [e.donor_score], marker="^", markersize=4, color=colour)
        if e.score is not None:
            ax.plot([e.step], [e.score], marker="o", markersize=3, color=colour, markerfacecolor="none")
    ax.set(
        xlabel="step",
        ylabel=axis_label(metric, run.mode),
        title=f"{run.domain}: each member's score, {len(exploits)} exploit events\n"
        "○ the member's score before the copy, ▲ the donor's score it took over",
    )
    ax.grid(alpha=0.3)
    if len(ax.get_lines()) > 0 and len(run.members) <= 20:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, out, "member_scores")


def plot_greediness(run: Run, metric: str, out: Path) -> list[str]:
    """How greedy the run was (``pbt.diagnostics``), in one figure: the founding lineages alive over time with the
    coalescence step, the fraction of the population replaced in each ready round, and each numeric
    hyperparameter's min–max band and median over the population (on a log axis for a log-uniform prior)."""
    plt = pyplot()
    found = run_greediness(run)
    names = sorted(found.spread) if found is not None else []
    fig, axes = plt.subplots(2 + len(names), 1, figsize=(8, 2.2 * (2 + len(names)) + 0.6), sharex=True, squeeze=False)
    axes = [row[0] for row in axes]
    if found is None:
        axes[0].text(
            0.5,
            0.5,
            "no diagnostics: not a PBT run, or a store without its initial hyperparameters",
            ha="center",
            transform=axes[0].transAxes,
        )
        return save_figure(fig, out, "greediness")
    end = max(m.step for m in run.members)
    steps, alive = zip(*found.lineages_alive)
    axes[0].step([*steps, end], [*alive, alive[-1]], where="post", color="tab:blue", linewidth=1.6)
    if found.coalescence_step is not None:
        axes[0].axvline(
            found.coalescence_step,
            color="tab:red",
            linewidth=0.8,
            linestyle=":",
            label=f"coalesced at step {found.coalescence_step}",
        )
        axes[0].legend(fontsize=8)
    axes[0].set(ylabel="founding lineages\nalive", ylim=(0, found.population + 0.5))
    axes[0].yaxis.get_major_locator().set_params(integer=True)
    if found.replaced:
        rounds, fractions = zip(*found.replaced)
        axes[1].bar(rounds, fractions, width=0.8 * found.ready_every, align="edge", color="tab:orange")
    axes[1].set(ylabel="fraction replaced\nper ready round", ylim=(0, 1.05))
    logs = log_scaled(run)
    for ax, name in zip(axes[2:], names):
        xs, low, median, high = zip(*found.spread[name])
        ax.fill_between(xs, low, high, step="post", color="tab:green", alpha=0.25, linewidth=0, label="min–max")
        ax.step(xs, median, where="post", color="tab:green", linewidth=1.4, label="median")
        if name in logs:
            ax.set_yscale("log")
        ax.set_ylabel(name)
    if names:
        axes[2].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step (each event at the step of the member that made it: the copier's own step)", fontsize=9)
    ending = (
        f"coalesced to one founder at step {found.coalescence_step}"
        if found.coalescence_step is not None
        else f"{found.lineages_at_end} founding lineages alive at the end"
    )
    title = (
        f"{run.domain}: greediness of PBT seed {run.seed} ({found.population} members, {ending}): founding "
        "lineages alive, fraction of the population whose weights were replaced per ready round, and the "
        "population's spread of each hyperparameter"
    )
    fig.suptitle(textwrap.fill(title, 110), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, "greediness")
