"""Translation benchmark: the ratios of the issue's Performance section, measured side by side in one run (on demand;
never part of the tests).

(a) Target tokens/s of one member trained through the executor (one worker process with all cores, SQLite store,
    checkpoint files) against the same ``TranslationTask.train`` loop called bare in this process with the same
    thread count. Goal: a ratio of 0.9 or more.
(b) The share of PBT wall time spent in BLEU evaluation (greedy decoding of the validation subset and sacrebleu),
    population 8 on 2 workers with the ``cpu`` profile's model, batch and ready interval. Goal: under 15 %.
(c) Peak resident memory of the whole process tree (controller and workers) during (b).

    python bench/translation.py [--data-dir DIR] [--intervals 3] [--quick]

``--quick`` shrinks every budget so the script finishes in a few minutes; its numbers only show that it runs.
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

from experiments.translation.transformer import PROFILES, Config, make_task
from pbt.config import replace_fields
from pbt.executor import cpu_count

MODULE = "experiments.translation.transformer"
HPARAMS = {"lr": 5e-4, "attention_dropout": 0.1, "residual_dropout": 0.1, "relu_dropout": 0.1}


def bare_tokens_per_s(config: Config, steps: int) -> float:
    """The training loop alone: make a member, then time ``train`` (two warm-up steps not counted)."""
    torch.set_num_threads(cpu_count())  # what a single worker of the executor gets
    task = make_task(config)
    member = task.make(HPARAMS, seed=0)
    task.train(member, HPARAMS, 2)
    started = time.perf_counter()
    tokens = task.train(member, HPARAMS, steps)["tgt_tokens"]
    return tokens / (time.perf_counter() - started)


def executor_tokens_per_s(config: Config, steps: int, ready_every: int, out: Path) -> tuple[float, float]:
    """One member through the PBT driver with one worker process: (tokens per second of its train calls, tokens per
    second of train + checkpoint I/O). The first interval (process start, data loading, warm-up) is not counted."""
    config = dataclasses.replace(config, val_limit=20)  # evaluation is not what (a) measures
    rows = one_member_rows(MODULE, config, steps, ready_every, out, "translation")
    tokens = sum(r["train/tgt_tokens"] for r in rows)
    train_s = sum(r["time/train_s"] for r in rows)
    io_s = sum(r["time/io_s"] for r in rows)
    return tokens / train_s, tokens / (train_s + io_s)


def eval_share(config: Config, intervals: int, out: Path) -> dict[str, float]:
    """Population 8 on 2 workers for ``intervals`` ready intervals; evaluation time as a share of wall time."""
    wall, rows, memory = population_run(MODULE, config, intervals, config.pbt.ready_every, out, "translation")
    eval_s = sum(r["time/eval_s"] for r in rows)
    busy_s = sum(r["time/train_s"] + r["time/eval_s"] + r["time/io_s"] for r in rows)
    tokens = sum(r["train/tgt_tokens"] for r in rows)
    return {
        "wall_s": wall,
        "eval_share_of_wall": eval_s / (POPULATION_WORKERS * wall),
        "eval_share_of_busy": eval_s / busy_s,
        "eval_s_per_eval": eval_s / len(rows),
        "tokens_per_s_total": tokens / wall,
        "peak_rss_gb": memory.peak_rss / 1e9,
        "peak_pss_gb": memory.peak_pss / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="", help="Multi30k folder (else $PBT_MULTI30K_DIR, else download)")
    parser.add_argument("--cache-dir", default="", help="tokeniser cache (default: the experiment's)")
    parser.add_argument("--intervals", type=int, default=3, help="ready intervals per member in (b)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks that the script runs")
    args = parser.parse_args()
    config = replace_fields(PROFILES["cpu"], {"data_dir": args.data_dir, "cache_dir": args.cache_dir, "device": "cpu"})
    steps, ready = (4, 2) if args.quick else (60, 20)
    if args.quick:
        config = replace_fields(config, {"val_limit": 50, "ready_every": 3})
        args.intervals = 2

    with tempfile.TemporaryDirectory() as tmp:
        # (b) first, while this process holds no model or data, so that (c) measures the PBT run alone
        print(
            f"(b, c) population 8 on 2 workers, {args.intervals} ready intervals of {config.pbt.ready_every} steps "
            f"per member, validation subset {config.val_limit} sentences"
        )
        result = eval_share(config, args.intervals, Path(tmp) / "b")
        print(
            f"    wall {result['wall_s']:.0f} s, {result['tokens_per_s_total']:.0f} tgt tokens/s in all; BLEU "
            f"evaluation {100 * result['eval_share_of_wall']:.1f} % of worker wall time "
            f"({100 * result['eval_share_of_busy']:.1f} % of busy time, {result['eval_s_per_eval']:.1f} s per "
            f"evaluation); peak memory of the process tree: PSS {result['peak_pss_gb']:.2f} GB "
            f"(RSS summed {result['peak_rss_gb']:.2f} GB)"
        )
        print(f"(a) one member, {steps} steps of {config.max_tokens}-token batches, {cpu_count()} threads")
        executor_against_bare(
            lambda: bare_tokens_per_s(config, steps),
            lambda: executor_tokens_per_s(config, steps + ready, ready, Path(tmp) / "a"),
            "tgt tokens",
        )


if __name__ == "__main__":
    main()
