import pytest

from pbt.diagnostics import coalescence_step, founder_histories, greediness, lineages_alive
from pbt.rows import Event

INITIAL = [{"lr": 0.1, "opt": "adam"}, {"lr": 0.2, "opt": "sgd"}, {"lr": 0.4, "opt": "adam"}, {"lr": 0.8, "opt": "sgd"}]
# A hand-built serial log (ready every 10 steps, 40 steps per member) whose answers are known:
# round 1 (step 10): 1 copies 0 and 3 copies 2, so founders {0, 2} remain;
# round 2 (step 20): 2 fails and is replaced by a copy of 1 (founder 0); 0 explores without copying, and takes 3's
#   hyperparameters alone (a kind outside COPY_KINDS: no weights move, so 0's founder stays 0);
# round 3 (step 30): 3 copies 0, and every member descends from 0 from then on.
EVENTS = [
    Event(member=1, step=10, kind="exploit", donor=0, donor_step=10, new_hparams={"lr": 0.1, "opt": "adam"}),
    Event(member=1, step=10, kind="explore", new_hparams={"lr": 0.12, "opt": "adam"}),
    Event(member=3, step=10, kind="exploit", donor=2, donor_step=10, new_hparams={"lr": 0.4, "opt": "adam"}),
    Event(member=3, step=10, kind="explore", new_hparams={"lr": 0.5, "opt": "adam"}),
    Event(member=2, step=20, kind="failure", message="boom"),
    Event(member=2, step=20, kind="replace", donor=1, donor_step=20, new_hparams={"lr": 0.12, "opt": "adam"}),
    Event(member=2, step=20, kind="explore", new_hparams={"lr": 0.15, "opt": "adam"}),
    Event(member=0, step=20, kind="explore", new_hparams={"lr": 0.11, "opt": "adam"}),
    Event(member=0, step=20, kind="hparam_copy", donor=3, donor_step=20),
    Event(member=3, step=30, kind="exploit", donor=0, donor_step=30, new_hparams={"lr": 0.11, "opt": "adam"}),
    Event(member=3, step=30, kind="explore", new_hparams={"lr": 0.09, "opt": "adam"}),
]


def test_lineages_coalescence_and_fraction_replaced_of_a_hand_built_log():
    g = greediness(INITIAL, EVENTS, ready_every=10, end_step=40)
    assert g.lineages_alive == [(0, 4), (10, 2), (30, 1)]
    assert g.coalescence_step == 30 and g.lineages_at_end == 1
    # two copies in round 1, the replacement in round 2, one copy in round 3, of 4 members; none at the end (40)
    assert g.replaced == [(10, 0.5), (20, 0.25), (30, 0.25)]
    founders = {m: h[-1][1] for m, h in founder_histories(4, EVENTS).items()}
    assert founders == {0: 0, 1: 0, 2: 0, 3: 0}


def test_hparam_spread_per_round_of_a_hand_built_log():
    g = greediness(INITIAL, EVENTS, ready_every=10, end_step=40)
    assert set(g.spread) == {"lr"}  # a categorical hyperparameter has no spread
    expected = [
        (0, 0.1, 0.3, 0.8),  # the initial values
        (10, 0.1, 0.26, 0.5),  # 0.1, 0.12 (1 after its copy), 0.4, 0.5 (3 after its copy)
        (20, 0.11, 0.135, 0.5),  # 0 explored to 0.11, 2 replaced and explored to 0.15
        (30, 0.09, 0.115, 0.15),  # 3 copied 0 (0.11) and explored to 0.09
        (40, 0.09, 0.115, 0.15),
    ]
    assert len(g.spread["lr"]) == len(expected)
    for got, want in zip(g.spread["lr"], expected):
        assert got == pytest.approx(want)


def test_a_population_that_never_coalesces():
    events = [Event(member=1, step=10, kind="exploit", donor=0, donor_step=10, new_hparams={"lr": 0.1})]
    g = greediness([{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}], events, ready_every=10, end_step=30)
    assert g.lineages_alive == [(0, 3), (10, 2)]
    assert g.coalescence_step is None and g.lineages_at_end == 2
    assert g.replaced == [(10, pytest.approx(1 / 3))]  # round 2 (step 20) copied nothing
    # no copies at all (a baseline): every founder survives
    assert greediness([{"lr": 0.1}, {"lr": 0.2}], [], ready_every=10, end_step=30).lineages_alive == [(0, 2)]


def test_a_copy_takes_the_donors_founder_at_the_donor_step():
    """Asynchronous: 1 copies 2 at step 20; then 0, behind at step 10, copies 1 as it was at step 10, before 1's copy,
    so 0 descends from 1, not from 2, and the population never coalesces."""
    events = [
        Event(member=1, step=20, kind="exploit", donor=2, donor_step=20),
        Event(member=0, step=10, kind="exploit", donor=1, donor_step=10),
    ]
    assert lineages_alive(3, events) == [(0, 3), (10, 2)]
    assert coalescence_step(lineages_alive(3, events)) is None


def test_decisions_at_one_step_take_effect_in_recorded_order():
    """0 copies 1 at step 10: before 1 copies 2 at that step, 0 gets 1's own weights; after, it gets 2's."""
    first = Event(member=0, step=10, kind="exploit", donor=1, donor_step=10)
    second = Event(member=1, step=10, kind="exploit", donor=2, donor_step=10)
    assert lineages_alive(3, [first, second]) == [(0, 3), (10, 2)]
    assert lineages_alive(3, [second, first]) == [(0, 3), (10, 1)]


def test_coalescence_is_the_last_change_to_one_founder_and_drops_count():
    assert coalescence_step([(0, 3), (10, 1), (20, 2)]) is None  # a founder brought back from a donor's past
    assert coalescence_step([(0, 3), (10, 2), (25, 1)]) == 25
    events = [Event(member=1, step=10, kind="exploit", donor=0, donor_step=10), Event(member=2, step=20, kind="drop")]
    assert lineages_alive(3, events) == [(0, 3), (10, 2), (20, 1)]  # the dropped member's lineage ends with it


def test_the_diagnostics_grow_with_the_events_and_members_not_with_the_steps():
    """A stored run whose members claim 4 000 000 steps on a ready interval of 8 (a task bug that is refused now,
    but such stores exist) must not give a row per ready round: the greediness figure drew 500 000 bars from them."""
    events = [
        Event(member=1, step=8, kind="exploit", donor=0, donor_step=8, new_hparams={"lr": 0.1}),
        Event(member=1, step=8, kind="explore", new_hparams={"lr": 0.12}),
    ]
    g = greediness([{"lr": 0.1}, {"lr": 0.2}], events, ready_every=8, end_step=4_000_000)
    assert g.replaced == [(8, 0.5)]  # a round without a copy has no bar to draw
    assert g.spread["lr"] == [(0, 0.1, pytest.approx(0.15), 0.2), (8, 0.1, 0.11, 0.12), (4_000_000, 0.1, 0.11, 0.12)]
    assert g.lineages_alive == [(0, 2), (8, 1)] and g.coalescence_step == 8
