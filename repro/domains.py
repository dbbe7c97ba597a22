"""The registry: the built-in domains by name (``experiments.DOMAINS``), and a user's task module by its path.

Every command takes a domain the same way: ``toy``, ``rl``, ``translation``, ``gan``, or ``mypkg.mytask`` (a dotted
import path), or ``path/to/task.py``. Each resolves to a ``pbt.domain.Domain``.
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
    raise ConfigError(f"unknown domain {name!r}; choose one of: {', '.join(known)}, or give your task module "
                      "(mypkg.mytask, or path/to/task.py)")


def label(name: str) -> str:
    """A domain's name as it appears in folder names (a task file's stem)."""
    return Path(name).stem if name.endswith(".py") else name


def stored_domain(meta: dict[str, Any]) -> Domain:
    """The domain a stored run was made with: its recorded module (a user's task too), else its registered name."""
    return load(meta["module"]) if meta.get("module") else load_domain(str(meta["domain"]))


def stored_config(domain: Domain, meta: dict[str, Any]) -> Any:
    """A stored run's config, rebuilt as the domain's Config dataclass (and checked like any config)."""
    if domain.config is None:
        raise ConfigError(f"{domain.module} declares no Config dataclass, so a stored run of it cannot be rebuilt")
    return from_dict(domain.config, meta["config"])
