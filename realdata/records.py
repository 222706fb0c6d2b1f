"""The CSV records of a run: ``metrics.csv`` (one row per step) and ``eval.csv`` (held out).

Rows are appended one flushed line at a time, so a crash loses at most a torn last line;
:func:`read_metrics` drops such a line and a resumed run rewrites the files (atomically) up to
its checkpoint with :func:`truncate_records`.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from theory.atomic import atomic_write_text

__all__ = ["METRIC_COLUMNS", "EVAL_COLUMNS", "CsvLog", "read_metrics", "truncate_records",
           "format_value"]

METRIC_COLUMNS = ("step", "epoch", "loss", "acc", "step_size", "grad_norm", "attn_entropy",
                  "attn_max")
EVAL_COLUMNS = ("epoch", "step", "heldout_loss", "heldout_acc")
_FILES = {"metrics": METRIC_COLUMNS, "eval": EVAL_COLUMNS}


def format_value(x) -> str:
    """A CSV cell: floats with every digit (``repr``), the rest with ``str``."""
    return repr(float(x)) if isinstance(x, float) else str(x)


def _read_rows(path: Path, columns: Sequence[str]) -> list[list[str]]:
    """Complete data rows of a CSV written by this module (a torn last line is dropped)."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) != tuple(columns):
        raise ValueError(f"{path}: header {rows[0] if rows else None} is not {list(columns)}")
    good = []
    for row in rows[1:]:
        try:
            if len(row) == len(columns):
                [float(v) for v in row]
                good.append(row)
        except ValueError:
            pass
    return good


def truncate_records(run_dir: Path, max_step: int) -> None:
    """Rewrite ``metrics.csv`` and ``eval.csv`` of ``run_dir`` without rows after ``max_step``."""
    for which, columns in _FILES.items():
        path = Path(run_dir) / f"{which}.csv"
        step_col = list(columns).index("step")
        rows = [r for r in _read_rows(path, columns) if int(float(r[step_col])) <= max_step]
        atomic_write_text(path, "\n".join([",".join(columns)] + [",".join(r) for r in rows]) + "\n")


def read_metrics(run_dir: str | os.PathLike, which: str = "metrics") -> dict[str, np.ndarray]:
    """Columns of ``metrics.csv`` (``which="metrics"``) or ``eval.csv`` (``"eval"``) as arrays.

    Parameters
    ----------
    run_dir : path
    which : {"metrics", "eval"}

    Returns
    -------
    dict of str to ndarray
        One float64 array per column (``step`` as int64); empty arrays when the file is absent.

    Raises
    ------
    ValueError
        If ``which`` is neither, or the file's header is not the expected one.
    """
    if which not in _FILES:
        raise ValueError(f"which must be 'metrics' or 'eval', got {which!r}")
    columns = _FILES[which]
    rows = _read_rows(Path(run_dir) / f"{which}.csv", columns)
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns))
    out = {c: table[:, k] for k, c in enumerate(columns)}
    out["step"] = out["step"].astype(np.int64)
    return out


class CsvLog:
    """Append-only CSV, one flushed line per record; a no-op when not ``enabled`` (rank > 0)."""

    def __init__(self, path: Path, columns: Sequence[str], enabled: bool):
        self.fh = None
        if enabled:
            new = not path.is_file()
            self.fh = open(path, "a", newline="", buffering=1)
            if new:
                self.fh.write(",".join(columns) + "\n")

    def write(self, values) -> None:
        """Append one row."""
        if self.fh is not None:
            self.fh.write(",".join(format_value(v) for v in values) + "\n")

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.fh is not None:
            self.fh.close()
            self.fh = None
