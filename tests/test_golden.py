"""Golden runs: the serial executor's event log and scores for fixed seeds, recorded once and compared exactly.

The serial executor keeps its members level (every member that trains in a round starts at the same step), so no
change to how asynchronous copies are resolved, and no restructuring, may change what it does. A difference here is a
change of semantics, not of shape. To re-record after an intended change of semantics (say why in the commit):

    PBT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from experiments.toy.figure2 import variant_config
from experiments.toy.task import Config as ToyConfig
from experiments.toy.task import initial_hparams
from pbt.experiment import run_experiment
from pbt.store_writer import Store

GOLDEN = Path(__file__).with_name("golden")
MULTI30K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multi30k"


def run_log(store: Store, digits: int | None = None) -> dict[str, Any]:
    """What a run decided and measured, without times: every event and every score (with its eval metrics)."""

    def num(value: Any) -> Any:
        return round(value, digits) if digits is not None and isinstance(value, float) else value

    def hp(h: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if h is None else {k: num(v) for k, v in sorted(h.items())}

    events = [
        {
            "member": e.member,
            "step": e.step,
            "kind": e.kind,
            "donor": e.donor,
            "donor_step": e.donor_step,
            "old_hparams": hp(e.old_hparams),
            "new_hparams": hp(e.new_hparams),
            "ops": e.ops,
            "score": num(e.score),
            "donor_score": num(e.donor_score),
        }
        for e in store.events()
    ]
    scores = sorted(
        [s.member, s.step, num(s.score), {k: num(v) for k, v in sorted(s.metrics.items()) if k.startswith("eval/")}]
        for s in store.scores()
    )
    members = [
        {"id": m.id, "step": m.step, "hparams": hp(m.hparams), "score": num(m.score), "status": m.status}
        for m in store.members()
    ]
    return {"events": events, "scores": scores, "members": members}


def check_golden(name: str, log: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.json"
    if os.environ.get("PBT_UPDATE_GOLDEN"):
        path.write_text(json.dumps(log, sort_keys=True) + "\n")
    golden = json.loads(path.read_text())
    fresh = json.loads(json.dumps(log, sort_keys=True))  # tuples become lists, as in the file
    assert len(fresh["events"]) == len(golden["events"])
    for i, (a, b) in enumerate(zip(fresh["events"], golden["events"])):
        assert a == b, f"event {i} differs"
    assert fresh["scores"] == golden["scores"]
    assert fresh["members"] == golden["members"]


def test_toy_figure2_pbt_is_unchanged(tmp_path: Path) -> None:
    config = variant_config("pbt", 3, 200)
    store = run_experiment(
        "experiments.toy.task", config, tmp_path / "run", domain="toy", initial_hparams=initial_hparams(config)
    )
    check_golden("toy-figure2-pbt-seed3", run_log(store))


@pytest.mark.parametrize("exploit", ["truncation", "ttest", "tournament"])
def test_toy_population_8_serial_is_unchanged(tmp_path: Path, exploit: str) -> None:
    base = ToyConfig()
    config = dataclasses.replace(
        base,
        pbt=dataclasses.replace(base.pbt, population=8, seed=11, exploit=exploit, explore="perturb", budget_steps=120),
    )
    store = run_experiment("experiments.toy.task", config, tmp_path / "run", domain="toy")
    check_golden(f"toy-pop8-{exploit}-seed11", run_log(store))


@pytest.mark.usefixtures("one_torch_thread")
def test_translation_smoke_serial_is_unchanged(tmp_path: Path) -> None:
    from experiments.translation.transformer import PROFILES
    from pbt.config import replace_fields

    config = replace_fields(
        PROFILES["smoke"],
        {
            "data_dir": str(MULTI30K),
            "cache_dir": str(tmp_path / "cache"),
            "exploit": "truncation",
            "executor": "serial",
            "workers": 1,
        },
    )
    store = run_experiment("experiments.translation.transformer", config, tmp_path / "run", domain="translation")
    # torch's float sums may differ in their last bits between CPU kinds; 6 digits keeps every decision exact
    check_golden("translation-smoke-serial-seed0", run_log(store, digits=6))
