"""Algorithm-free helpers shared by the torch experiments, each in one place: device choice, seeding, safe checkpoint
loading, atomic file writes, the cache folder and its lock, opening a saved member of a run, and the guarded
torchvision import (its CPU wheel for torch 2.13 lacks two operator schemas; see ``import_torchvision``)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pbt import checkpoints


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU; asking for CUDA without one is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} was asked for but no CUDA device is available; use --device cpu")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator the member owns (saved in its checkpoint)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    # Through a file object: given a path, torch.save names the archive's folder after the file, so the same weights
    # written under an atomic write's temporary name would hash differently every time.
    with open(path, "wb") as f:
        torch.save(obj, f)


def weights_fingerprint(state_dict: dict[str, Any]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and values: the same weights give the same fingerprint, however
    and wherever the file holding them was written."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


# Lines of torch's message around the reason a weights-only load failed: its advice to load with weights_only=False
# (which would run whatever the file holds) and pointers to its documentation.
TORCH_LOAD_ADVICE = ("weights_only", "Weights only load failed", "Please file an issue", "Check the documentation")


def load_weights_only(path: Path, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: a file that is not one (truncated, foreign, a pickle that
    would run code) is refused with one line naming it and the reason, never with advice to load it unsafely."""
    try:
        with warnings.catch_warnings():  # a pickle not written by torch.save also gets a two-line protocol warning
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, not a pickle traceback
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if not any(text in line for text in TORCH_LOAD_ADVICE)), "unreadable")
        raise ValueError(f"{path} is not a readable {what}: {type(exc).__name__}: {reason}") from exc


def load_checkpoint(path: Path, required: tuple[str, ...], checkpoint_format: str = "") -> dict[str, Any]:
    """``load_weights_only`` plus a check that the keys a member needs are there and, given ``checkpoint_format``,
    that the file's ``format`` tag is that one (an experiment's ``CHECKPOINT_FORMAT``)."""
    obj = load_weights_only(path)
    keys = (*required, "format") if checkpoint_format else required
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise ValueError(f"{path} is not a checkpoint of this experiment (missing {missing})")
    if checkpoint_format and obj["format"] != checkpoint_format:
        raise ValueError(f"{path} is a {obj['format']!r} checkpoint, not {checkpoint_format!r}")
    return obj


def import_torchvision() -> Any:
    """Import torchvision. Its wheel for torch 2.13 is CUDA-built; on a CPU torch the import fails with "operator
    torchvision::nms does not exist". Defining the two detection-op schemas first fixes it (models, transforms,
    datasets and utils then work); it is done only when that failure happens, so a matching build is untouched."""
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP_ALIVE.append(lib)  # the schemas live as long as the library object
        import torchvision
    return torchvision


_KEEP_ALIVE: list[Any] = []


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``pbt.checkpoints.write_atomic`` into a folder it makes first if need be: a reader (another worker, a later run)
    sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoints.write_atomic(path, write)


def cache_root(domain: str, cache_dir: str = "") -> Path:
    """Where a domain caches decoded data and trained helpers: ``cache_dir`` (its --cache-dir), else
    ``$PBT_CACHE_DIR/DOMAIN``, else ``$XDG_CACHE_HOME/pbt-repro/DOMAIN`` (``~/.cache`` by default)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("PBT_CACHE_DIR"):
        return Path(os.environ["PBT_CACHE_DIR"]).expanduser() / domain
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "pbt-repro" / domain


@contextlib.contextmanager
def cache_lock(cache: Path, name: str) -> Iterator[None]:
    """An exclusive lock across processes, so two workers never decode or train the same thing at once."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_saved_member(
    run_dir: Path, which: str, config_class: type, make_task: Callable[[Any], Any], **overrides: Any
) -> tuple[Any, Any, Any]:
    """A run's member ``which`` (an id, or ``best``) ready to use: ``(task, state, member row)``, the task built from
    the run's stored config with ``overrides`` (local paths, the device) applied where they are given."""
    from pbt.config import from_dict
    from pbt.results import saved_member

    stored, chosen, path = saved_member(run_dir, which)
    config = from_dict(config_class, stored)
    for key, value in overrides.items():
        if value:
            setattr(config, key, value)
    task = make_task(config)
    return task, task.load(path), chosen
