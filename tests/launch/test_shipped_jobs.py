"""The job specs shipped in jobs/ run under `dlcfn submit` on real sshd hosts, as a user would
submit them: the spec's kvstore, process counts, setup, env and results as written, only the
training made small (flags overridden in the spec's own argument list) and the interpreter set
to this test's Python (plain hosts have no MXNet on PATH). The scripts have their own tests;
this checks spec + script + runner together (a ResNet dist_sync start-up failure went unseen
for lack of it)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import yaml

JOBS = Path(__file__).resolve().parent.parent.parent / "jobs"

# Per spec: the flags that make it small. Everything else in its args stays as shipped.
SMALL = {
    "lstm_bucketing.yaml": {"--vocab-size": "800", "--embed": "24", "--hidden": "24", "--max-sentences": "240"},
    "resnet.yaml": {"--model": "resnet8", "--width": "8", "--max-train": "1024", "--max-valid": "256", "--epochs": "2",
                    "--batch-size": "32"},
    "lstm_model_parallel.yaml": {"--layers": "2", "--embed": "24", "--hidden": "24", "--vocab-size": "800",
                                 "--max-sentences": "160", "--epochs": "1"},
}


def small_args(args: list[str], overrides: dict[str, str]) -> list[str]:
    """`args` with each overridden flag's value replaced, or the flag appended when absent."""
    out, left = list(args), dict(overrides)
    for i, word in enumerate(out[:-1]):
        if word in left:
            out[i + 1] = left.pop(word)
    return out + [x for flag, value in left.items() for x in (flag, value)]


def test_small_args_replaces_values_and_appends_missing_flags() -> None:
    assert small_args(["--a", "1", "--b", "2"], {"--b": "3", "--c": "4"}) == ["--a", "1", "--b", "3", "--c", "4"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_shipped_job_runs_under_dlcfn_submit(name: str, tmp_path: Path, ssh_pool_factory, run_submit, job_pids,  # type: ignore[no-untyped-def]
                                             in_tmp_cwd: Path) -> None:
    spec = yaml.safe_load((JOBS / name).read_text())
    spec.update(workdir=str(JOBS), python=sys.executable, args=small_args(spec["args"], SMALL[name]), timeout=300)
    job = tmp_path / name
    job.write_text(yaml.safe_dump(spec))
    workers = spec["num_workers"]
    pool = ssh_pool_factory(max(2, workers))
    job_id = "shipped-" + name.removesuffix(".yaml").replace("_", "-")

    out = run_submit(pool, job, "--job-id", job_id, timeout=300)

    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert not job_pids(job_id)
    results = in_tmp_cwd / "results" / job_id
    assert json.loads((results / "job.json").read_text())["state"] == "succeeded"
    metrics = [json.loads(p.read_text()) for p in sorted(results.glob("*/out/rank-*/metrics.json"))]
    assert sorted(m["rank"] for m in metrics) == list(range(workers))
    for m in metrics:  # epoch 0 is the evaluation before training: the model learned something
        key = "valid_ppl" if "valid_ppl" in m["epochs"][0] else "valid_loss"
        first, last = m["epochs"][0][key], m["epochs"][-1][key]
        assert m["num_workers"] == workers and len(m["epochs"]) >= 2
        assert math.isfinite(last) and last < first, m["epochs"]
    # final.params, or one file per pipeline stage (final.stage<i>.params) for the model-parallel job
    assert len({p.parent for p in results.glob("*/out/rank-*/final*.params")}) == workers
    finals = sorted(results.glob("*/out/rank-*/final.params"))
    if workers > 1:  # dist_sync: every worker ends with the same parameters (BatchNorm statistics included)
        import mxnet as mx

        assert len(finals) == workers
        first, *others = (mx.nd.load(str(p)) for p in finals)
        for other in others:
            assert sorted(other) == sorted(first)
            assert all((other[k] == first[k]).asnumpy().all() for k in first), name
