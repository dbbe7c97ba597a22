"""GAN benchmark: the ratios of the issue's Performance section, measured side by side in one run (on demand; never
part of the tests).

(a) Images/s of one member trained through the executor (one worker process with all cores, SQLite store, checkpoint
    files) against the same ``GanTask.train`` loop called bare in this process with the same thread count, measured
    before and after the executor run. Goal: a ratio of 0.9 or more.
(b) The share of PBT wall time spent computing the CIFAR-10 classifier score (Inception-score variant): sampling
    ``score_samples`` images and classifying them, population 8 on 2 workers with the ``cpu`` profile's networks and
    batch. Goal: under 15 %. A short run uses a shorter ready interval than the profile's, so the share is also
    projected to the profile's interval from the measured seconds per step and per evaluation.
(c) Peak memory of the whole process tree (controller and workers) during (b).

    python bench/gan.py [--data-path PATH] [--cache-dir DIR] [--intervals 2] [--quick]

The classifier's inference cost does not depend on how long it was trained, so this script trains a one-epoch
classifier of the profile's width on 2,000 images (cached separately) rather than the full one. ``--quick`` shrinks
every budget so the script finishes in a few minutes; its numbers only show that it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

# bench/ is the script's folder, so on sys.path
from pairing import POPULATION_WORKERS, executor_against_bare, one_member_rows, population_run

from experiments.gan.classifier import prepare
from experiments.gan.dcgan import PROFILES, Config, make_task
from pbt.executor import cpu_count

MODULE = "experiments.gan.dcgan"
HPARAMS = {"lr_d": 2e-4, "lr_g": 2e-4}


def bare_images_per_s(config: Config, steps: int) -> float:
    """The training loop alone: make a member, then time ``train`` (two warm-up steps not counted)."""
    torch.set_num_threads(cpu_count())  # what a single worker of the executor gets
    task = make_task(config)
    member = task.make(HPARAMS, seed=0)
    task.train(member, HPARAMS, 2)
    started = time.perf_counter()
    task.train(member, HPARAMS, steps)
    return steps * config.batch_size / (time.perf_counter() - started)


def executor_images_per_s(config: Config, steps: int, ready_every: int, out: Path) -> tuple[float, float]:
    """One member through the PBT driver with one worker process: (images/s of its train calls, images/s of train +
    checkpoint I/O). The first interval (process start, data mapping, warm-up) is not counted."""
    config = dataclasses.replace(config, score_samples=100, score_splits=1)  # scoring is (b)'s business
    rows = one_member_rows(MODULE, config, steps, ready_every, out, "gan")
    images = sum(r["train/steps"] for r in rows) * config.batch_size
    train_s = sum(r["time/train_s"] for r in rows)
    io_s = sum(r["time/io_s"] for r in rows)
    return images / train_s, images / (train_s + io_s)


def scoring_share(config: Config, intervals: int, ready_every: int, out: Path) -> dict[str, float]:
    """Population 8 on 2 workers for ``intervals`` ready intervals of ``ready_every`` steps."""
    wall, rows, memory = population_run(MODULE, config, intervals, ready_every, out, "gan")
    eval_s = sum(r["time/eval_s"] for r in rows)
    train_s = sum(r["time/train_s"] for r in rows)
    steps = sum(r["train/steps"] for r in rows)
    per_eval, per_step = eval_s / len(rows), train_s / steps
    profile_ready = PROFILES["cpu"].pbt.ready_every
    return {
        "wall_s": wall,
        "share_of_wall": eval_s / (POPULATION_WORKERS * wall),
        "share_of_busy": eval_s / (eval_s + train_s),
        "eval_s": per_eval,
        "images_per_s_total": steps * config.batch_size / wall,
        "projected_share": per_eval / (per_eval + per_step * profile_ready),
        "profile_ready": profile_ready,
        "peak_rss_gb": memory.peak_rss / 1e9,
        "peak_pss_gb": memory.peak_pss / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-path", default="", help="CIFAR-10 archive or folder (else $PBT_CIFAR10, else download)")
    parser.add_argument("--cache-dir", default="", help="cache folder (default: the experiment's)")
    parser.add_argument("--intervals", type=int, default=2, help="ready intervals per member in (b)")
    parser.add_argument("--ready", type=int, default=100, help="ready interval in (b), steps (the profile's is 500)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks that the script runs")
    args = parser.parse_args()
    config = dataclasses.replace(
        PROFILES["cpu"],
        data_path=args.data_path,
        cache_dir=args.cache_dir,
        device="cpu",
        classifier_epochs=1,
        classifier_images=2000,
    )
    steps, ready = (20, 10) if args.quick else (200, 50)
    if args.quick:
        args.intervals, args.ready = 1, 10
    prepare(config)  # data decode and the stand-in classifier, before anything is timed

    with tempfile.TemporaryDirectory() as tmp:
        # (b) first, while this process holds no model, so that (c) measures the PBT run alone
        print(
            f"(b, c) population 8 on 2 workers, {args.intervals} ready intervals of {args.ready} steps per member, "
            f"batch {config.batch_size}, score on {config.score_samples} samples in {config.score_splits} splits"
        )
        r = scoring_share(config, args.intervals, args.ready, Path(tmp) / "b")
        print(
            f"    wall {r['wall_s']:.0f} s, {r['images_per_s_total']:.0f} img/s in all; scoring "
            f"{100 * r['share_of_wall']:.1f} % of worker wall time ({100 * r['share_of_busy']:.1f} % of busy time, "
            f"{r['eval_s']:.1f} s per score); projected at the cpu profile's ready interval of {r['profile_ready']} "
            f"steps: {100 * r['projected_share']:.1f} %"
        )
        print(
            f"    peak memory of the process tree: PSS {r['peak_pss_gb']:.2f} GB (RSS summed {r['peak_rss_gb']:.2f} GB)"
        )
        print(f"(a) one member, {steps} steps of {config.batch_size} images, {cpu_count()} threads")
        executor_against_bare(
            lambda: bare_images_per_s(config, steps),
            lambda: executor_images_per_s(config, steps + ready, ready, Path(tmp) / "a"),
            "img",
        )


if __name__ == "__main__":
    main()
