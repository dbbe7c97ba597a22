"""The GAN experiment: DCGAN on CIFAR-10 (``dcgan.py``), PBT over the discriminator and generator learning rates,
selected on the score of a CIFAR-10 classifier (``classifier.py``); after-run tools in ``tools.py``."""

from experiments.gan import tools
from experiments.gan.classifier import prepare
from experiments.gan.dcgan import LOCAL_DATA, METRIC, PROFILES, Config, estimate, make_task
from pbt.domain import Domain

DOMAIN = Domain(
    make_task=make_task,
    config=Config,
    profiles=PROFILES,
    metric=METRIC,
    prepare=prepare,
    estimate=estimate,
    extra_results=tools.extra_results,
    local_data=LOCAL_DATA,
    tools=tools.COMMANDS,
)
