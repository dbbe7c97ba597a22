"""The toy of the paper's Figure 2 (``task.py``); ``figure2.py`` redraws the figure from PBT and its ablations."""

from experiments.toy.task import METRIC, PROFILES, Config, initial_hparams, known_schedules, make_task
from pbt.domain import Domain

DOMAIN = Domain(
    make_task=make_task,
    config=Config,
    profiles=PROFILES,
    metric=METRIC,
    initial_hparams=initial_hparams,
    known_schedules=known_schedules,
)
