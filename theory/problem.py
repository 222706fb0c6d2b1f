"""The attention token-selection problem (SPEC section 1).

An :class:`AttentionProblem` holds the data of the fixed-decoder model
``Phi_i(W) = u^T X_i^T softmax(X_i W z_i)`` and the derived quantities that the
max-margin theory needs: token scores, the optimal token of every sequence and
the loss infimum ``L*``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .errors import TieError

__all__ = ["AttentionProblem", "LOSSES", "loss_value"]

LOSSES = ("logistic", "exp")


def loss_value(margins, loss: str = "logistic"):
    """Per-sample loss ``l(x)`` evaluated stably.

    Parameters
    ----------
    margins : array_like
        Values ``x = y_i Phi_i``.
    loss : {"logistic", "exp"}
        ``log(1 + exp(-x))`` or ``exp(-x)``.

    Returns
    -------
    ndarray
        ``l(x)`` elementwise, float64.

    Raises
    ------
    ValueError
        If ``loss`` is not one of :data:`LOSSES`.

    Examples
    --------
    >>> float(loss_value(0.0))
    0.6931471805599453
    >>> float(loss_value(0.0, "exp"))
    1.0
    """
    x = np.asarray(margins, dtype=np.float64)
    if loss == "logistic":
        return np.logaddexp(0.0, -x)
    if loss == "exp":
        return np.exp(-x)
    raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")


def _as_float_array(name, a, ndim):
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real numeric array: {exc}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite entries")
    return arr


@dataclass(frozen=True, eq=False)
class AttentionProblem:
    """Data of the one-layer attention model with a fixed linear decoder.

    Parameters
    ----------
    X : array_like, shape (n, T, d)
        Tokens: ``X[i, t]`` is token ``t`` of sequence ``i``.
    y : array_like, shape (n,)
        Labels in {-1, +1}.
    u : array_like, shape (d,)
        Fixed linear decoder.
    z : array_like, shape (n, d), optional
        Queries for cross-attention. ``None`` (default) means self-attention
        with the first token as query, ``z_i = X[i, 0]``.
    tie_rtol : float, default 1e-9
        Two scores of one sequence closer than ``tie_rtol * max(1, |top score|)``
        count as tied (see :attr:`opt`).

    Raises
    ------
    ValueError
        Wrong shapes, NaN or infinite entries, labels other than +-1, fewer
        than two sequences or two tokens.

    Examples
    --------
    >>> X = np.array([[[1., 0.], [0., 1.]], [[0., 1.], [1., 0.]]])
    >>> p = AttentionProblem(X, [1, -1], [1., -1.])
    >>> p.scores
    array([[ 1., -1.],
           [ 1., -1.]])
    >>> p.opt
    array([0, 0])
    >>> round(p.loss_inf, 6)
    0.313262
    """

    X: np.ndarray
    y: np.ndarray
    u: np.ndarray
    z: np.ndarray | None = None
    tie_rtol: float = 1e-9
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        X = _as_float_array("X", self.X, 3)
        n, T, d = X.shape
        if n < 2:
            raise ValueError(f"need at least n = 2 sequences, got X of shape {X.shape}")
        if T < 2:
            raise ValueError(f"need at least T = 2 tokens per sequence, got X of shape {X.shape}")
        if d < 1:
            raise ValueError(f"token dimension d must be positive, got X of shape {X.shape}")
        y = _as_float_array("y", self.y, 1)
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},) to match X, got {y.shape}")
        if not np.all(np.abs(y) == 1.0):
            bad = np.flatnonzero(np.abs(y) != 1.0)
            raise ValueError(
                f"labels must be -1 or +1; sequences {bad[:10].tolist()} have {y[bad[:10]].tolist()}"
            )
        u = _as_float_array("u", self.u, 1)
        if u.shape != (d,):
            raise ValueError(f"u must have shape ({d},) to match X, got {u.shape}")
        z = self.z
        if z is not None:
            z = _as_float_array("z", z, 2)
            if z.shape != (n, d):
                raise ValueError(f"z must have shape ({n}, {d}) to match X, got {z.shape}")
        if not (np.isfinite(self.tie_rtol) and self.tie_rtol >= 0):
            raise ValueError(f"tie_rtol must be a finite nonnegative number, got {self.tie_rtol}")
        for name, arr in (("X", X), ("y", y), ("u", u), ("z", z)):
            if arr is not None:
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # ------------------------------------------------------------------ shape
    @property
    def n(self) -> int:
        """Number of sequences."""
        return self.X.shape[0]

    @property
    def T(self) -> int:
        """Tokens per sequence."""
        return self.X.shape[1]

    @property
    def d(self) -> int:
        """Token dimension."""
        return self.X.shape[2]

    @property
    def self_attention(self) -> bool:
        """True when the query of sequence ``i`` is its first token."""
        return self.z is None

    @property
    def queries(self) -> np.ndarray:
        """Queries ``z_i`` as an (n, d) array (``X[:, 0]`` for self-attention)."""
        return self.X[:, 0, :] if self.z is None else self.z

    # ----------------------------------------------------------------- scores
    @property
    def scores(self) -> np.ndarray:
        """Token scores ``gamma[i, t] = y_i u^T x_{i,t}``, shape (n, T)."""
        if "scores" not in self._cache:
            g = self.y[:, None] * (self.X @ self.u)
            g.setflags(write=False)
            self._cache["scores"] = g
        return self._cache["scores"]

    @property
    def opt(self) -> np.ndarray:
        """Index of the optimal (highest-score) token of every sequence.

        Raises
        ------
        TieError
            If the top score of any sequence is tied within ``tie_rtol``.
        """
        if "opt" not in self._cache:
            g = self.scores
            order = np.argsort(-g, axis=1, kind="stable")
            top = np.take_along_axis(g, order[:, :1], axis=1)[:, 0]
            second = np.take_along_axis(g, order[:, 1:2], axis=1)[:, 0]
            tied = np.flatnonzero(top - second <= self.tie_rtol * np.maximum(1.0, np.abs(top)))
            if tied.size:
                shown = ", ".join(
                    f"{i} (score {top[i]:.6g})" for i in tied[:10]
                ) + (" ..." if tied.size > 10 else "")
                raise TieError(
                    f"{tied.size} sequence(s) have a tied optimal token (relative tolerance "
                    f"{self.tie_rtol:g}): {shown}; the max-margin theory needs a unique optimum",
                    tied,
                )
            opt = order[:, 0].copy()
            opt.setflags(write=False)
            self._cache["opt"] = opt
        return self._cache["opt"]

    def selection_scores(self, selection=None) -> np.ndarray:
        """Scores of the selected token of each sequence, shape (n,)."""
        sel = self.check_selection(selection)
        return self.scores[np.arange(self.n), sel]

    def check_selection(self, selection=None) -> np.ndarray:
        """Validate a per-sequence token selection (default :attr:`opt`).

        Raises
        ------
        ValueError
            If the selection has the wrong length or an index outside ``[0, T)``.
        """
        if selection is None:
            return self.opt
        sel = np.asarray(selection)
        if sel.shape != (self.n,):
            raise ValueError(f"selection must have shape ({self.n},), got {sel.shape}")
        if not np.issubdtype(sel.dtype, np.integer):
            if not np.all(np.isfinite(sel)) or not np.all(sel == np.round(sel)):
                raise ValueError("selection must contain integer token indices")
        sel = sel.astype(np.int64)
        bad = np.flatnonzero((sel < 0) | (sel >= self.T))
        if bad.size:
            raise ValueError(
                f"selection indices must lie in [0, {self.T}); sequences {bad[:10].tolist()} "
                f"have {sel[bad[:10]].tolist()}"
            )
        return sel

    # ------------------------------------------------------------- loss floor
    def loss_inf_for(self, loss: str = "logistic") -> float:
        """Infimum ``L* = (1/n) sum_i l(gamma_{i, opt_i})`` for the given loss."""
        return float(np.mean(loss_value(self.selection_scores(), loss)))

    @property
    def loss_inf(self) -> float:
        """``L*`` for the logistic loss (use :meth:`loss_inf_for` for ``"exp"``)."""
        return self.loss_inf_for("logistic")

    # -------------------------------------------------------------------- I/O
    def save(self, path) -> None:
        """Write the instance to ``.npz`` with keys ``X, y, u`` (and ``z``), atomically."""
        path = os.fspath(path)
        arrays = {"X": self.X, "y": self.y, "u": self.u}
        if self.z is not None:
            arrays["z"] = self.z
        tmp = f"{path}.tmp-{os.getpid()}.npz"
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path, **kwargs) -> "AttentionProblem":
        """Read an instance written by :meth:`save` (or any ``.npz`` with those keys).

        Raises
        ------
        ValueError
            If a required key is missing or the arrays fail validation.
        """
        with np.load(os.fspath(path), allow_pickle=False) as f:
            missing = [k for k in ("X", "y", "u") if k not in f.files]
            if missing:
                raise ValueError(f"{path}: missing key(s) {missing}; found {sorted(f.files)}")
            z = f["z"] if "z" in f.files else None
            return cls(f["X"], f["y"], f["u"], z, **kwargs)

    def __repr__(self) -> str:
        kind = "self" if self.z is None else "cross"
        return f"AttentionProblem(n={self.n}, T={self.T}, d={self.d}, {kind}-attention)"
