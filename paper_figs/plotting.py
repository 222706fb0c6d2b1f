"""The figures' look and the drawing helpers they share.

Figures are :class:`matplotlib.figure.Figure` objects on an Agg canvas, made without
``pyplot``: nothing here selects a backend or keeps figures alive in a global registry,
so importing the package changes no state and a rebuild needs no display.
"""

from __future__ import annotations

import re

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = [
    "DPI",
    "FIGSIZE",
    "METHOD_STYLE",
    "OPTIMIZER_STYLE",
    "STYLE",
    "clipped_texts",
    "fit_ylim",
    "log10_axis",
    "new_figure",
    "new_row_figure",
    "plot_band",
    "plot_predicted",
    "seed_band",
    "wrap_title",
]

# Modest size: the README gallery embeds the committed PNGs.
FIGSIZE = (8.0, 5.0)
DPI = 150
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "figure.titlesize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.4,
}

METHOD_STYLE = {
    "gd": {"label": "GD", "color": "tab:blue", "marker": "o"},
    "ngd": {"label": "NGD", "color": "tab:orange", "marker": "^"},
    "polyak": {"label": "Polyak", "color": "tab:green", "marker": "s"},
}
OPTIMIZER_STYLE = {
    "sgd": {"label": "SGD", "color": "tab:blue"},
    "adam": {"label": "Adam", "color": "tab:purple"},
    "sngd": {"label": "SNGD", "color": "tab:orange"},
    "sps": {"label": "SPS", "color": "tab:green"},
}

# A word of a title: a run of non-spaces, or a whole $...$ math span (never broken inside).
_WORD = re.compile(r"(?:\$[^$]*\$|[^\s$])+")
# Share of the figure width a title line may take (the rest is a margin).
_TITLE_WIDTH = 0.96


def _figure(figsize):
    # Set globally (not in a context): legends, titles and labels are created after this.
    matplotlib.rcParams.update(STYLE)
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer for measuring text, and savefig without pyplot
    return fig


def wrap_title(fig, text, fontsize):
    """Break each line of ``text`` at spaces so that it fits the width of ``fig``.

    Math spans (``$...$``) are kept whole; a single word wider than the figure stays on
    its own line.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Figure with a canvas (see :func:`new_figure`).
    text : str
        Title, lines separated by ``"\\n"``.
    fontsize : float or str
        Font size the title is drawn with.

    Returns
    -------
    str
        The title with line breaks added where a line was too wide.

    Examples
    --------
    >>> fig, _ = new_figure(1, 1, "", figsize=(2.0, 1.0))
    >>> print(wrap_title(fig, "a short one\\nand a much longer line of several words", 9))
    a short one
    and a much longer line of
    several words
    """
    renderer = fig.canvas.get_renderer()
    limit = _TITLE_WIDTH * fig.bbox.width
    probe = Text(text="", fontsize=fontsize, figure=fig)

    def width(s):
        probe.set_text(s)
        return probe.get_window_extent(renderer).width

    out = []
    for line in text.split("\n"):
        words = _WORD.findall(line)
        if not words or width(line) <= limit:
            out.append(line)
            continue
        current = words[0]
        for word in words[1:]:
            if width(f"{current} {word}") <= limit:
                current = f"{current} {word}"
            else:
                out.append(current)
                current = word
        out.append(current)
    return "\n".join(out)


def new_figure(nrows, ncols, title, figsize=FIGSIZE):
    """A figure in the project style with an (nrows, ncols) array of axes.

    The title is wrapped to the figure's width (:func:`wrap_title`), and the layout is
    constrained, so nothing is clipped.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : ndarray of Axes, shape (nrows, ncols)
    """
    fig = _figure(figsize)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.suptitle(wrap_title(fig, title, STYLE["figure.titlesize"]))
    return fig, axes


def new_row_figure(ncols, title, row_titles, figsize=FIGSIZE):
    """A figure with one titled row of ``ncols`` axes per entry of ``row_titles``.

    Titles are wrapped to the figure's width as in :func:`new_figure`.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : ndarray of Axes, shape (len(row_titles), ncols)
    """
    fig = _figure(figsize)
    fig.suptitle(wrap_title(fig, title, STYLE["figure.titlesize"]))
    rows = np.atleast_1d(fig.subfigures(len(row_titles), 1))
    axes = []
    for sub, text in zip(rows, row_titles):
        size = STYLE["legend.fontsize"]
        sub.suptitle(wrap_title(fig, text, size), fontsize=size)
        axes.append(np.atleast_1d(sub.subplots(1, ncols)))
    return fig, np.array(axes)


