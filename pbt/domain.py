"""The one contract between the PBT library and a task: a ``Domain``, declared once per task module as ``DOMAIN``.

The built-in experiments and a user's own training code plug in the same way. A module (a dotted import path, or a
``file.py`` path) that defines ``DOMAIN = Domain(...)`` works with every command: ``pbt-repro run mypkg.mytask``,
``baseline``, ``reproduce``, ``resume``, ``status`` and ``compare``. The store records the module, so a resumed run
finds its task again, in the controller and in every worker process.

Only ``make_task`` is required: a module without ``DOMAIN`` that defines ``make_task(config)`` (and, if it has them,
``Config``, ``PROFILES``, ``METRIC``) is read as a domain with those parts, so the smallest task module is a class and a
function. A module without ``DOMAIN`` whose score is a loss says so with ``MODE = "min"`` beside ``METRIC``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from pbt.mutations import ExploreFn, with_mutations
from pbt.rows import Mode
from pbt.space import ConfigError, HParams, Prior, with_priors
from pbt.task import Task

Command = tuple[str, Callable[[list[str]], int]]  # (help, main(argv) -> exit code)


@dataclasses.dataclass(frozen=True)
class Domain:
    """What the suite needs to know about one task.

    Attributes:
        make_task: ``make_task(config) -> Task``. Must be cheap (no data loading): the controller builds a task to
            read its search space, and every worker process builds its own.
        config: The task's settings dataclass, with a ``pbt: PBTConfig`` field; the command line is generated from
            it. None: the task takes the profile's config object as it is.
        profiles: Named configs (``smoke``, ``cpu``, ``paper``); the first is the default.
        metric: What the score means (tables, figures).
        mode: Which way the score is better: ``max`` (a reward, an accuracy) or ``min`` (a loss, a perplexity, an
            FID). A run's ``PBTConfig.mode`` of ``auto`` takes it; every decision and "best" follows it, while the
            store, tables and figures keep the score as the task reported it.
        initial_hparams: ``(config) -> list[dict] | None``, a fixed initial population instead of prior samples;
            a PBT run given none starts from it (``pbt.experiment.open_experiment``), a baseline never does.
        prepare: ``(config) -> Any``, one-time set-up (decode data, train an auxiliary model), run once in the
            controller's process before any worker starts.
        estimate: ``(config) -> {name: text}``, the cost a ``--dry-run`` prints.
        extra_results: ``(run_dir) -> dict``, a finished run's further numbers (test sets), recorded in its store.
        local_data: ``{config field: path under a data root}``, so ``demo`` can point the task at local copies.
        tools: ``{name: (help, main(argv) -> int)}``, reachable as ``pbt-repro DOMAIN name ...``.
        known_schedules: ``(config) -> {name: pbt.algorithm.Schedule}``, schedules known in closed form (a toy's
            greedy and best ones), which the strategy study measures each run's discovered schedule against.
        explore_fn: ``(hparams, rng) -> hparams``, run after every explore step on its result, with the decision's
            random generator (Ray Tune's ``custom_explore_fn``); it must return the same names, each value within
            its mutation space (``pbt.mutations``).
        module: Where it was loaded from (set by ``load``): what worker processes and a resume import again.
    """

    make_task: Callable[[Any], Task]
    config: type | None = None
    profiles: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    metric: str = "score"
    mode: Mode = "max"
    initial_hparams: Callable[[Any], list[HParams] | None] | None = None
    prepare: Callable[[Any], Any] | None = None
    estimate: Callable[[Any], Mapping[str, str]] | None = None
    extra_results: Callable[[Path], Mapping[str, Any]] | None = None
    local_data: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tools: Mapping[str, Command] = dataclasses.field(default_factory=dict)
    known_schedules: Callable[[Any], Mapping[str, Any]] | None = None
    explore_fn: ExploreFn | None = None
    module: str = ""

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ConfigError(f"Domain mode must be max or min, got {self.mode!r}")

    def resolve_mode(self, config: Any) -> Any:
        """``config`` with a ``pbt.mode`` of ``auto`` made this domain's ``mode``: what a run records and compares."""
        if config.pbt.mode != "auto":
            return config
        return dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, mode=self.mode))

    def initial(self, config: Any) -> list[HParams] | None:
        return None if self.initial_hparams is None else self.initial_hparams(config)

    def search_space(self, config: Any) -> dict[str, Prior]:
        """The run's search space: the task's priors with ``config.pbt.priors`` applied. The one place it is
        resolved, so the controller, the run directory and grid search all search the same space."""
        return with_priors(self.make_task(config).space, config.pbt.priors)

    def mutation_space(self, config: Any) -> dict[str, Prior]:
        """What explore moves within: the search space with the task's ``mutations`` (an optional attribute beside
        its ``space``) and ``config.pbt.mutations`` in place of some priors (``pbt.mutations.with_mutations``)."""
        task = self.make_task(config)
        space = with_priors(task.space, config.pbt.priors)
        return with_mutations(space, getattr(task, "mutations", {}), config.pbt.mutations)

    def default_profile(self) -> str | None:
        return "cpu" if "cpu" in self.profiles else next(iter(self.profiles), None)

    def default_config(self) -> Any:
        """The default profile's config, which the command line starts from; refused in one line for a module that
        defines ``make_task`` but no ``Config`` (the Python API, given a config, needs none)."""
        profile = self.default_profile()
        if profile is None:
            raise ConfigError(
                f"{self.module or 'this task module'} defines make_task but no Config, so the command line has no "
                "settings to start from: add a dataclass Config with a field pbt: PBTConfig = "
                "field(default_factory=PBTConfig), or declare DOMAIN with profiles"
            )
        return self.profiles[profile]


