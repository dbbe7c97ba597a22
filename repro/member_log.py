"""What the loggers (Weights & Biases, TensorBoard) log of a member's rows, written once for both.

Against the member's step: each score row as its score, its training and evaluation metrics and the hyperparameters
in effect (``hparams/<name>``; only numeric ones, since a chart cannot plot a categorical's string), and each exploit
event as ``pbt/exploit``, ``pbt/cloned_from``, ``pbt/donor_step`` and ``pbt/donor_score`` (under FIRE PBT also which
kind of copy it was, ``pbt/fire_exploit``, ``pbt/fire_evaluate`` or ``pbt/fire_adopt``); a failure or a drop as
``pbt/failure`` or ``pbt/drop``.
"""

from __future__ import annotations

import sys
from typing import Any

from pbt.lineage import COPY_KINDS
from pbt.rows import Event, EventKind, MemberRow, ScoreRow


def score_values(member: MemberRow, score: ScoreRow) -> dict[str, Any]:
    """What one score row of ``member`` logs: its score, its metrics and the member's numeric hyperparameters."""
    hparams = {f"hparams/{k}": v for k, v in member.hparams.items() if isinstance(v, (int, float))}
    return {"score": score.score, **score.metrics, **hparams}


def event_values(event: Event) -> dict[str, Any] | None:
    """What one event logs: a copy (exploit, or a failed member's replacement), a failure or a drop; None for the
    events that change only hyperparameters, which the next score row's ``hparams/<name>`` shows."""
    if event.kind in COPY_KINDS:
        fire_copy = (event.ops or {}).get("fire")
        return {
            "pbt/exploit": 1,
            "pbt/cloned_from": event.donor,
            "pbt/donor_step": event.donor_step,
            "pbt/donor_score": event.donor_score,
            **({f"pbt/fire_{fire_copy}": 1} if fire_copy else {}),
        }
    if event.kind in (EventKind.FAILURE, EventKind.DROP):
        return {f"pbt/{event.kind}": 1}
    return None


class FailsOnce:
    """What both loggers do on an error, so that logging never stops training: the first error is reported in one
    line (``[TAG] logging failed (...); training goes on without NAME logging``), and nothing more is logged."""

    tag = ""  # the line's prefix: wandb, tensorboard
    name = ""  # what it says training goes on without: W&B, TensorBoard
    failed = False

    def _fail(self, exc: BaseException) -> None:
        if not self.failed:
            print(
                f"[{self.tag}] logging failed ({type(exc).__name__}: {exc}); training goes on without {self.name} "
                "logging",
                file=sys.stderr,
                flush=True,
            )
        self.failed = True
