"""The registry: the built-in domains by name (``experiments.DOMAINS``), and a user's task module by its path.

Every command takes a domain the same way: ``toy``, ``toy_deceptive``, ``rl``, ``translation``, ``gan``, or
``mypkg.mytask`` (a dotted import path), or ``path/to/task.py``. Each resolves to a ``pbt.domain.Domain``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from pbt.config import from_dict
from pbt.domain import Domain, load
from pbt.space import ConfigError


def registered() -> dict[str, str]:
    """The built-in domains: name -> module path."""
    from experiments import DOMAINS

    return dict(DOMAINS)


def load_domain(name: str) -> Domain:
    """A registered domain by name, or a user's task module: a dotted import path or a ``file.py`` path."""
    known = registered()
    if name in known:
        return load(known[name])
    if name.endswith(".py") or "." in name or importlib.util.find_spec(name) is not None:
        return load(name)
    raise ConfigError(
        f"unknown domain {name!r}; choose one of: {', '.join(known)}, or give your task module: a module path "
        "importable from the current folder (as with python -m) or the PYTHONPATH (mypkg.mytask), or its file "
        "(path/to/task.py)"
    )


def label(name: str) -> str:
    """A domain's name as it appears in folder names (a task file's stem)."""
    return Path(name).stem if name.endswith(".py") else name


def stored_domain(meta: dict[str, Any], task: str | None = None) -> Domain:
    """The domain to continue (or replay) a stored run with: ``task`` when the user names one (a module or file they
    trust), else the registered domain of the run's name. A run directory is data that people share, so the module
    path recorded in it is never imported on its own say: a run of an unregistered task needs ``--task``."""
    if task is not None:
        return load_domain(task)
    name = str(meta.get("domain"))
    if name in registered():
        return load_domain(name)
    recorded = meta.get("module") or name
    raise ConfigError(
        f"this run was made by the task module {recorded!r}, which is not a registered domain; a run "
        f"directory never makes this program import the code it names, so pass --task {recorded} if you "
        "trust that module"
    )


def stored_config(domain: Domain, meta: dict[str, Any]) -> Any:
    """A stored run's config, rebuilt as the domain's Config dataclass (and checked like any config)."""
    if domain.config is None:
        raise ConfigError(f"{domain.module} declares no Config dataclass, so a stored run of it cannot be rebuilt")
    return from_dict(domain.config, meta["config"])


def resume_command(run_dir: Path | str, meta: dict[str, Any]) -> str:
    """The command that continues a stored run: with ``--task`` for a run of a task that is not registered."""
    import shlex

    task = "" if str(meta.get("domain")) in registered() else f" --task {shlex.quote(str(meta.get('module')))}"
    return f"pbt-repro resume {shlex.quote(str(run_dir))}{task}"
