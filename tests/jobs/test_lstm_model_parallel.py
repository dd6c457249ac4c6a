"""The model-parallel LSTM: placement, and two CPU contexts matching one context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jobprocs import read_metrics

FLAGS = ["--vocab-size", "600", "--embed", "16", "--hidden", "16", "--layers", "3",
         "--max-sentences", "96", "--batch-size", "16", "--dropout", "0", "--seed", "5"]


def test_balance_keeps_layers_contiguous_and_evens_the_work() -> None:
    from lstm_model_parallel.pipeline import balance

    assert balance([1, 1, 1, 1], 2) == [2, 2]
    assert balance([1, 1, 1, 5], 2) == [3, 1]  # a heavy decoder end gets a device of its own layers
    sizes = balance([4, 1, 1, 1, 1], 3)
    assert sizes[0] == 1 and sum(sizes) == 5 and _largest([4, 1, 1, 1, 1], sizes) == 4
    assert sum(balance([3, 1, 4, 1, 5, 9, 2, 6], 3)) == 8
    with pytest.raises(SystemExit):
        balance([1, 1], 3)


def _largest(costs: list[int], sizes: list[int]) -> int:
    sums, start = [], 0
    for n in sizes:
        sums.append(sum(costs[start:start + n]))
        start += n
    return max(sums)


def _losses_after_steps(devices: str, steps: int) -> tuple[list[float], object]:
    import mxnet as mx

    from common.lmflags import prepare_data
    from common.runtime import seed_everything
    from lstm_model_parallel.train import build_model, parse_args

    args = parse_args([*FLAGS, "--devices", devices])
    seed_everything(args.seed)
    data = prepare_data(args)
    model = build_model(args, len(data.vocab))
    arrays = data.train.arrays(data.train.plan(args.batch_size, seed=1)[0])
    losses = []
    for _ in range(steps):
        nll, _norm = model.train_batch(arrays)
        losses.append(float(nll.asscalar()))
    losses.append(float(model.eval_batch(arrays).asscalar()))
    mx.nd.waitall()
    return losses, model


def test_two_cpu_contexts_match_one_context_after_a_step() -> None:
    import mxnet as mx

    split, model = _losses_after_steps("cpu:0,cpu:1", steps=1)
    single, reference = _losses_after_steps("cpu:0", steps=1)
    # the layers really live on two devices
    placed = {str(p.list_ctx()[0]) for s in model.stages for p in s.collect_params().values()}
    assert placed == {"cpu(0)", "cpu(1)"} and len(model.stages) == 2 and len(reference.stages) == 1
    assert model.stages[1].collect_params().values().__iter__().__next__().list_ctx() == [mx.cpu(1)]
    assert split[1] != split[0]  # the step changed the model
    np.testing.assert_allclose(split, single, rtol=1e-5)


def test_model_parallel_job_trains_on_two_cpu_contexts(tmp_path: Path, run_script) -> None:
    out = tmp_path / "out"
    run_script("lstm_model_parallel/train.py", *FLAGS, "--max-sentences", "256", "--epochs", "2",
               "--devices", "cpu:0,cpu:1", "--output", str(out))
    m = read_metrics(out)
    assert [s["device"] for s in m["data"]["placement"]] == ["cpu(0)", "cpu(1)"]
    assert m["data"]["placement"][0]["holds"][0] == "embedding" and m["data"]["placement"][1]["holds"][-1] == "decoder"
    ppl = [e["valid_ppl"] for e in m["epochs"]]
    assert ppl[0] > ppl[1] > ppl[2]
