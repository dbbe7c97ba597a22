"""Progress as a run goes: a line per exploit and a periodic line on the population; a table of members on demand."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pbt.config import PBTConfig
from pbt.store import Event, MemberRow, ScoreRow, Store


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def hparams_text(hparams: dict) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in hparams.items())


class PrintProgress:
    """A store listener that prints plain lines (safe for CI logs and redirected output)."""

    def __init__(self, cfg: PBTConfig, every_seconds: float = 10.0):
        self.cfg = cfg
        self.every = every_seconds
        self.last = 0.0
        self.members: dict[int, MemberRow] = {}

    def __call__(self, member: MemberRow, scores: Sequence[ScoreRow], events: Sequence[Event]) -> None:
        self.members[member.id] = member
        for e in events:
            if e.kind == "exploit":
                print(f"[pbt] member {e.member} (score {_fmt(e.score)}) copies member {e.donor} "
                      f"(score {_fmt(e.donor_score)}) at step {e.step}", flush=True)
            elif e.kind == "failure":
                print(f"[pbt] member {e.member} failed at step {e.step}: {e.message}", flush=True)
        now = time.monotonic()
        if now - self.last >= self.every or all(m.status != "pending" for m in self.members.values()):
            self.last = now
            done = sum(m.step for m in self.members.values())
            total = self.cfg.population * self.cfg.budget_steps
            scored = [m.score for m in self.members.values() if m.score is not None]
            best = max(scored) if scored else float("nan")
            print(f"[pbt] {done}/{total} steps ({100 * done / total:.0f}%), best score {_fmt(best)}", flush=True)


def member_table(store: Store) -> str:
    meta = store.meta()
    compute = store.compute()
    lines = [
        f"run {store.run_dir}: {meta.get('domain')} / {meta.get('method')} — {meta.get('status')}, "
        f"{compute['used_steps']}/{compute['planned_steps']} steps, {compute['wall_seconds']:.1f} s wall",
        f"{'member':>6} {'step':>10} {'score':>10} {'state':>8} {'fails':>5}  hyperparameters",
    ]
    members = store.members()
    best = max((m for m in members if m.score is not None), key=lambda m: m.score, default=None)  # type: ignore[arg-type,return-value]
    for m in members:
        mark = "*" if best is not None and m.id == best.id else " "
        score = "-" if m.score is None else _fmt(m.score)
        lines.append(f"{m.id:>5}{mark} {m.step:>10} {score:>10} {m.status:>8} {m.failures:>5}  {hparams_text(m.hparams)}")
    return "\n".join(lines)
