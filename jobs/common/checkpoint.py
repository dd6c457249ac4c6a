"""Per-epoch checkpoints (parameters, optimiser state, a small JSON of loop state) and
averaging of the last K of them.

Layout under a rank directory: ``checkpoints/epoch-0003.params``, ``.states``, ``.json``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mxnet as mx


def save(directory: Path, epoch: int, net, trainer, meta: dict[str, Any], save_states: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"epoch-{epoch:04d}"
    net.save_parameters(str(stem) + ".params")
    if save_states:  # a dist_async trainer's state lives on the servers: nothing to save here
        trainer.save_states(str(stem) + ".states")
    Path(str(stem) + ".json").write_text(json.dumps({"epoch": epoch, **meta}, indent=1))
    return stem


def latest(directory: Path) -> Path | None:
    stems = sorted(directory.glob("epoch-*.params"))
    return stems[-1].with_suffix("") if stems else None


def resolve(resume: str) -> Path:
    """``--resume`` takes a checkpoints directory (latest epoch) or one checkpoint stem."""
    path = Path(resume)
    if path.is_dir():
        found = latest(path)
        if found is None:
            raise SystemExit(f"--resume: no epoch-*.params in {path}")
        return found
    stem = path.with_suffix("") if path.suffix in (".params", ".json", ".states") else path
    if not Path(str(stem) + ".params").exists():
        raise SystemExit(f"--resume: {stem}.params not found")
    return stem


def load(stem: Path, net, trainer, ctx) -> dict[str, Any]:
    net.load_parameters(str(stem) + ".params", ctx=ctx)
    states = Path(str(stem) + ".states")
    if states.exists():
        trainer.load_states(str(states))
    return json.loads(Path(str(stem) + ".json").read_text())


def average_into(net, stems: list[Path], ctx) -> None:
    """Set ``net``'s parameters to the mean of the checkpoints' (Polyak-style ensembling)."""
    loaded = [mx.nd.load(str(s) + ".params") for s in stems]
    params = net._collect_params_with_prefix()
    for name, param in params.items():
        mean = mx.nd.add_n(*[ld[name] for ld in loaded]) / len(loaded)
        param.set_data(mean.as_in_context(param.list_ctx()[0]))
