"""A2C on Atari, with PBT over the learning rate, the entropy cost and the unroll length (the paper's section 4.1).

The paper trained UNREAL, FuN and A3C agents. This is their synchronous sibling A2C (Mnih et al. 2016, "Asynchronous
Methods for Deep Reinforcement Learning", as made synchronous by OpenAI Baselines): ``num_envs`` Atari games step in
lock-step, every ``unroll_length`` agent steps the n-step returns of that unroll give one RMSprop update of a Nature
CNN (Mnih et al. 2015) with a policy and a value head.

Units: one PBT *step* is one emulator frame. An agent step of ``num_envs`` games with frameskip 4 is
``4 * num_envs`` frames. ``train`` stops at the frames asked for: it runs whole unrolls of ``unroll_length`` agent
steps and shortens the last one to fit (an unroll of fewer steps is still a valid A2C update: its n-step returns are
shorter). Frames come in whole agent steps, so a call asked for a number that is not a multiple of ``4 * num_envs``
takes the next multiple and reports it as ``"steps"``. A member therefore overshoots its budget by less than one
agent step, and not at all when the budget is a multiple of ``4 * num_envs`` (the smoke and paper profiles'; the cpu
profile's 2.5M frames over 16 games end 32 frames over).

Evaluation is the paper's: the mean *unclipped* game score of the last 10 finished episodes (whole games, all lives),
seen during training. Before 10 games have finished it is the mean of those that have; before any has, it is the mean
score so far of the games in progress (0.0 right after a reset), so it is always finite.

Choices where the paper and the issue are silent are documented in ``README.md`` beside this file.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from experiments.common import load_checkpoint, pick_device, save_checkpoint
from pbt.config import PBTConfig, doc
from pbt.space import ConfigError, HParams, IntUniform, LogUniform
from pbt.task import Evaluation

METRIC = "score (mean of last 10 episodes)"
FRAMESKIP = 4  # emulator frames per agent step (the standard Atari preprocessing)
CHECKPOINT_FORMAT = "pbt-repro/rl-a2c/1"
HISTORY = 100  # finished-episode scores kept in a member's checkpoint

# The priors span common A2C/A3C practice (see README.md): lr around Baselines' 7e-4, entropy cost around 0.01,
# unroll length from A2C's 5 to A3C/UNREAL's 20.
SPACE = {
    "lr": LogUniform(1e-4, 3e-3),
    "entropy_cost": LogUniform(1e-3, 3e-2),
    "unroll_length": IntUniform(5, 20),
}


@dataclass
class Config:
    game: str = doc(
        "Atari game: a ROM name (breakout, ms_pacman) or a Gymnasium id (ALE/Breakout-v5).", default="breakout"
    )
    num_envs: int = doc("Games one member steps in lock-step (the A2C batch is unroll_length x num_envs).", default=16)
    gamma: float = doc("Discount factor of the n-step returns.", default=0.99)
    value_cost: float = doc("Weight of the value loss.", default=0.5)
    max_grad_norm: float = doc("Clip the global gradient norm to this.", default=0.5)
    rmsprop_alpha: float = doc("RMSprop smoothing constant.", default=0.99)
    rmsprop_eps: float = doc("RMSprop epsilon.", default=1e-5)
    life_loss_terminal: bool = doc(
        "A lost life ends the return for learning (scores always count whole games).", default=True
    )
    max_episode_frames: int = doc(
        "Truncate a game after this many emulator frames (108000 = 30 minutes).", default=108_000
    )
    score_window: int = doc("The score is the mean of this many most recent game scores (the paper: 10).", default=10)
    env_threads: int = doc("Emulator threads per member (0: as many as torch uses).", default=0)
    device: str = doc("Where the network runs: auto (CUDA when present), cpu or cuda.", default="auto")
    pbt: PBTConfig = field(
        default_factory=lambda: PBTConfig(
            population=8, budget_steps=2_500_000, ready_every=250_000, exploit="truncation", explore="perturb"
        )
    )

    def __post_init__(self) -> None:
        for name in ("num_envs", "max_episode_frames", "score_window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"gamma must be in [0, 1], got {self.gamma}")


PROFILES = {
    # Seconds, for tests: 4 members of 2 games each, 6 ready intervals of 500 frames, on 2 worker processes. Many
    # short intervals make an exploit near certain (truncation copies into the bottom member, 1 ready event in 4).
    "smoke": Config(
        num_envs=2, pbt=PBTConfig(population=4, budget_steps=3_000, ready_every=500, workers=2, executor="local")
    ),
    # About 70 minutes on 2 cores at ~4.6k frames/s: 8 members x 2.5M frames, 10 ready intervals each.
    "cpu": Config(),
    # The paper's Atari scale (population 80, ready every 1e6 agent steps = 4e6 frames); one run per game of
    # amidar, gravitar, ms_pacman, enduro. About 30 GPU-machine hours per game (README.md).
    "paper": Config(game="ms_pacman", pbt=PBTConfig(population=80, budget_steps=200_000_000, ready_every=4_000_000)),
}


# -- model -------------------------------------------------------------------------------------------------------------


class NatureCNN(nn.Module):
    """The DQN torso (Mnih et al. 2015) with a policy head and a value head on the shared 512-unit layer."""

    def __init__(self, actions: int):
        super().__init__()
        self.torso = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4),
            nn.ReLU(),  # (B, 32, 20, 20)
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),  # (B, 64, 9, 9)
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),  # (B, 64, 7, 7)
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 512),
            nn.ReLU(),  # (B, 512)
        )
        self.policy = nn.Linear(512, actions)
        self.value = nn.Linear(512, 1)
        # Orthogonal init as in OpenAI Baselines: a near-uniform initial policy, unit-scale values.
        for module in self.torso:
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(module.weight, math.sqrt(2))
                nn.init.zeros_(module.bias)
        for head, gain in ((self.policy, 0.01), (self.value, 1.0)):
            nn.init.orthogonal_(head.weight, gain)
            nn.init.zeros_(head.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # channels_last: oneDNN's (and cuDNN's) faster convolution layout, about 20% quicker on CPU here
        x = obs.contiguous(memory_format=torch.channels_last).float() / 255.0  # (B, 4, 84, 84) uint8 -> float
        hidden = self.torso(x)  # (B, 512)
        return self.policy(hidden), self.value(hidden).squeeze(-1)  # (B, A), (B,)


@dataclass
class Member:
    """Everything one population member is: network, optimiser, RNG, counters, score history and its live games.

    The games (``env`` and the arrays after it) are not saved: after a load they are started afresh with a seed drawn
    from the saved generator, so a copy continues the donor's weights in new games of its own."""

    model: NatureCNN
    optimizer: torch.optim.RMSprop
    generator: torch.Generator  # samples actions and env seeds; on the CPU whatever the device
    game: str
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))  # unclipped, whole games
    frames: int = 0
    updates: int = 0
    episodes: int = 0
    env: VectorEnv | None = None
    obs: np.ndarray | None = None  # (N, 4, 84, 84) uint8
    lives: np.ndarray | None = None  # (N,)
    game_score: np.ndarray | None = None  # (N,) unclipped score of each game in progress


