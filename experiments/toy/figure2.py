"""Reproduce the paper's Figure 2: the toy example under PBT, explore only, exploit only and grid search.

    pbt-repro toy --out results/toy [--seeds 10] [--steps 200]

Each variant runs the same two workers (h = (1, 0) and (0, 1), θ = (0.9, 0.9)) through the PBT core's serial,
deterministic executor, once per seed, and writes into ``--out``: ``figure2.png`` (θ trajectories over the contours
of Q, and Q against step, for seed 0), ``summary.json`` and ``summary.md`` (the best member's final Q per variant,
mean and sample standard deviation over seeds, none from one seed, as ``repro.stats.mean_std`` gives everywhere
else) and the run stores under ``runs/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import statistics
import time
from pathlib import Path

from experiments.toy.task import Config, initial_hparams, q
from pbt.experiment import run_experiment
from pbt.rows import EventKind
from pbt.rundir import git_commit, machine
from pbt.store import StoreReader

VARIANTS = {
    # name: (title, exploit, explore, explore at every ready)
    "pbt": ("PBT", "truncation", "noise", False),
    "explore_only": ("Explore only", "none", "noise", True),
    "exploit_only": ("Exploit only", "truncation", "none", False),
    "grid": ("Grid search", "none", "none", False),
}


def variant_config(name: str, seed: int, steps: int) -> Config:
    _, exploit, explore, every = VARIANTS[name]
    base = Config()
    pbt = dataclasses.replace(
        base.pbt, exploit=exploit, explore=explore, explore_every_ready=every, seed=seed, budget_steps=steps
    )
    return dataclasses.replace(base, pbt=pbt)


def trajectories(store: StoreReader) -> dict[int, list[tuple[int, float, float, float]]]:
    """Per member: (step, θ0, θ1, Q) after every step, starting from θ_init at step 0."""
    theta0 = Config().theta_init
    out: dict[int, list[tuple[int, float, float, float]]] = {}
    for m in store.members():
        rows = sorted(store.scores(m.id), key=lambda s: s.step)
        out[m.id] = [(0, theta0[0], theta0[1], q(list(theta0)))] + [
            (s.step, s.metrics["eval/theta0"], s.metrics["eval/theta1"], s.score) for s in rows
        ]
    return out


def final_best_q(store: StoreReader) -> float:
    return max(m.score for m in store.members() if m.score is not None)


def plot(runs: dict[str, StoreReader], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, len(runs), figsize=(4 * len(runs), 7.5), squeeze=False)
    grid = np.linspace(-0.05, 1.0, 200)
    t0, t1 = np.meshgrid(grid, grid)
    colours = ["tab:blue", "tab:orange"]
    for col, (name, store) in enumerate(runs.items()):
        top, bottom = axes[0][col], axes[1][col]
        top.contour(t0, t1, 1.2 - (t0**2 + t1**2), levels=12, colors="0.8", linewidths=0.8)
        for member, rows in trajectories(store).items():
            steps, th0, th1, qs = zip(*rows)
            c = colours[member % len(colours)]
            top.plot(th0, th1, ".-", color=c, markersize=2, linewidth=0.8, label=f"worker {member}")
            bottom.plot(steps, qs, color=c, linewidth=1.2, label=f"worker {member}")
        for e in store.events(EventKind.EXPLOIT):
            bottom.axvline(e.step, color="0.85", linewidth=0.6, zorder=0)
        top.set(title=VARIANTS[name][0], xlabel="θ0", ylabel="θ1", xlim=(-0.05, 1.0), ylim=(-0.05, 1.0), aspect="equal")
        bottom.set(xlabel="step", ylabel="Q(θ)", ylim=(-0.5, 1.25))
        bottom.axhline(1.2, color="k", linestyle=":", linewidth=0.8)
        bottom.text(0.98, 0.03, f"final best Q = {final_best_q(store):.3f}", transform=bottom.transAxes, ha="right")
        top.legend(loc="upper left", fontsize=8)
    fig.suptitle("Toy example (paper Figure 2): Q(θ) = 1.2 − (θ0² + θ1²), seed 0; grey lines: exploit events")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pbt-repro toy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/toy"), help="output directory (default runs/toy)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per variant (default 10)")
    parser.add_argument("--steps", type=int, default=200, help="training steps per worker (default 200)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 1:
        parser.error("--seeds and --steps must be >= 1")
    started, t0 = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), time.perf_counter()
    results: dict[str, list[float]] = {}
    seed0: dict[str, StoreReader] = {}
    for name in VARIANTS:
        results[name] = []
        for seed in range(args.seeds):
            config = variant_config(name, seed, args.steps)
            store = run_experiment(
                "experiments.toy.task",
                config,
                args.out / "runs" / name / f"seed-{seed}",
                method="grid_search" if name == "grid" else "pbt",
                domain="toy",
                initial_hparams=initial_hparams(config),
                force=True,
            )
            results[name].append(final_best_q(store))
            if seed == 0:
                seed0[name] = store
            else:
                store.close()
    plot(seed0, args.out / "figure2.png")
    summary = {
        "domain": "toy",
        "metric": "Q(θ) of the best worker after the last step",
        "variants": {
            name: {
                "final_q_mean": statistics.fmean(v),
                "final_q_std": statistics.stdev(v) if len(v) > 1 else None,
                "seeds": len(v),
                "final_q_per_seed": v,
            }
            for name, v in results.items()
        },
        "config": {name: dataclasses.asdict(variant_config(name, 0, args.steps)) for name in VARIANTS},
        "provenance": {
            "command": f"pbt-repro toy --out {args.out} --seeds {args.seeds} --steps {args.steps}",
            "seeds": list(range(args.seeds)),
            "git_commit": git_commit(),
            "machine": machine(),
            "started_at": started,
            "wall_seconds": round(time.perf_counter() - t0, 2),
        },
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = ["| variant | final Q (best worker), mean | std | seeds |", "|---|---|---|---|"]
    rows += [
        f"| {VARIANTS[n][0]} | {v['final_q_mean']:.4f} | "
        f"{'–' if v['final_q_std'] is None else format(v['final_q_std'], '.4f')} | {v['seeds']} |"
        for n, v in summary["variants"].items()
    ]
    (args.out / "summary.md").write_text(
        f"# Toy example (paper Figure 2)\n\n{args.steps} steps, 2 workers, {args.seeds} seeds. "
        f"Commit `{summary['provenance']['git_commit']}`.\n\n" + "\n".join(rows) + "\n"
    )
    print("\n".join(rows))
    print(f"\nwrote {args.out / 'figure2.png'}, {args.out / 'summary.json'}, {args.out / 'summary.md'}")
    return 0
