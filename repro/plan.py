"""``--dry-run``: what a run would ask for, checked against the machine or Ray cluster that is visible."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from pbt.config import PBTConfig
from pbt.domain import Domain
from pbt.executor import concurrency, cpu_count
from pbt.ray_executor import cluster_capacity, connect, slots_for
from pbt.space import ConfigError


def local_capacity() -> dict[str, float]:
    gpus = 0
    if shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
            gpus = sum(line.startswith("GPU ") for line in listing.splitlines())
        except (OSError, subprocess.SubprocessError):
            gpus = 0
    return {"CPU": float(cpu_count()), "GPU": float(gpus)}


def plan(domain: Domain, config: Any, capacity: dict[str, float] | None = None) -> str:
    """A printable plan for ``config``; raises ``ConfigError`` when the capacity cannot hold one member."""
    cfg: PBTConfig = config.pbt
    if cfg.executor == "ray":
        if capacity is None:
            connect(cfg.ray_address)
            capacity = cluster_capacity()
        cpus, gpus = cfg.cpus_per_member, cfg.gpus_per_member
        try:
            slots = slots_for(cfg, cfg.population, capacity)
        except ConfigError as exc:
            raise ConfigError(f"cluster too small: {exc}") from None
    else:  # what the executor itself will run: a serial run trains one member at a time, whatever --workers says
        capacity = capacity or local_capacity()
        cpus, gpus = 1.0, 0.0
        slots = concurrency(cfg, cfg.population)
    lines = [
        f"plan: {cfg.population} members x {cfg.budget_steps:,} steps = {cfg.population * cfg.budget_steps:,} steps "
        f"(ready every {cfg.ready_every:,}; exploit {cfg.exploit}, explore {cfg.explore})",
        f"executor {cfg.executor}: {cpus:g} CPU + {gpus:g} GPU per member; visible {capacity['CPU']:g} CPUs, "
        f"{capacity['GPU']:g} GPUs -> {slots} members at a time"
        + ("" if slots >= cfg.population else f" (time-sliced, {cfg.population / slots:.1f} members per slot)"),
    ]
    if domain.estimate is not None:
        for key, value in domain.estimate(config).items():
            lines.append(f"estimate {key}: {value}")
    return "\n".join(lines)
