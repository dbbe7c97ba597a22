"""The experiments PBT is reproduced on. Each domain declares, once, a ``pbt.domain.Domain`` in its package's
``__init__``, which joins the training code (one module, read top to bottom: config and profiles, model, data, one
train step, evaluate, the task) and the after-run tools (``tools.py``, where there are any):

    DOMAIN = Domain(make_task=make_task, config=Config, profiles=PROFILES, metric=METRIC,
                    prepare=..., estimate=..., extra_results=..., local_data=..., tools=...)

- ``Config``: a dataclass of the experiment's own settings, with a ``pbt: PBTConfig`` field; every field carries its
  help text (``pbt.config.doc``). The command line is generated from it.
- ``PROFILES``: ``{"smoke": Config(...), "cpu": Config(...), "paper": Config(...)}``.
- ``METRIC``: the name of the score PBT maximises (shown in tables and plots).
- ``make_task(config) -> pbt.task.Task``: cheap to call (no data loading).
- the optional hooks are described in ``pbt/domain.py``.

A user's own task module declares the same object and then works with every command. Modules are imported only when
their domain is used, so the CLI starts fast and ``pbt`` never imports torch. The built-in ones are registered here:
"""

DOMAINS = {
    "toy": "experiments.toy",
    "toy_deceptive": "experiments.toy_deceptive",
    "rl": "experiments.rl",
    "translation": "experiments.translation",
    "gan": "experiments.gan",
}
