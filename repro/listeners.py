"""What a run shows and logs while it trains: progress (a live view on a terminal, plain lines otherwise, none when
quiet) and, on request, Weights & Biases and TensorBoard. The one wiring of them, for the command line and the Python
API alike."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pbt.controller import Listener
from pbt.stopping import describe
from pbt.store_writer import Store
from repro.compare import compare
from repro.progress import progress_listeners, stored_pbt_config
from repro.tensorboard_log import TensorBoardLogger
from repro.wandb_log import WandbLogger


@contextlib.contextmanager
def run_listeners(
    store: Store,
    metric: str,
    title: str,
    *,
    quiet: bool = False,
    wandb: bool = False,
    wandb_project: str = "pbt-repro",
    wandb_entity: str | None = None,
    group: str | None = None,
    figures: bool = False,
    wandb_dir: Path | None = None,
    tensorboard: Path | str | None = None,
) -> Iterator[list[Listener]]:
    """The listeners of the opened run of ``store``: progress unless ``quiet``, W&B logging with ``wandb`` (its
    members grouped under ``group``, files under ``wandb_dir``) and TensorBoard logging into the folder
    ``tensorboard`` (its ``group`` subfolder, when a command trains several runs); with ``figures``, the run's own
    figures are logged to W&B when the ``with`` block ends without an error, as is why a run stopped before its
    budget. The run's settings are read from its store, so a baseline shows the population it really trains."""
    cfg = stored_pbt_config(store.meta())
    with progress_listeners(store, cfg, quiet, title, metric) as listeners:
        logger = wandb_logger(store, wandb_project, wandb_entity, group, wandb_dir) if wandb else None
        board = TensorBoardLogger(Path(tensorboard) / (group or "")) if tensorboard else None
        listeners = [*listeners, *(x for x in (logger, board) if x is not None)]
        try:
            yield listeners
            stop = store.meta().get("stop")
            if logger is not None and stop:
                logger.log_stop(describe(stop))
            if logger is not None and figures:
                logger.log_figures(run_figures(store.run_dir), name="figures")
        finally:
            if logger is not None:
                logger.close()
            if board is not None:
                board.close()


def wandb_logger(
    store: Store,
    project: str = "pbt-repro",
    entity: str | None = None,
    group: str | None = None,
    directory: Path | None = None,
) -> Any:
    """A W&B logger of the run of ``store``: the one place a logger is made."""
    return WandbLogger(store.run_dir, store.meta(), project, entity, group, directory)


def run_figures(run_dir: Path) -> list[Path]:
    """Draw one run's figures into ``RUN_DIR/figures`` (for W&B); a failure to draw is reported, not raised."""
    try:
        comparison = compare([run_dir], run_dir / "figures")
    except Exception as exc:
        print(f"could not draw the run's figures: {exc}", file=sys.stderr)
        return []
    return [run_dir / "figures" / f for files in comparison.figures.values() for f in files if f.endswith(".png")]
