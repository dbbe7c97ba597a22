"""Reproduce one domain: PBT, then random search at the same compute, then the comparison and a results folder.

    pbt-repro reproduce DOMAIN --profile smoke|cpu|paper [--seeds K] [--out DIR] [--runs DIR] [setting flags]

For each seed ``s`` of ``seed, seed+1, ..., seed+K-1`` it runs the PBT arm into ``RUNS/pbt-s<s>``, then the
random-search arm (``baselines.baseline_config``: the same population, budget and seed, exploit and explore off)
into ``RUNS/random_search-s<s>``. Every run is opened with ``resume``, so running the same command again continues
a killed run where it stopped and skips finished ones. Then ``compare`` writes the tables and figures into ``OUT``,
with ``summary.json`` (the format every domain shares; ``pbt-repro report`` reads it) and a short ``README.md``.

A domain module may define ``extra_results(run_dir) -> dict`` (test BLEU, FID, ... of the run's best member). It is
called once per run, as soon as the run has finished and while its checkpoints still exist, and what it returns is
recorded in the run's own store (metadata ``extra_results``), so a committed store without its checkpoints keeps
it; ``summary.json`` gathers them per arm and seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pbt.compare import Comparison, Row, compare, duration, fmt, markdown_table
from pbt.controller import Controller, git_commit, machine, open_experiment
from pbt.space import ConfigError
from pbt.store import Store

ARMS = ("pbt", "random_search")
# Everything below this line in a results README is the authors' reading of the run; reproduce keeps it.
NOTES_MARKER = "<!-- notes: written by hand, kept when reproduce rewrites this file -->"
CORE_KEYS = ("domain", "metric", "profile", "pbt", "random_search", "equal_compute", "figures", "tables",
             "best_schedule", "provenance", "extra_results")


def arm_configs(module: ModuleType, config: Any, seed: int) -> dict[str, tuple[Any, list | None]]:
    """The PBT and random-search configs (and initial populations) of one seed."""
    from baselines import baseline_config

    pbt_config = dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, seed=seed))
    initial = getattr(module, "initial_hparams", lambda c: None)(pbt_config)
    return {"pbt": (pbt_config, initial), "random_search": baseline_config(module, pbt_config, "random_search")}


def run_arm(module: ModuleType, domain: str, arm: str, config: Any, initial: list | None, run_dir: Path,
            force: bool, listeners_for: Callable[[Store], Any] | None = None) -> None:
    """Run (or continue) one arm's run directory to completion, then record the domain's ``extra_results`` for it
    (once: a store that already holds them is left as it is)."""
    try:
        store, spec = open_experiment(module.__name__, config, run_dir, arm, domain, initial, force, resume=True)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (reproduce: pass --runs DIR for another folder, or --force to start over)") from exc
    try:
        if listeners_for is None:
            Controller(store, spec, []).run()
        else:
            with listeners_for(store) as listeners:
                Controller(store, spec, listeners).run()
        extra_hook = getattr(module, "extra_results", None)
        if extra_hook is not None and "extra_results" not in store.meta():
            store.set_meta(extra_results=dict(extra_hook(run_dir) or {}))
    finally:
        store.close()


def arm_summary(rows: Sequence[Row], config: Any) -> dict[str, Any]:
    """The shared summary of one arm over its seeds: means over seeds, and ``_std`` the sample standard deviation
    over seeds (None with one seed)."""
    def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
        present = [v for v in values if v is not None]
        if not present:
            return None, None
        return statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else None

    best, best_std = mean_std([r.best_final for r in rows])
    mean, mean_std_ = mean_std([r.mean_final for r in rows])
    median, median_std = mean_std([r.median_final for r in rows])
    return {
        "best_final": best, "best_final_std": best_std, "best_final_per_seed": [r.best_final for r in rows],
        "population_mean_final": mean, "population_mean_final_std": mean_std_,
        "population_median_final": median, "population_median_final_std": median_std,
        "seeds": [s for r in rows for s in r.seeds], "members_counted": [r.finished for r in rows],
        "status": [r.status for r in rows],
        "compute": {"steps": sum(r.used_steps for r in rows), "planned_steps": sum(r.planned_steps for r in rows),
                    "wall_seconds": round(sum(r.wall_seconds for r in rows), 3), "runs": len(rows),
                    "population": config.pbt.population, "steps_per_member": config.pbt.budget_steps},
    }


def numeric_leaves(value: Any, prefix: str = "") -> dict[str, float]:
    """The numbers in a nested result, by dotted path (``test_bleu.test_2016_flickr``); lists and text are left out,
    and so are ids and bookkeeping (``member``, ``step``, ``*_seconds``)."""
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in numeric_leaves(sub, f"{prefix}{key}.").items()}
    name = prefix[:-1]
    last = name.rsplit(".", 1)[-1]
    if (isinstance(value, (int, float)) and not isinstance(value, bool) and last not in ("member", "step")
            and not last.endswith("seconds")):
        return {name: float(value)}
    return {}


def extra_results_table(extras: dict[str, dict[str, Any]]) -> list[str]:
    """The domain's per-run results (test sets, FID, ...) as one table: a row per number, a column per arm and seed."""
    columns = [(arm, seed) for arm in ARMS for seed in sorted(extras.get(arm, {}), key=int)]
    if not columns:
        return []
    values = {c: numeric_leaves(extras[c[0]][c[1]]) for c in columns}
    names = list(dict.fromkeys(k for c in columns for k in values[c]))
    titles = {"pbt": "PBT", "random_search": "random search"}
    lines = ["## Further results (the domain's `extra_results`, of each run's best member)", "",
             "| | " + " | ".join(f"{titles[a]} s{s} (member {extras[a][s].get('member', '?')})" for a, s in columns)
             + " |", "|---|" + "---:|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(fmt(values[c].get(name)) for c in columns) + " |" for name in names]
    return lines + [""]


def results_readme(summary: dict[str, Any], comparison: Comparison) -> str:
    p = summary["provenance"]
    lines = [f"# {summary['domain']}: PBT against random search at equal compute ({summary['profile']} profile)", "",
             f"Made by `{p['command']}` at commit `{p['git_commit']}` on {p['date']} "
             f"({duration(p['wall_seconds'])} for this invocation). Metric: {summary['metric']}.", "",
             "| | PBT | random search |", "|---|---:|---:|"]
    for key, title in (("best_final", "best member's final score"), ("population_mean_final", "population mean final"),
                       ("population_median_final", "population median final")):
        lines.append(f"| {title} | {fmt(summary['pbt'][key], summary['pbt'][key + '_std'])} | "
                     f"{fmt(summary['random_search'][key], summary['random_search'][key + '_std'])} |")
    c = summary["pbt"]["compute"]
    lines += ["", f"Compute per arm: {c['population']} members × {c['steps_per_member']} steps × {c['runs']} "
              f"seed{'s' if c['runs'] > 1 else ''} = {c['planned_steps']:.6g} member-steps. ± is the standard "
              "deviation over seeds.", "", "## Runs", "", markdown_table(comparison, intro=False).strip(), "",
              "## Figures", ""]
    captions = {"score_vs_compute": "Best-so-far and population-median score against compute",
                "schedule": "Hyperparameter schedule of the final best PBT member, followed back through its lineage",
                "lineage_tree": "Lineage tree of the PBT population", "member_scores": "Each member's score over time"}
    for name, files in summary["figures"].items():
        png = next((f for f in files if f.endswith(".png")), files[0])
        lines += [f"### {captions.get(name, name)}", "", f"![{name}]({png})", ""]
    lines += extra_results_table(summary.get("extra_results", {}))
    lines += ["Files: `summary.json` (this summary, with the full configs and provenance), `comparison.md` / "
              "`comparison.csv` (one row per run), `best_schedule.json` (the best PBT member's lineage as data).", ""]
    return "\n".join(lines)


def reproduce(
    domain: str,
    config: Any,
    profile: str,
    seeds: int = 1,
    out: Path | str | None = None,
    runs: Path | str | None = None,
    force: bool = False,
    listeners_for: Callable[[str, int, Store], Any] | None = None,
    command: str | None = None,
    arms: Sequence[str] = ARMS,
) -> dict[str, Any] | None:
    """Run both arms for ``seeds`` seeds (resuming what exists), compare them, and write the results folder.

    Args:
        domain: A registered domain (``experiments.DOMAINS``).
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

    Returns:
        The summary written to ``OUT/summary.json``.
    """
    unknown = sorted(set(arms) - set(ARMS))
    if unknown or not arms:
        raise ConfigError(f"unknown arm(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(ARMS)}")
    from pbt.cli import load_domain

    module = load_domain(domain)
    started_at, t0 = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), time.perf_counter()
    commit = git_commit()  # before this run rewrites its own results files, which would mark the tree dirty
    runs = Path(runs) if runs is not None else Path("runs") / f"{domain}-{profile}"
    out = Path(out) if out is not None else runs / "results"
    seed_list = [config.pbt.seed + k for k in range(seeds)]
    dirs: dict[str, list[Path]] = {arm: [] for arm in ARMS}
    configs: dict[str, Any] = {}
    for arm in [a for a in ARMS if a in arms]:  # the PBT arm first, then random search
        for seed in seed_list:
            arm_config, initial = arm_configs(module, config, seed)[arm]
            configs.setdefault(arm, arm_config)
            run_dir = runs / f"{arm}-s{seed}"
            hook = None if listeners_for is None else (lambda store, a=arm, s=seed: listeners_for(a, s, store))
            run_arm(module, domain, arm, arm_config, initial, run_dir, force, hook)
            dirs[arm].append(run_dir)
    if set(arms) != set(ARMS):
        return None
    comparison = compare(dirs["pbt"] + dirs["random_search"], out, metric=getattr(module, "METRIC", None))
    summary: dict[str, Any] = {
        "domain": domain,
        "metric": comparison.metric,
        "profile": profile,
        **{arm: arm_summary(comparison.method_rows(arm), configs[arm]) for arm in ARMS},
        "equal_compute": comparison.equal_compute,
        "figures": comparison.figures,
        "tables": ["comparison.md", "comparison.csv"],
        "best_schedule": "best_schedule.json" if comparison.best_schedule else None,
    }
    extras = {arm: {str(r.seed): r.meta["extra_results"] for r in comparison.runs
                     if r.method == arm and "extra_results" in r.meta} for arm in ARMS}
    if any(extras.values()):
        summary["extra_results"] = extras
    summary["provenance"] = {
        "command": command or f"pbt-repro reproduce {domain} --profile {profile} --seeds {seeds}",
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