def new_member(game: str, config: Config, seed: int, device: torch.device) -> Member:
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the initial weights come from the seed, not the global RNG's state
        torch.manual_seed(seed)
        model = NatureCNN(num_actions(game)).to(device, memory_format=torch.channels_last)
    # lr is a placeholder: train() writes the member's current lr into param_groups before every update
    optimizer = torch.optim.RMSprop(
        model.parameters(), lr=7e-4, alpha=config.rmsprop_alpha, eps=config.rmsprop_eps, foreach=True
    )
    return Member(model=model, optimizer=optimizer, generator=generator, game=game)


# -- data: the games and one unroll of them ----------------------------------------------------------------------------


def rom_name(game: str) -> str:
    """The ALE ROM name of ``game``: ``breakout``, ``Breakout``, ``ALE/Breakout-v5`` and
    ``BreakoutNoFrameskip-v4`` all give ``breakout``. Raises ``ConfigError`` for an unknown game."""
    from ale_py import roms  # the ROMs ship inside the ale-py wheel

    name = re.sub(r"(NoFrameskip|Deterministic)?-v\d+$", "", game.split("/")[-1])
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    known = roms.get_all_rom_ids()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known games include {', '.join(known[:6])}, ..."
        raise ConfigError(f"unknown Atari game {game!r} (--game){hint}")
    return name


