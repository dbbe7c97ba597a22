"""TensorBoard logging as a store listener: each member is one TensorBoard run, ``DIR/member-<id>``.

A member's run holds, against the member's step, the scalars ``repro.member_log`` says a member's rows log, the same
as W&B's: ``score``, the training and evaluation metrics, the numeric hyperparameters in effect (``hparams/<name>``; a
categorical's string is left out of the scalars) and its exploit events (``pbt/exploit`` = 1, ``pbt/cloned_from`` =
the donor's id, ``pbt/donor_step``, ``pbt/donor_score``), each at the wall time its row was recorded. A copy is also
a text entry, ``pbt/exploit``, that says who copied whom and the hyperparameters it went on with, categorical ones
included.

The listener sees only the rows committed while it listens, so a resumed run logging to the same folder adds its new
points after the earlier ones and repeats none. Every call is flushed to disk, so ``tensorboard --logdir DIR`` shows a
run as it goes. Logging never stops training: the first error is reported in one line and logging is switched off
for the rest of the run. torch's ``SummaryWriter`` is imported only when a logger is created.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pbt.lineage import COPY_KINDS
from pbt.rows import Event, MemberRow, ScoreRow
from pbt.space import ConfigError
from repro.member_log import FailsOnce, event_values, score_values
from repro.progress import exploit_line
from repro.text import hparams_text

INSTALL = "pip install 'pbt-repro[tensorboard]'"
MISSING = f"TensorBoard logging needs the tensorboard package, which is not installed: {INSTALL}"


def require() -> None:
    """Raise a one-line ``ConfigError`` naming the extra to install unless tensorboard is installed (without
    importing it, or torch)."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(MISSING)


class TensorBoardLogger(FailsOnce):
    """A listener that logs every member of one run to TensorBoard event files under ``directory``."""

    tag, name = "tensorboard", "TensorBoard"

    def __init__(self, directory: Path | str):
        require()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(MISSING) from None
        self.SummaryWriter = SummaryWriter
        self.directory = Path(directory)
        self.writers: dict[int, Any] = {}

    def _writer(self, member: int) -> Any:
        if member not in self.writers:
            self.writers[member] = self.SummaryWriter(log_dir=str(self.directory / f"member-{member}"))
        return self.writers[member]

    def _scalars(self, writer: Any, values: dict[str, Any], step: int, wall_time: float) -> None:
        for tag, value in values.items():
            if value is not None:  # a copy's donor score, where none was recorded
                writer.add_scalar(tag, value, global_step=step, walltime=wall_time)

    def __call__(self, member: MemberRow, scores: Sequence[ScoreRow], events: Sequence[Event]) -> None:
        if self.failed:
            return
        try:
            writer = self._writer(member.id)
            for s in sorted(scores, key=lambda s: s.step):
                self._scalars(writer, score_values(member, s), s.step, s.time)
            for e in events:
                if (values := event_values(e)) is not None:
                    self._scalars(writer, values, e.step, e.time)
                if e.kind in COPY_KINDS:
                    text = exploit_line(e) or ""
                    if e.new_hparams is not None:
                        text += f"; it goes on with {hparams_text(e.new_hparams)}"
                    writer.add_text("pbt/exploit", text, global_step=e.step, walltime=e.time)
            writer.flush()
        except Exception as exc:
            self._fail(exc)

    def close(self) -> None:
        for writer in self.writers.values():
            try:
                writer.close()
            except Exception as exc:
                self._fail(exc)
        self.writers.clear()
