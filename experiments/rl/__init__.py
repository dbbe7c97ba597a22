"""Deep RL: A2C on Atari (``a2c.py``), the paper's section 4.1 at a scale one machine can run; after-run tools in
``tools.py``."""

from experiments.rl import tools
from experiments.rl.a2c import METRIC, PROFILES, Config, estimate, make_task
from pbt.domain import Domain

DOMAIN = Domain(
    make_task=make_task, config=Config, profiles=PROFILES, metric=METRIC, estimate=estimate, tools=tools.COMMANDS
)
