"""The A2C-on-Atari experiment: PBT end to end (weights copied, hyperparameters perturbed), unroll changes,
unclipped scores, checkpoint round trips, and clear errors."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.rl import a2c
from experiments.rl import tools as rl_tools
from pbt.config import PBTConfig
from pbt.executor import cpu_count
from pbt.experiment import run_experiment
from pbt.space import ConfigError

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_torch_thread")]


def tiny_config(**overrides) -> a2c.Config:
    config = dataclasses.replace(a2c.PROFILES["smoke"], num_envs=2, env_threads=1, device="cpu")
    return dataclasses.replace(config, **overrides)


HPARAMS = {"lr": 7e-4, "entropy_cost": 0.01, "unroll_length": 5}


def weights(path: Path) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt["model"], (int(ckpt["updates"]), int(ckpt["frames"]))


def test_smoke_profile_runs_pbt_on_two_workers_and_copies_weights(tmp_path: Path) -> None:
    config = dataclasses.replace(a2c.PROFILES["smoke"], device="cpu")
    assert config.pbt.workers == 2 and config.pbt.executor == "local" and config.pbt.exploit == "truncation"
    seen: list[tuple] = []  # every publish: member, checkpoint, weights, (updates, frames), hparams, train metrics
    exploits: list[tuple[object, object, int]] = []  # (exploit event, explore event, index into seen)

    def listener(member, scores, events) -> None:
        model, counters = weights(store_dir / "checkpoints" / member.checkpoint)
        seen.append(
            (
                member.id,
                member.checkpoint,
                model,
                counters,
                dict(member.hparams),
                scores[-1].metrics if scores else {},
                member.step,
            )
        )
        kinds = {e.kind: e for e in events}
        if "exploit" in kinds:
            exploits.append((kinds["exploit"], kinds.get("explore"), len(seen) - 1))

    store_dir = tmp_path / "run"
    store = run_experiment("experiments.rl.a2c", config, store_dir, domain="rl", listeners=[listener])
    members = store.members()
    assert all(m.status == "done" and m.step == config.pbt.budget_steps for m in members)  # not one frame over
    assert all(math.isfinite(m.score) for m in members)
    assert exploits, "the smoke run made no exploit"

    checked = 0
    for exploit, explore, at in exploits:
        member, checkpoint, copied, copied_counters = seen[at][:4]
        # the donor's checkpoint as published at the member's own step (a donor that has trained further is copied
        # as it was then) is the one the member now points at, tensor for tensor
        donor_pub = [s for s in seen[:at] if s[0] == exploit.donor and s[6] <= exploit.step][-1]
        assert donor_pub[6] == exploit.donor_step and exploit.weight_age <= exploit.step
        own_before = [s for s in seen[:at] if s[0] == member][-1]
        assert checkpoint == donor_pub[1] != own_before[1]
        assert all(torch.equal(copied[k], donor_pub[2][k]) for k in copied)
        assert not all(torch.equal(copied[k], own_before[2][k]) for k in copied)
        # hyperparameters: the donor's, each perturbed by x0.8 or x1.2 (rounded/clipped into the prior)
        assert exploit.new_hparams == donor_pub[4]
        assert explore is not None and explore.old_hparams == exploit.new_hparams
        for name, prior in a2c.SPACE.items():
            options = {prior.perturb(exploit.new_hparams[name], f, random.Random(0)) for f in (0.8, 1.2)}
            assert explore.new_hparams[name] in options, (name, explore.new_hparams[name], options)
        assert explore.new_hparams != exploit.new_hparams
        # the member's next interval really started from the donor's weights and optimiser counters
        after = [s for s in seen[at + 1 :] if s[0] == member]
        if not after:
            continue
        _, _, trained, (updates, frames), hparams, interval, _ = after[0]
        assert hparams == explore.new_hparams
        # its counters continue the donor's exactly: the worker loaded the donor's file, not its own
        assert updates == copied_counters[0] + interval["train/updates"]
        assert frames == copied_counters[1] + interval["train/steps"]
        assert not all(torch.equal(trained[k], copied[k]) for k in copied)
        checked += 1
    assert checked >= 1

    # each worker trains with its share of the cores (the executor sets it before torch is imported)
    assert {s[5]["train/torch_threads"] for s in seen if s[5]} == {max(1, cpu_count() // 2)}
    # whole agent steps: frames come in groups of 4 * num_envs
    for m in members:
        assert m.step % (a2c.FRAMESKIP * config.num_envs) == 0

    # a saved member can be filmed
    gif = tmp_path / "best.gif"
    assert rl_tools.play_main([str(store_dir), "--member", "best", "--out", str(gif), "--max-steps", "50"]) == 0
    assert gif.stat().st_size > 0
    store.close()


def test_unroll_length_can_change_between_intervals() -> None:
    task = a2c.make_task(tiny_config())
    member = task.make(HPARAMS, seed=1)
    frames = 0
    for unroll in (5, 9, 3):
        before = {k: v.clone() for k, v in member.model.state_dict().items()}
        metrics = task.train(member, {**HPARAMS, "unroll_length": unroll}, 100)
        agent_steps = math.ceil(100 / (2 * a2c.FRAMESKIP))  # 13: whole agent steps of 2 games x 4 frames
        assert metrics["steps"] == agent_steps * 2 * a2c.FRAMESKIP == 104
        assert metrics["updates"] == math.ceil(agent_steps / unroll)  # the last unroll is shortened to fit
        assert not all(torch.equal(before[k], v) for k, v in member.model.state_dict().items())
        frames += metrics["steps"]
    assert member.frames == frames


def test_train_stops_at_the_frames_asked_for_with_a_shorter_last_unroll() -> None:
    task = a2c.make_task(tiny_config())
    member = task.make(HPARAMS, seed=1)
    metrics = task.train(member, {**HPARAMS, "unroll_length": 20}, 96)  # 12 agent steps: one unroll of 12, not 20
    assert (metrics["steps"], metrics["updates"], member.frames, member.updates) == (96, 1, 96, 1)
    metrics = task.train(member, {**HPARAMS, "unroll_length": 5}, 100)  # 13 agent steps: 5 + 5 + 3
    assert (metrics["steps"], metrics["updates"], member.frames) == (104, 3, 200)
    assert math.isfinite(metrics["policy_loss"]) and math.isfinite(metrics["value_loss"])


def test_smoke_run_ends_at_its_budget_not_past_it(tmp_path: Path) -> None:
    """A long unroll used to overshoot: 100 frames in unrolls of 20 x 2 games x 4 frames took 160."""
    pbt = dataclasses.replace(
        a2c.PROFILES["smoke"].pbt, budget_steps=200, ready_every=100, executor="serial", workers=1
    )
    config = dataclasses.replace(a2c.PROFILES["smoke"], device="cpu", env_threads=1, pbt=pbt)
    initial = [{**HPARAMS, "unroll_length": u} for u in (20, 17, 9, 5)]
    store = run_experiment("experiments.rl.a2c", config, tmp_path / "run", domain="rl", initial_hparams=initial)
    assert [m.step for m in store.members()] == [200] * 4 and all(m.status == "done" for m in store.members())
    compute = store.compute()
    assert compute["used_steps"] == compute["planned_steps"] == 800 and compute["max_member_steps"] == 200
    store.close()
    # a budget that is not a multiple of an agent step (8 frames here) ends less than one agent step over it
    pbt = dataclasses.replace(pbt, budget_steps=204)
    store = run_experiment(
        "experiments.rl.a2c",
        dataclasses.replace(config, pbt=pbt),
        tmp_path / "odd",
        domain="rl",
        initial_hparams=initial,
    )
    assert all(204 <= m.step < 204 + a2c.FRAMESKIP * config.num_envs for m in store.members())
    store.close()


class FakeGames:
    """Two games that pay 3 points per step and end after 4 steps (no lives lost before)."""

    def __init__(self, num_envs: int):
        self.num_envs, self.t = num_envs, 0

    def reset(self, *, seed=None):
        return np.zeros((self.num_envs, 4, 84, 84), np.uint8), {"lives": np.full(self.num_envs, 3)}

    def step(self, actions):
        self.t += 1
        over = np.full(self.num_envs, self.t % 4 == 0)
        obs = np.full((self.num_envs, 4, 84, 84), self.t % 255, np.uint8)
        lives = {"lives": np.full(self.num_envs, 3)}
        return obs, np.full(self.num_envs, 3.0), over, np.zeros(self.num_envs, bool), lives

    def close(self) -> None:
        pass


def test_evaluation_uses_unclipped_scores_and_learning_uses_clipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(a2c, "make_env", lambda game, n, threads, frames: FakeGames(n))
    learned: list[torch.Tensor] = []
    original = a2c.n_step_returns
    monkeypatch.setattr(a2c, "n_step_returns", lambda r, *a: learned.append(r.clone()) or original(r, *a))
    task = a2c.make_task(tiny_config())
    member = task.make(HPARAMS, seed=0)
    assert task.evaluate(member).score == 0.0  # no game played yet: finite, not NaN
    task.train(member, {**HPARAMS, "unroll_length": 2}, 2 * 2 * a2c.FRAMESKIP)  # 2 steps: no game finished
    evaluation = task.evaluate(member)
    assert evaluation.samples == () and evaluation.score == 6.0  # the games in progress, unclipped
    task.train(member, {**HPARAMS, "unroll_length": 6}, 6 * 2 * a2c.FRAMESKIP)  # 6 more steps: two games each
    evaluation = task.evaluate(member)
    assert evaluation.samples == (12.0, 12.0, 12.0, 12.0)  # 4 steps x 3 points, unclipped
    assert evaluation.score == 12.0 and evaluation.metrics["episodes"] == 4
    assert all(float(r.max()) == 1.0 for r in learned)  # the learner saw rewards clipped to 1


def test_score_window_keeps_the_last_ten_games() -> None:
    task = a2c.make_task(tiny_config())
    member = task.make(HPARAMS, seed=0)
    member.scores.extend(float(s) for s in range(25))
    evaluation = task.evaluate(member)
    assert evaluation.samples == tuple(float(s) for s in range(15, 25))
    assert evaluation.score == pytest.approx(19.5)


def test_checkpoint_round_trip_gives_the_same_actions(tmp_path: Path) -> None:
    task = a2c.make_task(tiny_config())
    member = task.make(HPARAMS, seed=3)
    task.train(member, HPARAMS, 200)
    member.scores.extend([1.0, 5.0])
    task.save(member, tmp_path / "m.ckpt")
    loaded = task.load(tmp_path / "m.ckpt")

    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, values = member.model(obs)
        logits2, values2 = loaded.model(obs)
    assert torch.equal(logits, logits2) and torch.equal(values, values2)
    probs = torch.softmax(logits, -1)
    assert torch.equal(
        torch.multinomial(probs, 4, True, generator=member.generator),
        torch.multinomial(probs, 4, True, generator=loaded.generator),
    )
    assert list(loaded.scores) == list(member.scores)
    assert (loaded.frames, loaded.updates, loaded.episodes) == (member.frames, member.updates, member.episodes)
    state, state2 = member.optimizer.state_dict()["state"], loaded.optimizer.state_dict()["state"]
    assert all(torch.equal(state[i]["square_avg"], state2[i]["square_avg"]) for i in state)
    assert loaded.env is None  # games restart after a load
    task.train(loaded, HPARAMS, 40)  # and it trains on


def test_load_refuses_foreign_files(tmp_path: Path) -> None:
    task = a2c.make_task(tiny_config())
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        task.load(tmp_path / "junk.ckpt")
    torch.save({"model": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="not a checkpoint of this experiment"):
        task.load(tmp_path / "other.ckpt")
    task.save(task.make(HPARAMS, seed=0), tmp_path / "breakout.ckpt")
    with pytest.raises(ValueError, match="breakout agent but this run plays pong"):
        a2c.make_task(tiny_config(game="pong")).load(tmp_path / "breakout.ckpt")


class Payload:
    """What a malicious checkpoint would run on load: here it only leaves a file behind."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def test_a_malicious_checkpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    from pbt.checkpoints import sha256_file
    from pbt.interval import Job, StateCache, run_interval

    task = a2c.make_task(tiny_config())
    path = tmp_path / "m001-s0000000100-0.ckpt"
    torch.save({"format": a2c.CHECKPOINT_FORMAT, "model": Payload(tmp_path / "pwned")}, path)
    with pytest.raises(ValueError) as refused:
        task.load(path)
    message = str(refused.value)
    assert message.startswith(f"{path} is not a readable checkpoint: UnpicklingError: ") and "GLOBAL" in message
    assert len(message.splitlines()) == 1 and "weights_only" not in message and not (tmp_path / "pwned").exists()
    # and so is the member's recorded error
    job = Job(
        member=1,
        seed=1,
        hparams=HPARAMS,
        start_step=100,
        steps=8,
        eval_every=8,
        checkpoint_dir=str(tmp_path),
        checkpoint=path.name,
        checksum=sha256_file(path),
    )
    result = run_interval(task, job, StateCache(1))
    assert result.error is not None and len(result.error.splitlines()) == 1 and "weights_only" not in result.error
    assert result.error.startswith(f"ValueError: {path} is not a readable checkpoint: UnpicklingError: ")
    assert not (tmp_path / "pwned").exists()


