"""RecordIO image data for the ResNet job: write a .rec/.idx pair, read batches from one.

Reading goes through Gluon's ``ImageRecordDataset`` (random access through the .idx file),
not ``mx.io.ImageRecordIter``: the job's loop deals out *index* batches from one plan that
every worker builds alike (``shard_evenly``), which is what guarantees disjoint records and
the same number of updates on every ``dist_sync`` worker, and reshuffles the whole file every
epoch. ImageRecordIter splits the file itself (``num_parts``) into parts whose sizes MXNet's
input splitter decides, so equal batch counts would need a second agreement on top.
Decoding runs in Python while MXNet's engine computes the previous batch.

Writing: ``write_rec`` packs uint8 images as PNG (lossless; encoded here with zlib, because the
mxnet wheel has no ``cv2`` module for ``mx.recordio.pack_img``). For real datasets use MXNet's
``tools/im2rec.py``; it writes the same format (JPEG by default), .idx included.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

STATS_SAMPLE = 1000  # records read to estimate the per-channel mean/std


def encode_png(image: np.ndarray) -> bytes:
    """An (H, W) grey or (H, W, 3) RGB uint8 array as PNG bytes (8-bit, no filtering)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected (H, W) or (H, W, 3) uint8, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    colour = 0 if image.ndim == 2 else 2
    rows = image.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write_rec(path: str | Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """Write ``images`` ((N, H, W) grey or (N, H, W, 3) RGB, uint8) with their labels to
    ``path`` (.rec) and the index next to it (.idx); record ``i`` holds image ``i``."""
    from mxnet import recordio

    path = Path(path)
    record = recordio.MXIndexedRecordIO(str(path.with_suffix(".idx")), str(path), "w")
    try:
        for i, (image, label) in enumerate(zip(images, labels)):
            header = recordio.IRHeader(0, float(label), i, 0)
            record.write_idx(i, recordio.pack(header, encode_png(np.ascontiguousarray(image))))
    finally:
        record.close()
    return path


def check_rec(flag: str, path: str | None) -> Path:
    """The .rec named by ``flag``, with its .idx beside it, or a one-line error."""
    if not path:
        raise SystemExit(f"--data recordio needs {flag} FILE.rec (make one with MXNet's tools/im2rec.py "
                         "or common.recordio.write_rec)")
    rec = Path(path)
    if not rec.is_file():
        raise SystemExit(f"{flag} {rec}: file not found")
    if not rec.with_suffix(".idx").is_file():
        raise SystemExit(f"{flag} {rec}: index {rec.with_suffix('.idx')} not found next to it "
                         "(tools/im2rec.py writes both; random access needs it)")
    return rec


class RecordImageSet:
    """One .rec file as a data set: ``len``, ``classes``, ``shape`` and ``batch(indices)``.

    Images are cropped to ``shape`` (C, H, W): centred, or at random with ``rand_crop`` when
    augmenting (after zero-padding by ``pad`` pixels, CIFAR style), mirrored at random with
    ``rand_mirror``; then scaled to [0, 1] and standardised per channel with ``mean``/``std``.
    """

    def __init__(self, rec: Path, shape: tuple[int, int, int], classes: int, seed: int = 0, limit: int = 0,
                 rand_crop: bool = False, rand_mirror: bool = False, pad: int = 0):
        from mxnet.gluon.data.vision import ImageRecordDataset

        if shape[0] not in (1, 3):
            raise SystemExit(f"--image-shape {','.join(map(str, shape))}: RecordIO images have 1 or 3 channels")
        self.path, self.shape, self.classes = rec, shape, classes
        self.dataset = ImageRecordDataset(str(rec), flag=0 if shape[0] == 1 else 1)
        self.count = min(limit, len(self.dataset)) if limit else len(self.dataset)  # the first ``limit``
        self.rand_crop, self.rand_mirror, self.pad = rand_crop, rand_mirror, pad
        self.rng = np.random.RandomState(seed)
        self.mean = np.zeros((shape[0], 1, 1), np.float32)
        self.std = np.ones((shape[0], 1, 1), np.float32)

    def __len__(self) -> int:
        return self.count

    def _decode(self, i: int):
        """Record ``i``: an HWC uint8 NDArray still being decoded by MXNet's engine, and its label."""
        image, label = self.dataset[int(i)]
        label = float(np.asarray(label).reshape(-1)[0])  # im2rec may store a label vector
        if not 0 <= label < self.classes:
            raise SystemExit(f"{self.path}: record {i} has label {label:g}, outside --num-classes {self.classes}")
        return image, label

    def _pixels(self, i: int, image) -> np.ndarray:
        """The decoded record ``i`` as (C, H0, W0) uint8 (waits for the decoding)."""
        pixels = image.asnumpy().transpose(2, 0, 1)
        _, h, w = self.shape
        if pixels.shape[1] < h or pixels.shape[2] < w:
            raise SystemExit(f"--image-shape {','.join(map(str, self.shape))}: record {i} of {self.path} is only "
                             f"{pixels.shape[1]}x{pixels.shape[2]}; lower it or write the .rec larger")
        return pixels

    def _crop(self, image: np.ndarray, augment: bool) -> np.ndarray:
        _, h, w = self.shape
        if augment and self.pad:
            image = np.pad(image, ((0, 0), (self.pad, self.pad), (self.pad, self.pad)))
        spare_h, spare_w = image.shape[1] - h, image.shape[2] - w
        if augment and self.rand_crop:
            top, left = self.rng.randint(spare_h + 1), self.rng.randint(spare_w + 1)
        else:
            top, left = spare_h // 2, spare_w // 2
        image = image[:, top:top + h, left:left + w]
        if augment and self.rand_mirror and self.rng.rand() < 0.5:
            image = image[:, :, ::-1]
        return image

    def batch(self, indices, augment: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, C, H, W) float32 and labels (N,) float32 of the records ``indices``."""
        # Queue every decoding before waiting for any: the engine is still busy with the last
        # batch, and one wait per image would keep Python idle until it is done.
        decoded = [self._decode(i) for i in indices]
        images = []
        for i, (image, _) in zip(indices, decoded):
            scaled = (self._pixels(i, image).astype(np.float32) / 255.0 - self.mean) / self.std
            images.append(self._crop(scaled, augment))  # padding after scaling: pads with the mean
        return np.stack(images).astype(np.float32, copy=False), np.array([l for _, l in decoded], np.float32)

    def standardise_with(self, sample: int = STATS_SAMPLE) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean/std of up to ``sample`` records spread evenly over the file
        (im2rec lists are often sorted by class, so not just the first ones)."""
        picks = np.unique(np.linspace(0, len(self) - 1, min(sample, len(self))).astype(int))
        decoded = [(i, self._decode(i)[0]) for i in picks]
        pixels = np.stack([self._crop(self._pixels(i, d), False) for i, d in decoded]).astype(np.float32) / 255.0
        mean = pixels.mean(axis=(0, 2, 3)).reshape(-1, 1, 1)
        std = pixels.std(axis=(0, 2, 3)).reshape(-1, 1, 1) + 1e-6
        return mean, std


def load_recordio(train: Path, valid: Path, shape: tuple[int, int, int], classes: int, seed: int,
                  limits: tuple[int, int] = (0, 0), **augment):
    """Training (``augment``: rand_crop, rand_mirror, pad) and validation sets, the first
    ``limits`` records of each (0: all), both standardised with the training set's statistics."""
    from common.images import ImageData

    sets = [RecordImageSet(train, shape, classes, seed, limits[0], **augment),
            RecordImageSet(valid, shape, classes, seed, limits[1])]
    for flag, s in zip(("--train-rec", "--val-rec"), sets):
        if not len(s):
            raise SystemExit(f"{flag} {s.path}: holds no records")
    mean, std = sets[0].standardise_with()
    for s in sets:
        s.mean, s.std = mean.astype(np.float32), std.astype(np.float32)
    return ImageData(sets[0], sets[1], f"recordio ({train}, {valid})")
