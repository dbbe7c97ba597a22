"""Throughput of the A2C-on-Atari experiment, measured side by side in one run.

Prints four ratios and two absolute figures:

1. one member under the PBT executor (one worker process, checkpoints every ready interval) against the same A2C
   loop run bare in this process: target 0.9 or more;
2. a population of 8 on 2 workers (total frames/s) against a single bare run using the whole machine: target 0.9+;
3. the population's total frames/s (target 4k or more on 2 cores) and its peak resident memory (controller and
   workers together; target under 8 GiB);
4. for reference, Stable-Baselines3's A2C with the RL-Zoo Atari settings (16 envs, 5 steps, RMSpropTFLike, vf 0.25,
   ent 0.01) on the same game and number of frames: ours / SB3. Skipped when stable-baselines3 is not installed.

All runs use the same hyperparameters (lr 7e-4, entropy cost 0.01, unroll 5: A2C's defaults). Run on demand only:

    python bench/rl.py                    # the full version, about half an hour on 2 cores
    python bench/rl.py --scale 0.05       # a quick look (every frame budget x 0.05)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from peak_memory import PeakMemory

from experiments.rl import a2c
from pbt.config import PBTConfig
from pbt.executor import cpu_count
from pbt.experiment import run_experiment

HPARAMS = {"lr": 7e-4, "entropy_cost": 0.01, "unroll_length": 5}


def bare_run(config: a2c.Config, frames: int, interval: int) -> float:
    """The A2C loop in this process with every core: frames/s (games already started, like a warm worker)."""
    torch.set_num_threads(cpu_count())
    task = a2c.make_task(dataclasses.replace(config, env_threads=cpu_count()))
    member = task.make(HPARAMS, seed=0)
    task.train(member, HPARAMS, 1)  # starts the games
    start, done = time.perf_counter(), 0
    while done < frames:
        done += int(task.train(member, HPARAMS, min(interval, frames - done))["steps"])
        task.evaluate(member)
    return done / (time.perf_counter() - start)


def pbt_run(config: a2c.Config, population: int, workers: int, frames: int, interval: int, out: Path) -> float:
    """A PBT run through the local executor (worker start-up included): total frames/s of the population."""
    exploit = "truncation" if population > 1 else "none"
    pbt = PBTConfig(
        population=population,
        budget_steps=frames,
        ready_every=interval,
        workers=workers,
        executor="local",
        exploit=exploit,
        explore="perturb" if population > 1 else "none",
    )
    start = time.perf_counter()
    store = run_experiment(
        "experiments.rl.a2c",
        dataclasses.replace(config, pbt=pbt),
        out,
        domain="rl",
        initial_hparams=[dict(HPARAMS) for _ in range(population)],
        force=True,
    )
    seconds = time.perf_counter() - start
    used = store.compute()["used_steps"]
    store.close()
    return used / seconds


def sb3_run(game: str, frames: int) -> float | None:
    """Stable-Baselines3 A2C with RL-Zoo's Atari settings: frames/s, or None when SB3 is not installed."""
    try:
        import ale_py
        import gymnasium as gym
        from stable_baselines3 import A2C
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
        from stable_baselines3.common.vec_env import VecFrameStack
    except ImportError:
        return None
    gym.register_envs(ale_py)
    torch.set_num_threads(cpu_count())
    env_id = "".join(part.capitalize() for part in game.split("_")) + "NoFrameskip-v4"
    env = VecFrameStack(make_atari_env(env_id, n_envs=16, seed=0), n_stack=4)
    model = A2C(
        "CnnPolicy",
        env,
        ent_coef=0.01,
        vf_coef=0.25,
        seed=0,
        device="cpu",
        policy_kwargs={"optimizer_class": RMSpropTFLike, "optimizer_kwargs": {"eps": 1e-5}},
    )
    model.learn(total_timesteps=16 * 5)  # warm-up: one update
    start = time.perf_counter()
    timesteps = frames // a2c.FRAMESKIP  # SB3 counts agent steps (summed over envs)
    model.learn(total_timesteps=timesteps, reset_num_timesteps=False)
    seconds = time.perf_counter() - start
    env.close()
    return timesteps * a2c.FRAMESKIP / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="breakout")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every frame budget by this")
    parser.add_argument("--single-frames", type=int, default=1_000_000, help="frames of each single run")
    parser.add_argument("--member-frames", type=int, default=500_000, help="frames per member of the population")
    parser.add_argument("--ready-every", type=int, default=250_000, help="ready interval (the cpu profile's)")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-sb3", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()

    single = max(8_000, int(args.single_frames * args.scale))
    per_member = max(8_000, int(args.member_frames * args.scale))
    interval = max(4_000, int(args.ready_every * args.scale))
    config = dataclasses.replace(a2c.PROFILES["cpu"], game=args.game, device="cpu")
    print(
        f"cores {cpu_count()}, load average {os.getloadavg()[0]:.2f} at start; game {args.game}; "
        f"single runs {single} frames, population {args.population} x {per_member} frames, ready every {interval}"
    )

    results: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rl-") as tmp:
        results["bare_fps"] = bare_run(config, single, interval)
        print(f"bare loop, whole machine:        {results['bare_fps']:8.0f} frames/s", flush=True)
        results["executor_fps"] = pbt_run(config, 1, 1, single, interval, Path(tmp) / "one")
        print(f"one member under the executor:   {results['executor_fps']:8.0f} frames/s", flush=True)
        with PeakMemory() as rss:
            results["population_fps"] = pbt_run(
                config, args.population, args.workers, per_member, interval, Path(tmp) / "population"
            )
        results["population_peak_rss_gib"] = rss.peak_rss / 2**30
        print(
            f"population of {args.population} on {args.workers} workers: {results['population_fps']:8.0f} "
            f"frames/s total, peak RSS {results['population_peak_rss_gib']:.2f} GiB",
            flush=True,
        )
    results["sb3_fps"] = None if args.skip_sb3 else sb3_run(args.game, single)
    if results["sb3_fps"] is not None:
        print(f"Stable-Baselines3 A2C (RL Zoo):  {results['sb3_fps']:8.0f} frames/s", flush=True)

    print(f"\nload average {os.getloadavg()[0]:.2f} at the end (other work on the machine lowers every figure)")
    print(f"executor / bare loop              {results['executor_fps'] / results['bare_fps']:.2f}   (target >= 0.9)")
    print(
        f"population {args.population} / single run        "
        f"{results['population_fps'] / results['bare_fps']:.2f}   (target >= 0.9)"
    )
    print(f"population total frames/s     {results['population_fps']:8.0f}   (target >= 4000 on 2 cores)")
    print(f"population peak RSS           {results['population_peak_rss_gib']:8.2f} GiB (target < 8)")
    if results["sb3_fps"] is not None:
        ratio = results["bare_fps"] / results["sb3_fps"]
        print(f"ours (bare) / SB3 A2C             {ratio:.2f}   (SB3 alone: about 2.3-2.6k frames/s here)")
    else:
        print("ours / SB3 A2C                    skipped (pip install stable-baselines3 to compare)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
