"""The CIFAR-10 classifier behind the GAN's selection score (the CIFAR-10 classifier score, ``metrics.classifier_score``
of its logits): its network, its training, and its cache.

The classifier is trained once per data source and classifier setting and cached under a name that says both
(``classifier_path``); ``prepare`` finds a cached one, or trains it under a lock so that one process of a run trains it
while the others wait. A cached file is a dict of the weights (``model``) and what its training measured (``info``);
its ``weights_sha256`` fingerprint identifies the weights however and wherever the file was written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from experiments.common import load_checkpoint, pick_device, save_checkpoint, weights_fingerprint, write_atomic
from experiments.gan import data
from experiments.gan.metrics import classifier_score, to_nchw_float


class Config(Protocol):
    """The settings of the GAN's config (``experiments.gan.dcgan.Config``) that its scoring classifier reads; named
    here so that this module need not import the GAN's."""

    data_path: str
    cache_dir: str
    device: str
    score_samples: int
    score_splits: int
    classifier_width: int
    classifier_epochs: int
    classifier_batch: int
    classifier_images: int


CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


# -- the network -------------------------------------------------------------------------------------------------------
# The CIFAR-10 classifier: a half-width airbench94 network (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds",
# https://github.com/KellerJordan/cifar10-airbench), chosen because it reaches high accuracy in few epochs and is
# cheap at inference, which keeps in-loop scoring cheap. Kept from airbench: the frozen patch-whitening first layer,
# identity (dirac) init, BatchNorm without scale, Nesterov SGD on a triangular schedule with 64x learning rate on
# BatchNorm biases, flip + 2-pixel translate augmentation. Dropped for brevity: lookahead/EMA, progressive freezing,
# alternating flip and test-time augmentation. Dropped on purpose: label smoothing, which caps every prediction's
# confidence (at about 0.82 for airbench's 0.2) and so squeezes the classifier score into [1, ~4.2] instead of [1, 10].


class ConvGroup(nn.Module):
    """conv -> maxpool -> BN -> GELU -> conv -> BN -> GELU; halves the resolution."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(channels_out)
        self.norm2 = nn.BatchNorm2d(channels_out)
        for conv in (self.conv1, self.conv2):  # identity init: an implicit residual path
            nn.init.dirac_(conv.weight.data[: conv.in_channels])
        for norm in (self.norm1, self.norm2):  # BN bias only; the next conv absorbs any scale
            norm.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class CifarClassifier(nn.Module):
    """Input: normalised (N, 3, 32, 32). Output: logits (N, 10)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, kernel_size=2, bias=True)  # 2x2x3 patches, +/- 12 eigenvectors
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(ConvGroup(24, width), ConvGroup(width, 4 * width), ConvGroup(4 * width, 4 * width))
        self.head = nn.Linear(4 * width, 10, bias=False)
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1) * 255)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalised float, channels-last (much faster on CPU for this network)."""
        x = (to_nchw_float(images) - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(F.gelu(self.whiten(x)))  # (N, 4w, 3, 3)
        x = F.max_pool2d(x, 3).flatten(1)  # (N, 4w)
        return self.head(x) / 9.0  # airbench's logit down-scaling


def init_whitening(layer: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Set the first layer to whiten 2x2 patches: the patch covariance's eigenvectors, scaled by 1/sqrt(eigenvalue),
    and their negatives (so GELU keeps both signs)."""
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1)  # (N, 3, 31, 31, 2, 2)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()  # (N*31*31, 12)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(12, 3, 2, 2).float()
    layer.weight.data.copy_(torch.cat([filters, -filters]))


def augment(images: torch.Tensor, generator: torch.Generator, translate: int = 2) -> torch.Tensor:
    """Random horizontal flip and random translation by up to ``translate`` pixels (reflect padding), per image."""
    n, _, h, w = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    padded = F.pad(images, (translate,) * 4, mode="reflect")  # (N, 3, H+2t, W+2t)
    dy, dx = torch.randint(0, 2 * translate + 1, (2, n), generator=generator)
    rows = (torch.arange(h)[None, :] + dy[:, None])[:, None, :, None]  # (N, 1, H, 1)
    cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, None, :]  # (N, 1, 1, W)
    return padded[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]


