"""How long one PB2 explore decision takes (fitting the GP and maximising the acquisition), at population 32 after 50
ready rounds of synthetic history: a log-uniform, a uniform, an integer and a categorical hyperparameter, and six
points already given to other members at the decision's step (a truncation round's copiers). The target is at most
100 ms per decision; the GP sees only the ``pb2_window`` most recent rounds.

    PYTHONPATH=. python bench/pb2_speed.py [--decisions 40] [--population 32] [--rounds 50] [--window W]
                                   [--repeats 3] [--json F]

``--json F`` also writes every decision's time, the summary, the commit and the machine to ``F``
(``bench/measured/pb2_speed.json`` holds the committed measurement).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

from pbt import pb2
from pbt.algorithm import decision_rng
from pbt.config import PBTConfig
from pbt.rows import IntervalRow
from pbt.rundir import git_commit, machine
from pbt.space import Categorical, IntUniform, LogUniform, Uniform, sample

SPACE = {
    "lr": LogUniform(1e-5, 1e-1),
    "momentum": Uniform(0.0, 0.99),
    "unroll": IntUniform(5, 50),
    "optimizer": Categorical(("adam", "sgd")),
}
READY_EVERY = 100


def gain(hparams: dict, step: int, rng: random.Random) -> float:
    """A score change per interval that peaks at an lr which falls as training goes on, plus noise."""
    best_log_lr = -2.0 - 2.0 * step / (50 * READY_EVERY)
    return 1.0 - (math.log10(hparams["lr"]) - best_log_lr) ** 2 / 4.0 + 0.2 * hparams["momentum"] + rng.gauss(0.0, 0.1)


def synthetic_history(population: int, rounds: int, seed: int) -> list[IntervalRow]:
    rng = random.Random(seed)
    members = [sample(SPACE, rng) for _ in range(population)]
    scores = [0.0] * population
    rows = []
    for r in range(rounds):
        for i, hparams in enumerate(members):
            end = scores[i] + gain(hparams, r * READY_EVERY, rng)
            rows.append(
                IntervalRow(
                    member=i,
                    start_step=r * READY_EVERY,
                    end_step=(r + 1) * READY_EVERY,
                    hparams=dict(hparams),
                    start_score=scores[i],
                    end_score=end,
                )
            )
            scores[i] = end
        members = [sample(SPACE, rng) if rng.random() < 0.2 else h for h in members]
    return rows


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[round(q * 10) - 1]


def fixed_work_ms(rounds: int = 100) -> list[float]:
    """The times of one fixed piece of work (200 Cholesky factorisations of one 128x128 matrix, the GP's size), done
    ``rounds`` times: how much this machine's speed varies by itself, decision or not."""
    import numpy as np

    a = np.random.default_rng(0).random((128, 128))
    a = a @ a.T + 128 * np.eye(128)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(200):
            np.linalg.cholesky(a)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=40)
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--window", type=int, default=PBTConfig().pb2_window)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="time each decision this many times and keep the fastest: on a shared machine the same work varies "
        "up to twice in time (a fixed 128x128 Cholesky loop did), which is the host's, not the decision's",
    )
    parser.add_argument("--json", type=Path, help="also write every decision's time and the summary to this file")
    args = parser.parse_args()
    cfg = PBTConfig(population=args.population, ready_every=READY_EVERY, strategy="pb2", pb2_window=args.window)
    intervals = synthetic_history(args.population, args.rounds, seed=0)
    step = args.rounds * READY_EVERY
    rng = random.Random(1)
    pending = tuple(sample(SPACE, rng) for _ in range(6))
    history = pb2.History(intervals=tuple(intervals), pending=pending)
    seen = len(pb2.window(intervals, step, cfg))
    pb2.choose(sample(SPACE, rng), SPACE, history, step, cfg, decision_rng(0, -1, step, "ready"))  # imports, caches
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    times, cpu = [], []  # wall and CPU ms: on a busy machine the two part, and CPU time is what a decision costs
    for member in range(args.decisions):
        hparams = sample(SPACE, rng)
        wall_ms, cpu_ms, choices = [], [], []
        for _ in range(args.repeats):  # the same decision (same data, same RNG) each time: the fastest is its cost
            started, started_cpu = time.perf_counter(), time.process_time()
            choices.append(pb2.choose(hparams, SPACE, history, step, cfg, decision_rng(0, member, step, "ready")))
            wall_ms.append((time.perf_counter() - started) * 1000)
            cpu_ms.append((time.process_time() - started_cpu) * 1000)
        assert all(c == choices[0] for c in choices), "a repeated decision chose differently"
        times.append(min(wall_ms))
        cpu.append(min(cpu_ms))
    print(
        f"PB2 decision, population {args.population}, {args.rounds} rounds of history ({len(intervals)} intervals; "
        f"window {cfg.pb2_window} rounds: {seen} points), {len(pending)} pending, {cfg.pb2_candidates} candidates: "
        f"median {statistics.median(times):.1f} ms, 90th percentile {percentile(times, 0.9):.1f} ms, max "
        f"{max(times):.1f} ms (CPU: median {statistics.median(cpu):.1f} ms, 90th percentile "
        f"{percentile(cpu, 0.9):.1f} ms, max {max(cpu):.1f} ms) over {len(times)} decisions, each the fastest of "
        f"{args.repeats}"
    )
    fixed = fixed_work_ms()
    print(
        f"fixed work, the same each time: median {statistics.median(fixed):.1f} ms, max {max(fixed):.1f} ms "
        f"(max / median {max(fixed) / statistics.median(fixed):.2f})"
    )
    if args.json:
        summary = {
            key: {"median": statistics.median(v), "p90": percentile(v, 0.9), "max": max(v)}
            for key, v in (("wall_ms", times), ("cpu_ms", cpu), ("fixed_work_ms", fixed))
        }
        record = {
            "command": " ".join(["python", "bench/pb2_speed.py", *sys.argv[1:]]),
            "git_commit": git_commit(),
            "machine": machine(),
            "started": started_at,
            "settings": {**vars(args), "json": str(args.json), "points_in_window": seen, "pending": len(pending)},
            "summary": summary,
            "wall_ms": times,
            "cpu_ms": cpu,
            "fixed_work_ms": fixed,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
