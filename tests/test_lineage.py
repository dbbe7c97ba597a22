import pytest

from experiments.toy.figure2 import variant_config
from experiments.toy.task import initial_hparams
from pbt.experiment import run_experiment
from pbt.lineage import ancestors, copies, hparam_history, lineage, lineage_copies
from pbt.rows import Event

INITIAL = [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}]
FINAL = {0: 40, 1: 40, 2: 40}
# A hand-built log whose ancestry is known. The order matters, not just the steps: member 2 explores at step 10
# *after* member 0 copied it at step 10, so that change must not appear in member 0's lineage. Member 0's last copy
# takes member 1's weights from step 28 while member 0 itself is at step 30 (asynchronous workers drift apart). Each
# copy records the copied weights' age, as the controller does.
EVENTS = [
    Event(
        member=0,
        step=10,
        kind="exploit",
        donor=2,
        donor_step=10,
        old_hparams={"lr": 0.1},
        new_hparams={"lr": 0.3},
        weight_age=10,
    ),
    Event(member=0, step=10, kind="explore", old_hparams={"lr": 0.3}, new_hparams={"lr": 0.36}),
    Event(member=2, step=10, kind="explore", old_hparams={"lr": 0.3}, new_hparams={"lr": 0.25}),
    Event(member=1, step=20, kind="failure", message="boom"),
    Event(
        member=1,
        step=20,
        kind="replace",
        donor=0,
        donor_step=20,
        old_hparams={"lr": 0.2},
        new_hparams={"lr": 0.36},
        weight_age=20,
    ),
    Event(member=1, step=20, kind="explore", old_hparams={"lr": 0.36}, new_hparams={"lr": 0.43}),
    Event(
        member=0,
        step=30,
        kind="exploit",
        donor=1,
        donor_step=28,
        old_hparams={"lr": 0.36},
        new_hparams={"lr": 0.43},
        weight_age=28,
    ),
    Event(member=0, step=30, kind="explore", old_hparams={"lr": 0.43}, new_hparams={"lr": 0.5}),
    Event(member=1, step=35, kind="explore", old_hparams={"lr": 0.43}, new_hparams={"lr": 0.4}),  # after the copy
]


def flat(segments):
    return [(s.member, s.start, s.end, s.hparams["lr"]) for s in segments]


def test_lineage_follows_each_copy_back_to_the_donor_at_the_donor_step():
    assert flat(lineage(0, INITIAL, EVENTS, FINAL)) == [
        (2, 0, 10, 0.3),
        (0, 10, 20, 0.36),
        (1, 20, 28, 0.43),
        (0, 30, 40, 0.5),
    ]
    assert flat(lineage(1, INITIAL, EVENTS, FINAL)) == [
        (2, 0, 10, 0.3),
        (0, 10, 20, 0.36),
        (1, 20, 35, 0.43),
        (1, 35, 40, 0.4),
    ]
    # member 2 was never copied over: its own history, with the explore that came after member 0's copy
    assert flat(lineage(2, INITIAL, EVENTS, FINAL)) == [(2, 0, 10, 0.3), (2, 10, 40, 0.25)]
    assert ancestors(lineage(0, INITIAL, EVENTS, FINAL)) == [2, 0, 1, 0]


def test_copies_and_the_edges_of_a_lineage():
    edges = [(c.member, c.step, c.donor, c.donor_step, c.kind) for c in copies(EVENTS)]
    assert edges == [(0, 10, 2, 10, "exploit"), (1, 20, 0, 20, "replace"), (0, 30, 1, 28, "exploit")]
    joined = [(c.member, c.step, c.donor, c.donor_step) for c in lineage_copies(lineage(0, INITIAL, EVENTS, FINAL))]
    assert joined == [(0, 10, 2, 10), (1, 20, 0, 20), (0, 30, 1, 28)]


def test_hparam_history_is_the_members_own_slot():
    assert [(step, h["lr"]) for step, h in hparam_history(0, INITIAL, EVENTS)] == [
        (0, 0.1),
        (10, 0.3),
        (10, 0.36),
        (30, 0.43),
        (30, 0.5),
    ]
    assert [(step, h["lr"]) for step, h in hparam_history(2, INITIAL, EVENTS)] == [(0, 0.3), (10, 0.25)]
    assert [(step, h["lr"]) for step, h in hparam_history(1, INITIAL, EVENTS)] == [
        (0, 0.2),
        (20, 0.36),
        (20, 0.43),
        (35, 0.4),
    ]


def test_replaying_the_toy_lineage_reproduces_the_best_members_weights(tmp_path):
    """The toy's θ is a deterministic function of the h schedule it was trained with, so following the best member's
    lineage and re-applying each segment's h for its number of steps must land on that member's final θ."""
    config = variant_config("pbt", seed=1, steps=120)
    store = run_experiment(
        "experiments.toy.task", config, tmp_path / "run", domain="toy", initial_hparams=initial_hparams(config)
    )
    members = store.members()
    best = max(members, key=lambda m: m.score)
    segments = lineage(best.id, store.meta()["initial_hparams"], store.events(), {m.id: m.step for m in members})
    assert len(set(ancestors(segments))) == 2 and len(lineage_copies(segments)) > 5
    assert segments[-1].hparams == best.hparams and segments[-1].end == 120
    theta = list(config.theta_init)
    for s in segments:
        for _ in range(s.end - s.start):
            theta = [t - config.lr * 2.0 * h * t for t, h in zip(theta, (s.hparams["h0"], s.hparams["h1"]))]
    final = next(r for r in store.scores(best.id) if r.step == 120).metrics
    assert theta == pytest.approx([final["eval/theta0"], final["eval/theta1"]], abs=1e-12)