@torch.no_grad()
def classifier_logits(model: CifarClassifier, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits (N, 10) for uint8 images, in eval mode, on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [
            model(model.normalise(images[i : i + batch_size].to(device))).float().cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def test_accuracy(model: CifarClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (classifier_logits(model, images).argmax(1) == labels).float().mean().item()


def train_classifier(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    width: int = 32,
    epochs: int = 8,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = print,
) -> tuple[CifarClassifier, dict[str, float]]:
    """Train the CIFAR-10 classifier from scratch and return it with ``test_accuracy`` and ``train_seconds``.

    Args:
        train_images, test_images: uint8 (N, 32, 32, 3). train_labels, test_labels: int64 (N,).
        width: base width; the groups have width, 4*width, 4*width channels (airbench94 uses 64).
        epochs: passes over the training images.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = CifarClassifier(width).to(device)
    init_whitening(model.whiten, model.normalise(train_images[:5000].to(device)).contiguous().cpu())
    model = model.to(memory_format=torch.channels_last)

    # airbench's decoupled hyperparameters, rewritten for a mean-reduced loss: lr 11.5 and weight decay 0.0153 per
    # 1024 examples, divided by Nesterov's step amplification 1 + 1/(1 - momentum).
    momentum = 0.85
    amplification = 1 + 1 / (1 - momentum)
    lr = 11.5 * batch_size / 1024 / amplification
    decay_per_step = 0.0153 * batch_size / 1024 / amplification
    biases = [p for n, p in model.named_parameters() if "norm" in n and p.requires_grad]
    others = [p for n, p in model.named_parameters() if "norm" not in n and p.requires_grad]
    optimizer = torch.optim.SGD(
        [
            dict(params=biases, lr=64 * lr, weight_decay=decay_per_step / (64 * lr)),
            dict(params=others, lr=lr, weight_decay=decay_per_step / lr),
        ],
        momentum=momentum,
        nesterov=True,
    )
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    steps_per_epoch = len(train_images) // batch_size
    total_steps = epochs * steps_per_epoch

    def schedule(step: int) -> float:  # triangle: 0.2 -> 1 at 23% of training -> 0.07
        peak = 0.23 * total_steps
        if step < peak:
            return 0.2 + 0.8 * step / peak
        return 1.0 - 0.93 * (step - peak) / (total_steps - peak)

    started = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_images), generator=generator)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            b_images = augment(to_nchw_float(train_images[idx]), generator).to(device)  # (B, 3, 32, 32)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * schedule(step)
            logits = model(model.normalise(b_images))
            loss = F.cross_entropy(logits, train_labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        log(f"classifier epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, {time.perf_counter() - started:.0f} s")
    accuracy = test_accuracy(model, test_images, test_labels)
    log(f"classifier test accuracy {accuracy:.4f} ({len(test_images)} images)")
    info = {
        "test_accuracy": accuracy,
        "train_seconds": time.perf_counter() - started,
        "epochs": float(epochs),
        "width": float(width),
        "train_images": float(len(train_images)),
    }
    return model.cpu().eval(), info


# -- the cache: trained once per setting and data source ---------------------------------------------------------------


def classifier_path(config: Config) -> Path:
    """The cached classifier's file, named after the data source and every setting that changes its training."""
    settings = f"w{config.classifier_width}-e{config.classifier_epochs}-b{config.classifier_batch}"
    name = f"classifier-{data.source(config.data_path)}-{settings}-n{config.classifier_images}.pt"
    return data.cache_root(config.cache_dir) / name


def train_and_cache_classifier(config: Config, path: Path, log: Any = print) -> None:
    """Train the classifier on (a fixed random subset of) CIFAR-10 train, record its test accuracy and the scale of
    its score (real test images should score high, uniform noise about 1), and write it to ``path``."""
    cifar = data.load_cifar10(config.data_path, config.cache_dir)
    subset = np.random.default_rng(0).permutation(len(cifar["train_images"]))
    subset = np.sort(subset[: config.classifier_images] if config.classifier_images else subset)
    log(
        f"training the CIFAR-10 classifier ({len(subset)} images, {config.classifier_epochs} epochs); it is cached "
        f"at {path}"
    )
    model, info = train_classifier(
        torch.from_numpy(cifar["train_images"][subset]),
        torch.from_numpy(cifar["train_labels"][subset]),
        torch.from_numpy(np.array(cifar["test_images"])),
        torch.from_numpy(np.array(cifar["test_labels"])),
        width=config.classifier_width,
        epochs=config.classifier_epochs,
        batch_size=config.classifier_batch,
        device=pick_device(config.device),
        log=log,
    )
    n = min(config.score_samples, len(cifar["test_images"]))  # the selection protocol's sample and split counts
    real = torch.from_numpy(cifar["test_images"][np.sort(np.random.default_rng(0).permutation(10_000)[:n])])
    noise = torch.randint(0, 256, real.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for name, images in (("test_images_score", real), ("uniform_noise_score", noise)):
        info[name] = classifier_score(classifier_logits(model, images), config.score_splits)[0]
    log(
        f"classifier test accuracy {info['test_accuracy']:.4f}; CIFAR-10 classifier score (Inception-score variant) "
        f"of {n} test images {info['test_images_score']:.3f}, of uniform noise {info['uniform_noise_score']:.3f}"
    )
    write_atomic(path, lambda tmp: save_checkpoint({"model": model.state_dict(), "info": info}, tmp))


def prepare(config: Config, log: Any = print) -> dict[str, float]:
    """Decode the data and train the classifier unless they are cached; return the classifier's info. Cheap when both
    are cached. Best called once before a run (``train-classifier``), so that workers do not wait for it inside their
    first evaluation; if they do, a lock makes one of them train it while the others wait."""
    path = classifier_path(config)
    if not path.is_file():
        with data.cache_lock(data.cache_root(config.cache_dir), "classifier"):
            if not path.is_file():  # another process may have trained it while we waited
                train_and_cache_classifier(config, path, log)
    saved = load_checkpoint(path, required=("model", "info"))
    # the fingerprint of the weights themselves, so results scored by different sittings show they used one classifier
    return {**saved["info"], "weights_sha256": weights_fingerprint(saved["model"])}


_CLASSIFIERS: dict[tuple[Path, str], CifarClassifier] = {}  # one per process


def load_classifier(config: Config, device: torch.device) -> CifarClassifier:
    path = classifier_path(config)
    if (path, str(device)) not in _CLASSIFIERS:
        prepare(config)
        model = CifarClassifier(config.classifier_width)
        model.load_state_dict(load_checkpoint(path, required=("model", "info"))["model"])
        _CLASSIFIERS[(path, str(device))] = model.to(device).to(memory_format=torch.channels_last).eval()
    return _CLASSIFIERS[(path, str(device))]
