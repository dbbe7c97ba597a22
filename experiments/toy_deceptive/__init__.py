"""The deceptive toy of Chebykin et al. (TMLR 2025, §5.2), where the greedy schedule loses (``task.py``)."""

from experiments.toy_deceptive.task import METRIC, PROFILES, Config, initial_hparams, known_schedules, make_task
from pbt.domain import Domain

DOMAIN = Domain(
    make_task=make_task,
    config=Config,
    profiles=PROFILES,
    metric=METRIC,
    initial_hparams=initial_hparams,
    known_schedules=known_schedules,
)
