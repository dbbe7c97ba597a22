"""Progress as a run goes, and a table of members on demand.

``progress_listeners`` picks the view: a live rich display on a terminal (overall progress against the compute budget
with an ETA, a table of members, exploit events as log lines), plain periodic lines otherwise (CI logs, redirected
output). Both are store listeners: the controller calls them after every commit with the member it published. rich
is imported only for the live view.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from pbt import fire, stopping
from pbt.config import PBTConfig, from_dict
from pbt.controller import Listener
from pbt.executor import concurrency
from pbt.results import best_of
from pbt.rows import Event, EventKind, MemberRow, MemberStatus, ScoreRow, run_mode
from pbt.space import ConfigError
from pbt.store import StoreReader
from repro.domains import resume_command
from repro.text import duration, fmt, hparams_text


def run_slots(store: StoreReader, cfg: PBTConfig) -> int:
    """How many members the run trains at once: what its controller recorded for its executor (a Ray cluster's
    slots included), else what a local executor would run."""
    recorded = store.meta().get("slots")
    return int(recorded) if recorded else concurrency(cfg, cfg.population)


def member_states(members: Sequence[MemberRow], slots: int, run_status: str = "running") -> dict[int, str]:
    """Each member's state as seen from the store: done, failed, dropped, or, for those still going, training (the
    members the controller runs next: the furthest behind, as many as it has workers) or waiting (for a worker).
    A run that is not running shows its unfinished members as stopped."""
    states = {m.id: m.status if m.status != MemberStatus.PENDING else "waiting" for m in members}
    pending = sorted((m for m in members if states[m.id] == "waiting"), key=lambda m: (m.step, m.id))
    if run_status in ("interrupted", "finished"):
        return {i: "stopped" if s == "waiting" else s for i, s in states.items()}
    for m in pending[:slots]:
        states[m.id] = "training"
    return states


class Eta:
    """Steps per second since the view started (so a resumed run's earlier steps do not inflate the rate)."""

    def __init__(self, done: int, total: int):
        self.start_done, self.total, self.start = done, total, time.monotonic()

    def text(self, done: int) -> str:
        rate = (done - self.start_done) / max(1e-9, time.monotonic() - self.start)
        if done >= self.total:
            return "done"
        return "?" if rate <= 0 else duration((self.total - done) / rate)


def best_label(mode: str) -> str:
    return "best (lowest) score" if mode == "min" else "best score"


def exploit_line(e: Event) -> str | None:
    if e.kind in (EventKind.EXPLOIT, EventKind.EXPLOIT_HPARAMS):
        what = (
            "the hyperparameters of "
            if e.kind == EventKind.EXPLOIT_HPARAMS
            else "the weights of "
            if e.message == "transfer=weights"
            else ""
        )
        return (
            f"member {e.member} (score {fmt(e.score)}) copies {what}member {e.donor} (score "
            f"{fmt(e.donor_score)}) at step {e.step}"
        )
    if e.kind == EventKind.FAILURE:
        return f"member {e.member} failed at step {e.step}: {e.message}"
    if e.kind == EventKind.REPLACE:
        return f"member {e.member} is replaced by a copy of member {e.donor} at step {e.step}"
    if e.kind == EventKind.DROP:
        return f"member {e.member} is dropped at step {e.step}"
    return None


class PrintProgress:
    """A store listener that prints plain lines (safe for CI logs and redirected output): one per exploit or failure,
    and one on the whole population every ``every_seconds`` and when every member has finished."""

    def __init__(
        self,
        cfg: PBTConfig,
        every_seconds: float = 10.0,
        members: Sequence[MemberRow] = (),
        stream: TextIO | None = None,
        title: str = "",
    ):
        self.cfg = cfg
        self.title = f"{title}: " if title else ""
        self.every = every_seconds
        self.stream = stream
        self.last = time.monotonic()
        self.members: dict[int, MemberRow] = {m.id: m for m in members}
        self.total = cfg.population * cfg.budget_steps
        self.eta = Eta(self.done, self.total)

    @property
    def done(self) -> int:
        return sum(m.step for m in self.members.values())

    def _print(self, text: str) -> None:
        print(f"[pbt] {text}", file=self.stream or sys.stdout, flush=True)

    def __call__(self, member: MemberRow, scores: Sequence[ScoreRow], events: Sequence[Event]) -> None:
        self.members[member.id] = member
        for e in events:
            line = exploit_line(e)
            if line:
                self._print(line)
        now = time.monotonic()
        finished = len(self.members) >= self.cfg.population and all(
            m.status != MemberStatus.PENDING for m in self.members.values()
        )
        if now - self.last >= self.every or finished:
            self.last = now
            leader = best_of(list(self.members.values()), self.cfg.mode)
            best = leader.score if leader is not None and leader.score is not None else float("nan")
            self._print(
                f"{self.title}{self.done}/{self.total} steps ({100 * self.done / max(1, self.total):.0f}%), "
                f"{best_label(self.cfg.mode)} {fmt(best)}, ETA {self.eta.text(self.done)}"
            )


class RichProgress:
    """A live terminal view: a progress bar against the compute budget with an ETA, the members table, and exploit
    events printed above it as they happen. Use as a context manager around the run."""

    def __init__(
        self,
        cfg: PBTConfig,
        members: Sequence[MemberRow] = (),
        title: str = "PBT",
        metric: str = "score",
        console: Any = None,
        slots: Callable[[], int] | None = None,
    ):
        from rich.console import Console

        self.cfg, self.title, self.metric = cfg, title, metric
        self.slots = slots or (lambda: concurrency(cfg, cfg.population))
        self.console = console or Console()
        self.members: dict[int, MemberRow] = {m.id: m for m in members}
        self.total = cfg.population * cfg.budget_steps
        self.eta = Eta(sum(m.step for m in self.members.values()), self.total)
        self.started = time.monotonic()
        self.live: Any = None

    def __enter__(self) -> RichProgress:
        from rich.live import Live

        self.live = Live(get_renderable=self.render, console=self.console, refresh_per_second=2, transient=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        members = sorted(self.members.values(), key=lambda m: m.id)
        done = sum(m.step for m in members)
        leader = best_of(members, self.cfg.mode)
        best = None if leader is None else leader.id
        head = Text.assemble(
            (f"{self.title} ", "bold"),
            f"{done}/{self.total} steps "
            f"({100 * done / max(1, self.total):.0f}%)  elapsed "
            f"{duration(time.monotonic() - self.started)}  ETA {self.eta.text(done)}",
        )
        bar = ProgressBar(total=max(1, self.total), completed=done, width=40)
        table = Table(show_edge=False, pad_edge=False, header_style="bold")
        for name, justify in (
            ("member", "right"),
            ("step", "right"),
            (self.metric if self.cfg.mode != "min" else f"{self.metric} (min)", "right"),
            ("state", "left"),
            ("hyperparameters", "left"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        states = member_states(members, self.slots())
        colours = {"training": "green", "waiting": "dim", "done": "blue", "failed": "red", "dropped": "red"}
        room = max(5, self.console.height - 8)
        for m in members[:room]:
            mark = "*" if m.id == best else " "
            table.add_row(
                f"{m.id}{mark}",
                str(m.step),
                "-" if m.score is None else fmt(m.score),
                Text(states[m.id], style=colours.get(states[m.id], "")),
                hparams_text(m.hparams),
            )
        top = Table.grid(padding=(0, 1))
        top.add_row(head)
        top.add_row(bar)  # in a grid, so the bar ends its line
        parts: list[Any] = [top, table]
        if len(members) > room:
            parts.append(Text(f"… {len(members) - room} more members (pbt-repro status DIR shows all)", style="dim"))
        return Group(*parts)

    def __call__(self, member: MemberRow, scores: Sequence[ScoreRow], events: Sequence[Event]) -> None:
        self.members[member.id] = member
        for e in events:
            line = exploit_line(e)
            if line:
                self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {line}", highlight=False)


@contextlib.contextmanager
def progress_listeners(
    store: StoreReader, cfg: PBTConfig, quiet: bool = False, title: str = "PBT", metric: str = "score"
) -> Iterator[list[Listener]]:
    """The progress listeners for a run of ``store``: a live view on a terminal, plain lines otherwise, none if
    ``quiet``. The live view is shown while the ``with`` block runs."""
    if quiet:
        yield []
        return
    members = store.members()
    if not sys.stdout.isatty():
        yield [PrintProgress(cfg, members=members, title=title)]
        return
    with RichProgress(cfg, members, title=title, metric=metric, slots=lambda: run_slots(store, cfg)) as view:
        yield [view]


def stored_pbt_config(meta: dict[str, Any]) -> PBTConfig:
    """The PBT settings a run's store records (``PBTConfig``'s defaults for a run written by another version)."""
    try:
        return from_dict(PBTConfig, meta.get("config", {}).get("pbt", {}))
    except (ConfigError, TypeError):
        return PBTConfig()


def strategy_and_roles(meta: dict[str, Any]) -> tuple[str | None, fire.Split | None]:
    """A PBT run's strategy (None for a baseline) and, for FIRE PBT, which sub-population each member is in."""
    cfg = stored_pbt_config(meta)
    strategy = cfg.strategy if meta.get("method") == "pbt" else None
    return strategy, (fire.split(cfg) if strategy == "fire" else None)


def stop_line(run_dir: Path, meta: dict[str, Any], state: str) -> str:
    """Why the run stopped before its budget (``pbt.stopping``), and for a time limit how to go on."""
    stop = meta["stop"]
    text = f"{'stopping' if state == 'running' else 'stopped'}: {stopping.describe(stop)}"
    if stop["reason"] == "time_limit":
        text += (
            f"; `{resume_command(run_dir, meta)} --time-limit SECONDS` with more than {stop['time_limit']:g} "
            "(or 0: no limit) continues it"
        )
    return text


def member_table(store: StoreReader) -> str:
    """The members of a run, once: step, latest score, state and hyperparameters (``*`` marks the best: the lowest
    score where the run minimises it, which the header says)."""
    meta = store.meta()
    compute = store.compute()
    cfg = stored_pbt_config(meta)
    mode = run_mode(meta["config"])
    state, why = store.state()  # running only while its owner lives: a killed run reads as interrupted
    wall = compute["wall_seconds"]
    if state == "running" and isinstance(meta.get("wall_at"), (int, float)):  # the time since its last commit too
        wall += max(0.0, time.time() - meta["wall_at"])
    method = meta.get("method")
    strategy, roles = strategy_and_roles(meta)  # FIRE's members say which sub-population they are in
    lines = [
        f"run {store.run_dir}: {meta.get('domain')} / {strategy or method} — {state}{f' ({why})' if why else ''}, "
        f"{compute['used_steps']}/{compute['planned_steps']} steps, {wall:.1f} s wall"
        + (", lowest score is best" if mode == "min" else ""),
        *([stop_line(store.run_dir, meta, state)] if meta.get("stop") else []),
        f"{'member':>6} {'step':>10} {'score':>10} {'state':>8} {'fails':>5}  {'role':<9}  hyperparameters"
        if roles
        else f"{'member':>6} {'step':>10} {'score':>10} {'state':>8} {'fails':>5}  hyperparameters",
    ]
    members = store.members()
    states = member_states(members, run_slots(store, cfg), "interrupted" if state == "failed" else state)
    best = best_of(members, mode)
    for m in members:
        mark = "*" if best is not None and m.id == best.id else " "
        score = "-" if m.score is None else fmt(m.score)
        role = f"{roles.role(m.id):<9}  " if roles else ""
        lines.append(
            f"{m.id:>5}{mark} {m.step:>10} {score:>10} {states[m.id]:>8} {m.failures:>5}  {role}"
            f"{hparams_text(m.hparams)}"
        )
    return "\n".join(lines)
