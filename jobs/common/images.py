"""Image datasets for the ResNet job, as in-memory NCHW float32 arrays.

- Fashion-MNIST idx files (offline default: Debian's ``dataset-fashion-mnist`` package at
  /usr/share/datasets/fashion-mnist; read directly, its checksums differ from upstream);
- CIFAR-10 binary batches (``data_batch_{1..5}.bin``, ``test_batch.bin``);
- synthetic images of any shape, for throughput.
RecordIO files: ``common.recordio`` (same ``ImageSet`` interface, read batch by batch).
"""
from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass
class ImageSet:
    images: np.ndarray  # (N, C, H, W) float32, normalised
    labels: np.ndarray  # (N,) float32
    classes: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def batch(self, indices, augment: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of ``indices`` (no augmentation in memory: ``augment`` is for the
        RecordIO sets, which share this interface)."""
        return self.images[indices], self.labels[indices]


@dataclass
class ImageData:
    train: ImageSet  # or common.recordio.RecordImageSet: same len / shape / classes / batch
    valid: ImageSet
    source: str


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    _zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if dtype_code != 0x08:
        raise SystemExit(f"{path}: expected unsigned-byte idx data (type 0x08), got {dtype_code:#x}")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (directory / name).exists():
            return directory / name
    raise SystemExit(f"--data-dir: {directory}/{stem}[.gz] not found")


def load_fashion_mnist(directory: Path = FASHION_MNIST_DIR) -> ImageData:
    split = {}
    for name, prefix in (("train", "train"), ("valid", "t10k")):
        images = _read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
        labels = _read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
        split[name] = (images[:, None, :, :], labels)
    return _normalised(split, 10, f"fashion-mnist ({directory})")


def load_cifar10(directory: Path) -> ImageData:
    def read(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        rec = np.concatenate([np.fromfile(f, dtype=np.uint8).reshape(-1, 3073) for f in files])
        return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0]

    train_files = sorted(directory.glob("data_batch_*.bin"))
    if not train_files or not (directory / "test_batch.bin").exists():
        raise SystemExit(f"--data-dir: {directory} has no CIFAR-10 binary batches (data_batch_*.bin, test_batch.bin)")
    split = {"train": read(train_files), "valid": read([directory / "test_batch.bin"])}
    return _normalised(split, 10, f"cifar10 ({directory})")


def synthetic(shape: tuple[int, int, int], classes: int, count: int, seed: int) -> ImageData:
    rng = np.random.RandomState(seed)
    def make(n: int) -> ImageSet:
        return ImageSet(rng.standard_normal((n, *shape)).astype(np.float32),
                        rng.randint(0, classes, n).astype(np.float32), classes)
    return ImageData(make(count), make(max(count // 8, 1)), f"synthetic {shape}")


def _normalised(split: dict, classes: int, source: str) -> ImageData:
    """Scale to [0,1], then per-channel standardise with the training set's statistics."""
    train_images = split["train"][0].astype(np.float32) / 255.0
    mean = train_images.mean(axis=(0, 2, 3), keepdims=True)
    std = train_images.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    sets = {}
    for name, (images, labels) in split.items():
        scaled = train_images if name == "train" else images.astype(np.float32) / 255.0
        sets[name] = ImageSet(((scaled - mean) / std).astype(np.float32), labels.astype(np.float32), classes)
    return ImageData(sets["train"], sets["valid"], source)


def subset(data: ImageSet, limit: int) -> ImageSet:
    """The first ``limit`` examples (0: all)."""
    if not limit or limit >= len(data.labels):
        return data
    return ImageSet(data.images[:limit], data.labels[:limit], data.classes)
