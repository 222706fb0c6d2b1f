"""The :class:`Trajectory` result of :func:`sims.run` and its ``.npz`` / ``.csv`` files."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from dataclasses import dataclass

import numpy as np

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
_META = ("method", "lr", "param", "loss_name", "normalize", "steps", "loss_star")
_ARRAYS = ("log_one_minus_s_opt", "W_final", "u_final", "K_final", "Q_final",
           "attn_argmax_final", "opt", "reference", "reference_u", "W_hist", "u_hist")
_INT_ARRAYS = ("attn_argmax_final", "opt")


@dataclass(eq=False)
class Trajectory:
    """Metrics of one run over its recorded iterations (SPEC section 5).

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
        from the stable per-sequence form (SPEC 8); ``excess`` may underflow to 0.
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
        run was asked to store them.
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

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def __repr__(self) -> str:
        return (f"Trajectory(method={self.method!r}, lr={self.lr:g}, param={self.param!r}, "
                f"loss={self.loss_name!r}, steps={self.steps}, records={len(self)}, "
                f"final excess={self.excess[-1]:.3g}, corr={self.corr[-1]:.6f})")

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
        """
        path = os.fspath(path)
        kind = _kind(path)
        folder = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                if kind == "npz":
                    np.savez(f, **self._npz_dict())
                else:
                    f.write(self._csv_text().encode())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

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
        kw = {name: meta[name] for name in _META}
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


def _fmt(x):
    return repr(float(x))


def _kind(path):
    low = path.lower()
    if low.endswith(".npz"):
        return "npz"
    if low.endswith(".csv"):
        return "csv"
    raise ValueError(f"trajectory files must end in .npz or .csv, got {path!r}")
