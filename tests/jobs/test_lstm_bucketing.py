"""The bucketed LSTM language model job, run as real processes on the offline Lee corpus."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobprocs import JOBS, job_env, read_metrics, run_kvstore_cluster

TINY = ["--vocab-size", "1500", "--embed", "32", "--hidden", "32", "--layers", "1",
        "--max-sentences", "480", "--batch-size", "32", "--epochs", "2", "--dropout", "0", "--seed", "3"]


@pytest.fixture(scope="module")
def bucketed_and_padded(tmp_path_factory) -> tuple[dict, dict]:
    """One bucketed and one padded run on the same data (module scope: two processes in all)."""
    runs = []
    for extra in ([], ["--pad-to-max"]):
        out = tmp_path_factory.mktemp("lstm")
        proc = subprocess.run([sys.executable, str(JOBS / "lstm_bucketing/train.py"), *TINY, *extra,
                               "--output", str(out)], env=job_env(), capture_output=True, text=True,
                              timeout=180)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        runs.append(read_metrics(out))
    return runs[0], runs[1]


def test_validation_perplexity_falls_over_two_epochs(bucketed_and_padded) -> None:
    metrics, _ = bucketed_and_padded
    ppl = [e["valid_ppl"] for e in metrics["epochs"]]
    assert len(ppl) == 3  # epoch 0 = before training
    assert ppl[0] > ppl[1] > ppl[2]
    assert ppl[2] < 0.5 * ppl[0]
    assert metrics["final"]["valid_ppl"] == ppl[2]


def test_metrics_record_throughput_padding_and_grad_norm(bucketed_and_padded) -> None:
    bucketed, padded = bucketed_and_padded
    for epoch in bucketed["epochs"][1:]:
        assert epoch["real_tokens_per_s"] > 0 and epoch["grad_norm_max"] >= epoch["grad_norm_mean"] > 0
    assert bucketed["epochs"][1]["pad_fraction"] < 0.15
    assert padded["epochs"][1]["pad_fraction"] > 0.4
    assert bucketed["data"]["pad_limit"] > 1.5
    assert bucketed["data"]["buckets"] == padded["data"]["buckets"]


def test_bucketed_and_padded_reach_the_same_perplexity(bucketed_and_padded) -> None:
    bucketed, padded = bucketed_and_padded
    for b, p in zip(bucketed["epochs"], padded["epochs"]):
        assert abs(b["valid_ppl"] - p["valid_ppl"]) / p["valid_ppl"] < 0.05
    # the same batches in the same order: only the padding differed
    assert [e.get("batches") for e in bucketed["epochs"]] == [e.get("batches") for e in padded["epochs"]]
    assert padded["epochs"][1]["padded_positions_per_s"] / padded["epochs"][1]["real_tokens_per_s"] > 1.5


def test_dist_sync_two_workers_end_with_identical_parameters(tmp_path: Path, processes) -> None:
    out = tmp_path / "out"
    # --checkpoint-avg: rank 0 alone evaluates the averaged checkpoints after the last epoch
    args = [*TINY, "--max-sentences", "320", "--kvstore", "dist_sync", "--checkpoint-avg", "2", "--output", str(out)]
    run_kvstore_cluster(processes, tmp_path, "lstm_bucketing/train.py", args, num_workers=2)
    import mxnet as mx

    finals = [mx.nd.load(str(out / f"rank-{r}" / "final.params")) for r in (0, 1)]
    assert finals[0].keys() == finals[1].keys() and finals[0]
    for name in finals[0]:
        np.testing.assert_array_equal(finals[0][name].asnumpy(), finals[1][name].asnumpy(), err_msg=name)
    m0, m1 = read_metrics(out, 0), read_metrics(out, 1)
    assert (m0["rank"], m1["rank"], m0["num_workers"]) == (0, 1, 2)
    # every worker made the same number of updates, each on its own half of the batches
    assert m0["epochs"][1]["batches"] == m1["epochs"][1]["batches"] > 0
    assert [e["valid_ppl"] for e in m0["epochs"]] == [e["valid_ppl"] for e in m1["epochs"]]
    assert m0["epochs"][2]["valid_ppl"] < m0["epochs"][0]["valid_ppl"]
    assert m0["final"]["averaged_last"] == 2 and m0["final"]["averaged_valid_ppl"] > 0
    # a worker changed away from its initial parameters (training happened, not just a copy)
    init_like = mx.nd.load(str(out / "rank-0" / "checkpoints" / "epoch-0001.params"))
    assert any(not np.array_equal(init_like[k].asnumpy(), finals[0][k].asnumpy()) for k in init_like)


def test_gru_variational_learned_init_sgd_average_and_resume(tmp_path: Path, run_script) -> None:
    out = tmp_path / "out"
    flags = ["--vocab-size", "800", "--embed", "16", "--hidden", "16", "--layers", "2",
             "--max-sentences", "160", "--cell", "gru", "--variational-dropout", "--learned-init",
             "--optimizer", "sgd", "--lr", "0.5", "--output", str(out)]
    run_script("lstm_bucketing/train.py", *flags, "--epochs", "2", "--checkpoint-avg", "2", name="first")
    first = read_metrics(out)
    assert first["data"]["model"]["cell"] == "gru" and first["data"]["model"]["fused"] is True
    assert first["final"]["averaged_last"] == 2 and first["final"]["averaged_valid_ppl"] > 1
    assert first["epochs"][2]["valid_ppl"] < first["epochs"][0]["valid_ppl"]
    run_script("lstm_bucketing/train.py", *flags, "--epochs", "3",
               "--resume", str(out / "rank-0" / "checkpoints"), name="resumed")
    resumed = read_metrics(out)
    assert [e["epoch"] for e in resumed["epochs"]] == [0, 1, 2, 3]
    assert resumed["epochs"][:3] == first["epochs"]
    assert resumed["epochs"][3]["valid_ppl"] < first["epochs"][2]["valid_ppl"]
    assert (out / "rank-0" / "checkpoints" / "epoch-0003.params").exists()


LAUNCH_WRAPPER = """
import runpy, sys, threading
threading.Thread.isAlive = threading.Thread.is_alive  # removed in Python 3.9; the launcher calls it
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_runs_unchanged_under_mxnet_tools_launch(tmp_path: Path, processes) -> None:
    """MXNet's classic launcher sets only the DMLC variables: --kvstore auto joins as dist_sync."""
    import mxnet

    launch = Path(mxnet.__file__).parent / "tools" / "launch.py"
    wrapper = tmp_path / "launch_wrapper.py"
    wrapper.write_text(LAUNCH_WRAPPER)
    out = tmp_path / "out"
    cmd = [sys.executable, str(wrapper), str(launch), "-n", "2", "-s", "1", "--launcher", "local",
           sys.executable, str(JOBS / "lstm_bucketing/train.py"), "--vocab-size", "800", "--embed", "16",
           "--hidden", "16", "--layers", "1", "--max-sentences", "160", "--epochs", "1", "--output", str(out)]
    log = tmp_path / "launch.log"
    proc = processes.start(cmd, job_env(DMLC_NODE_HOST="127.0.0.1"), log)
    try:
        rc = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"tools/launch.py run still going after 120s:\n{log.read_text()[-3000:]}")
    assert rc == 0, log.read_text()[-3000:]
    m0, m1 = read_metrics(out, 0), read_metrics(out, 1)
    assert (m0["kvstore"], m0["num_workers"], m1["rank"]) == ("dist_sync", 2, 1)
    assert m0["epochs"][-1]["valid_ppl"] == m1["epochs"][-1]["valid_ppl"]