class VectorEnv(Protocol):
    """The part of ``ale_py.vector_env.AtariVectorEnv`` this module uses (tests substitute a fake)."""

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]: ...
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]: ...
    def close(self) -> None: ...


def make_env(game: str, num_envs: int, threads: int, max_episode_frames: int) -> VectorEnv:
    """ALE's native vector env: 84x84 grey, frameskip 4 with max-pooling, 4 stacked frames, up to 30 no-op starts,
    FIRE on reset. Rewards come back unclipped (the score needs them); the learner clips its own copy."""
    from ale_py.vector_env import AtariVectorEnv

    return AtariVectorEnv(
        game,
        num_envs,
        num_threads=threads,
        frameskip=FRAMESKIP,
        stack_num=4,
        img_height=84,
        img_width=84,
        grayscale=True,
        noop_max=30,
        reward_clipping=False,
        max_num_frames_per_episode=max_episode_frames,
        autoreset_mode="SameStep",
    )  # a finished game's next observation is the new game's first


@functools.cache
def num_actions(game: str) -> int:
    """Size of the game's minimal action set, without starting an emulator thread pool."""
    from ale_py import ALEInterface, LoggerMode, roms

    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.loadROM(roms.get_rom_path(game))
    return len(ale.getMinimalActionSet())


def start_games(member: Member, config: Config) -> None:
    """Start the member's games with a fresh seed from its generator (at the first ``train``, and after a load)."""
    threads = config.env_threads or torch.get_num_threads()
    member.env = make_env(member.game, config.num_envs, threads, config.max_episode_frames)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=member.generator))
    member.obs, info = member.env.reset(seed=seed)
    member.lives = np.asarray(info["lives"]).copy()
    member.game_score = np.zeros(config.num_envs)


@dataclass
class Unroll:
    """One unroll's buffers, (T, N, ...) for up to ``unroll_length`` agent steps of ``num_envs`` games; an unroll of
    ``length`` steps fills the first ``length``."""

    obs: torch.Tensor  # (T, N, 4, 84, 84) uint8
    actions: torch.Tensor  # (T, N)
    rewards: torch.Tensor  # (T, N) clipped
    dones: torch.Tensor  # (T, N) 1.0 where the episode (for learning) ended at step t

    @classmethod
    def empty(cls, steps: int, envs: int) -> Unroll:
        return cls(
            obs=torch.empty((steps, envs, 4, 84, 84), dtype=torch.uint8),
            actions=torch.empty((steps, envs), dtype=torch.long),
            rewards=torch.empty((steps, envs)),
            dones=torch.empty((steps, envs)),
        )


def collect_unroll(member: Member, config: Config, unroll: Unroll, length: int, device: torch.device) -> None:
    """Play ``length`` agent steps of the member's games with its current policy into the buffers, recording every
    finished game's unclipped score."""
    assert member.env is not None and member.obs is not None and member.lives is not None
    assert member.game_score is not None
    for t in range(length):
        unroll.obs[t] = torch.from_numpy(member.obs)
        with torch.no_grad():
            logits, _ = member.model(unroll.obs[t].to(device))  # (N, A)
        probs = F.softmax(logits, dim=-1).cpu()
        actions = torch.multinomial(probs, 1, generator=member.generator).squeeze(1)  # (N,)
        member.obs, reward, terminated, truncated, info = member.env.step(actions.numpy())
        game_over = np.logical_or(terminated, truncated)
        lives = np.asarray(info["lives"])
        life_lost = (lives < member.lives) & ~game_over
        member.lives = lives.copy()
        member.game_score += reward
        for i in np.flatnonzero(game_over):  # the score is the whole game's, unclipped
            member.scores.append(float(member.game_score[i]))
            member.game_score[i] = 0.0
            member.episodes += 1
        unroll.actions[t] = actions
        unroll.rewards[t] = torch.from_numpy(np.clip(reward, -1.0, 1.0))  # the learner sees clipped rewards
        unroll.dones[t] = torch.from_numpy(game_over | life_lost if config.life_loss_terminal else game_over)


