"""CIFAR-10 for the GAN experiment: found through --data-path or ``$PBT_CIFAR10`` (the offline JPEG archive
``cifar10-jpg.tar.gz`` or torchvision's ``cifar-10-batches-py``), downloaded by torchvision when neither is given, and
decoded once into uint8 ``.npy`` arrays in the cache folder, which every process then memory-maps.

The JPEG archive's images are re-encodings of the canonical ones, so their pixels differ slightly; they are cached
apart (``cifar10-jpg`` versus ``cifar10-torchvision``), and so are the classifier and FID statistics computed from them.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np

from experiments import common
from experiments.common import import_torchvision
from pbt.space import ConfigError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cache_root(cache_dir: str = "") -> Path:
    """The GAN's cache folder (``experiments.common.cache_root``)."""
    return common.cache_root("gan", cache_dir)


cache_lock = common.cache_lock


def _decode_jpeg_tar(archive: Path) -> dict[str, np.ndarray]:
    """train/<class>/*.jpg and test/<class>/*.jpg -> uint8 (N, 32, 32, 3) and int64 labels, in archive order."""
    from PIL import Image

    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in images or not parts[2].endswith(".jpg"):
                continue
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            images[parts[0]].append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
            labels[parts[0]].append(CLASSES.index(parts[1]))
    if len(images["train"]) != 50_000 or len(images["test"]) != 10_000:
        raise ValueError(
            f"{archive}: expected 50,000 train and 10,000 test JPEGs, found {len(images['train'])} and "
            f"{len(images['test'])}"
        )
    return {
        f"{split}_{kind}": np.stack(images[split]) if kind == "images" else np.array(labels[split], np.int64)
        for split in ("train", "test")
        for kind in ("images", "labels")
    }


def _torchvision_cifar(root: Path, download: bool) -> dict[str, np.ndarray]:
    datasets = import_torchvision().datasets
    out = {}
    for split in ("train", "test"):
        ds = datasets.CIFAR10(str(root), train=split == "train", download=download)
        out[f"{split}_images"], out[f"{split}_labels"] = ds.data, np.array(ds.targets, np.int64)
    return out


def locate(data_path: str = "") -> tuple[str, Path | None]:
    """Which source to decode, from ``data_path`` (--data-path) or ``$PBT_CIFAR10``: ("jpg", archive),
    ("torchvision", root), or ("download", None) when neither is set; a ``ConfigError`` naming the setting when the
    path holds neither."""
    value = data_path or os.environ.get("PBT_CIFAR10", "")
    if not value:
        return "download", None
    path = Path(value).expanduser()
    for archive in (path, path / "cifar10-jpg.tar.gz", path / "cifar10" / "cifar10-jpg.tar.gz"):
        if archive.is_file() and archive.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "jpg", archive
    if (path / "cifar-10-batches-py").is_dir():
        return "torchvision", path
    raise ConfigError(
        f"CIFAR-10 not found at {path} (from ⟨data_path⟩ or $PBT_CIFAR10): expected the "
        f"cifar10-jpg.tar.gz archive, a folder holding it, or the parent of cifar-10-batches-py",
        path=path,
        options=["data_path"],
    )


def source(data_path: str = "") -> str:
    """``jpg`` (the re-encoded archive) or ``torchvision`` (the canonical batches, local or downloaded): the name that
    keeps caches computed from the two apart."""
    return "jpg" if locate(data_path)[0] == "jpg" else "torchvision"


def load_cifar10(data_path: str = "", cache_dir: str = "") -> dict[str, np.ndarray]:
    """CIFAR-10 as uint8 (N, 32, 32, 3) images and int64 labels: ``train_images``, ``train_labels``, ``test_images``,
    ``test_labels``. Decoded once into ``<cache>/cifar10-<source>/*.npy``, then memory-mapped (workers share pages)."""
    kind, where = locate(data_path)
    cache = cache_root(cache_dir)
    folder = cache / f"cifar10-{source(data_path)}"
    names = ("train_images", "train_labels", "test_images", "test_labels")
    if not all((folder / f"{n}.npy").is_file() for n in names):
        with cache_lock(cache, "cifar10"):
            if not all((folder / f"{n}.npy").is_file() for n in names):  # another process may have finished it
                if kind == "jpg":
                    arrays = _decode_jpeg_tar(where)  # type: ignore[arg-type]
                elif kind == "torchvision":
                    arrays = _torchvision_cifar(where, download=False)  # type: ignore[arg-type]
                else:
                    try:
                        arrays = _torchvision_cifar(cache / "download", download=True)
                    except Exception as exc:  # offline: say how to point at a local copy
                        raise ConfigError(
                            f"could not download CIFAR-10 ({type(exc).__name__}: {exc}); pass "
                            f"⟨data_path⟩ or set $PBT_CIFAR10 to a local copy (the cifar10-jpg.tar.gz "
                            f"archive or a cifar-10-batches-py parent folder)",
                            path=cache / "download",
                            options=["data_path"],
                        ) from exc
                folder.mkdir(parents=True, exist_ok=True)
                for name in names:
                    common.write_atomic(folder / f"{name}.npy", lambda tmp, a=arrays[name]: np.save(tmp, a))
    return {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in names}
