"""The experiments PBT is reproduced on. Each domain is one module that exposes:

- ``Config``: a dataclass of the experiment's own settings, with a ``pbt: PBTConfig`` field; every field carries its
  help text (``pbt.config.doc``). The command line is generated from it.
- ``PROFILES``: ``{"smoke": Config(...), "cpu": Config(...), "paper": Config(...)}``.
- ``METRIC``: the name of the score PBT maximises (shown in tables and plots).
- ``make_task(config) -> pbt.task.Task``: cheap to call (no data loading).
- optionally ``initial_hparams(config) -> list[dict] | None``: a fixed initial population instead of prior samples.
- optionally ``prepare(config)``: one-time setup (decode data, train an auxiliary model) that the controller runs in
  its own process before any worker starts.
- optionally ``LOCAL_DATA``: ``{"config_field": "path under a data root"}``, so ``pbt-repro demo`` can point the
  domain at local copies of its data.
- optionally ``COMMANDS``: ``{"name": (help, main(argv) -> int)}``, reachable as ``pbt-repro DOMAIN name ...``.

Modules are imported only when their domain is used, so the CLI starts fast and ``pbt`` never imports torch.
"""

DOMAINS = {
    "toy": "experiments.toy.task",
    "rl": "experiments.rl.a2c",
    "translation": "experiments.translation.transformer",
    "gan": "experiments.gan.dcgan",
}