# -- one train step ----------------------------------------------------------------------------------------------------


def n_step_returns(rewards: torch.Tensor, dones: torch.Tensor, bootstrap: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = r_t + gamma * R_{t+1} * (1 - done_t), with R_T the value of the state after the unroll.

    Args:
        rewards: (T, N) clipped rewards; dones: (T, N) 1.0 where the episode (for learning) ended at step t.
        bootstrap: (N,) value estimate of the observation after the last step.

    Returns:
        (T, N) the n-step return targets.
    """
    returns = torch.empty_like(rewards)
    next_return = bootstrap
    for t in reversed(range(rewards.shape[0])):
        next_return = rewards[t] + gamma * next_return * (1.0 - dones[t])
        returns[t] = next_return
    return returns


def train_step(
    member: Member, config: Config, unroll: Unroll, length: int, entropy_cost: float, device: torch.device
) -> torch.Tensor:
    """One A2C update on the unroll's first ``length`` steps: policy gradient with the n-step advantage, value
    regression, entropy bonus. Returns (policy loss, value loss, entropy, gradient norm), left on the device."""
    envs, model = config.num_envs, member.model
    with torch.no_grad():
        _, bootstrap = model(torch.from_numpy(member.obs).to(device))  # (N,)
    returns = n_step_returns(
        unroll.rewards[:length].to(device), unroll.dones[:length].to(device), bootstrap, config.gamma
    )  # (T, N), T = length
    logits, values = model(unroll.obs[:length].view(length * envs, 4, 84, 84).to(device))  # (T*N, A), (T*N,)
    returns = returns.view(-1)  # (T*N,)
    log_probs = F.log_softmax(logits, dim=-1)  # (T*N, A)
    taken = log_probs.gather(1, unroll.actions[:length].reshape(-1, 1).to(device)).squeeze(1)  # (T*N,)
    advantages = (returns - values).detach()
    policy_loss = -(advantages * taken).mean()
    value_loss = F.mse_loss(values, returns)
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    loss = policy_loss + config.value_cost * value_loss - entropy_cost * entropy
    member.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
    member.optimizer.step()
    member.updates += 1
    return torch.stack([policy_loss, value_loss, entropy, grad_norm]).detach()  # no sync with the device


# -- evaluate ----------------------------------------------------------------------------------------------------------


def evaluate(member: Member, window: int) -> Evaluation:
    """The mean unclipped score of the last ``window`` finished games (the samples the t-test compares); with none
    finished yet, the mean score so far of the games in progress (0.0 before the first step)."""
    recent = tuple(list(member.scores)[-window:])
    if recent:
        score = sum(recent) / len(recent)
    else:
        score = float(member.game_score.mean()) if member.game_score is not None else 0.0
    return Evaluation(
        score=score,
        samples=recent,
        metrics={
            "episodes": float(member.episodes),
            "frames": float(member.frames),
            "finished_in_window": float(len(recent)),
        },
    )


# -- the task ----------------------------------------------------------------------------------------------------------


class A2CTask:
    """The ``pbt.task.Task`` of this experiment: cheap to build, members are ``Member`` objects."""

    space = SPACE

    def __init__(self, config: Config):
        self.config = config
        self.step_unit = FRAMESKIP * config.num_envs  # frames come in whole agent steps: train overshoots by less
        self.game = rom_name(config.game)
        self.device = pick_device(config.device)

    def make(self, hparams: HParams, seed: int) -> Member:
        return new_member(self.game, self.config, seed, self.device)

    def train(self, member: Member, hparams: HParams, steps: int) -> dict[str, float]:
        """Take ``steps`` emulator frames (rounded up to whole agent steps of ``FRAMESKIP * num_envs`` frames) in
        unrolls of ``unroll_length`` agent steps, the last one shortened to fit; one RMSprop update per unroll."""
        config, device = self.config, self.device
        if member.env is None:
            start_games(member, config)
        # Hyperparameters come from the caller at every call: PBT may have changed any of them since the last one.
        for group in member.optimizer.param_groups:
            group["lr"] = float(hparams["lr"])
        entropy_cost = float(hparams["entropy_cost"])
        unroll_length, envs = int(hparams["unroll_length"]), config.num_envs
        agent_steps = max(1, math.ceil(steps / (envs * FRAMESKIP)))  # overshoots by less than one agent step
        lengths = [unroll_length] * (agent_steps // unroll_length)
        lengths += [agent_steps % unroll_length] if agent_steps % unroll_length else []

        unroll = Unroll.empty(unroll_length, envs)
        totals = torch.zeros(4, device=device)  # policy loss, value loss, entropy, gradient norm, summed over updates
        start, episodes_before = time.perf_counter(), member.episodes
        for length in lengths:
            collect_unroll(member, config, unroll, length, device)
            totals += train_step(member, config, unroll, length, entropy_cost, device)

        taken_frames = agent_steps * envs * FRAMESKIP
        member.frames += taken_frames
        seconds = time.perf_counter() - start
        means = dict(zip(("policy_loss", "value_loss", "entropy", "grad_norm"), (totals / len(lengths)).tolist()))
        return {
            "steps": taken_frames,
            **means,
            "frames_per_s": taken_frames / max(seconds, 1e-9),
            "episodes": member.episodes - episodes_before,
            "updates": len(lengths),
            "torch_threads": torch.get_num_threads(),
        }

    def evaluate(self, member: Member) -> Evaluation:
        return evaluate(member, self.config.score_window)

    def save(self, member: Member, path: Path) -> None:
        save_checkpoint(
            {
                "format": CHECKPOINT_FORMAT,
                "game": member.game,
                "model": {k: v.cpu() for k, v in member.model.state_dict().items()},
                "optimizer": member.optimizer.state_dict(),
                "generator": member.generator.get_state(),
                "scores": torch.tensor(list(member.scores), dtype=torch.float64),
                "frames": member.frames,
                "updates": member.updates,
                "episodes": member.episodes,
            },
            path,
        )

    def load(self, path: Path) -> Member:
        ckpt = load_checkpoint(path, ("game", "model", "optimizer", "generator", "scores"), CHECKPOINT_FORMAT)
        if ckpt["game"] != self.game:
            raise ValueError(f"{path} holds a {ckpt['game']} agent but this run plays {self.game}")
        member = new_member(self.game, self.config, 0, self.device)
        member.model.load_state_dict(ckpt["model"])
        member.optimizer.load_state_dict(ckpt["optimizer"])  # moves its state to the parameters' device
        member.generator.set_state(ckpt["generator"])
        member.scores.extend(float(s) for s in ckpt["scores"])
        member.frames, member.updates, member.episodes = ckpt["frames"], ckpt["updates"], ckpt["episodes"]
        return member


def make_task(config: Config) -> A2CTask:
    return A2CTask(config)


def estimate(config: Config) -> dict[str, str]:
    """The ``--dry-run`` cost estimate (README "paper"): ~150k frames/s on a 16-core machine with one GPU, from CPU
    measurements of the emulator, not a GPU measurement."""
    frames = config.pbt.population * config.pbt.budget_steps
    return {
        "frames": f"{frames:.3g}",
        "gpu_hours": f"about {frames / 150e3 / 3600:.0f} (one 16-core machine with one GPU, estimated)",
        "cpu_hours_here": f"about {frames / 4.6e3 / 3600:.0f} at 4.6k frames/s on 2 cores",
    }
