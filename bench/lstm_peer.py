"""The bucketed LSTM job vs the same LSTM in PyTorch: real tokens/s side by side
(``python bench/lstm_peer.py``; needs torch, a bench-only dependency:
``pip install -c constraints.txt torch==2.13.0``).

Same data (the Lee corpus, same vocabulary, same buckets and batch plan), same shape
(embedding -> 2x200 LSTM -> decoder over the vocabulary), same training step (masked loss
normalised per sentence, Adam, global-norm clipping at 1.0, dropout 0.2), same thread
count (each framework runs in its own process with ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``
and, for torch, ``set_num_threads``). Every batch shape runs once before timing; each
framework reports its best of ``--repeats`` timed epochs (the machine may be shared).
Last line: ``lstm_peer: mxnet <a> vs torch <b> real tokens/s (<a/b>x), <n> thread(s)``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from bucketing import JOBS, job_args, warm_up  # noqa: E402  (same config, same warm-up)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-sentences", type=int, default=0)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--embed", type=int, default=200)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vocab-size", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--framework", choices=("mxnet", "torch"), help=argparse.SUPPRESS)
    return p.parse_args()


def run_mxnet(bench: argparse.Namespace, args, data) -> float:
    from common import lmloop
    from common.runtime import create_runtime
    from train import DataParallelLM

    runtime = create_runtime("local", [])
    model = DataParallelLM(args, runtime, len(data.vocab))
    warm_up(model, data.train, args)
    best = 0.0
    for _ in range(bench.repeats):
        epoch, seconds = lmloop.train_epoch(model, data.train, args, runtime, epoch=2)
        best = max(best, epoch.real_tokens / seconds)
    return best


def run_torch(bench: argparse.Namespace, args, data) -> float:
    import torch
    from torch import nn

    torch.set_num_threads(bench.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    class TorchLM(nn.Module):
        def __init__(self, vocab: int):
            super().__init__()
            self.embedding = nn.Embedding(vocab, args.embed)
            self.drop = nn.Dropout(args.dropout)
            self.lstm = nn.LSTM(args.embed, args.hidden, args.layers, dropout=args.dropout)
            self.decoder = nn.Linear(args.hidden, vocab)
            with torch.no_grad():  # forget-gate bias 1, as the job sets it
                for layer in range(args.layers):
                    getattr(self.lstm, f"bias_ih_l{layer}")[args.hidden:2 * args.hidden] = 1.0

        def forward(self, data, target, mask):
            out, _ = self.lstm(self.drop(self.embedding(data)))
            logits = self.decoder(self.drop(out))
            nll = nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
            return nll.view_as(mask) * mask

    model = TorchLM(len(data.vocab))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def step(arrays) -> None:
        data_t = torch.from_numpy(arrays.data).long()
        target = torch.from_numpy(arrays.target).long()
        mask, lengths = torch.from_numpy(arrays.mask), torch.from_numpy(arrays.lengths)
        nll = model(data_t, target, mask)
        loss = (nll.sum(0) / lengths).sum() / arrays.data.shape[1]
        opt.zero_grad(set_to_none=False)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()

    plan = data.train.plan(args.batch_size, seed=args.seed * 1000 + 1)
    seen = set()
    for batch in plan:  # every shape once, as for MXNet
        if (batch.bucket_len, len(batch.indices)) not in seen:
            seen.add((batch.bucket_len, len(batch.indices)))
            step(data.train.arrays(batch))
    best = 0.0
    for _ in range(bench.repeats):
        plan = data.train.plan(args.batch_size, seed=args.seed * 1000 + 2)
        real, start = 0, time.perf_counter()
        for batch in plan:
            arrays = data.train.arrays(batch)
            step(arrays)
            real += arrays.real_tokens
        best = max(best, real / (time.perf_counter() - start))
    return best


def child(bench: argparse.Namespace) -> int:
    from common.runtime import configure_threads, seed_everything

    configure_threads(bench.threads)
    args = job_args(bench)
    seed_everything(args.seed)
    from common.lmflags import prepare_data

    data = prepare_data(args)
    rate = (run_mxnet if bench.framework == "mxnet" else run_torch)(bench, args, data)
    print(json.dumps({"framework": bench.framework, "real_tokens_per_s": rate}), flush=True)
    return 0


def main() -> int:
    bench = parse()
    if bench.framework:
        return child(bench)
    env = {**os.environ, "OMP_NUM_THREADS": str(bench.threads), "MKL_NUM_THREADS": str(bench.threads)}
    rates = {}
    for framework in ("mxnet", "torch"):
        argv = [a for a in sys.argv[1:]] + ["--framework", framework]
        proc = subprocess.run([sys.executable, __file__, *argv], env=env, capture_output=True, text=True,
                              cwd=JOBS.parent, timeout=900)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-3000:])
            return proc.returncode
        rates[framework] = json.loads(proc.stdout.strip().splitlines()[-1])["real_tokens_per_s"]
        print(f"{framework}: {rates[framework]:.0f} real tokens/s (best of {bench.repeats} epochs)", flush=True)
    print(f"lstm_peer: mxnet {rates['mxnet']:.0f} vs torch {rates['torch']:.0f} real tokens/s "
          f"({rates['mxnet'] / rates['torch']:.2f}x), {bench.threads} thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
