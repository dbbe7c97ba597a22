"""Our PBT core against Ray Tune's ``PopulationBasedTraining``, measured side by side in one run (on demand).

(1) The toy example (Figure 2 settings: 200 steps, ready every 4, truncation, explore = N(0, 0.1) noise on h) at
    population 2, 16 and 32: our core (serial executor, store and checkpoints) against Ray Tune's PBT with a function
    trainable that checkpoints at every ready step, with ``reuse_actors=True`` (the documented way: Ray's own
    ``pbt_function`` example; ``--no-reuse-actors``, Ray's default, starts a new actor at every pause and restore,
    many times slower on this toy), in both its modes (``synch=False``, the default, and ``synch=True``). Prints wall
    times, the ratio, final best Q and the number of exploits each made.
(2) A task whose train call sleeps a fixed time, population 16 on 2 CPUs, under both: overhead = wall / ideal - 1.
(3) Peak RSS of each (this process and its children, which is where Ray's workers live).

    python bench/vs_raytune.py [--sizes 2 16 32] [--seeds K] [--skip-sleep] [--no-reuse-actors]
Needs the ``ray`` extra. Ray Tune's runs take minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from experiments.toy.task import SPACE, Config, initial_hparams, q
from pbt.experiment import run_experiment
from pbt.space import sample

STEPS, READY, LR, NOISE = 200, 4, 0.01, 0.1


def ours_toy(population: int, seed: int, out: Path) -> tuple[float, float, int]:
    cfg = Config()
    cfg = dataclasses.replace(cfg, pbt=dataclasses.replace(cfg.pbt, population=population, seed=seed))
    t0 = time.perf_counter()
    store = run_experiment("experiments.toy.task", cfg, out, domain="toy", initial_hparams=initial_hparams(cfg))
    wall = time.perf_counter() - t0
    return wall, max(m.score for m in store.members()), len(store.events("exploit"))


def toy_trainable(config: dict) -> None:
    from ray import tune

    theta, step = [0.9, 0.9], 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            saved = json.loads((Path(d) / "state.json").read_text())
            theta, step = saved["theta"], saved["step"]
    while step < STEPS:
        h = (config["h0"], config["h1"])
        theta = [t - LR * 2.0 * hi * t for t, hi in zip(theta, h)]
        step += 1
        if step % READY == 0 or step == STEPS:
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "state.json").write_text(json.dumps({"theta": theta, "step": step}))
                tune.report({"q": q(theta), "step": step}, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report({"q": q(theta), "step": step})


def noise_explore(config: dict) -> dict:
    for key in ("h0", "h1"):
        config[key] = min(max(config[key] + random.gauss(0.0, NOISE), 0.0), 1.0)
    return config


def raytune_toy(population: int, synch: bool, seed: int, storage: Path, reuse_actors: bool) -> tuple[float, float, int]:
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    random.seed(seed)  # the scheduler draws donors, and noise_explore its noise, from `random` in this process
    scheduler = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=READY,
        synch=synch,
        quantile_fraction=0.5 if population == 2 else 0.2,  # ours: bottom 20%, at least one member
        hyperparam_mutations={"h0": tune.uniform(0, 1), "h1": tune.uniform(0, 1)},
        custom_explore_fn=noise_explore,
        resample_probability=0.0,
    )
    rng = random.Random(seed)
    starts = (
        [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}]
        if population == 2
        else [sample(SPACE, rng) for _ in range(population)]
    )
    tuner = tune.Tuner(
        tune.with_resources(toy_trainable, {"cpu": 1}),
        param_space={
            "start": tune.grid_search(starts),  # one trial per starting point
            "h0": tune.sample_from(lambda spec: spec.config.start["h0"]),
            "h1": tune.sample_from(lambda spec: spec.config.start["h1"]),
        },
        tune_config=tune.TuneConfig(
            scheduler=scheduler, metric="q", mode="max", num_samples=1, reuse_actors=reuse_actors
        ),
        run_config=tune.RunConfig(storage_path=str(storage), verbose=0, stop={"step": STEPS}),
    )
    t0 = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - t0
    best = max(r.metrics.get("q", float("-inf")) for r in results)
    return wall, best, int(getattr(scheduler, "_num_perturbations", -1))


def sleepy_trainable(config: dict) -> None:
    from ray import tune

    step, checkpoint = 0, tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            step = json.loads((Path(d) / "s.json").read_text())["step"]
    while step < config["budget"]:
        time.sleep(config["seconds"])
        step += 1
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "s.json").write_text(json.dumps({"step": step}))
            tune.report({"score": step * config["lr"], "step": step}, checkpoint=tune.Checkpoint.from_directory(d))


def overhead(
    reuse_actors: bool, population: int = 16, workers: int = 2, interval_s: float = 1.0, intervals: int = 4
) -> None:
    ideal = population * intervals * interval_s / workers
    cfg = Config(seconds_per_step=interval_s / 10)
    cfg = dataclasses.replace(
        cfg,
        pbt=dataclasses.replace(
            cfg.pbt,
            population=population,
            workers=workers,
            executor="local",
            budget_steps=10 * intervals,
            ready_every=10,
            eval_every=10,
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_experiment("experiments.toy.task", cfg, Path(tmp) / "run", domain="toy")
        ours = time.perf_counter() - t0

        from ray import tune
        from ray.tune.schedulers import PopulationBasedTraining

        scheduler = PopulationBasedTraining(
            time_attr="training_iteration",
            perturbation_interval=1,
            hyperparam_mutations={"lr": tune.loguniform(0.01, 1.0)},
        )
        tuner = tune.Tuner(
            tune.with_resources(sleepy_trainable, {"cpu": 1}),
            param_space={"lr": tune.loguniform(0.01, 1.0), "budget": intervals, "seconds": interval_s},
            tune_config=tune.TuneConfig(
                scheduler=scheduler, metric="score", mode="max", num_samples=population, reuse_actors=reuse_actors
            ),
            run_config=tune.RunConfig(storage_path=str(Path(tmp) / "ray"), verbose=0),
        )
        t0 = time.perf_counter()
        tuner.fit()
        theirs = time.perf_counter() - t0
    print(
        f"(2) sleeping task, population {population} on {workers} CPUs, ready interval {interval_s:g} s, ideal "
        f"{ideal:.1f} s: ours {ours:.2f} s (overhead {100 * (ours / ideal - 1):.2f} %), Ray Tune {theirs:.2f} s "
        f"(overhead {100 * (theirs / ideal - 1):.1f} %)"
    )


def means(rows: list[tuple[float, float, int]]) -> tuple[float, ...]:
    return tuple(statistics.fmean(column) for column in zip(*rows))


def peak_rss_mib() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[2, 16, 32], help="toy populations (none: skip (1))")
    parser.add_argument("--seeds", type=int, default=1, help="runs per framework and size; the row shows means")
    parser.add_argument("--skip-sleep", action="store_true")
    parser.add_argument(
        "--no-reuse-actors",
        dest="reuse_actors",
        action="store_false",
        help="Ray Tune's default: every pause and restore of a trial starts a new actor",
    )
    args = parser.parse_args()
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    print(f"(1) toy, 200 steps, ready every 4; Ray Tune with reuse_actors={args.reuse_actors}")
    print(
        f"{'pop':>4} {'ours s':>8} {'Q':>6} {'expl':>5} | {'async s':>8} {'Q':>6} {'expl':>5} | "
        f"{'synch s':>8} {'Q':>6} {'expl':>5} | {'synch/ours':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        seeds = range(args.seeds)
        ours_rows = {n: [ours_toy(n, k, Path(tmp) / f"ours-{n}-{k}") for k in seeds] for n in args.sizes}
        ours_rss = peak_rss_mib()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        for n in args.sizes:
            a = [raytune_toy(n, False, k, Path(tmp) / f"async-{n}-{k}", args.reuse_actors) for k in seeds]
            s = [raytune_toy(n, True, k, Path(tmp) / f"synch-{n}-{k}", args.reuse_actors) for k in seeds]
            o, a_mean, s_mean = (means(rows) for rows in (ours_rows[n], a, s))
            print(
                f"{n:>4} {o[0]:>8.3f} {o[1]:>6.4f} {o[2]:>5.0f} | {a_mean[0]:>8.1f} {a_mean[1]:>6.4f} "
                f"{a_mean[2]:>5.0f} | {s_mean[0]:>8.1f} {s_mean[1]:>6.4f} {s_mean[2]:>5.0f} | "
                f"{s_mean[0] / o[0]:>10.0f}x",
                flush=True,
            )
            if args.seeds > 1:
                print(
                    "     final Q per seed: "
                    + "; ".join(
                        f"{name} " + " ".join(f"{row[1]:.4f}" for row in rows)
                        for name, rows in (("ours", ours_rows[n]), ("async", a), ("synch", s))
                    ),
                    flush=True,
                )
        if not args.skip_sleep:
            overhead(args.reuse_actors)
        ray.shutdown()
    theirs_rss = peak_rss_mib()
    print(
        f"(3) peak RSS: ours {ours_rss[0]:.0f} MiB (driver, serial toy); with Ray Tune: driver "
        f"{theirs_rss[0]:.0f} MiB, largest child {theirs_rss[1]:.0f} MiB"
    )


if __name__ == "__main__":
    main()
