"""SGD, Adam, SNGD and SPS training a ViT (patch 4, depth 2, 8 heads, MLP 128) on images.

Reads the ``mnist-vit`` records (the embedded MNIST test set, the stand-in for MNIST)
and, when its data is there, ``fashion-vit`` (Fashion-MNIST from the Debian package
``dataset-fashion-mnist``, the stand-in for CIFAR-10); records of ``cifar10-vit``
trained on the real CIFAR-10 are drawn too when present. Per optimizer: training loss
and accuracy against steps and the largest attention weight of the class token in the
last layer (attention sparsity), with the paper's settings (docs/theory.md §4).

Writes ``realdata_vision.png``, ``realdata_vision.csv`` (long format: preset,
optimizer, quantity, smoothing_window, seeds, t = step, mean, lo, hi),
``realdata_vision_runs.csv`` (where every record comes from and its settings) and
``realdata_vision_summary.csv`` (per optimizer setting: loss and held-out accuracy at
25/50/100 % of the steps, steps to a target loss, attention sparsity, min-max over seeds;
also printed).
"""

from __future__ import annotations

from paper_figs._realdata import find_runs, make_figure
from paper_figs.common import DEFAULT_RUNS, main

NAME = "realdata_vision"


def make(out_dir, quick=False, runs=None):
    """Build the figure; return the written paths."""
    from realdata.data import FASHION_MNIST_DIR

    presets, notes = ["mnist-vit"], []
    root = runs if runs is not None else DEFAULT_RUNS
    if FASHION_MNIST_DIR.is_dir() or find_runs(root, "fashion-vit"):
        presets.append("fashion-vit")
    else:
        notes.append("fashion-vit (Fashion-MNIST, the CIFAR-10 stand-in) not shown: the Debian "
                     "package dataset-fashion-mnist is not installed")
    if find_runs(root, "cifar10-vit"):
        presets.append("cifar10-vit")
    return make_figure(
        NAME, "ViT (patch 4, depth 2, 8 heads, MLP 128, batch 100), the paper's step sizes "
        "(docs/theory.md §4); lines: running mean over steps, averaged over seeds; bands: "
        "min-max over seeds",
        presets, out_dir, quick, runs, notes)


if __name__ == "__main__":
    raise SystemExit(main(make, NAME))
