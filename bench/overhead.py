"""Overhead of the PBT core, measured side by side in one run (on demand; not part of the tests).

(a) The toy example (paper Figure 2: 200 steps, ready every 4, Q evaluated every step) through the core (serial
    executor, SQLite store, checkpoint files) against a plain hand-written PBT loop with no store or checkpoints,
    at population 2, 16 and 64. Goal: the population-2 run in <= 50 ms.
(b) The controller's overhead with worker processes: a task whose train call sleeps, population 16 on 2 workers,
    ready interval 1 s: wall / ideal - 1, and the idle-worker fraction (worker time spent on no interval). Once with
    intervals of even length, once with lengths of 0.5x to 2x (seeded), where a ready member may have to wait for
    the members still training towards its step. Goal: <= 2 % overhead with even intervals.

    python bench/overhead.py [--repeats 5] [--skip-b]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path

from experiments.toy.task import SPACE, Config, initial_hparams, q
from pbt.controller import Controller
from pbt.experiment import open_experiment, run_experiment
from pbt.space import sample
from pbt.store import StoreReader

STEPS, READY, LR = 200, 4, 0.01


def plain_toy(population: int, seed: int) -> float:
    """The same algorithm written directly: truncation exploit (copy θ and h), then noise on h, in lockstep."""
    rng = random.Random(seed)
    cfg = Config()
    init = initial_hparams(dataclasses.replace(cfg, pbt=dataclasses.replace(cfg.pbt, population=population)))
    hs = [[h["h0"], h["h1"]] for h in init or [sample(SPACE, rng) for _ in range(population)]]
    thetas = [[0.9, 0.9] for _ in range(population)]
    scores = [q(t) for t in thetas]
    for step in range(1, STEPS + 1):
        for i in range(population):
            thetas[i] = [t - LR * 2.0 * h * t for t, h in zip(thetas[i], hs[i])]
            scores[i] = q(thetas[i])
        if step % READY == 0 and step < STEPS:
            order = list(range(population))
            rng.shuffle(order)
            for i in order:
                ranked = sorted(range(population), key=lambda j: (scores[j], rng.random()))
                cut = max(1, int(population * 0.2))
                if i in ranked[:cut]:
                    d = rng.choice(ranked[-cut:])
                    if d != i:
                        thetas[i], scores[i] = list(thetas[d]), scores[d]
                        hs[i] = [min(max(h + rng.gauss(0, 0.1), 0.0), 1.0) for h in hs[d]]
    return max(scores)


def core_toy(population: int, seed: int, out: Path) -> float:
    cfg = Config()
    cfg = dataclasses.replace(cfg, pbt=dataclasses.replace(cfg.pbt, population=population, seed=seed))
    store = run_experiment(
        "experiments.toy.task", cfg, out, domain="toy", initial_hparams=initial_hparams(cfg), force=True
    )
    best = max(m.score for m in store.members())
    store.close()
    return best


def timed(fn, repeats: int) -> tuple[float, float]:
    times, value = [], 0.0
    for r in range(repeats):
        t0 = time.perf_counter()
        value = fn(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def bench_toy(repeats: int) -> None:
    print("(a) toy, 200 steps, ready every 4: core (serial executor + SQLite store + checkpoints) vs plain loop")
    print(f"{'population':>10} {'core ms':>9} {'plain ms':>9} {'ratio':>7} {'core best Q':>12} {'plain best Q':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for population in (2, 16, 64):
            core_t, core_q = timed(lambda r, n=population: core_toy(n, r, Path(tmp) / f"p{n}-{r}"), repeats)
            plain_t, plain_q = timed(lambda r, n=population: plain_toy(n, r), repeats)
            print(
                f"{population:>10} {core_t * 1e3:>9.1f} {plain_t * 1e3:>9.2f} {core_t / plain_t:>7.1f} "
                f"{core_q:>12.4f} {plain_q:>13.4f}"
            )


def bench_controller(seconds_per_step: float, ready_every: int, uneven: bool) -> None:
    """Wall time against the ideal, and the idle-worker fraction: the share of worker time spent on no interval (a
    ready member's decision waits until every member still training has reached its step, so with uneven intervals
    a worker can find nothing it may run)."""
    population, workers, budget = 16, 2, ready_every * 4
    cfg = Config(seconds_per_step=seconds_per_step, uneven_time=uneven)
    cfg = dataclasses.replace(
        cfg,
        pbt=dataclasses.replace(
            cfg.pbt,
            population=population,
            workers=workers,
            executor="local",
            budget_steps=budget,
            ready_every=ready_every,
            eval_every=ready_every,
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_dir, spec = open_experiment("experiments.toy.task", cfg, Path(tmp) / "run", domain="toy")
        with run_dir:
            controller = Controller(run_dir.store, spec)
            controller.run()
        wall = time.perf_counter() - t0
        store = StoreReader(run_dir.path)
        exploits = len(store.events("exploit"))
        busy = sum(s.metrics.get(k, 0.0) for s in store.scores() for k in ("time/train_s", "time/eval_s", "time/io_s"))
        store.close()
    ideal = busy / workers  # the intervals' own time, spread evenly over the workers
    kind = "0.5x-2x uneven" if uneven else "even"
    print(
        f"(b) sleeping task ({kind} intervals), population {population} on {workers} workers, ready interval "
        f"{ready_every * seconds_per_step:.1f} s: wall {wall:.2f} s, ideal {ideal:.2f} s, overhead "
        f"{100 * (wall / ideal - 1):.2f} %, idle workers {100 * (1 - busy / (wall * workers)):.2f} %, "
        f"{controller.waits} waits for a slower member in {population * 3} ready decisions ({exploits} exploits)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-b", action="store_true", help="skip the (b) measurements (~70 s)")
    args = parser.parse_args()
    bench_toy(args.repeats)
    if not args.skip_b:
        for uneven in (False, True):
            bench_controller(seconds_per_step=0.1, ready_every=10, uneven=uneven)


if __name__ == "__main__":
    main()
