"""Bucketing vs padding to the longest bucket: real tokens/s of the same LSTM on the same
batches, in one run (``python bench/bucketing.py``; under 5 minutes on 1 thread).

Both modes train the job's model (jobs/lstm_bucketing) over the same batch plan; only the
padding differs (``--pad-to-max``). Every batch shape is run once before timing (graph
caching is a one-off cost). Each timed pass is one epoch over the same batches, exactly
as the job trains; the modes alternate and each reports its best pass (best of
``--repeats``, default 2): other work sharing the machine only ever slows a pass down. The limit is what perfect bucketing could gain: padded positions / real tokens.
Last line: ``bucketing: <ratio>x of <limit>x limit (<pct>%)``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

JOBS = Path(__file__).resolve().parent.parent / "jobs"
sys.path.insert(0, str(JOBS))
sys.path.insert(0, str(JOBS / "lstm_bucketing"))


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="timed epochs per mode (best one counts)")
    p.add_argument("--max-sentences", type=int, default=0, help="0: the whole training set")
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--embed", type=int, default=200)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vocab-size", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args()


def job_args(b: argparse.Namespace) -> argparse.Namespace:
    from train import parse_args  # jobs/lstm_bucketing/train.py

    return parse_args(["--kvstore", "local", "--gpus", "none", "--threads", str(b.threads),
                       "--max-sentences", str(b.max_sentences), "--hidden", str(b.hidden),
                       "--embed", str(b.embed), "--layers", str(b.layers), "--vocab-size", str(b.vocab_size),
                       "--batch-size", str(b.batch_size), "--dropout", "0.2"])


def warm_up(model, data, args) -> None:
    """Run every distinct batch shape of both modes once: graph building is not throughput."""
    plan = data.plan(args.batch_size, seed=args.seed * 1000 + 1)
    seen = set()
    for batch in plan:
        for pad_to in (None, data.buckets[-1]):
            shape = (pad_to or batch.bucket_len, len(batch.indices))
            if shape not in seen:
                seen.add(shape)
                model.train_batch(data.arrays(batch, pad_to))


def main() -> int:
    bench = parse()
    from common.runtime import configure_threads, create_runtime, seed_everything

    threads = configure_threads(bench.threads)
    args = job_args(bench)
    runtime = create_runtime("local", [])
    seed_everything(args.seed)
    from common import lmloop
    from common.lmflags import prepare_data
    from train import DataParallelLM

    data = prepare_data(args)
    model = DataParallelLM(args, runtime, len(data.vocab))
    print(f"model: {args.layers}x{args.hidden} LSTM, embed {args.embed}, vocab {len(data.vocab)}, "
          f"{len(data.train.sequences)} sentences, {len(data.train.buckets)} buckets, "
          f"batch {args.batch_size}, {threads} thread(s)", flush=True)
    warm_up(model, data.train, args)
    best = {False: None, True: None}  # pad_to_max -> (real tokens/s, positions/s, seconds)
    for rep in range(bench.repeats):
        for pad in ((False, True) if rep % 2 == 0 else (True, False)):
            args.pad_to_max = pad
            epoch, seconds = lmloop.train_epoch(model, data.train, args, runtime, epoch=2)
            rate = (epoch.real_tokens / seconds, epoch.positions / seconds, seconds)
            print(f"{'padded' if pad else 'bucketed'}: {rate[0]:.0f} real tokens/s, {rate[1]:.0f} "
                  f"positions/s, pad fraction {1 - epoch.real_tokens / epoch.positions:.3f}, "
                  f"{seconds:.1f} s", flush=True)
            if best[pad] is None or rate[0] > best[pad][0]:
                best[pad] = rate
    ratio = best[False][0] / best[True][0]
    limit = best[True][1] / best[True][0]  # padded positions per real token
    print(f"best of {bench.repeats}: bucketed {best[False][0]:.0f} vs padded {best[True][0]:.0f} real tokens/s")
    print(f"bucketing: {ratio:.2f}x of {limit:.2f}x limit ({100 * ratio / limit:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
