"""Test helpers shared by the real-data test files (on pytest's path via pyproject's pythonpath)."""
import json
from pathlib import Path

import numpy as np

from realdata.data import DataBundle, embedded_mnist
from realdata.train import EVAL_COLUMNS, METRIC_COLUMNS

TINY = dict(embed_dim=16, depth=1, heads=2, mlp_dim=32)


def small_mnist_bundle(n_train, n_heldout):
    """The first ``n_train`` / ``n_heldout`` images of the embedded MNIST split."""
    full = embedded_mnist()
    return DataBundle(name=full.name, kind="image", classes=full.classes,
                      train=full.train.subset(range(n_train)),
                      heldout=full.heldout.subset(range(n_heldout)),
                      source=full.source, stand_in_for=full.stand_in_for)


def write_run(folder, loss, *, optimizer="sgd", seed=0, lr=0.1, eta_max=None, budget=None,
              steps_per_epoch=8, heldout_acc=None, attn_max=None, finished=True,
              preset="mnist-vit", **config):
    """A run folder as ``realdata.train`` writes it, with the given per-step losses.

    ``budget`` (planned steps) defaults to ``len(loss)``; a run that diverged has fewer rows,
    the last one not finite. Evaluations follow every ``steps_per_epoch`` steps and the last.
    """
    folder = Path(folder)
    folder.mkdir(parents=True)
    loss = np.asarray(loss, dtype=np.float64)
    n = loss.size
    budget = n if budget is None else budget
    steps = np.arange(1, n + 1)
    amax = np.full(n, 0.5) if attn_max is None else np.asarray(attn_max, dtype=np.float64)
    cfg = dict(preset=preset, optimizer=optimizer, seed=seed, steps=budget, lr=lr,
               eta_max=eta_max, batch_size=100, steps_per_epoch=steps_per_epoch,
               dataset="synthetic", stand_in_for=None, **config)
    (folder / "config.json").write_text(json.dumps(cfg))
    with open(folder / "metrics.csv", "w") as fh:
        fh.write(",".join(METRIC_COLUMNS) + "\n")
        for t, v, a in zip(steps, loss, amax):
            fh.write(f"{t},{t / steps_per_epoch},{float(v)!r},0.5,{lr or 0.1},1.0,{1 - float(a)!r},"
                     f"{float(a)!r}\n")
    eval_steps = [t for t in steps if t % steps_per_epoch == 0 or t == n]
    acc = heldout_acc or (lambda t: t / 1000)
    with open(folder / "eval.csv", "w") as fh:
        fh.write(",".join(EVAL_COLUMNS) + "\n")
        for t in eval_steps:
            fh.write(f"{t / steps_per_epoch},{t},1.0,{float(acc(t))!r}\n")
    if finished:
        (folder / "result.json").write_text(json.dumps(dict(steps=int(n))))
    return folder
