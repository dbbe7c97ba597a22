"""A short run of each domain on one device, recording throughput and the device into ``results/gpu/``.

    python bench/gpu_check.py --device cuda [--out results/gpu] [--data-dir DATA] [--scale 1.0]

Each domain runs its ``cpu`` profile's model with 2 members on one worker for a budget sized to take about a minute
on a GPU (``--scale`` multiplies it), through the real executor and store. Throughput is the domain's own training
metric (frames/s, target tokens/s, images/s), averaged over intervals. ``--device cpu --scale 0.02`` checks the script
itself on a machine without a GPU. On the GPU machine, install the project with ``pip install --no-deps -e .`` and any
missing wheels first (see the platform notes in the README).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

from pbt.config import replace_fields
from pbt.experiment import run_experiment
from pbt.rundir import git_commit, machine
from repro.commands.demo import data_root
from repro.domains import load_domain

# domain: (steps per member at scale 1, the train metric that measures throughput, its unit)
PLAN = {
    "rl": (400_000, "train/frames_per_s", "frames/s"),
    "translation": (600, "train/tgt_tokens_per_s", "target tokens/s"),
    "gan": (3_000, "train/images_per_s", "images/s"),
}


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({machine()['cpus']} cores)"


def check(domain: str, device: str, scale: float, out: Path, data: Path | None) -> dict:
    task = load_domain(domain)
    steps, metric, unit = PLAN[domain]
    budget = max(2, int(steps * scale))
    overrides = {
        "device": device,
        "population": 2,
        "workers": 1,
        "executor": "local",
        "budget_steps": budget,
        "ready_every": max(1, budget // 2),
        "eval_every": 0,
    }
    if data is not None:
        overrides |= {field: str(data / sub) for field, sub in task.local_data.items()}
    config = replace_fields(task.profiles["cpu"], overrides)
    t0 = time.perf_counter()
    store = run_experiment(task.module, config, out / "runs" / domain, domain=domain, force=True)
    wall = time.perf_counter() - t0
    rates = [s.metrics[metric] for s in store.scores() if metric in s.metrics]
    return {
        "unit": unit,
        "throughput_per_member": statistics.fmean(rates),
        "intervals": len(rates),
        "steps_per_member": budget,
        "wall_seconds": round(wall, 1),
        "best_score": max(m.score for m in store.members() if m.score is not None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("results/gpu"))
    parser.add_argument("--data-dir", type=Path, help="local data root (default: as pbt-repro demo)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every budget")
    parser.add_argument("--domains", nargs="+", default=list(PLAN))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "device": device_name(args.device),
        "requested_device": args.device,
        "git_commit": git_commit(),
        "machine": machine(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "domains": {},
    }
    import torch

    summary["torch"] = torch.__version__
    for domain in args.domains:
        summary["domains"][domain] = result = check(domain, args.device, args.scale, args.out, data_root(args.data_dir))
        print(
            f"{domain}: {result['throughput_per_member']:.0f} {result['unit']} per member on {summary['device']} "
            f"({result['wall_seconds']} s)",
            flush=True,
        )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
