"""The demo's report: results table and training-curve PNG from collected metrics.json files."""

from __future__ import annotations

import json
from pathlib import Path

from dlcfn.demo import report, results_table


def _metrics(rank: int) -> dict:
    return {"rank": rank, "kvstore": "dist_sync", "epochs": [
        {"epoch": 0, "valid_ppl": 4000.0},
        {"epoch": 1, "train_ppl": 900.0, "valid_ppl": 305.2, "cluster_real_tokens_per_s": 2500.0, "pad_fraction": 0.08},
        {"epoch": 2, "train_ppl": 310.0, "valid_ppl": 287.4, "cluster_real_tokens_per_s": 2600.0, "pad_fraction": 0.08},
    ]}


def test_table_has_a_row_per_epoch_with_values() -> None:
    rows = results_table(_metrics(0))
    assert len(rows) == 4
    assert rows[2].split() == ["1", "900.0", "305.2", "2500", "0.080"]
    assert rows[1].split()[1:] == ["-", "4000.0", "-", "-"]


def test_report_writes_png_and_fails_without_metrics(tmp_path: Path) -> None:
    assert report(tmp_path) is False
    for rank in (1, 0):
        d = tmp_path / f"host{rank}" / "out" / f"rank-{rank}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(_metrics(rank)))
    assert report(tmp_path) is True
    png = (tmp_path / "training_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
