"""After an RL run: film one game played by a saved member (the ``play`` command)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from experiments.common import open_saved_member
from experiments.rl.a2c import Config, Member, make_env, make_task


def play_episode(member: Member, config: Config, seed: int, max_steps: int) -> tuple[list[np.ndarray], float]:
    """Play one whole game with the member's stochastic policy; return the 84x84 frames the agent saw and the
    unclipped score."""
    env = make_env(member.game, 1, 1, config.max_episode_frames)
    obs, _ = env.reset(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    device = next(member.model.parameters()).device
    frames, score = [obs[0, -1].copy()], 0.0
    for _ in range(max_steps):
        with torch.no_grad():
            logits, _ = member.model(torch.from_numpy(obs).to(device))
        action = torch.multinomial(F.softmax(logits, -1).cpu(), 1, generator=generator).squeeze(1)
        obs, reward, terminated, truncated, _ = env.step(action.numpy())
        score += float(reward[0])
        if terminated[0] or truncated[0]:  # obs is already the next game's first frame
            break
        frames.append(obs[0, -1].copy())
    env.close()
    return frames, score


def write_video(frames: list[np.ndarray], out: Path, fps: int, scale: int = 4) -> None:
    """An MP4 (``.mp4``, through OpenCV) or a GIF (anything else, through Pillow) of grey frames, upscaled."""
    big = [np.kron(f, np.ones((scale, scale), dtype=np.uint8)) for f in frames]  # (84*scale, 84*scale)
    if out.suffix.lower() == ".mp4":
        import cv2

        height, width = big[0].shape
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write MP4 to {out}; ask for a .gif instead")
        for frame in big:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        writer.release()
    else:
        from PIL import Image

        images = [Image.fromarray(f) for f in big]
        images[0].save(out, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def play_main(argv: list[str]) -> int:
    """``pbt-repro rl play DIR [--member best|ID] [--out FILE]``: film one game of a saved member."""
    parser = argparse.ArgumentParser(
        prog="pbt-repro rl play",
        description="Write an MP4 or GIF of one game played by a member of a finished (or running) rl run.",
    )
    parser.add_argument("run_dir", type=Path, help="the run directory (holds pbt.sqlite)")
    parser.add_argument("--member", default="best", help="member id, or best (highest score; default)")
    parser.add_argument("--out", type=Path, default=None, help="output file, .gif or .mp4 (default DIR/play-mN.gif)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the game and of the action sampling")
    parser.add_argument("--max-steps", type=int, default=5000, help="stop after this many agent steps")
    parser.add_argument("--fps", type=int, default=30, help="frames per second of the video (15 is real time)")
    parser.add_argument("--device", default="cpu", help="where the network runs (default cpu)")
    args = parser.parse_args(argv)

    try:
        task, member, chosen = open_saved_member(args.run_dir, args.member, Config, make_task, device=args.device)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    frames, score = play_episode(member, task.config, args.seed, args.max_steps)
    out = args.out or args.run_dir / f"play-m{chosen.id}.gif"
    write_video(frames, out, args.fps)
    print(f"member {chosen.id} (published score {chosen.score}) scored {score:g} in {len(frames)} agent steps -> {out}")
    return 0


COMMANDS = {"play": ("write an MP4 or GIF of one game played by a saved member (--member best)", play_main)}
