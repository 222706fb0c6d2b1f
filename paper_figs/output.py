"""Writing a figure's outputs: the PNG and the CSV tables behind it, atomically.

Every file goes through :func:`theory.atomic.atomic_path` (temporary file beside the
target, moved over it when complete). Tables are dicts of equal-length columns; the
long-format helpers build them from seed bands.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from paper_figs.plotting import DPI
from theory.atomic import atomic_path

__all__ = ["band_rows", "concat_columns", "portable_path", "save_outputs", "save_png",
           "write_csv"]


def save_png(fig, path):
    """Write ``fig`` to ``path`` as PNG atomically, creating the folder if needed.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_path(path, make_parents=True) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def _cell(name, value):
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            # Callers mark missing values explicitly as None, next to a column saying why.
            raise ValueError(f"column {name!r} holds the non-finite value {v}; write None "
                             "(an empty cell) with a status column instead")
        return repr(v)
    return str(value)


def write_csv(path, columns):
    """Write a table atomically, creating the folder if needed.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.csv``.
    columns : dict of str -> sequence
        Column name to values, all the same length. ``None`` is written as an
        empty cell (a value that is undefined; the table says why in another
        column). Floats must be finite; they are written exactly (``repr``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Columns of unequal length or a NaN/inf value (named in the message).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv",
    ...               {"x": [1, 2], "y": [0.1, None], "ok": [True, False]})
    >>> print(p.read_text(), end="")
    x,y,ok
    1,0.1,1
    2,,0
    >>> write_csv(p, {"x": [float("inf")]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: column 'x' holds the non-finite value inf; write None (an empty cell) ...
    """
    names = list(columns)
    cols = [list(columns[k]) for k in names]
    lengths = {len(c) for c in cols}
    if len(lengths) > 1:
        raise ValueError(f"columns of {path} differ in length: "
                         + ", ".join(f"{k}={len(c)}" for k, c in zip(names, cols)))
    rows = [[_cell(k, v) for k, v in zip(names, row)] for row in zip(*cols)]
    with atomic_path(path, make_parents=True) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names)
            w.writerows(rows)
    return Path(path)


def save_outputs(fig, out_dir, name, table, **extra_tables):
    """Write ``{name}.png``, ``{name}.csv`` and one ``{name}_{key}.csv`` per extra table.

    Tables are dicts of columns (see :func:`write_csv`); returns the written paths.
    """
    out_dir = Path(out_dir)
    paths = [save_png(fig, out_dir / f"{name}.png"), write_csv(out_dir / f"{name}.csv", table)]
    paths += [write_csv(out_dir / f"{name}_{key}.csv", t) for key, t in extra_tables.items()]
    return paths


def concat_columns(tables):
    """Stack tables (dicts of equal keys) row-wise, for long-format CSVs.

    Raises
    ------
    ValueError
        If two tables have different columns.

    Examples
    --------
    >>> concat_columns([{"a": [1], "b": [2]}, {"a": [3], "b": [4]}])
    {'a': [1, 3], 'b': [2, 4]}
    """
    tables = [t for t in tables if t]
    if not tables:
        return {}
    keys = list(tables[0])
    for t in tables[1:]:
        if list(t) != keys:
            raise ValueError(f"cannot stack tables with columns {keys} and {list(t)}")
    return {k: [v for t in tables for v in t[k]] for k in keys}


def band_rows(t, mean, lo, hi, **labels):
    """Long-format rows ``labels..., t, mean, lo, hi``; undefined points become empty cells.

    Examples
    --------
    >>> rows = band_rows([1, 2], [0.5, float("nan")], [0.4, 0.1], [0.6, 0.9], method="gd")
    >>> rows["method"], rows["t"], rows["mean"], list(rows)
    (['gd', 'gd'], [1.0, 2.0], [0.5, None], ['method', 't', 'mean', 'lo', 'hi'])
    """
    t = np.asarray(t, dtype=np.float64)
    k = t.size
    out = {key: [val] * k for key, val in labels.items()}

    def clean(a):
        return [float(x) if np.isfinite(x) else None for x in np.asarray(a, dtype=np.float64)]

    out.update(t=clean(t), mean=clean(mean), lo=clean(lo), hi=clean(hi))
    return out


def portable_path(path, start):
    """``path`` as figures and CSVs may show it: relative to ``start``, never absolute.

    Outputs must not carry the layout of the machine that made them. A path inside
    ``start`` (e.g. a run folder under the runs root) is shown relative to it; any other
    path by its last component only.

    Parameters
    ----------
    path, start : str or os.PathLike

    Returns
    -------
    str
        POSIX-style relative path (``"."`` for ``start`` itself).

    Examples
    --------
    >>> portable_path("/data/runs/mnist-vit/sgd-seed0", "/data/runs")
    'mnist-vit/sgd-seed0'
    >>> portable_path("/elsewhere/records", "/data/runs")
    'records'
    """
    path, start = Path(os.path.abspath(path)), Path(os.path.abspath(start))
    try:
        return path.relative_to(start).as_posix()
    except ValueError:
        return path.name
