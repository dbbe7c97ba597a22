"""The translation experiment: a Transformer on Multi30k En→De (``transformer.py``), selected on BLEU; after-run tools
in ``tools.py``."""

from experiments.translation import tools
from experiments.translation.transformer import LOCAL_DATA, METRIC, PROFILES, Config, estimate, make_task
from pbt.domain import Domain

DOMAIN = Domain(
    make_task=make_task,
    config=Config,
    profiles=PROFILES,
    metric=METRIC,
    estimate=estimate,
    extra_results=tools.extra_results,
    local_data=LOCAL_DATA,
    tools=tools.COMMANDS,
)
