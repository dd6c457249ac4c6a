"""`make demo`: the whole dlcfn pipeline on this machine, no AWS account.

Creates a local cluster (an embedded moto server for AWS, real sshd hosts for instances) with 2
workers, submits the bucketed LSTM language model with `dist_sync`, prints a results table
(perplexity per epoch, tokens/s, pad fraction), writes a PNG of the training curve next to the
collected `metrics.json` and per-rank logs in `results/<job-id>/`, and deletes the cluster.

Each stage is the real CLI (`python -m dlcfn ...`), so what the demo shows is what a user types.
The cluster is deleted whatever happens (failure or Ctrl-C); exit code 0 only when every stage
succeeded and the results are there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from dlcfn.errors import ExitCode

CLUSTER = "dlcfn-demo"
JOB_FILE = Path(__file__).resolve().parent.parent / "jobs" / "lstm_bucketing.yaml"


def _dlcfn(*args: str) -> int:
    print(f"\n$ dlcfn {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "dlcfn", *args])


def _rank_metrics(results_dir: Path) -> list[dict]:
    """Every rank's metrics.json under the collected results, ordered by rank."""
    found = [json.loads(p.read_text()) for p in sorted(results_dir.rglob("metrics.json"))]
    return sorted(found, key=lambda m: m.get("rank", 0))


def results_table(metrics: dict) -> list[str]:
    """Rows of the per-epoch table of one rank's metrics (epoch 0 is the untrained model)."""
    rows = [f"{'epoch':>5} {'train ppl':>10} {'valid ppl':>10} {'tokens/s (cluster)':>19} {'pad fraction':>13}"]
    for e in metrics["epochs"]:
        train = f"{e['train_ppl']:.1f}" if "train_ppl" in e else "-"
        tps = f"{e['cluster_real_tokens_per_s']:.0f}" if "cluster_real_tokens_per_s" in e else "-"
        pad = f"{e['pad_fraction']:.3f}" if "pad_fraction" in e else "-"
        rows.append(f"{e['epoch']:>5} {train:>10} {e['valid_ppl']:>10.1f} {tps:>19} {pad:>13}")
    return rows


def plot_curve(all_metrics: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to a file
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in all_metrics:
        epochs = m["epochs"]
        ax.plot([e["epoch"] for e in epochs], [e["valid_ppl"] for e in epochs], marker="o", label=f"valid, rank {m['rank']}")
        train = [e for e in epochs if "train_ppl" in e]
        ax.plot([e["epoch"] for e in train], [e["train_ppl"] for e in train], marker="x", linestyle="--", label=f"train, rank {m['rank']}")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.set_title("bucketed LSTM LM, dist_sync")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(results_dir: Path) -> bool:
    """Print the table and write the plot; False when the results are missing."""
    all_metrics = _rank_metrics(results_dir)
    if not all_metrics or not all(m.get("epochs") for m in all_metrics):
        print(f"demo: no metrics.json with epochs under {results_dir}", file=sys.stderr)
        return False
    print(f"\nresults of rank 0 ({len(all_metrics)} workers, {all_metrics[0]['kvstore']}):")
    print("\n".join(results_table(all_metrics[0])))
    plot = results_dir / "training_curve.png"
    plot_curve(all_metrics, plot)
    logs = len(list((results_dir / "logs").glob("*"))) if (results_dir / "logs").is_dir() else 0
    print(f"\nwrote {results_dir}: {len(all_metrics)} metrics.json, {logs} per-rank logs, {plot.name}")
    return True


def main() -> int:
    job_id = time.strftime("lstm-demo-%Y%m%d-%H%M%S")
    started = time.monotonic()
    ok = False
    try:
        if _dlcfn("create-stack", CLUSTER, "--local", "--workers", "2") != 0:
            return int(ExitCode.FAILED)
        if _dlcfn("submit", str(JOB_FILE), "--cluster", CLUSTER, "--job-id", job_id) != 0:
            return int(ExitCode.FAILED)
        ok = report(Path("results") / job_id)
    except KeyboardInterrupt:
        print("\ndemo: interrupted; deleting the cluster", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    finally:
        deleted = _dlcfn("delete-stack", CLUSTER, "--local", "--yes") == 0
        ok = ok and deleted
    print(f"\ndemo: {'done' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else int(ExitCode.FAILED)


if __name__ == "__main__":
    sys.exit(main())
