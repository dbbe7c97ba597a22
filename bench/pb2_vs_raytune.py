"""Our PB2 (``--strategy pb2``) against Ray Tune's ``PB2`` on the toy example, paired by seed (on demand).

For each seed, both sides train the Figure 2 toy (Q = 1.2 − (θ0² + θ1²), θ ← θ − lr·2·h·θ per step, θ from (0.9, 0.9),
lr 0.01, 200 steps, ready every 4) with the same population, started from the same h drawn from the uniform prior
with the seed, and the same exploit rule (the bottom group copies a member of the top group; the groups are as large
on both sides: Ray Tune's ``quantile_fraction`` is set from our ``truncation_fraction``). A copier's new h is each
side's own GP bandit's choice; where the two bandits differ in what Ray Tune's code fixes (its UCB weight, its data,
the first ready round) is printed with the settings. Ours runs in this process (serial executor, store and
checkpoints); Ray Tune's ``PB2`` runs with a function trainable that checkpoints at every ready step and
``reuse_actors=True``, as in ``bench/vs_raytune.py``. Every setting of both sides is printed first; then per seed
the best final Q and the wall seconds of each, and over the seeds the mean paired difference of best final Q
(ours − Ray) with its 95 % t-interval, the seeds won, and the median wall ratio ours / Ray.

    python bench/pb2_vs_raytune.py [--seeds 10] [--population 8] [--truncation-fraction F] [--synch] [--json PATH]
Needs the ``ray`` and ``pb2`` extras (Ray Tune's PB2 imports scikit-learn). Ray Tune's side takes minutes per seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import tempfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

# bench/ is the script's folder, so on sys.path (and Ray adds it to its workers', which import toy_trainable from it)
from vs_raytune import LR, READY, STEPS, toy_trainable

from experiments.toy.task import SPACE, Config
from pbt.experiment import run_experiment
from pbt.space import HParams, sample
from repro.stats import fmt_interval, paired_difference

BOUNDS = {name: [prior.low, prior.high] for name, prior in SPACE.items()}  # [0, 1] for h0 and h1


def starts(population: int, seed: int) -> list[HParams]:
    """Each member's initial h, drawn from the uniform prior with the seed; both sides start from these."""
    rng = random.Random(seed)
    return [sample(SPACE, rng) for _ in range(population)]


def our_config(population: int, seed: int, fraction: float) -> Config:
    cfg = Config()
    return dataclasses.replace(
        cfg,
        pbt=dataclasses.replace(
            cfg.pbt, population=population, seed=seed, strategy="pb2", truncation_fraction=fraction
        ),
    )


def group_size(population: int, fraction: float) -> int:
    """How many members our truncation puts in its bottom (and top) group (``pbt.exploit.exploit_truncation``)."""
    return max(1, int(population * fraction))


def ray_quantile(population: int, fraction: float) -> float:
    """Ray Tune's ``quantile_fraction`` whose groups, ceil(population × q), are as large as ours."""
    size = group_size(population, fraction)
    q = size / population
    while int(np.ceil(population * q)) > size:  # a float just above size / population
        q = np.nextafter(q, 0.0)
    return float(q)


def ray_settings(population: int, fraction: float, synch: bool) -> dict[str, Any]:
    """The keyword arguments of Ray Tune's ``PB2`` here; the rest of its constructor is at its defaults."""
    return {
        "time_attr": "training_iteration",
        "perturbation_interval": READY,
        "hyperparam_bounds": BOUNDS,
        "quantile_fraction": ray_quantile(population, fraction),
        "synch": synch,
        "log_config": True,
        "require_attrs": True,
        "custom_explore_fn": None,
    }


def ours_pb2(population: int, seed: int, fraction: float, out: Path) -> dict[str, float]:
    cfg = our_config(population, seed, fraction)
    t0 = time.perf_counter()
    store = run_experiment("experiments.toy.task", cfg, out, domain="toy", initial_hparams=starts(population, seed))
    wall = time.perf_counter() - t0
    return {"q": max(m.score for m in store.members()), "wall_s": wall, "exploits": len(store.events("exploit"))}


def ray_pb2(population: int, seed: int, fraction: float, synch: bool, storage: Path) -> dict[str, float]:
    from ray import tune
    from ray.tune.schedulers.pb2 import PB2
    from sklearn.exceptions import ConvergenceWarning

    # The scheduler runs in this process: it draws donors from `random` and its acquisition's starting points from
    # numpy's global generator. Trials finish in an order the seed does not fix, so a rerun need not repeat exactly.
    random.seed(seed)
    np.random.seed(seed)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # its GP's fits, at a kernel bound most times
    scheduler = PB2(**ray_settings(population, fraction, synch))
    tuner = tune.Tuner(
        tune.with_resources(toy_trainable, {"cpu": 1}),
        param_space={
            "start": tune.grid_search(starts(population, seed)),  # one trial per starting point
            "h0": tune.sample_from(lambda spec: spec.config.start["h0"]),
            "h1": tune.sample_from(lambda spec: spec.config.start["h1"]),
        },
        tune_config=tune.TuneConfig(scheduler=scheduler, metric="q", mode="max", num_samples=1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(storage), verbose=0, stop={"step": STEPS}),
    )
    t0 = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - t0
    return {
        "q": max(r.metrics.get("q", float("-inf")) for r in results),
        "wall_s": wall,
        "exploits": int(getattr(scheduler, "_num_perturbations", -1)),
    }