def test_unknown_game_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown Atari game 'brekout' \(--game\); did you mean breakout"):
        a2c.make_task(tiny_config(game="brekout"))
    with pytest.raises(ConfigError, match="unknown Atari game 'ALE/NoSuchGame-v5'"):
        run_experiment("experiments.rl.a2c", tiny_config(game="ALE/NoSuchGame-v5"), tmp_path / "run", domain="rl")
    assert a2c.rom_name("ALE/MsPacman-v5") == "ms_pacman" and a2c.rom_name("BreakoutNoFrameskip-v4") == "breakout"


def test_n_step_returns_bootstrap_and_cut_at_episode_ends() -> None:
    rewards = torch.tensor([[1.0], [0.0], [1.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    returns = a2c.n_step_returns(rewards, dones, torch.tensor([10.0]), gamma=0.5)
    assert returns.squeeze(1).tolist() == [1.0, 0.0, 1.0 + 0.5 * 10.0]


def test_profiles_are_sized_as_documented() -> None:
    cpu, paper = a2c.PROFILES["cpu"], a2c.PROFILES["paper"]
    assert cpu.pbt.population == 8 and cpu.game == "breakout" and cpu.pbt.budget_steps == 2_500_000
    assert cpu.pbt.exploit == "truncation" and cpu.pbt.truncation_fraction == 0.2
    assert cpu.pbt.perturb_factors == (0.8, 1.2)
    assert paper.pbt.population == 80 and 1_000_000 <= paper.pbt.ready_every <= 10_000_000
    assert isinstance(cpu.pbt, PBTConfig)
