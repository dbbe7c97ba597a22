"""Every experiment tags its checkpoints with a format of its own (``CHECKPOINT_FORMAT`` in its training module) and
declares its domain in its package, for the training module's ``make_task``."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from experiments import DOMAINS
from pbt.domain import load

TRAINING_MODULES = {
    "toy": "experiments.toy.task",
    "toy_deceptive": "experiments.toy_deceptive.task",
    "rl": "experiments.rl.a2c",
    "translation": "experiments.translation.transformer",
    "gan": "experiments.gan.dcgan",
}


def test_each_experiment_names_a_checkpoint_format_of_its_own_and_its_package_declares_the_domain() -> None:
    modules = {name: importlib.import_module(module) for name, module in TRAINING_MODULES.items()}
    assert set(modules) == set(DOMAINS)
    formats = [module.CHECKPOINT_FORMAT for module in modules.values()]
    assert len(set(formats)) == len(formats) and all(f.startswith("pbt-repro/") for f in formats)
    for name, module in modules.items():
        assert "DOMAIN" not in vars(module) and load(DOMAINS[name]).make_task is module.make_task


@pytest.mark.parametrize("name", ["toy", "toy_deceptive"])
def test_a_toy_refuses_a_checkpoint_of_another_format(tmp_path: Path, name: str) -> None:
    module = importlib.import_module(TRAINING_MODULES[name])
    task = module.make_task(module.PROFILES["smoke"])
    hparams = {key: 0.5 for key in task.space}
    state = task.make(hparams, seed=0)
    task.train(state, hparams, 3)
    path = tmp_path / "member.json"
    task.save(state, path)
    assert task.load(path) == state
    saved = json.loads(path.read_text())
    assert saved["format"] == module.CHECKPOINT_FORMAT
    path.write_text(json.dumps({**saved, "format": "pbt-repro/other/1"}))
    with pytest.raises(ValueError, match=r"not a .*checkpoint"):
        task.load(path)
