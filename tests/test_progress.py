import dataclasses
import io
import re

from pbt.config import PBTConfig
from pbt.rows import Event, MemberRow
from repro.progress import PrintProgress, RichProgress, member_states
from tests.conftest import cli

CFG = PBTConfig(population=3, budget_steps=100, ready_every=10, executor="local", workers=2)


def rows(*specs):
    return [
        MemberRow(id=i, seed=i, hparams={"lr": 0.1 * (i + 1)}, step=step, score=score, status=status)
        for i, (step, score, status) in enumerate(specs)
    ]


def test_member_states_follow_the_controllers_choice_of_who_trains_next():
    members = rows((30, 1.0, "pending"), (10, 0.5, "pending"), (20, 0.7, "pending"))
    assert member_states(members, 2) == {0: "waiting", 1: "training", 2: "training"}  # 2 workers, furthest behind
    assert member_states(members, 1) == {0: "waiting", 1: "training", 2: "waiting"}
    members = rows((100, 1.0, "done"), (40, None, "failed"), (60, 0.2, "dropped"))
    assert member_states(members, 2) == {0: "done", 1: "failed", 2: "dropped"}
    members = rows((100, 1.0, "done"), (40, 0.3, "pending"), (60, 0.2, "pending"))
    assert member_states(members, 2, "interrupted") == {0: "done", 1: "stopped", 2: "stopped"}


def test_the_slots_shown_are_the_ones_the_controller_recorded(tmp_path):
    from experiments.toy.task import Config
    from pbt.experiment import run_experiment
    from repro.progress import run_slots

    config = dataclasses.replace(
        Config(), pbt=dataclasses.replace(Config().pbt, population=4, budget_steps=8, executor="local", workers=3)
    )
    store = run_experiment("experiments.toy.task", config, tmp_path / "run", domain="toy")
    assert store.meta()["slots"] == 3 and run_slots(store, config.pbt) == 3


def test_plain_progress_prints_exploits_and_periodic_lines():
    out = io.StringIO()
    progress = PrintProgress(
        CFG,
        every_seconds=3600.0,
        members=rows((0, None, "pending"), (0, None, "pending"), (0, None, "pending")),
        stream=out,
        title="toy",
    )
    m = rows((10, 0.5, "pending"))[0]
    progress(m, [], [])
    assert out.getvalue() == ""  # not yet time for a periodic line, nothing happened worth a line
    exploit = Event(member=0, step=10, kind="exploit", donor=2, donor_step=10, score=0.5, donor_score=0.9)
    progress(m, [], [exploit, Event(member=0, step=10, kind="explore")])
    assert out.getvalue() == "[pbt] member 0 (score 0.5) copies member 2 (score 0.9) at step 10\n"
    for member in rows((100, 0.8, "done"), (100, 0.9, "done"), (100, 0.7, "done")):
        progress(member, [], [])
    assert out.getvalue().splitlines()[-1] == "[pbt] toy: 300/300 steps (100%), best score 0.9, ETA done"


def test_run_without_a_tty_prints_plain_lines(cli_env, tmp_path):
    proc = cli(["run", "toy", "--budget-steps", "40", "--out", str(tmp_path / "run")], cli_env)
    lines = proc.stdout.splitlines()
    assert "\x1b[" not in proc.stdout  # no terminal control codes in a log
    assert any(
        re.fullmatch(r"\[pbt\] member \d \(score [-0-9.e]+\) copies member \d \(score [-0-9.e]+\) at step \d+", line)
        for line in lines
    )
    assert re.fullmatch(
        r"\[pbt\] toy pbt: 80/80 steps \(100%\), best score [-0-9.e]+, ETA done",
        next(line for line in lines if "80/80" in line),
    )
    status = cli(["status", str(tmp_path / "run")], cli_env, timeout=60).stdout
    assert status.count(" done ") == 2 and "h0=" in status


def test_live_view_renders_the_members_table():
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, height=40, force_terminal=False)
    view = RichProgress(
        CFG,
        rows((30, 1.0, "pending"), (10, 0.5, "pending"), (100, 0.7, "done")),
        title="toy pbt",
        metric="Q(θ)",
        console=console,
    )
    console.print(view.render())
    text = console.file.getvalue().replace("│", " ")
    assert "toy pbt 140/300 steps (47%)" in text and "Q(θ)" in text
    assert re.search(r"0\*\s+30\s+1\s+training\s+lr=0.1", text)  # the best (*); 2 workers for the 2 unfinished
    assert re.search(r"1\s+10\s+0.5\s+training\s+lr=0.2", text) and re.search(r"2\s+100\s+0.7\s+done", text)
    view(
        rows((30, 1.0, "pending"))[0],
        [],
        [Event(member=0, step=30, kind="exploit", donor=2, score=1.0, donor_score=2.0)],
    )
    assert "member 0 (score 1) copies member 2 (score 2) at step 30" in console.file.getvalue()
