"""Split work between data-parallel workers.

Under ``dist_sync`` every worker must make exactly the same number of updates per epoch:
a worker with one batch more waits forever for the others at the kvstore. So training
batches are cut to a multiple of the worker count before they are dealt out.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

T = TypeVar("T")


def shard_evenly(items: Sequence[T], rank: int, num_workers: int) -> list[T]:
    """Every worker gets ``len(items) // num_workers`` items, dealt round-robin.

    Round-robin (not contiguous slices) keeps each worker's share of every bucket
    and of every part of the epoch's order alike. The remainder is dropped.
    """
    if not 0 <= rank < num_workers:
        raise ValueError(f"rank {rank} outside 0..{num_workers - 1}")
    usable = len(items) - len(items) % num_workers
    return list(items[rank:usable:num_workers])


def shard_all(items: Sequence[T], rank: int, num_workers: int) -> list[T]:
    """Every item to exactly one worker (uneven): for evaluation, which makes no updates."""
    return list(items[rank::num_workers])