FILE_MODULE_PREFIX = "pbt_task_"  # a task file is imported as pbt_task_STEM, apart from any module of that name


def import_module(ref: str) -> ModuleType:
    """Import ``ref``: a dotted module path, or the path of a ``.py`` file (imported under its file name's stem, and
    kept in ``sys.modules`` so that pickled configs of its dataclasses load again)."""
    if ref.endswith(".py"):
        path = Path(ref).resolve()
        if not path.is_file():
            raise ConfigError(f"no such task file: {ref}")
        name = f"{FILE_MODULE_PREFIX}{path.stem}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(ref)
    except ModuleNotFoundError as exc:
        if exc.name and ref.startswith(exc.name):  # the task module itself is missing, not one it imports
            raise ConfigError(
                f"cannot import task module {ref!r} ({exc}); give a registered domain, a module path importable "
                "from the current folder (as with python -m) or the PYTHONPATH, or the task's file path, path/to/task.py"
            ) from None
        raise


def domain_of(module: ModuleType) -> Domain:
    """The module's ``DOMAIN``, or a domain read from its conventional names when it declares none."""
    declared = module.__dict__.get("DOMAIN")
    if isinstance(declared, Domain):
        return declared
    if declared is not None:
        raise ConfigError(f"{module.__name__}.DOMAIN must be a pbt.domain.Domain, got {type(declared).__name__}")
    make_task = module.__dict__.get("make_task")
    if not callable(make_task):
        raise ConfigError(f"{module.__name__} is not a task module: it defines neither DOMAIN nor make_task(config)")
    names = module.__dict__
    config = names.get("Config")
    profiles = names.get("PROFILES") or ({"default": config()} if isinstance(config, type) else {})
    return Domain(
        make_task=make_task,
        config=config,
        profiles=profiles,
        metric=str(names.get("METRIC", "score")),
        mode=names.get("MODE", "max"),
    )


def load(ref: str) -> Domain:
    """The domain of the task module ``ref`` (a dotted path or a ``file.py`` path). A module that declares no
    ``DOMAIN`` but whose package does, for the same ``make_task`` (a domain split into training code and tools), is
    that package's domain."""
    module = import_module(ref)
    if "DOMAIN" not in module.__dict__ and "." in ref and not ref.endswith(".py"):
        package = import_module(ref.rsplit(".", 1)[0])
        declared = package.__dict__.get("DOMAIN")
        if isinstance(declared, Domain) and declared.make_task is module.__dict__.get("make_task"):
            return dataclasses.replace(declared, module=ref)
    return dataclasses.replace(domain_of(module), module=ref)
