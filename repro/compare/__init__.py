"""Compare runs read from their stores: did PBT beat random search at equal compute, and what schedule did it find?

    pbt-repro compare RUN_DIR [RUN_DIR ...] --out DIR [--allow-unequal]

Reads finished or still-running run directories (it never trains anything) and writes into ``--out``:

- ``comparison.md`` and ``comparison.csv``: one row per run (method, domain, seed, population, compute used, the best
  member's final score, the population's mean and median final score; for a PBT run, the step its population
  coalesced to one founding lineage and how many lineages are alive at the end), plus mean ± std across seeds for
  each method given more than one run;
- five figures, each as PNG and SVG: ``score_vs_compute`` (every method in one figure: the best-so-far score against
  compute, its mean over seeds with the min–max band over seeds and each seed as a thin line, and the population
  median's mean over seeds), and for one PBT run: ``schedule`` (the hyperparameters of the final best member
  followed back through its lineage, over every member's own values in light grey), ``lineage_tree`` (the phylogeny:
  members as lines, copies as edges, the final best lineage highlighted), ``member_scores`` (each member's score
  over its steps, exploit events marked) and ``greediness`` (``pbt.diagnostics``: the founding lineages alive over
  time and the step the population coalesces to one, the fraction of the population replaced per ready round, each
  hyperparameter's spread over the population). That run is the PBT run of ``--seed``, by default the seed whose
  best final score is the median over the PBT runs (``median_seed``), so the figures show a typical run rather than
  the luckiest;
- ``best_schedule.json``: that lineage as data (who trained which stretch, from which step to which, with what), with
  the run's seed.

Scores are shown as the runs recorded them; "best" follows the runs' mode (``PBTConfig.mode``: the lowest score of
a run that minimises it), and the table and figures say "lower is better" then. Runs of different domains or modes
are never compared; runs that planned different compute (population × steps per member) are refused unless
``allow_unequal``, and the table then says so. A run stopped early (``--stop-score``, ``--time-limit``) is compared at
the compute it spent: the table marks the stop and says when the runs spent unequal compute, and the
score-against-compute figure ends each run at its spent compute. A ``replay`` or ``final`` run (``pbt-repro replay``)
is an extra arm, held to the same steps per member whatever its number of members. matplotlib is imported only to draw.

The same stores give the same files, byte for byte: figures are saved without dates or version strings, and SVG ids
come from a fixed salt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from pbt.lineage import training_spans
from pbt.rows import oriented
from pbt.space import ConfigError
from repro.compare.figures import (
    FIGURES,
    log_scaled,
    plot_greediness,
    plot_lineage_tree,
    plot_member_scores,
    plot_schedule,
    plot_score_vs_compute,
    step_on_grid,
)
from repro.compare.runs import (
    Run,
    best_lineage,
    check_comparable,
    domain_metric,
    load_run,
    over_trained,
    progress_curve,
    run_greediness,
    run_meta,
    spent_unequal,
)
from repro.compare.tables import (
    METHOD_TITLES,
    Comparison,
    Row,
    aggregate_row,
    coalescence,
    csv_table,
    duration,
    fmt,
    markdown_table,
    one_or_mean,
    run_row,
    table_rows,
)

__all__ = [
    "FIGURES",
    "METHOD_TITLES",
    "Comparison",
    "Row",
    "Run",
    "aggregate_row",
    "best_lineage",
    "check_comparable",
    "coalescence",
    "compare",
    "csv_table",
    "domain_metric",
    "duration",
    "figure_run",
    "fmt",
    "load_run",
    "log_scaled",
    "markdown_table",
    "median_seed",
    "one_or_mean",
    "over_trained",
    "progress_curve",
    "run_greediness",
    "run_meta",
    "run_row",
    "spent_unequal",
    "step_on_grid",
    "table_rows",
]

# -- the comparison ----------------------------------------------------------------------------------------------------


def median_seed(best_by_seed: Mapping[int, float | None]) -> int | None:
    """The seed whose best final score is the median: the lower median for an even count, equal scores ordered by
    seed. Seeds without a score are passed over; None when no seed has one."""
    ranked = sorted((score, seed) for seed, score in best_by_seed.items() if score is not None)
    return ranked[(len(ranked) - 1) // 2][1] if ranked else None


def figure_run(runs: Sequence[Run], seed: int | None = None) -> Run | None:
    """The PBT run the schedule, lineage, member-score and greediness figures show: the one of ``seed``, by default
    the median seed by best final score (the first PBT run when none has a score yet); None without PBT runs. Without
    a run of PBT as the paper has it, a PBT run of a copy ablation is drawn."""
    pbt_runs = [r for r in runs if r.method == "pbt"] or [r for r in runs if r.label == "pbt"]
    if seed is None:
        best = {r.seed: None if r.best_member is None else oriented(r.best_member.score, r.mode) for r in pbt_runs}
        seed = median_seed(best)
        return next((r for r in pbt_runs if r.seed == seed), pbt_runs[0] if pbt_runs else None)
    chosen = next((r for r in pbt_runs if r.seed == seed), None)
    if chosen is None:
        have = ", ".join(str(r.seed) for r in pbt_runs) or "none"
        raise ConfigError(f"no PBT run of seed {seed} to draw the figures from (PBT seeds: {have})")
    return chosen


def compare(
    run_dirs: Sequence[Path | str],
    out: Path | str,
    allow_unequal: bool = False,
    metric: str | None = None,
    figures: bool = True,
    seed: int | None = None,
) -> Comparison:
    """Compare runs and write the tables and figures into ``out`` (see the module docstring).

    Args:
        run_dirs: Run directories (PBT, random search, grid search, replays; any number of seeds each).
        out: Output directory; created if missing. Files of the same names are overwritten.
        allow_unequal: Compare runs that planned different compute (the table says so).
        metric: The score's name for labels; by default the domain module's ``METRIC``.
        figures: Draw the figures (False: the tables and ``best_schedule.json`` only).
        seed: The seed of the PBT run the schedule, lineage, member-score and greediness figures and
            ``best_schedule.json`` show (default: the median seed by best final score, see ``figure_run``).

    Returns:
        The comparison: rows, figures written, the chosen PBT run's seed and its best member's schedule.
    """
    runs = [load_run(d) for d in run_dirs]
    planned_equal = check_comparable(runs, allow_unequal)
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
            drawn["greediness"] = plot_greediness(run, metric, out)
        found = best_lineage(run)
        if found is not None:
            best, segments = found
            best_schedule = {
                "run": str(run.run_dir),
                "seed": run.seed,
                "member": best.id,
                "score": best.score,
                "segments": [
                    asdict(s) | {"trained_from": a, "trained_to": b}
                    for s, (a, b) in zip(segments, training_spans(segments))
                ],
            }
            (out / "best_schedule.json").write_text(json.dumps(best_schedule, indent=2) + "\n")
    comparison = Comparison(
        domain=runs[0].domain,
        metric=metric,
        mode=runs[0].mode,
        runs=runs,
        rows=table_rows(runs),
        equal_compute=planned_equal and not spent_unequal(runs),  # a stop may leave the spent compute unequal
        figures=drawn,
        best_schedule=best_schedule,
        figure_seed=None if run is None else run.seed,
        planned_equal=planned_equal,
    )
    (out / "comparison.md").write_text(markdown_table(comparison))
    (out / "comparison.csv").write_text(csv_table(comparison))
    return comparison
