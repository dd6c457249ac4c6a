"""Bucketing: group sentences of similar length so a batch carries little padding.

Buckets come from the corpus's length distribution (or are given): walking up the sorted
lengths, a bucket closes once it holds ``min_count`` sentences, so frequent lengths get a
bucket each and the rare long tail shares a few. Sentences longer than the largest bucket
are dropped and counted. A batch is a list of sentence indices plus the length it is padded
to: its bucket's length, or the largest bucket's with ``pad_to_max`` (same batches, same
order, only the padding differs: the comparison the bucketing bench and tests make).
Arrays are time-major ``(T, B)``; the mask is 1 on real positions, 0 on padding.
"""
from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

import numpy as np

from common.text import PAD_ID


def choose_buckets(lengths: list[int], min_count: int, max_len: int | None = None) -> list[int]:
    """Bucket upper bounds from a length distribution; each holds >= ``min_count`` sentences
    (the last one may hold fewer only if it is the only one)."""
    usable = sorted(n for n in lengths if max_len is None or n <= max_len)
    if not usable:
        raise ValueError("no sentence fits: raise --max-len")
    buckets: list[int] = []
    in_bucket = 0
    for i, n in enumerate(usable):
        in_bucket += 1
        last_of_length = i + 1 == len(usable) or usable[i + 1] != n
        if last_of_length and in_bucket >= min_count:
            buckets.append(n)
            in_bucket = 0
    if in_bucket:  # a thin tail joins the last bucket rather than forming a tiny one
        if buckets:
            buckets[-1] = usable[-1]
        else:
            buckets.append(usable[-1])
    return buckets


@dataclass(frozen=True)
class Batch:
    indices: tuple[int, ...]
    bucket_len: int


@dataclass
class BatchArrays:
    data: np.ndarray     # (T, B) input ids
    target: np.ndarray   # (T, B) next-token ids
    mask: np.ndarray     # (T, B) float32, 1 = real position
    lengths: np.ndarray  # (B,) real positions per sentence

    @property
    def real_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def positions(self) -> int:
        return int(self.data.size)


@dataclass
class BucketedData:
    """Encoded sentences (``<s> ... </s>`` ids) assigned to buckets."""

    sequences: list[list[int]]
    buckets: list[int]
    dropped_too_long: int

    @classmethod
    def build(cls, encoded: list[list[int]], buckets: list[int]) -> "BucketedData":
        # A sentence of n+2 ids (<s> w1..wn </s>) is n+1 prediction steps.
        kept = [seq for seq in encoded if len(seq) - 1 <= buckets[-1]]
        return cls(kept, sorted(buckets), len(encoded) - len(kept))

    def bucket_of(self, steps: int) -> int:
        return self.buckets[bisect.bisect_left(self.buckets, steps)]

    def plan(self, batch_size: int, seed: int, shuffle: bool = True) -> list[Batch]:
        """One epoch's batches: sentences shuffled within buckets, batches shuffled.
        The same ``seed`` gives the same plan on every rank and in every mode."""
        rng = random.Random(seed)
        members: dict[int, list[int]] = {b: [] for b in self.buckets}
        for i, seq in enumerate(self.sequences):
            members[self.bucket_of(len(seq) - 1)].append(i)
        batches = []
        for bucket_len in self.buckets:
            idx = members[bucket_len]
            if shuffle:
                rng.shuffle(idx)
            for start in range(0, len(idx), batch_size):
                batches.append(Batch(tuple(idx[start:start + batch_size]), bucket_len))
        if shuffle:
            rng.shuffle(batches)
        return batches

    def arrays(self, batch: Batch, pad_to: int | None = None) -> BatchArrays:
        steps = pad_to or batch.bucket_len
        size = len(batch.indices)
        data = np.full((steps, size), PAD_ID, dtype=np.float32)
        target = np.full((steps, size), PAD_ID, dtype=np.float32)
        mask = np.zeros((steps, size), dtype=np.float32)
        lengths = np.zeros(size, dtype=np.float32)
        for col, i in enumerate(batch.indices):
            seq = self.sequences[i]
            n = len(seq) - 1
            data[:n, col] = seq[:-1]
            target[:n, col] = seq[1:]
            mask[:n, col] = 1.0
            lengths[col] = n
        return BatchArrays(data, target, mask, lengths)

    def padding_stats(self, batches: list[Batch], pad_to: int | None = None) -> dict[str, float]:
        real = sum(len(self.sequences[i]) - 1 for b in batches for i in b.indices)
        positions = sum(len(b.indices) * (pad_to or b.bucket_len) for b in batches)
        return {"real_tokens": real, "positions": positions,
                "pad_fraction": 1.0 - real / positions if positions else 0.0}
