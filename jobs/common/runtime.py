"""Process runtime for a training job: thread count, device contexts, kvstore, rank.

The kvstore is the authority on rank and worker count (``kv.rank`` / ``kv.num_workers``):
under ``dlcfn submit``, MXNet's ``tools/launch.py`` and a plain single process alike.
"""
from __future__ import annotations

import argparse
import os
import random
from dataclasses import dataclass, field
from typing import Any

KVSTORE_TYPES = ("auto", "local", "device", "dist_sync", "dist_async", "dist_device_sync", "none")


def configure_threads(threads: int | None) -> int:
    """Pin the OpenMP thread count (and the CPU allocator) before MXNet starts its engine.

    An explicit ``--threads`` wins; otherwise an ``OMP_NUM_THREADS`` already in the
    environment (the job YAML sets 1: several ranks share the cores); otherwise 1.
    Must run before ``import mxnet``: the engine reads it once.
    """
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # MKL-DNN/MKL honour their own variables; keep them in step so a bench compares like with like.
    os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
    # Bucketing changes every batch's shapes, so MXNet's pooled CPU allocator keeps
    # re-planning and holding blocks of sizes never asked for again; plain malloc/free
    # measured 10-20% more tokens/s on the bucketed LSTM (bench/lstm_peer.py).
    os.environ.setdefault("MXNET_CPU_MEM_POOL_TYPE", "Unpooled")
    return int(os.environ["OMP_NUM_THREADS"])


def parse_gpus(spec: str | None) -> list[int]:
    """GPU ids to train on.

    ``"0,1"`` -> ``[0, 1]``; ``"none"`` -> CPU; ``None``/``"auto"`` -> the GPUs dlcfn gave this
    worker (``DLCFN_GPUS``, with ``CUDA_VISIBLE_DEVICES`` already narrowed by the runner), else
    every GPU MXNet sees (none with a CPU wheel), else CPU.
    """
    if spec == "none":
        return []
    if spec in (None, "", "auto"):
        given = os.environ.get("DLCFN_GPUS")
        if given:
            return list(range(int(given)))
        import mxnet as mx

        return list(range(mx.context.num_gpus()))
    try:
        return [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--gpus: expected GPU ids such as 0,1, or auto/none (got {spec!r})")


def select_contexts(gpus: list[int]) -> list[Any]:
    """GPU contexts when asked for (and present), else ``[mx.cpu()]``.

    GPU path: written for mxnet-cu* wheels, untested on this CPU-only machine.
    """
    import mxnet as mx

    if not gpus:
        return [mx.cpu()]
    available = mx.context.num_gpus()
    missing = [g for g in gpus if g >= available]
    if missing:
        raise SystemExit(f"--gpus: GPU ids {missing} not present (this host has {available} GPUs)")
    return [mx.gpu(g) for g in gpus]


@dataclass
class Runtime:
    """Everything a training loop needs to know about where it runs."""

    kvstore_type: str
    kv: Any  # mx.kv.KVStore or None for a plain local run
    rank: int
    num_workers: int
    contexts: list[Any] = field(default_factory=list)
    reduce_keys: set[int] = field(default_factory=set)  # kvstore keys allreduce_sums has initialised

    @property
    def distributed(self) -> bool:
        return self.kvstore_type.startswith("dist")

    @property
    def synchronous(self) -> bool:
        """Every worker makes the same updates in lock step (identical parameters)."""
        return "async" not in self.kvstore_type

    @property
    def shares_evaluation(self) -> bool:
        """Workers split evaluation and add up the sums (synchronous dist kvstores only;
        otherwise each worker evaluates everything itself)."""
        return self.distributed and self.synchronous

    @property
    def trainer_kvstore(self) -> Any:
        """What to hand ``gluon.Trainer``: the kvstore object when distributed, else its name."""
        if self.kv is not None:
            return self.kv
        return None if self.kvstore_type == "none" else self.kvstore_type


def resolve_kvstore(requested: str) -> str:
    """``auto``: the job spec's kvstore under ``dlcfn submit`` (``DLCFN_KVSTORE``), ``dist_sync``
    under another launcher that set the DMLC variables (``tools/launch.py``), else ``local``."""
    if requested != "auto":
        return requested
    if os.environ.get("DLCFN_KVSTORE"):
        return os.environ["DLCFN_KVSTORE"]
    return "dist_sync" if "DMLC_ROLE" in os.environ else "local"


def create_runtime(kvstore_type: str, gpus: list[int]) -> Runtime:
    """Create the kvstore (joining the cluster when ``dist_*``) and pick contexts."""
    import mxnet as mx

    kvstore_type = resolve_kvstore(kvstore_type)

    if kvstore_type not in KVSTORE_TYPES:
        raise SystemExit(f"--kvstore: expected one of {', '.join(KVSTORE_TYPES)} (got {kvstore_type!r})")
    contexts = select_contexts(gpus)
    if kvstore_type == "dist_device_sync" and not gpus:
        raise SystemExit("--kvstore dist_device_sync aggregates on GPUs; give --gpus or use dist_sync")
    if kvstore_type.startswith("dist"):
        if "DMLC_ROLE" not in os.environ:
            raise SystemExit(f"--kvstore {kvstore_type} needs the DMLC_* variables a launcher sets "
                             "(dlcfn submit or tools/launch.py); use --kvstore local for one process")
        kv = mx.kv.create(kvstore_type)
        return Runtime(kvstore_type, kv, kv.rank, kv.num_workers, contexts)
    return Runtime(kvstore_type, None, 0, 1, contexts)


def seed_everything(seed: int) -> None:
    """Same seed on every rank: same initial parameters, same batch order, same dropout streams."""
    import mxnet as mx
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def allreduce_sums(runtime: Runtime, values: list[float], key: int) -> list[float]:
    """Sum small per-worker statistics across workers (validation loss, token counts).

    Synchronous dist kvstores only: every worker gets the same bits back, so decisions made
    from them (early stopping, learning-rate decay) agree and no rank is left waiting.
    ``key`` must not collide with a trainer's parameter indices.
    """
    if not (runtime.distributed and runtime.synchronous):
        return list(values)
    import mxnet as mx

    arr = mx.nd.array(values, dtype="float32")
    if key not in runtime.reduce_keys:
        runtime.kv.init(key, mx.nd.zeros_like(arr))
        runtime.reduce_keys.add(key)
    out = mx.nd.zeros_like(arr)
    runtime.kv.push(key, arr)
    runtime.kv.pull(key, out=out)
    return [float(v) for v in out.asnumpy()]


def add_runtime_flags(p: argparse.ArgumentParser, default_output: str = "out") -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--kvstore", default="auto",
                   help="auto | local | device | dist_sync | dist_async | dist_device_sync | none; "
                        "auto: $DLCFN_KVSTORE (dlcfn submit), dist_sync when DMLC_ROLE is set, else local")
    g.add_argument("--gpus", default="auto",
                   help="GPU ids, e.g. 0,1; 'none' for CPU; auto: the GPUs present (CPU if none)")
    g.add_argument("--threads", type=int, default=None,
                   help="OpenMP threads per process (default: $OMP_NUM_THREADS, else 1)")
    g.add_argument("--output", default=default_output, help="metrics/checkpoints go to OUTPUT/rank-<r>/")
    g.add_argument("--seed", type=int, default=1, help="same on every rank: same init, same batches")
