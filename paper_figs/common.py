"""Former home of the figure helpers, kept so that existing imports keep working.

The helpers now live in :mod:`paper_figs.registry` (the figure list, building a figure,
a figure script's command line), :mod:`paper_figs.output` (PNG and CSV output),
:mod:`paper_figs.plotting` (style and drawing) and :mod:`paper_figs.measure` (what the
figures read off trajectories). Import from those in new code.
"""

from __future__ import annotations

from paper_figs.measure import log10_of
from paper_figs.output import band_rows, concat_columns, save_outputs, save_png, write_csv
from paper_figs.plotting import (
    METHOD_STYLE, OPTIMIZER_STYLE, fit_ylim, log10_axis, new_figure, new_row_figure, plot_band,
    plot_predicted, seed_band,
)
from paper_figs.registry import (
    DEFAULT_OUT, DEFAULT_RUNS, FIGURES, REPO_ROOT, FigureInfo, build_figure, main,
)

__all__ = [
    "DEFAULT_OUT", "DEFAULT_RUNS", "FIGURES", "FigureInfo", "METHOD_STYLE", "OPTIMIZER_STYLE",
    "REPO_ROOT", "band_rows", "build_figure", "concat_columns", "fit_ylim", "log10_axis",
    "log10_of", "main", "new_figure", "new_row_figure", "plot_band", "plot_predicted",
    "save_outputs", "save_png", "seed_band", "write_csv",
]