def print_settings(population: int, fraction: float, synch: bool) -> dict[str, Any]:
    import ray

    cfg = our_config(population, 0, fraction)
    ours = {
        **{k: v for k, v in dataclasses.asdict(cfg).items() if k != "pbt"},
        **{k: v for k, v in dataclasses.asdict(cfg.pbt).items() if k != "seed"},
    }
    ray_fixed = {
        "version": ray.__version__,
        "trainable": "vs_raytune.toy_trainable (reports every step, checkpoints at every ready step)",
        "resources_per_trial": {"cpu": 1},
        "num_samples": 1,
        "metric": "q",
        "mode": "max",
        "reuse_actors": True,
        "stop": {"step": STEPS},
        "ray.init": "num_cpus=2, include_dashboard=False, log_to_driver=False",
        **ray_settings(population, fraction, synch),
        # What Ray Tune's PB2 fixes in its code (ray/tune/schedulers/pb2.py, pb2_utils.py), ours' counterparts aside:
        "kappa (not settable)": "UCB = mean + sqrt(0.2 + max(0, ln(0.4 n))) x variance (n points in the GP)",
        "data (not settable)": "every interval, up to the last 1000; from 200 on, the length is chosen by marginal "
        "likelihood in steps of 10",
        "GP inputs": "time and the score before the interval (both scaled to [0, 1] over the data), then h",
        "kernel": "variance x (1 - eps)^(|dt|/2) x exp(-|dh|^2 / lengthscale), eps <= 0.5, alpha 1e-10",
        "acquisition maximised by": "10 L-BFGS-B starts from uniform points (maxiter 200)",
        "first ready round (no data)": "the copier keeps the donor's h unchanged",
    }
    print(
        textwrap.fill(
            f"toy: {STEPS} steps, ready every {READY}, lr {LR}, population {population}, initial h "
            f"uniform on {BOUNDS} with the seed (the same on both sides); exploit group "
            f"{group_size(population, fraction)} of {population} on both sides",
            120,
            subsequent_indent="    ",
        )
    )
    for side, values in (("ours (strategy pb2)", ours), ("Ray Tune PB2", ray_fixed)):
        print(
            textwrap.fill(
                f"{side}: " + "; ".join(f"{k}={v}" for k, v in values.items()),
                120,
                subsequent_indent="    ",
                break_on_hyphens=False,
            )
        )
    return {"ours": ours, "ray": ray_fixed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..K-1, each run by both sides")
    parser.add_argument("--population", type=int, default=8, help="members on each side")
    parser.add_argument(
        "--truncation-fraction",
        type=float,
        default=Config().pbt.truncation_fraction,
        help="our exploit's bottom/top fraction; Ray Tune's quantile_fraction is set to the same group size",
    )
    parser.add_argument("--synch", action="store_true", help="Ray Tune's synchronous mode (its default: off)")
    parser.add_argument("--json", type=Path, help="also write the settings and the numbers to this file")
    args = parser.parse_args()
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    settings = print_settings(args.population, args.truncation_fraction, args.synch)
    ours: dict[int, dict[str, float]] = {}
    theirs: dict[int, dict[str, float]] = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(f"{'seed':>4} | {'ours Q':>9} {'s':>7} {'expl':>5} | {'Ray Q':>9} {'s':>7} {'expl':>5} | {'ours-Ray':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            ours[seed] = ours_pb2(args.population, seed, args.truncation_fraction, Path(tmp) / f"ours-{seed}")
            theirs[seed] = ray_pb2(
                args.population, seed, args.truncation_fraction, args.synch, Path(tmp) / f"ray-{seed}"
            )
            o, r = ours[seed], theirs[seed]
            print(
                f"{seed:>4} | {o['q']:>9.6f} {o['wall_s']:>7.2f} {o['exploits']:>5} | {r['q']:>9.6f} "
                f"{r['wall_s']:>7.2f} {r['exploits']:>5} | {o['q'] - r['q']:>+10.6f}",
                flush=True,
            )
    ray.shutdown()
    paired = paired_difference({s: v["q"] for s, v in ours.items()}, {s: v["q"] for s, v in theirs.items()})
    ratio = statistics.median(ours[s]["wall_s"] / theirs[s]["wall_s"] for s in ours)
    low, high = paired.difference.low, paired.difference.high
    verdict = (
        "too few seeds for an interval"
        if low is None or high is None
        else "ours worse (the interval is below 0)"
        if high < 0
        else "ours better (the interval is above 0)"
        if low > 0
        else "no difference shown (the interval holds 0)"
    )
    print(
        f"best final Q over {paired.n} seeds: ours {fmt_interval(paired.pbt, 7)}, Ray "
        f"{fmt_interval(paired.baseline, 7)}; ours - Ray {fmt_interval(paired.difference, 3)} (95 % t-interval): "
        f"{verdict}; seeds won by ours {paired.wins}, tied {paired.ties}, lost {paired.n - paired.wins - paired.ties}"
        f"; median wall ratio ours / Ray {ratio:.3f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "settings": settings,
                    "seeds": args.seeds,
                    "population": args.population,
                    "per_seed": [{"seed": s, "ours": ours[s], "ray": theirs[s]} for s in sorted(ours)],
                    "paired": paired.to_dict(),
                    "median_wall_ratio": ratio,
                },
                indent=1,
                default=str,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
