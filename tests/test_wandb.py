import dataclasses

import pytest

import experiments.toy.task as toy
from pbt import fire
from pbt.experiment import run_experiment
from pbt.store import StoreReader
from repro.compare import compare
from repro.wandb_log import WandbLogger, choose_mode


def toy_config(steps=24):
    base = toy.Config()
    return dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, budget_steps=steps))


def test_offline_run_files_hold_the_logged_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    config = toy_config()
    from pbt.rundir import RunDir

    RunDir.open(run_dir, "toy", "pbt", config, toy.initial_hparams(config), toy.SPACE).close()
    meta = StoreReader(run_dir).meta()
    logger = WandbLogger(run_dir, meta, project="pbt-test", group="toy-group", directory=tmp_path / "wb")
    store = run_experiment(
        "experiments.toy.task",
        config,
        run_dir,
        domain="toy",
        initial_hparams=toy.initial_hparams(config),
        resume=True,
        listeners=[logger],
    )
    assert store.events("exploit")  # there was something to log
    comparison = compare([run_dir], tmp_path / "figures")
    logger.log_figures(
        [tmp_path / "figures" / f for files in comparison.figures.values() for f in files if f.endswith(".png")]
    )
    logger.close()
    assert not logger.failed

    runs = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 3  # two members and the figures
    records = [next(r.glob("run-*.wandb")).read_bytes() for r in runs]
    members = [r for r in records if b"toy-group/member-" in r]
    assert len(members) == 2
    for data in members:
        for key in (
            b"score",
            b"eval/theta0",
            b"train/surrogate",
            b"hparams/h0",
            b"pbt/exploit",
            b"pbt/cloned_from",
            b"h1",
            b"toy-group",
        ):
            assert key in data, key
    figures = [r for r in records if b"toy-group/comparison" in r]
    assert len(figures) == 1 and b"schedule" in figures[0] and b"lineage_tree" in figures[0]


def test_a_failing_wandb_never_stops_training(tmp_path, capsys):
    class Broken:
        Settings = dict

        @staticmethod
        def login(**kwargs):
            return True

        @staticmethod
        def init(**kwargs):
            raise ConnectionError("no route to host")

    config = toy_config()
    logger = WandbLogger(tmp_path / "run", {"domain": "toy"}, directory=tmp_path / "wb")
    logger.wandb, logger.mode = Broken, "online"
    store = run_experiment(
        "experiments.toy.task",
        config,
        tmp_path / "run",
        domain="toy",
        initial_hparams=toy.initial_hparams(config),
        resume=True,
        listeners=[logger],
    )
    assert all(m.status == "done" for m in store.members())
    err = capsys.readouterr().err
    assert err.count("logging failed (ConnectionError: no route to host)") == 1 and logger.failed


@pytest.mark.parametrize("login", [lambda **kw: False, lambda **kw: 1 / 0])
def test_offline_is_the_default_without_an_api_key(tmp_path, monkeypatch, capsys, login):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    fake = type("FakeWandb", (), {"login": staticmethod(login)})
    assert choose_mode(fake, tmp_path) == "offline"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"wandb sync {tmp_path / 'wandb'}/offline-run-*" in err[0]
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert choose_mode(fake, tmp_path) == "disabled"


def test_a_fire_runs_members_say_their_strategy_role_and_kind_of_copy(tmp_path):
    class Config(dict):
        def update(self, new, allow_val_change=False):
            super().update(new)

    class FakeRun:
        def __init__(self, config):
            self.config, self.logged, self.summary, self.project_url = Config(config), [], {}, None

        def log(self, values, step):
            self.logged.append(values)

    runs = {}

    class FakeWandb:
        Settings = dict

        @staticmethod
        def init(name, config, **kwargs):
            runs[name] = FakeRun(config)
            return runs[name]

    base = toy.Config()
    config = dataclasses.replace(
        base,
        pbt=dataclasses.replace(base.pbt, population=8, strategy="fire", explore="perturb", budget_steps=80, seed=1),
    )
    logger = WandbLogger(
        tmp_path / "run",
        {"domain": "toy", "method": "pbt", "config": dataclasses.asdict(config)},
        group="g",
        directory=tmp_path / "wb",
    )
    logger.wandb, logger.mode = FakeWandb, "offline"
    run_experiment("experiments.toy.task", config, tmp_path / "run", domain="toy", listeners=[logger])
    assert not logger.failed
    roles = fire.split(config.pbt)
    for member in range(8):
        run = runs[f"g/member-{member}"]
        assert (run.config["strategy"], run.config["fire_role"]) == ("fire", roles.role(member))
    copies = {
        key: member
        for member in range(8)
        for values in runs[f"g/member-{member}"].logged
        for key in values
        if key.startswith("pbt/fire_")
    }
    assert copies.get("pbt/fire_evaluate") in roles.evaluators  # an evaluator took a parent's weights
    assert "pbt/fire_exploit" in copies