def clipped_texts(fig, tol=1.0):
    """Texts of ``fig`` that are drawn (partly) outside the figure, after its layout.

    Tick labels are checked per axis, over the ticks actually drawn.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Figure with a canvas (see :func:`new_figure`).
    tol : float, default 1.0
        Pixels a text may overhang (antialiasing).

    Returns
    -------
    list of str
        One description per offending text (its kind and its first 60 characters); empty
        when everything lies within the figure.

    Examples
    --------
    >>> fig, axes = new_figure(1, 1, "a title that fits")
    >>> clipped_texts(fig)
    []
    >>> _ = fig.text(0.9, 0.5, "a note running off the right edge")
    >>> clipped_texts(fig)
    ["text 'a note running off the right edge'"]
    """
    fig.draw_without_rendering()  # runs the constrained layout
    renderer = fig.canvas.get_renderer()
    box = fig.bbox

    def outside(extent):
        return (extent.x0 < box.x0 - tol or extent.y0 < box.y0 - tol
                or extent.x1 > box.x1 + tol or extent.y1 > box.y1 + tol)

    tick_labels = set()
    bad = []
    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels.update((id(tick.label1), id(tick.label2)))
            extent = axis.get_tightbbox(renderer)
            if extent is not None and outside(extent):
                bad.append(f"{name} tick labels of axes {ax.get_title()!r}")
    for text in fig.findobj(Text):
        if id(text) in tick_labels or not text.get_visible() or not text.get_text().strip():
            continue
        if outside(text.get_window_extent(renderer)):
            bad.append(f"text {text.get_text()[:60]!r}")
    return bad


def seed_band(values):
    """Mean and min-max band of curves over seeds.

    Quantities shown on a log axis are passed as ``log10`` values (so the mean is
    the geometric mean and nothing underflows; see :func:`log10_axis`).

    Parameters
    ----------
    values : array_like, shape (seeds, points)

    Returns
    -------
    mean, lo, hi : ndarray, shape (points,)
        NaN where some seed is not finite (e.g. ``log10 0``): undefined, not guessed.

    Raises
    ------
    ValueError
        If ``values`` is not two-dimensional with at least one seed.

    Examples
    --------
    >>> seed_band([[1.0, 2.0], [3.0, float("nan")]])
    (array([ 2., nan]), array([ 1., nan]), array([ 3., nan]))
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"values must be (seeds, points) with seeds >= 1, got shape {v.shape}")
    ok = np.all(np.isfinite(v), axis=0)
    w = np.where(ok, v, 0.0)
    nan = np.full(v.shape[1], np.nan)
    return (np.where(ok, w.mean(axis=0), nan), np.where(ok, w.min(axis=0), nan),
            np.where(ok, w.max(axis=0), nan))


def plot_band(ax, t, values, *, label=None, color=None, **line_kw):
    """Plot the mean over seeds as a line and the min-max band as a shaded area.

    Returns ``(mean, lo, hi)`` as computed by :func:`seed_band`.
    """
    mean, lo, hi = seed_band(values)
    t = np.asarray(t, dtype=np.float64)
    (line,) = ax.plot(t, mean, label=label, color=color, **line_kw)
    ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return mean, lo, hi


def fit_ylim(ax, *arrays, margin=0.05):
    """Set the y range to span ``arrays`` (measured curves); predicted lines never stretch it."""
    vals = np.concatenate([np.ravel(np.asarray(a, dtype=np.float64)) for a in arrays])
    vals = vals[np.isfinite(vals)]
    if vals.size:
        lo, hi = vals.min(), vals.max()
        pad = margin * (hi - lo) if hi > lo else 1.0
        ax.set_ylim(lo - pad, hi + pad)


def log10_axis(ax, axis="y"):
    """Label an axis that carries ``log10`` values as a log scale (ticks ``10^k``).

    Plotting ``log10`` values keeps curves that fall below the float64 range
    (NGD and Polyak reach ``1e-1000``) on the figure; the tick labels make the
    axis read exactly like a matplotlib log axis.
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(nbins=6, integer=True))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"$10^{{{v:.0f}}}$"))


def plot_predicted(ax, t, curve, *, color=None, label=None):
    """Draw a predicted rate as a dashed line (undefined points are skipped).

    ``curve`` holds the predicted values at ``t`` in the axis's units (``log10``
    on a :func:`log10_axis`); the caller anchors its constant on the measured
    curve, so the line shows the predicted *slope*.
    """
    t = np.asarray(t, dtype=np.float64)
    curve = np.asarray(curve, dtype=np.float64)
    ok = np.isfinite(curve)
    ax.plot(t[ok], curve[ok], linestyle="--", color=color, linewidth=1.1, label=label)
