"""The :class:`Trajectory` result of :func:`sims.run`, its metrics against any reference, and
its ``.npz`` / ``.csv`` files."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from dataclasses import dataclass

import numpy as np

from theory.atomic import atomic_path, check_output_path

__all__ = ["Trajectory"]

_FORMAT = "sims.Trajectory v1"

# per-iteration series: (name, dtype); the u_* ones are None unless param == "joint"
_SERIES = (
    ("t", np.int64), ("loss", float), ("log_loss", float), ("excess", float),
    ("log_excess", float), ("norm", float), ("corr", float), ("dist", float),
    ("s_opt_min", float), ("s_opt_mean", float), ("step_length", float),
    ("log_step_length", float), ("grad_norm", float), ("log_grad_norm", float),
)
_U_SERIES = ("u_norm", "u_corr", "u_dist")
_META = ("method", "lr", "param", "loss_name", "normalize", "steps", "loss_star", "beta")
_ARRAYS = ("log_one_minus_s_opt", "W_final", "u_final", "K_final", "Q_final",
           "attn_argmax_final", "opt", "reference", "reference_u", "W_hist", "u_hist")
_INT_ARRAYS = ("attn_argmax_final", "opt")


@dataclass(eq=False)
class Trajectory:
    """Metrics of one run over its recorded iterations (docs/theory.md §5).

    Row ``k`` of every per-iteration array describes the parameters after ``t[k]``
    updates; every metric of that row is evaluated at those same parameters.

    Attributes
    ----------
    t : ndarray of int, shape (k,)
        Recorded iteration indices, increasing, starting at 0 and ending at ``steps``.
    loss, log_loss : ndarray, shape (k,)
        ``L(theta_t)`` and its logarithm (for joint runs the loss itself may
        underflow to 0 while ``log_loss`` stays exact).
    excess, log_excess : ndarray, shape (k,)
        ``L - L*`` (``L* = loss_star``; 0 for joint runs), computed in the log domain
        from the stable per-sequence form (docs/theory.md §8); ``excess`` may underflow to 0.
    norm, corr, dist : ndarray, shape (k,)
        ``||W_t||_F``, ``<W_t, R> / (||W_t|| ||R||)`` and ``||W_t/||W_t|| - R/||R|| ||_F``
        against ``reference`` ``R``. For ``W_t = 0``: corr 0 and dist ``sqrt(2)``.
    s_opt_min, s_opt_mean : ndarray, shape (k,)
        Min and mean over sequences of the attention on token ``opt[i]``.
    log_one_minus_s_opt : ndarray, shape (k, n)
        ``log(1 - s_{i, opt_i})`` per sequence, exact in the log domain.
    step_length, log_step_length : ndarray, shape (k,)
        Frobenius norm of the whole-parameter displacement of the update taken
        *from* ``theta_{t[k]}`` (the last row: the update that would come next).
    grad_norm, log_grad_norm : ndarray, shape (k,)
        Norm of the whole gradient at ``theta_{t[k]}``. The float versions may
        underflow to 0; the logs do not (``-inf`` only for an exactly zero gradient).
    u_norm, u_corr, u_dist : ndarray, shape (k,), or None
        The same as norm/corr/dist for the decoder ``u`` against ``reference_u``
        (joint runs only).
    method, param, loss_name, normalize : str
        Settings of the run (``loss_name`` is the loss function, ``loss`` the series).
    lr : float
        Step size (for ``"polyak"`` the multiplier of the Polyak step, 1 by default).
    steps : int
        Number of updates.
    loss_star : float
        ``L*`` used for the excess loss (0 for joint runs).
    W_final : ndarray, shape (d, d)
        Final key-query matrix (``K Q^T`` for ``param="kq"``).
    u_final, K_final, Q_final : ndarray or None
        Final decoder (joint) and factors (kq).
    attn_argmax_final : ndarray of int, shape (n,)
        Token each sequence attends to most at the end (the selection it converged to).
    opt : ndarray of int, shape (n,)
        The token treated as optimal in the metrics (``problem.opt``).
    reference, reference_u : ndarray or None
        Directions used for corr/dist and u_corr/u_dist.
    W_hist, u_hist : ndarray or None
        Parameters at every recorded iteration, shapes (k, d, d) and (k, d), when the
        run stored them (by default when they are small, see :func:`sims.run`); what
        :meth:`corr_with` and :meth:`dist_with` measure against any other reference.
    beta : float or None
        Momentum of ``"ngd_momentum"`` runs (None for the other rules).

    Examples
    --------
    >>> import numpy as np, sims
    >>> from sims.data import equal_score
    >>> tr = sims.run(equal_score(4, 5, 6, seed=0), "ngd", 100, reference=np.eye(6), record=50)
    >>> bool(np.allclose(tr.corr_with(np.eye(6)), tr.corr, rtol=0, atol=1e-15))
    True
    >>> bool(np.allclose(tr.one_minus_corr, 1 - tr.corr, rtol=0, atol=1e-15))
    True
    """

    t: np.ndarray
    loss: np.ndarray
    log_loss: np.ndarray
    excess: np.ndarray
    log_excess: np.ndarray
    norm: np.ndarray
    corr: np.ndarray
    dist: np.ndarray
    s_opt_min: np.ndarray
    s_opt_mean: np.ndarray
    log_one_minus_s_opt: np.ndarray
    step_length: np.ndarray
    log_step_length: np.ndarray
    grad_norm: np.ndarray
    log_grad_norm: np.ndarray
    u_norm: np.ndarray | None
    u_corr: np.ndarray | None
    u_dist: np.ndarray | None
    method: str
    lr: float
    param: str
    loss_name: str
    normalize: str
    steps: int
    loss_star: float
    W_final: np.ndarray
    u_final: np.ndarray | None
    K_final: np.ndarray | None
    Q_final: np.ndarray | None
    attn_argmax_final: np.ndarray
    opt: np.ndarray
    reference: np.ndarray
    reference_u: np.ndarray | None = None
    W_hist: np.ndarray | None = None
    u_hist: np.ndarray | None = None
    beta: float | None = None

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def __repr__(self) -> str:
        return (f"Trajectory(method={self.method!r}, lr={self.lr:g}, param={self.param!r}, "
                f"loss={self.loss_name!r}, steps={self.steps}, records={len(self)}, "
                f"final excess={self.excess[-1]:.3g}, corr={self.corr[-1]:.6f})")

    # -------------------------------------------------------- metrics after the fact
    @property
    def one_minus_corr(self) -> np.ndarray:
        """``1 - corr`` against ``reference``, exact near 1: ``dist^2 / 2``.

        For unit vectors ``a`` and ``b``, ``1 - <a, b> = ||a - b||^2 / 2``, which keeps its
        relative accuracy where ``1 - corr`` would cancel to 0 (``corr`` above ``1 - 1e-16``).
        For ``W_t = 0`` it is 1 (``corr`` 0).
        """
        return 0.5 * np.square(self.dist)

    def corr_with(self, reference) -> np.ndarray:
        """Correlation of the stored iterates with ``reference``, per recorded iteration.

        Parameters
        ----------
        reference : array_like, shape (d, d) or (d,)
            A direction for W, or (joint runs) for the decoder u.

        Returns
        -------
        ndarray, shape (k,)
            ``<theta_t, R> / (||theta_t|| ||R||)``, 0 where ``theta_t = 0``.

        Raises
        ------
        TypeError
            If ``reference`` is not a real array.
        ValueError
            If the run did not store its iterates, or ``reference`` has the wrong shape,
            is zero or not finite.
        """
        hist, unit_ref = self._hist_and_unit(reference)
        units, nonzero = _unit_rows(hist)
        return np.where(nonzero, units @ unit_ref, 0.0)

    def dist_with(self, reference) -> np.ndarray:
        """Directional distance ``||theta_t/||theta_t|| - R/||R|| ||_F`` (``sqrt(2)`` at 0).

        Parameters and errors as :meth:`corr_with`.
        """
        hist, unit_ref = self._hist_and_unit(reference)
        units, nonzero = _unit_rows(hist)
        return np.where(nonzero, np.linalg.norm(units - unit_ref, axis=1), np.sqrt(2.0))

    def one_minus_corr_with(self, reference) -> np.ndarray:
        """``1 - corr_with(reference)``, exact near 1 (``dist_with^2 / 2``)."""
        return 0.5 * np.square(self.dist_with(reference))

    def _hist_and_unit(self, reference):
        ref = np.asarray(reference)
        if ref.dtype.kind not in "biuf":
            raise TypeError(f"reference must be a real array, got dtype {ref.dtype}")
        d = self.W_final.shape[0]
        if ref.shape == (d, d):
            hist, what = self.W_hist, "W_hist"
        elif ref.shape == (d,) and self.param == "joint":
            hist, what = self.u_hist, "u_hist"
        else:
            raise ValueError(f"reference must have shape {(d, d)}"
                             + (f" or {(d,)} (u)" if self.param == "joint" else "")
                             + f", got {ref.shape}")
        if hist is None:
            raise ValueError(f"this trajectory did not store its iterates ({what}); run it "
                             "with store_params=True")
        flat = ref.astype(np.float64).ravel()
        scale = np.abs(flat).max() if flat.size else 0.0
        if not np.isfinite(scale) or scale == 0.0:
            raise ValueError("reference must be finite and nonzero (it defines a direction)")
        flat = flat / scale  # no overflow in the norm
        return hist.reshape(len(hist), -1), flat / np.linalg.norm(flat)

    # ------------------------------------------------------------------- I/O
    def save(self, path) -> None:
        """Write to ``path`` (``.npz`` or ``.csv``, chosen by the suffix), atomically.

        The ``.npz`` file holds every field under its own name. The ``.csv`` file has
        one row per recorded iteration with the per-iteration series as columns,
        ``log_one_minus_s_opt`` expanded into ``log_one_minus_s_opt_0 ... _{n-1}``;
        the settings and the array fields (final state, references) are ``# key = JSON``
        header lines. Floats are written with 17 significant digits, so both formats
        round-trip exactly through :meth:`load`.

        Raises
        ------
        ValueError
            If the suffix is neither ``.npz`` nor ``.csv``.
        FileNotFoundError, IsADirectoryError
            If the folder does not exist, or ``path`` is a folder.
        """
        path = check_output_path(path)
        kind = _kind(os.fspath(path))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            if kind == "npz":
                np.savez(f, **self._npz_dict())
            else:
                f.write(self._csv_text().encode())

    @classmethod
    def load(cls, path) -> "Trajectory":
        """Read a file written by :meth:`save`.

        Raises
        ------
        ValueError
            If the suffix is unknown or the file is not a saved trajectory.
        """
        path = os.fspath(path)
        if _kind(path) == "npz":
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
            if data.get("format", np.array("")).item() != _FORMAT:
                raise ValueError(f"{path} is not a saved {_FORMAT} file")
            kw = {}
            for fld in dataclasses.fields(cls):
                if fld.name not in data:
                    kw[fld.name] = None
                    continue
                v = data[fld.name]
                kw[fld.name] = v.item() if v.ndim == 0 else v
            kw["steps"] = int(kw["steps"])
            kw["lr"] = float(kw["lr"])
            kw["loss_star"] = float(kw["loss_star"])
            kw["beta"] = None if kw["beta"] is None else float(kw["beta"])
            return cls(**kw)
        return cls._from_csv(path)

    def _npz_dict(self):
        out = {"format": np.array(_FORMAT)}
        for fld in dataclasses.fields(self):
            v = getattr(self, fld.name)
            if v is not None:
                out[fld.name] = np.asarray(v)
        return out

    def _csv_text(self):
        buf = io.StringIO()
        buf.write(f"# format = {json.dumps(_FORMAT)}\n")
        for name in _META:
            buf.write(f"# {name} = {json.dumps(getattr(self, name))}\n")
        for name in _ARRAYS:
            if name == "log_one_minus_s_opt":
                continue
            v = getattr(self, name)
            buf.write(f"# {name} = {json.dumps(None if v is None else np.asarray(v).tolist())}\n")
        cols = [name for name, _ in _SERIES]
        if self.u_norm is not None:
            cols += list(_U_SERIES)
        n = self.log_one_minus_s_opt.shape[1]
        header = cols + [f"log_one_minus_s_opt_{i}" for i in range(n)]
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        series = [getattr(self, c) for c in cols]
        for k in range(len(self)):
            row = [str(int(self.t[k]))] + [_fmt(s[k]) for s in series[1:]]
            row += [_fmt(v) for v in self.log_one_minus_s_opt[k]]
            w.writerow(row)
        return buf.getvalue()

    @classmethod
    def _from_csv(cls, path):
        meta = {}
        with open(path, newline="") as f:
            lines = f.read().splitlines()
        body = []
        for line in lines:
            if line.startswith("# "):
                key, _, val = line[2:].partition(" = ")
                meta[key] = json.loads(val)
            elif line:
                body.append(line)
        if meta.get("format") != _FORMAT or not body:
            raise ValueError(f"{path} is not a saved {_FORMAT} file")
        rows = list(csv.reader(body))
        header, rows = rows[0], rows[1:]
        table = np.array([[float(x) for x in r] for r in rows]).reshape(len(rows), len(header))
        col = {name: table[:, j] for j, name in enumerate(header)}
        kw = {name: meta.get(name) for name in _META}
        kw["steps"] = int(kw["steps"])
        for name, dtype in _SERIES:
            kw[name] = col[name].astype(dtype)
        for name in _U_SERIES:
            kw[name] = col.get(name)
        n = sum(h.startswith("log_one_minus_s_opt_") for h in header)
        kw["log_one_minus_s_opt"] = np.stack(
            [col[f"log_one_minus_s_opt_{i}"] for i in range(n)], axis=1
        ).reshape(len(rows), n)
        for name in _ARRAYS:
            if name == "log_one_minus_s_opt":
                continue
            v = meta.get(name)
            dtype = np.int64 if name in _INT_ARRAYS else float
            kw[name] = None if v is None else np.asarray(v, dtype=dtype)
        return cls(**kw)


def _unit_rows(hist):
    """Rows of ``hist`` scaled to unit norm (overflow-free), and which rows are nonzero."""
    scale = np.abs(hist).max(axis=1, keepdims=True)
    nonzero = scale[:, 0] > 0.0
    scaled = hist / np.where(nonzero[:, None], scale, 1.0)
    norms = np.linalg.norm(scaled, axis=1, keepdims=True)
    return scaled / np.where(nonzero[:, None], norms, 1.0), nonzero


def _fmt(x):
    return repr(float(x))


def _kind(path):
    low = path.lower()
    if low.endswith(".npz"):
        return "npz"
    if low.endswith(".csv"):
        return "csv"
    raise ValueError(f"trajectory files must end in .npz or .csv, got {path!r}")
