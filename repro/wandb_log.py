"""Weights & Biases logging as a store listener: each member is one W&B run, all grouped under the PBT run.

A member's run holds its hyperparameters as config (updated whenever an exploit or explore changes them), and logs,
against the member's step, what ``repro.member_log`` says a member's rows log: its score, metrics and hyperparameters
in effect (``hparams/<name>``, so the schedule shows up as a chart) and its exploit events (``pbt/exploit``,
``pbt/cloned_from``, ``pbt/donor_step``, ``pbt/donor_score``; under FIRE PBT also which kind of copy it was,
``pbt/fire_exploit``, ``pbt/fire_evaluate`` or ``pbt/fire_adopt``). Its config names the strategy and, under FIRE PBT,
the member's sub-population (``fire_role``). ``log_figures`` adds the comparison figures as images at the end;
``log_stop`` writes into each member's summary why a run stopped before its budget (``stop``).

Without a configured API key the runs are written offline (one line says so, with the ``wandb sync`` command to
upload them later). Logging never stops training: the first error is reported in one line and logging is switched
off for the rest of the run. wandb is imported only when a logger is created.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pbt.rows import Event, MemberRow, MemberStatus, ScoreRow
from repro.member_log import FailsOnce, event_values, score_values
from repro.progress import strategy_and_roles

_announced: set[str] = set()  # offline folders already announced in this process


def _say(text: str) -> None:
    print(f"[wandb] {text}", file=sys.stderr, flush=True)


def choose_mode(wandb: Any, directory: Path) -> str:
    """``WANDB_MODE`` when set, else online with a configured API key and offline without one (said in one line)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    try:
        logged_in = bool(wandb.login(prompt=False, verify=False))
    except Exception:
        logged_in = False
    if logged_in:
        return "online"
    if str(directory) not in _announced:
        _announced.add(str(directory))
        _say(
            f"no API key configured: logging offline to {directory / 'wandb'}; upload later with "
            f"`wandb sync {directory / 'wandb'}/offline-run-*`"
        )
    return "offline"


class WandbLogger(FailsOnce):
    """A listener that logs every member of one run to W&B.

    Args:
        run_dir: The run directory (names the group by default; the offline files go under it unless ``directory``).
        meta: The run's store metadata (domain, method, config), recorded in each member's config.
        project: W&B project (default ``pbt-repro``).
        entity: W&B entity (default: the account's).
        group: W&B group of the member runs (default: the run directory's name).
        directory: Where wandb writes its files (default ``run_dir``).
    """

    tag, name = "wandb", "W&B"

    def __init__(
        self,
        run_dir: Path | str,
        meta: dict[str, Any],
        project: str | None = None,
        entity: str | None = None,
        group: str | None = None,
        directory: Path | str | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.meta = meta
        self.project = project or "pbt-repro"
        self.entity = entity
        self.group = group or self.run_dir.name
        self.directory = Path(directory or self.run_dir)
        self.runs: dict[int, Any] = {}
        try:
            import wandb

            self.wandb = wandb
            self.directory.mkdir(parents=True, exist_ok=True)
            self.mode = choose_mode(wandb, self.directory)
        except Exception as exc:
            self._fail(exc)

    def _init(self, name: str, config: dict[str, Any], job_type: str) -> Any:
        return self.wandb.init(
            project=self.project,
            entity=self.entity,
            group=self.group,
            name=name,
            job_type=job_type,
            config=config,
            dir=str(self.directory),
            mode=self.mode,
            reinit="create_new",
            tags=[str(self.meta.get("domain")), str(self.meta.get("method"))],
            settings=self.wandb.Settings(silent=True, console="off"),
        )

    def _member_run(self, member: MemberRow) -> Any:
        run = self.runs.get(member.id)
        if run is None:
            strategy, roles = strategy_and_roles(self.meta)
            config = {
                **member.hparams,
                "member": member.id,
                "seed": member.seed,
                "domain": self.meta.get("domain"),
                "method": self.meta.get("method"),
                "strategy": strategy,
                "run_dir": str(self.run_dir),
                "run_config": self.meta.get("config", {}),
            }
            if roles:
                config["fire_role"] = roles.role(member.id)
            run = self.runs[member.id] = self._init(f"{self.group}/member-{member.id}", config, "member")
            if len(self.runs) == 1 and self.mode == "online" and run.project_url:
                _say(f"logging the members of {self.group} to {run.project_url}")
        return run

    def __call__(self, member: MemberRow, scores: Sequence[ScoreRow], events: Sequence[Event]) -> None:
        if self.failed:
            return
        try:
            run = self._member_run(member)
            for s in sorted(scores, key=lambda s: s.step):
                run.log(score_values(member, s), step=s.step)
            for e in events:
                if e.new_hparams is not None:
                    run.config.update(e.new_hparams, allow_val_change=True)
                if (values := event_values(e)) is not None:
                    run.log(values, step=e.step)
            if member.status != MemberStatus.PENDING:
                run.summary.update({"final_score": member.score, "status": member.status, "final_step": member.step})
        except Exception as exc:
            self._fail(exc)

    def log_stop(self, text: str) -> None:
        """Record in every member's summary why the run stopped before its budget (``pbt.stopping``)."""
        if self.failed:
            return
        try:
            for run in self.runs.values():
                run.summary.update({"stop": text})
        except Exception as exc:
            self._fail(exc)

    def log_figures(self, paths: Sequence[Path], name: str = "comparison") -> None:
        """Log image files (the comparison figures) as one extra run of the group."""
        if self.failed or not paths:
            return
        try:
            run = self._init(f"{self.group}/{name}", {"domain": self.meta.get("domain")}, name)
            run.log({Path(p).stem: self.wandb.Image(str(p)) for p in paths})
            run.finish()
        except Exception as exc:
            self._fail(exc)

    def close(self) -> None:
        """Finish every member's run, then wait until wandb has written (or uploaded) everything: its exit hook is
        not reliable in a process that used multiprocessing, as the local executor does."""
        for run in self.runs.values():
            try:
                run.finish()
            except Exception as exc:
                self._fail(exc)
        self.runs.clear()
        try:
            if hasattr(self, "wandb") and hasattr(self.wandb, "teardown"):
                self.wandb.teardown()
        except Exception as exc:
            self._fail(exc)
