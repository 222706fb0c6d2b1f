"""The attention token-selection problem (docs/theory.md §1).

An :class:`AttentionProblem` holds the data of the fixed-decoder model
``Phi_i(W) = u^T X_i^T softmax(X_i W z_i)`` and the derived quantities that the
max-margin theory needs: token scores, the optimal token of every sequence and
the loss infimum ``L*``.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from .atomic import atomic_path
from .errors import TieError

__all__ = ["AttentionProblem", "LOSSES", "loss_value", "check_problem"]

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
    """``a`` as a float64 array of ``ndim`` dimensions with finite entries.

    Integers and floats convert; complex numbers convert only when every imaginary part is
    zero; booleans, strings and other objects are refused with a TypeError, never truncated.
    """
    try:
        arr = np.asarray(a)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{name} must be a rectangular numeric array: {exc}") from None
    kind = arr.dtype.kind
    if kind == "c":
        if np.any(arr.imag != 0):
            raise TypeError(f"{name} must be real: it has entries with a nonzero imaginary part")
        arr = arr.real
    elif kind == "O":
        try:
            arr = np.array([_real(name, v) for v in arr.ravel()], dtype=np.float64).reshape(
                arr.shape)
        except OverflowError:
            raise ValueError(f"{name} has entries outside the float64 range") from None
    elif kind not in "iuf":
        what = {"b": "booleans", "U": "strings", "S": "bytes"}.get(kind, f"dtype {arr.dtype}")
        raise TypeError(f"{name} must be a real numeric array, got {what}")
    with np.errstate(over="ignore"):  # huge integers or float128 become inf, reported below
        arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite entries (or values outside "
                         "the float64 range)")
    return arr


def _real(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real numeric array, got an entry {v!r} of type "
                        f"{type(v).__name__}")
    return float(v)


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
        count as tied (see :attr:`opt`): a relative tolerance above 1, an
        absolute one below.

    Raises
    ------
    TypeError
        Booleans, strings, objects, or complex numbers with a nonzero imaginary
        part in the arrays; ``tie_rtol`` not a real number.
    ValueError
        Wrong shapes, NaN or infinite entries, labels other than +-1, fewer
        than two sequences or two tokens, token scores outside the float64 range.

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
                f"labels must be -1 or +1; sequences {bad[:10].tolist()} have "
                f"{y[bad[:10]].tolist()}")
        u = _as_float_array("u", self.u, 1)
        if u.shape != (d,):
            raise ValueError(f"u must have shape ({d},) to match X, got {u.shape}")
        z = self.z
        if z is not None:
            z = _as_float_array("z", z, 2)
            if z.shape != (n, d):
                raise ValueError(f"z must have shape ({n}, {d}) to match X, got {z.shape}")
        rtol = self.tie_rtol
        if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real):
            raise TypeError(f"tie_rtol must be a real number, got {rtol!r}")
        if not (np.isfinite(rtol) and rtol >= 0):
            raise ValueError(f"tie_rtol must be a finite nonnegative number, got {rtol}")
        for name, arr in (("X", X), ("y", y), ("u", u), ("z", z)):
            if arr is not None:
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "tie_rtol", float(rtol))
        with np.errstate(over="ignore", invalid="ignore"):
            finite = np.all(np.isfinite(self.scores))
        if not finite:
            raise ValueError("token scores y_i u^T x_{i,t} overflow float64; rescale X or u")

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
    def largest_entries(self) -> tuple[float, float]:
        """Largest ``|entry|`` of the tokens and of the queries (the scale of the data)."""
        if "largest" not in self._cache:
            q = self.queries
            self._cache["largest"] = (float(np.abs(self.X).max()), float(np.abs(q).max()))
        return self._cache["largest"]

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
            If the top two scores of any sequence differ by at most
            ``tie_rtol * max(1, |top score|)``.
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
                    f"{tied.size} sequence(s) have a tied optimal token (top two scores within "
                    f"tie_rtol * max(1, |top score|), tie_rtol = {self.tie_rtol:g}: absolute "
                    f"below 1, relative above): {shown}; the max-margin theory needs a unique "
                    "optimum",
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

    def check_selection(self, selection=None, rows=None) -> np.ndarray:
        """Validate a per-sequence token selection (default :attr:`opt`).

        Parameters
        ----------
        selection : array_like of int, shape (n,), optional
            Token index of every sequence; floats with integral values are accepted.
        rows : ndarray of int, optional
            Validated sequence indices: ``selection`` then has one token per row
            (default ``opt[rows]``).

        Returns
        -------
        ndarray of int64, shape (n,) or ``rows.shape``

        Raises
        ------
        TypeError
            Booleans, strings, complex numbers or other non-numeric entries.
        ValueError
            Wrong length, non-integral values, or an index outside ``[0, T)``.

        Examples
        --------
        >>> X = np.zeros((2, 3, 1))
        >>> AttentionProblem(X, [1, 1], [1.0]).check_selection([2.0, 0])
        array([2, 0])
        """
        if selection is None:
            return self.opt if rows is None else self.opt[rows]
        sel = np.asarray(selection)
        if sel.dtype.kind not in "iuf":
            what = {"b": "booleans", "U": "strings", "S": "bytes", "c": "complex numbers"}.get(
                sel.dtype.kind, f"dtype {sel.dtype}")
            raise TypeError(f"selection must contain integer token indices, got {what}")
        shape = (self.n,) if rows is None else rows.shape
        if sel.shape != shape:
            raise ValueError(f"selection must have shape {shape}"
                             f"{'' if rows is None else ' to match rows'}, got {sel.shape}")
        if sel.dtype.kind == "f":
            if not np.all(np.isfinite(sel)) or not np.all(sel == np.round(sel)):
                raise ValueError("selection must contain integer token indices")
            sel = np.clip(sel, -1, self.T)  # out-of-range floats stay out of range as int64
        sel = sel.astype(np.int64)
        if sel.size and 0 <= sel.min() and sel.max() < self.T:
            return sel
        bad = np.flatnonzero((sel < 0) | (sel >= self.T))
        if bad.size:
            raise ValueError(
                f"selection indices must lie in [0, {self.T}); sequences {bad[:10].tolist()} "
                f"have {np.asarray(selection)[bad[:10]].tolist()}"
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
        """Write the instance to ``.npz`` with keys ``X, y, u`` (and ``z``), atomically.

        Raises
        ------
        FileNotFoundError, IsADirectoryError, TypeError
            As :func:`theory.atomic.check_output_path`.
        """
        arrays = {"X": self.X, "y": self.y, "u": self.u}
        if self.z is not None:
            arrays["z"] = self.z
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

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


def check_problem(problem) -> AttentionProblem:
    """Return ``problem`` if it is an :class:`AttentionProblem`.

    Raises
    ------
    TypeError
        For anything else.

    Examples
    --------
    >>> check_problem(None)
    Traceback (most recent call last):
    ...
    TypeError: problem must be an AttentionProblem, got NoneType
    """
    if not isinstance(problem, AttentionProblem):
        raise TypeError(f"problem must be an AttentionProblem, got {type(problem).__name__}")
    return problem
