"""How numbers, durations and hyperparameters are written, everywhere the suite writes them (tables, READMEs,
progress lines)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def fmt(value: float | None, std: float | None = None) -> str:
    """4 significant digits; ``–`` for a missing number; ``± std`` when a spread is given."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:.4g}"
    return text if std is None else f"{text} ± {std:.2g}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def hparams_text(hparams: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in hparams.items())
