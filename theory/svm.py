"""Hard-margin token-selection SVMs with optimality certificates (docs/theory.md §2).

The W-SVM of a selection ``alpha`` (one token index per sequence) is

    minimise ||W||   subject to   (x_{i,alpha_i} - x_{i,t})^T W z_i >= 1   for all i, t != alpha_i,

with ``||.||`` the Frobenius norm (default) or the nuclear norm. For the
Frobenius norm it is a bias-free hard-margin linear SVM in ``R^{d x d}`` on the
rank-one points ``A_{i,t} = (x_{i,alpha_i} - x_{i,t}) z_i^T``. Their Gram matrix
factorises,

    <A_{i,t}, A_{j,s}> = (x_{i,alpha_i} - x_{i,t})^T (x_{j,alpha_j} - x_{j,s}) * (z_i^T z_j),

so the dual ``min_a 0.5 a^T G a - 1^T a, a >= 0`` (with ``W = sum_k a_k A_k``)
can be solved exactly on a working set without ever forming the
``n (T - 1) x d^2`` constraint matrix. The decoder SVM
``min ||u|| s.t. y_i u^T x_{i,alpha_i} >= 1`` is the same problem with
``p_i = y_i x_{i,alpha_i}`` in place of ``x_{i,alpha_i} - x_{i,t}`` and the scalar
query 1, so both share one solver core and one certificate. The relaxed joint
W-SVM (:func:`solve_joint_wsvm`) has required margins ``b_{i,t}`` in ``{0, 1}``
instead of 1; every method handles such right-hand sides.

Scale
-----
The solution of data scaled by ``c`` is known exactly (``W_mm(c X) = W_mm(X) / c^2``
for self-attention), so when the token differences or queries are beyond
``2**+-64`` the solvers work on them divided by the powers of two that bring their
largest entries into ``[0.5, 1)``, and scale the solution back. Powers of two are
exact, and data scaled by ``1e+-200`` neither overflow nor underflow; ordinary data
are solved as given. A solution whose entries lie outside the
float64 range raises ``ValueError``; multipliers outside it are returned scaled (see
``SVMSolution.dual_exponent``) with a warning.

Methods
-------
``"active-set"``
    Cutting-plane outer loop over a working set of constraints (start: the
    shortest ``A_{i,t}`` of every sequence, or every constraint when there are
    at most 100; then add the most violated constraint of every
    sequence until none has margin below ``1 - tol / 100``). Each restricted
    problem is solved exactly in Lawson and Hanson's least-distance form
    ``min 0.5 u^T (G / s + 1 1^T) u - 1^T u, u >= 0`` (``s`` the largest
    ``||A||^2``), which gives the SVM dual ``a = u / ((1 - sum u) s)`` and stays
    well posed on infeasible sets, by block principal pivoting (Kim and Park,
    2011) with Cholesky solves, falling back to Lawson-Hanson NNLS if pivoting
    stalls. A final iterative-refinement polish on the support makes the
    margins exact to rounding. Frobenius norm only; the least-distance form with
    ``b b^T`` and ``b^T u`` in place of ``1 1^T`` and ``1^T u`` handles required
    margins ``b``. Memory is dominated by the
    working-set Gram matrix, never the ``n (T - 1) x d^2`` constraint matrix.
``"cvxpy"``
    One cvxpy problem with whole-matrix expressions, solved by Clarabel with
    tight tolerances (SCS with tight tolerances as fallback). Used as the
    cross-check and for the nuclear norm. A Frobenius solution is polished by
    the same iterative refinement on its support (an interior-point solution with
    KKT residual ``r`` can be ``sqrt(r)`` away from the exact one). Its dense
    canonical constraint matrix has ``n (T - 1) d^2`` entries, so it is for small
    instances only.
``"auto"``
    ``"active-set"`` for the Frobenius norm at every size (it is faster than
    cvxpy already at the smallest sizes, see ``benchmarks/bench_svm.py``), and
    ``"cvxpy"`` for the nuclear norm, refusing instances whose dense constraint
    matrix would exceed :data:`NUC_AUTO_LIMIT` entries (pass
    ``method="cvxpy"`` to force them).

Certificate
-----------
Every method returns the primal ``W``, the multipliers ``dual`` and a KKT
residual computed by one shared function from those returned arrays and the raw
data: the maximum of

* primal feasibility ``max(0, max_k (b_k - margin_k))`` (``b_k = 1`` except in the
  relaxed joint W-SVM);
* dual feasibility ``max(0, -min dual) / max dual``;
* complementary slackness ``max_k dual_k |margin_k - b_k| / max dual``;
* stationarity: Frobenius ``||W - sum_k dual_k A_k||_F / ||W||_F``; nuclear
  (objective ``||W||_*``, so ``G = sum_k dual_k A_k`` must be a subgradient)
  ``max(0, ||G||_2 - 1) + |<G, W> - ||W||_*| / ||W||_*``, which is zero exactly
  when ``G`` lies in the subdifferential of the nuclear norm at ``W``.

The individual terms are in ``SVMSolution.kkt``, with, for the Frobenius norm,
``w_error``: a bound on ``||W - W_exact||_F / ||W||_F`` from the same data (see
:func:`_certificate`). It is the square root of the complementarity and primal
terms, about ``1e-8`` for a solution exact to rounding, which is why it is
reported beside the residual rather than folded into it. An ``"inaccurate"``
solution that violates a constraint (negative margin where a positive one is
required) is never returned: :class:`~theory.errors.SolverError` is raised.

Infeasibility
-------------
The constraints are infeasible exactly when a nonnegative combination of the
``A_{i,t}`` with ``sum_k u_k b_k = 1`` is zero (Farkas' alternative; Gordan's for
unit margins); then the least-distance dual has ``b^T u = 1`` and ``u`` is such a
combination. Its support (linearly independent, at most ``d^2 + 1`` constraints)
is sharpened to an exact null vector and :class:`~theory.errors.InfeasibleError`
names its sequences. A problem counts as infeasible when such a combination has
Frobenius norm at most :data:`INFEASIBLE_RTOL` times the largest ``||A_{i,t}||``
involved. Certifying infeasibility of large instances is slower than solving
feasible ones (it may need the NNLS fallback on a working set of thousands of
constraints). A zero constraint matrix whose required margin is 0 holds for every
``W`` and is left out (margin 0, multiplier 0, never a support constraint).
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
from scipy.optimize import nnls
from threadpoolctl import threadpool_limits

from .errors import InfeasibleError, SolverError
from .problem import AttentionProblem, check_problem

__all__ = [
    "SVMSolution",
    "MarginSolution",
    "DecoderSolution",
    "is_feasible",
    "solve_wsvm",
    "solve_decoder_svm",
    "NORMS",
    "METHODS",
    "SUPPORT_RTOL",
    "solve_joint_wsvm",
    "INFEASIBLE_RTOL",
    "NUC_AUTO_LIMIT",
]

NORMS = ("fro", "nuc")
METHODS = ("auto", "active-set", "cvxpy")

#: A constraint is a support constraint when its margin is at most its required margin
#: (1, or 0 for relaxed constraints) plus ``SUPPORT_RTOL``.
SUPPORT_RTOL = 1e-6
#: Relative size of a zero convex combination of constraint matrices that proves infeasibility.
INFEASIBLE_RTOL = 1e-9
#: ``method="auto"`` refuses nuclear-norm instances with more dense constraint entries than this.
NUC_AUTO_LIMIT = 500_000

_MAX_OUTER = 1000
# Up to this many constraints the active-set solver skips the cutting-plane loop (measured faster).
_DIRECT_LIMIT = 100
# Pivoting rounds (it usually converges in 2-10), and rounds without fewer infeasible
# indices, before falling back to Lawson-Hanson NNLS.
_MAX_PIVOTING = 200
_MAX_STALLED = 12
# A Cholesky pivot below this fraction of the largest diagonal entry of the
# restricted Gram matrix marks the restricted dual as (numerically) degenerate.
_PIVOT_RTOL = 1e-12
# Differences and queries whose largest entries lie within 2**+-this are solved as given (Gram
# entries stay within 2**+-256 times d^2); beyond it they are normalised by a power of two.
# Clarabel's equilibration is not scale-equivariant, so ordinary data must not be rescaled.
_SCALE_FREE_EXPONENT = 64
# Explicit least-distance rows are used when the working set times the matrix size is below this.
_EXPLICIT_LIMIT = 4_000_000


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False, kw_only=True)
class SVMSolution:
    """Fields and methods shared by :class:`MarginSolution` and :class:`DecoderSolution`.

    Attributes
    ----------
    selection : ndarray of int, shape (n,)
        Selected token of every sequence.
    margins : ndarray
        Margin of every constraint (NaN where there is no constraint).
    support : ndarray of bool
        Support constraints: margin at most the required margin plus ``SUPPORT_RTOL``.
    dual : ndarray
        Nonnegative multipliers (NaN where there is no constraint), times
        ``2 ** -dual_exponent``.
    dual_exponent : int
        0 unless the multipliers in the data's units lie outside the float64
        range (extreme data scales): then ``dual * 2.0 ** dual_exponent`` are
        the multipliers, and a warning says so.
    norm_value : float
        Norm of the solution; the margin is ``1 / norm_value``.
    kkt_residual : float
        Maximum of the ``primal``, ``dual``, ``complementarity`` and
        ``stationarity`` terms of :attr:`kkt` (see the module docstring).
    kkt : dict
        Those four terms, and for the Euclidean and Frobenius norms ``w_error``:
        an upper bound on the distance of the returned solution to the exact
        one, relative to its norm.
    status : str
        ``"optimal"`` when ``kkt_residual <= tol``, otherwise ``"inaccurate"``.
    method : str
        Method that produced the solution (``"active-set"`` or ``"cvxpy:<SOLVER>"``).
    solve_time : float
        Wall-clock seconds spent in the solver call.
    """

    selection: np.ndarray
    margins: np.ndarray
    support: np.ndarray
    dual: np.ndarray
    dual_exponent: int
    norm_value: float
    kkt_residual: float
    kkt: dict = field(repr=False)
    status: str
    method: str
    solve_time: float

    @property
    def margin(self) -> float:
        """Geometric margin ``1 / norm_value``."""
        return 1.0 / self.norm_value

    @property
    def w_error(self) -> float:
        """Bound on ``||solution - exact|| / ||solution||`` (NaN for the nuclear norm)."""
        return self.kkt.get("w_error", float("nan"))


@dataclass(frozen=True, eq=False, kw_only=True)
class MarginSolution(SVMSolution):
    """Solution of a W-SVM with its optimality certificate.

    The fields of :class:`SVMSolution`, with ``margins``, ``support`` and ``dual``
    of shape (n, T), and:

    Attributes
    ----------
    W : ndarray, shape (d, d)
        Max-margin key-query matrix ``W_mm(selection)``.
    norm : {"fro", "nuc"}
        Norm that was minimised.

    Notes
    -----
    ``margins[i, t] = (x_{i,sel_i} - x_{i,t})^T W z_i``, NaN at the selected
    entries, as is ``dual``. Support tokens are never the selected token. For the
    Frobenius norm ``W = sum dual_{i,t} A_{i,t}`` and ``sum dual = ||W||_F^2``; for
    the nuclear norm ``sum dual_{i,t} A_{i,t}`` is a subgradient of ``||.||_*`` at
    ``W`` and ``sum dual = ||W||_*``.
    """

    W: np.ndarray
    norm: str

    def support_tokens(self) -> list[list[int]]:
        """Support token indices of every sequence."""
        return [np.flatnonzero(row).tolist() for row in self.support]

    def rank(self, rtol: float = 1e-6) -> int:
        """Numerical rank of ``W``: singular values above ``rtol`` times the largest."""
        s = np.linalg.svd(self.W, compute_uv=False)
        return int(np.count_nonzero(s > rtol * s[0])) if s.size and s[0] > 0 else 0

    @classmethod
    def _from_matrix(cls, W, margins, support, dual, norm, **common):
        return cls(W=W, margins=margins, support=support, dual=dual, norm=norm, **common)


@dataclass(frozen=True, eq=False, kw_only=True)
class DecoderSolution(SVMSolution):
    """Solution of the decoder SVM ``min ||u|| s.t. y_i u^T x_{i,sel_i} >= 1``.

    The fields of :class:`SVMSolution` (Euclidean norm), with ``margins``
    ``y_i u^T x_{i,sel_i}``, ``support`` and ``dual`` of shape (n,)
    (``u = sum_i dual_i y_i x_{i,sel_i}``), and:

    Attributes
    ----------
    u : ndarray, shape (d,)
        Max-margin decoder ``u_mm``.
    """

    u: np.ndarray

    @classmethod
    def _from_matrix(cls, W, margins, support, dual, norm, **common):
        return cls(u=W[:, 0], margins=margins[:, 0], support=support[:, 0], dual=dual[:, 0],
                   **common)


# ------------------------------------------------------------------ constraint data
def _binary_exponent(top):
    """``e`` with ``top / 2**e`` in ``[0.5, 1)``, or 0 when ``|e| <= _SCALE_FREE_EXPONENT``.

    Raises
    ------
    ValueError
        ``top`` is infinite (token differences beyond the float64 range).
    """
    if not math.isfinite(top):
        raise ValueError("differences of tokens (or the queries) overflow float64; rescale the "
                         "data")
    e = math.frexp(top)[1]
    return e if abs(e) > _SCALE_FREE_EXPONENT else 0


class _Constraints:
    """Rank-one constraint matrices ``A_{i,t} = D[i, t] Z[i]^T`` of the entries ``present``.

    ``D`` and ``Z`` beyond ``2**+-_SCALE_FREE_EXPONENT`` are stored divided by the powers of
    two (``2**eD``, ``2**eZ``) that bring their largest entries into ``[0.5, 1)``: exact, and
    data scaled by ``1e+-200`` neither overflow nor underflow inside the solver; ordinary data
    are solved as given. The solvers see ``A / 2**exponent``; :func:`_run` scales the solution
    back.
    """

    def __init__(self, D, Z, present, describe, ids=None, rhs=None, largest=None):
        # largest: bounds on max |D| and max |Z| known in advance (saves two passes)
        if largest is None:
            largest = (float(np.abs(D).max()), float(np.abs(Z).max()))
        eD, eZ = _binary_exponent(largest[0]), _binary_exponent(largest[1])
        self.exponent = eD + eZ
        self.D = np.ldexp(D, -eD) if eD else D  # (n, T, p)
        self.Z = np.ldexp(Z, -eZ) if eZ else Z  # (n, q)
        # required margin of every constraint: 1 except in the relaxed joint W-SVM
        self.rhs = np.ones(present.shape) if rhs is None else rhs
        self.unit_rhs = rhs is None
        self.present = present  # (n, T) bool: the constraint exists
        self.describe = describe  # (i, t) -> str for messages
        self.ids = np.arange(D.shape[0]) if ids is None else ids  # sequence numbers in the problem
        self.norms = np.linalg.norm(self.D, axis=2) * np.linalg.norm(self.Z, axis=1)[:, None]
        # a zero constraint that asks for margin <= 0 holds for every W: nothing to solve
        self.valid = present if rhs is None else present & ((self.norms > 0) | (rhs > 0))

    @property
    def shape(self):
        return self.D.shape[2], self.Z.shape[1]

    def gram(self, i1, t1, i2=None, t2=None):
        if i2 is None:
            i2, t2 = i1, t1
        return (self.D[i1, t1] @ self.D[i2, t2].T) * (self.Z[i1] @ self.Z[i2].T)

    def combine(self, i, t, a):
        """``sum_k a_k A_{i_k, t_k}`` as a (p, q) matrix."""
        return (self.D[i, t] * a[:, None]).T @ self.Z[i]

    def combine_all(self, dual):
        """``sum_{i,t} dual[i, t] A_{i,t}`` over the valid entries."""
        a = np.where(self.valid, dual, 0.0)
        return np.einsum("it,itp->ip", a, self.D).T @ self.Z

    def margins(self, W):
        """``<A_{i,t}, W>`` for every entry, NaN where there is no constraint."""
        m = np.einsum("itp,ip->it", self.D, self.Z @ W.T)
        m[~self.present] = np.nan
        return m

    def rows(self, i, t):
        """Explicit vectorised constraint matrices, shape (len(i), p*q)."""
        return (self.D[i, t][:, :, None] * self.Z[i][:, None, :]).reshape(len(i), -1)


def _wsvm_constraints(problem, sel, rows=None, rhs=None):
    """Constraints of the W-SVM of ``sel``; ``rows`` restricts to those sequences (``sel`` per row).

    ``rhs`` (n, T) gives required margins other than 1 (the relaxed joint W-SVM).
    """
    rows = np.arange(problem.n) if rows is None else np.asarray(rows)
    xmax, zmax = problem.largest_entries
    dmax = 2 * xmax  # bounds every difference of two tokens; inf when they may overflow
    _binary_exponent(dmax)  # raises before the subtraction could overflow
    X = problem.X[rows]
    k = len(rows)
    D = X[np.arange(k), sel][:, None, :] - X
    present = np.ones((k, problem.T), dtype=bool)
    present[np.arange(k), sel] = False
    return _Constraints(D, problem.queries[rows], present,
                        lambda i, t: f"seq {rows[i]} token {t}", rows, rhs, (dmax, zmax))


def _decoder_constraints(problem, sel):
    n = problem.n
    P = problem.y[:, None] * problem.X[np.arange(n), sel]
    return _Constraints(
        P[:, None, :], np.ones((n, 1)), np.ones((n, 1), dtype=bool),
        lambda i, t: f"seq {i} token {sel[i]}",
    )


# ------------------------------------------------------------------------ certificate
def _certificate(C, W, dual, norm):
    """KKT residual terms of ``(W, dual)`` for the constraints ``C`` (shared by all methods).

    For the Frobenius norm ``w_error`` bounds ``||W - W*|| / ||W||``, ``W*`` the exact
    solution: with ``G = sum a_k A_k``, ``e = ||W - G||``, ``c = sum a_k (m_k - b_k)`` and
    ``p`` the largest violation ``b_k - m_k``, the optimality of ``W*`` and ``a >= 0`` give
    ``delta^2 <= e delta + c + p sum a`` for ``delta = ||W - W*||``. It is the square root of
    the complementarity and primal terms, so it is about ``1e-8`` even for a solution exact to
    rounding; the square root is what an unpolished interior-point solution can be off by.
    """
    m = C.margins(W)[C.valid]
    b = C.rhs[C.valid]
    a = dual[C.valid]
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(a)) and np.all(np.isfinite(W))):
        inf = float("inf")
        parts = {"primal": inf, "dual": inf, "complementarity": inf, "stationarity": inf}
        if norm == "fro":
            parts["w_error"] = inf
        return inf, parts
    tiny = np.finfo(float).tiny
    amax = max(float(np.max(np.abs(a))), tiny) if a.size else tiny
    G = C.combine_all(dual)
    wnorm = float(np.linalg.norm(W))
    if norm == "fro":
        gap = float(np.linalg.norm(W - G))
        stat = gap / max(wnorm, tiny)
    else:
        nuc = np.linalg.svd(W, compute_uv=False).sum()
        spec = np.linalg.norm(G, 2)
        stat = max(0.0, spec - 1.0) + abs(np.vdot(G, W) - nuc) / max(nuc, tiny)
    primal = max(0.0, float(np.max(b - m))) if m.size else 0.0
    parts = {
        "primal": primal,
        "dual": max(0.0, -float(a.min())) / amax if a.size else 0.0,
        "complementarity": float(np.max(np.abs(a) * np.abs(m - b))) / amax if a.size else 0.0,
        "stationarity": float(stat),
    }
    res = max(parts.values())
    if norm == "fro":
        ap = np.maximum(a, 0.0)
        # the bound needs a >= 0; the solvers return that, so G serves unless "dual" flags it
        e = gap if parts["dual"] == 0 else float(
            np.linalg.norm(W - C.combine_all(np.maximum(dual, 0.0))))
        c = max(0.0, float(ap @ (m - b)))
        delta = 0.5 * (e + np.sqrt(e * e + 4.0 * (c + primal * ap.sum())))
        parts["w_error"] = float(delta / wnorm) if wnorm > 0 else (0.0 if delta == 0 else np.inf)
    return res, parts


# ------------------------------------------------------------------------ infeasibility
def _raise_infeasible(C, i, t, what):
    seqs = np.unique(C.ids[i])
    where = ", ".join(C.describe(int(a), int(c)) for a, c in zip(i[:8], t[:8]))
    more = " ..." if len(i) > 8 else ""
    needs = "margin 1" if C.unit_rhs else "the required margins"
    raise InfeasibleError(
        f"{what} is infeasible: sequences {seqs.tolist()} conflict (a nonnegative combination "
        f"of the constraints of {where}{more} is zero), so no solution has {needs} on all of "
        "them",
        seqs,
    )


def _check_zero_constraints(C, what):
    zero = C.valid & ~(C.norms > 0)
    if zero.any():
        i, t = np.nonzero(zero)
        raise InfeasibleError(
            f"{what} is infeasible: the constraint of {C.describe(int(i[0]), int(t[0]))} is zero "
            f"(the token equals the selected one, or the query or point is zero), so its margin "
            f"is 0 for every solution; {len(i)} such constraint(s) in sequences "
            f"{np.unique(C.ids[i])[:10].tolist()}",
            np.unique(C.ids[i]),
        )


def _sharpen_certificate(C, i, t, u):
    """Exact null combination of the conflicting set, or ``None`` if it does not certify.

    A nonnegative ``c`` with ``sum c_k A_k = 0`` proves infeasibility when it puts weight on
    a constraint with a positive required margin (``sum c_k b_k > 0``, Farkas).
    """
    M = C.rows(i, t)
    b = C.rhs[i, t]
    scale = float(C.norms[i, t].max())
    candidates = [u / u.sum()]
    if len(i) > 1:
        v = np.linalg.svd(M.T, full_matrices=False)[2][-1]
        v = v if v.sum() > 0 else -v
        if np.all(v >= 0):
            candidates.append(v / v.sum())
    for c in candidates:
        if b @ c > 0 and np.linalg.norm(c @ M) <= INFEASIBLE_RTOL * scale:
            return c
    return None


def _check_slack(C, i, t, u, what):
    """``1 - b^T u`` of a least-distance dual ``u``; raise InfeasibleError if it certifies.

    A slack of ``rho^2 / (1 + rho^2)`` corresponds to a margin ``rho`` relative to the
    largest constraint matrix, so infeasibility is only examined below 1e-6.
    """
    slack = 1.0 - (u.sum() if C.unit_rhs else C.rhs[i, t] @ u)
    if slack <= 1e-6 and u.any():
        P = np.flatnonzero(u > 1e-12 * u.max())
        if _sharpen_certificate(C, i[P], t[P], u[P]) is not None:
            _raise_infeasible(C, i[P], t[P], what)
    if not slack > 0:
        raise RuntimeError(f"{what}: least-distance dual failed (1 - sum u = {slack:g})")
    return slack


def _ldp_nnls(C, i, t, G, scale):
    """Least-distance dual by Lawson-Hanson NNLS, the fallback when pivoting cycles.

    ``min ||E u - e||``, ``u >= 0``, ``E = [A^T / sqrt(scale); b^T]``, ``e = (0, ..., 0, 1)``.
    Slower than :func:`_bpp` but finite on any data.
    """
    s = len(i)
    p, q = C.shape
    if s * p * q <= _EXPLICIT_LIMIT:
        R = C.rows(i, t).T / np.sqrt(scale)
    else:  # any factor with R^T R = G / scale preserves the geometry
        lam, V = np.linalg.eigh(G / scale)
        keep = lam > 1e-15 * lam[-1]
        R = np.sqrt(lam[keep])[:, None] * V[:, keep].T
    E = np.vstack([R, C.rhs[i, t][None, :]])
    e = np.zeros(E.shape[0])
    e[-1] = 1.0
    return nnls(E, e, maxiter=50 * s + 100)[0]


# ------------------------------------------------------------------- active-set solver
class _Cycling(Exception):
    pass


_potrf, _potrs, _pstrf = sla.lapack.get_lapack_funcs(("potrf", "potrs", "pstrf"),
                                                     dtype=np.float64)


def _bpp(G, b, scale, free):
    """Least-distance dual ``min 0.5 u^T H u - b^T u, u >= 0``, ``H = G / scale + b b^T``.

    ``b`` None means unit margins (``b = 1``, the common case, without the outer product).

    This is Lawson and Hanson's NNLS form of ``min ||w|| s.t. <A_k, w> >= b_k``: with
    ``slack = 1 - b^T u > 0`` the SVM dual is ``a = u / (slack * scale)``, and
    ``slack = 0`` with ``sum_k u_k A_k = 0`` proves infeasibility. Unlike the SVM dual
    ``H`` stays nonsingular on the certificate of an infeasible set. Solved by block
    principal pivoting (Kim and Park 2011): exchange every infeasible index while that
    reduces their number, else Murty's single exchange. Free indices that are
    (numerically) dependent on the other free ones are held at zero, chosen by
    pivoted Cholesky.
    Raises ``_Cycling`` when it stalls or reaches the iteration limit.
    """
    s = G.shape[0]
    free = free.copy()
    best, backup, stalled = s + 1, 3, 0
    for _ in range(_MAX_PIVOTING):
        idx = np.flatnonzero(free)
        x = np.zeros(s)
        if idx.size:
            # raw LAPACK: this runs thousands of times on tiny systems in exhaustive searches
            H = G[np.ix_(idx, idx)] / scale
            H += 1.0 if b is None else np.outer(b[idx], b[idx])
            L, info = _potrf(H, lower=1)
            if info != 0 or np.min(np.diag(L) ** 2 / np.diag(H)) < _PIVOT_RTOL:
                # dependent free columns: keep a maximal independent subset (pivoted Cholesky)
                L, piv, rank, _ = _pstrf(H, tol=_PIVOT_RTOL * float(np.max(np.diag(H))),
                                         lower=1)
                free[idx] = False
                idx = idx[piv[:rank] - 1]
                free[idx] = True
                L = L[:rank, :rank]
            x[idx] = _potrs(L, np.ones(idx.size) if b is None else b[idx], lower=1)[0]
        # x is zero off idx; avoids copying G[:, idx]
        if b is None:
            y = G @ x / scale + (x.sum() - 1.0)
        else:
            y = G @ x / scale + b * (b @ x - 1.0)
        xtol = 1e-14 * max(1.0, float(np.max(np.abs(x))))
        bad = (free & (x < -xtol)) | (~free & (y < -1e-13))
        nbad = int(np.count_nonzero(bad))
        if nbad == 0:
            return np.maximum(x, 0.0), free
        if nbad < best:
            best, backup, stalled = nbad, 3, 0
            free ^= bad
        elif stalled >= _MAX_STALLED:
            raise _Cycling
        elif backup > 0:
            backup -= 1
            free ^= bad
        else:
            k = np.flatnonzero(bad)[-1]
            free[k] = ~free[k]
        stalled += 1
    raise _Cycling


def _polish(C, i, t, G, a):
    """Iterative refinement of ``G_PP a_P = b_P`` on the positive duals, margins from the data."""
    P = np.flatnonzero(a > 0)
    if P.size == 0:
        return a
    GP = G[np.ix_(P, P)]
    try:
        fac = sla.cho_factor(GP, lower=True, check_finite=False)
        solve = lambda r: sla.cho_solve(fac, r, check_finite=False)  # noqa: E731
    except sla.LinAlgError:
        solve = lambda r: np.linalg.lstsq(GP, r, rcond=None)[0]  # noqa: E731
    a = a.copy()
    for _ in range(2):
        W = C.combine(i[P], t[P], a[P])
        r = C.rhs[i[P], t[P]] - np.einsum("kp,kp->k", C.D[i[P], t[P]], C.Z[i[P]] @ W.T)
        trial = a[P] + solve(r)
        if np.any(trial < 0):  # degenerate vertex: keep the unrefined (nonnegative) duals
            break
        a[P] = trial
    return a


def _solve_active_set(C, tol, what):
    if C.valid.sum() <= _DIRECT_LIMIT:
        return _active_set(C, tol, what)
    # Moderate-size Cholesky solves gain little from BLAS threads, and threads spinning on
    # shared cores make them many times slower; entering the limit costs ~0.5 ms.
    with threadpool_limits(limits=1, user_api="blas"):
        return _active_set(C, tol, what)


def _active_set(C, tol, what):
    n, T = C.valid.shape
    _check_zero_constraints(C, what)
    thr = 1e-2 * tol
    norms = np.where(C.valid, C.norms, np.inf)
    first = np.argmin(norms, axis=1)
    if C.valid.sum() <= _DIRECT_LIMIT:
        # small: the working set is every constraint, pivoting starts from the shortest ones
        in_ws = C.valid.copy()
        i, t = np.nonzero(in_ws)
        free = t == first[i]
    else:
        in_ws = np.zeros((n, T), dtype=bool)
        i, t = np.arange(n), first
        in_ws[i, t] = True
        free = np.ones(n, dtype=bool)
    G = buf = C.gram(i, t)
    scale = float(np.max(norms[C.valid])) ** 2
    for _ in range(_MAX_OUTER):
        try:
            u, free = _bpp(G, None if C.unit_rhs else C.rhs[i, t], scale, free)
        except _Cycling:
            u = _ldp_nnls(C, i, t, G, scale)
            free = u > 0
        a = u / (_check_slack(C, i, t, u, what) * scale)
        W = C.combine(i, t, a)
        m = C.margins(W)
        cand = np.where(in_ws | ~C.valid, np.inf, m - C.rhs)
        worst = np.argmin(cand, axis=1)
        add = np.flatnonzero(cand[np.arange(n), worst] < -thr)
        if add.size == 0:
            break
        ni, nt = add, worst[add]
        in_ws[ni, nt] = True
        k, k2 = len(i), len(i) + len(ni)
        if k2 > buf.shape[0]:  # grow geometrically so the Gram matrix is copied O(log) times
            cap = k2 + k2 // 2
            new = np.empty((cap, cap))
            new[:k, :k] = G
            buf = new
        Gx = C.gram(i, t, ni, nt)
        buf[:k, k:k2] = Gx
        buf[k:k2, :k] = Gx.T
        buf[k:k2, k:k2] = C.gram(ni, nt)
        G = buf[:k2, :k2]
        i, t = np.concatenate([i, ni]), np.concatenate([t, nt])
        free = np.concatenate([free, np.ones(ni.size, dtype=bool)])
    else:
        raise SolverError(f"{what}: cutting-plane loop did not converge in {_MAX_OUTER} rounds")
    a = _polish(C, i, t, G, a)
    dual = np.zeros((n, T))
    dual[i, t] = a
    return C.combine(i, t, a), dual, "active-set"


# -------------------------------------------------------------------------- cvxpy
def _solve_cvxpy(C, norm, tol, what):
    import cvxpy as cp

    _check_zero_constraints(C, what)
    ii, tt = np.nonzero(C.valid)
    p, q = C.shape
    W = cp.Variable((p, q))
    margins = cp.sum(cp.multiply(C.D[ii, tt] @ W, C.Z[ii]), axis=1)
    cons = [margins >= C.rhs[ii, tt]]
    objective = 0.5 * cp.sum_squares(W) if norm == "fro" else cp.normNuc(W)
    prob = cp.Problem(cp.Minimize(objective), cons)
    attempts = [
        ("CLARABEL", dict(tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11,
                          tol_ktratio=1e-9, max_iter=500)),
        ("SCS", dict(eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)),
    ]
    status = None
    for solver, opts in attempts:
        try:
            with warnings.catch_warnings():
                # "may be inaccurate": the shared KKT certificate below judges the accuracy
                warnings.simplefilter("ignore", UserWarning)
                prob.solve(solver=solver, **opts)
        except cp.error.SolverError:
            continue
        status = prob.status
        if status in ("optimal", "optimal_inaccurate"):
            break
        if status in ("infeasible", "infeasible_inaccurate"):
            # certify the same constraints (right-hand sides included) with the exact
            # solver: it raises InfeasibleError with the conflicting set
            _solve_active_set(C, tol, what)
            raise SolverError(f"{what}: cvxpy/{solver} reports infeasible but a solution exists")
    if status not in ("optimal", "optimal_inaccurate"):
        raise SolverError(f"{what}: cvxpy failed (last status {status!r})")
    dual = np.zeros(C.valid.shape)
    dual[ii, tt] = np.maximum(np.asarray(cons[0].dual_value, dtype=float), 0.0)
    W = np.asarray(W.value, dtype=float)
    if norm == "fro":
        W, dual = _polish_interior(C, W, dual)
    return W, dual, f"cvxpy:{solver}"


def _polish_interior(C, W, dual):
    """Refine an interior-point Frobenius solution on its support, as the active-set path does.

    An interior-point solution with KKT residual ``r`` can be ``sqrt(r)`` away from the exact
    ``W``. Iterative refinement of ``G_PP a_P = b_P`` on the constraints ``P`` with margin
    within ``SUPPORT_RTOL`` of the required one and a positive multiplier gives the exact
    solution when ``P`` is its support; the refined pair is kept only if its certificate is
    no worse.
    """
    m = C.margins(W)
    P = C.valid & (dual > 0) & (m <= C.rhs + SUPPORT_RTOL)
    if not P.any():
        return W, dual
    i, t = np.nonzero(P)
    a = _polish(C, i, t, C.gram(i, t), dual[i, t])
    W2 = C.combine(i, t, a)
    dual2 = np.zeros_like(dual)
    dual2[i, t] = a
    res, parts = _certificate(C, W, dual, "fro")
    res2, parts2 = _certificate(C, W2, dual2, "fro")
    if max(res2, parts2["w_error"]) <= max(res, parts["w_error"]):
        return W2, dual2
    return W, dual


# ----------------------------------------------------------------------- public API
def _check_tol(tol):
    if type(tol) is not float and (isinstance(tol, bool) or not isinstance(tol, numbers.Real)):
        raise TypeError(f"tol must be a real number, got {tol!r}")
    if not (math.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")


def _choose(method, norm, C):
    if not isinstance(norm, str) or norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if method == "active-set" and norm != "fro":
        raise ValueError("method 'active-set' solves the Frobenius norm only; use method='cvxpy' "
                         "for norm='nuc'")
    if method != "auto":
        return method
    if norm == "fro":
        return "active-set"
    p, q = C.shape
    size = int(C.valid.sum()) * p * q
    if size > NUC_AUTO_LIMIT:
        raise ValueError(
            f"nuclear-norm SVM with {int(C.valid.sum())} constraints in {p}x{q} has a dense "
            f"constraint matrix of {size:,} entries (> NUC_AUTO_LIMIT = {NUC_AUTO_LIMIT:,}); "
            "pass method='cvxpy' to attempt it anyway"
        )
    return "cvxpy"


def _scale_exponent(x, shift):
    """``log2`` of the largest ``|x| * 2**shift``, or None when ``x`` is zero."""
    top = float(np.nanmax(np.abs(x))) if np.size(x) else 0.0
    return None if top == 0 else np.log2(top) + shift


def _in_range(log2_top):
    """Whether ``2**log2_top`` is a normal float64 with room for sums of a few entries."""
    return log2_top is None or np.log2(np.finfo(float).tiny) <= log2_top < 1020


def _run(cls, C, sel, norm, method, tol, what):
    """Solve the constraints ``C`` and build the solution of class ``cls`` (the one place)."""
    method = _choose(method, norm, C)
    t0 = time.perf_counter()
    if method == "active-set":
        W, dual, used = _solve_active_set(C, tol, what)
    else:
        W, dual, used = _solve_cvxpy(C, norm, tol, what)
    elapsed = time.perf_counter() - t0
    dual = np.where(C.valid, dual, 0.0)
    dual[~C.present] = np.nan
    res, parts = _certificate(C, W, dual, norm)
    margins = C.margins(W)
    status = "optimal" if res <= tol else "inaccurate"
    if status != "optimal":
        wrong = C.valid & (margins < np.where(C.rhs > 0, 0.0, -tol))
        if wrong.any():
            i, t = np.argwhere(wrong)[0]
            raise SolverError(
                f"{what}: {used} returned an inaccurate solution (KKT residual {res:.3g}) that "
                f"violates the constraint of {C.describe(int(i), int(t))} (margin "
                f"{margins[i, t]:.3g}); try the other method or a larger tol")
    support = C.valid & (margins <= C.rhs + SUPPORT_RTOL)
    if norm == "fro":
        value = float(np.linalg.norm(W))
    else:
        value = float(np.linalg.svd(W, compute_uv=False).sum())
    dual_exponent = 0
    if C.exponent:
        W, value, dual, dual_exponent = _to_data_units(W, value, dual, C.exponent, norm, what)
    arrays = dict(W=W, margins=margins, support=support, dual=dual)
    for arr in (*arrays.values(), sel):
        arr.setflags(write=False)
    return cls._from_matrix(**arrays, norm=norm, selection=sel, dual_exponent=dual_exponent,
                            norm_value=value, kkt_residual=res, kkt=parts, status=status,
                            method=used, solve_time=elapsed)


def _to_data_units(W, value, dual, e, norm, what):
    """Undo the normalisation ``A = 2**e A_solved``: ``W = W_solved / 2**e``.

    The multipliers scale by ``2**-2e`` (objective ``||W||^2 / 2``) or ``2**-e``
    (``||W||_*``); when those do not fit a float64 they stay scaled, with their exponent.
    """
    size = _scale_exponent(W, -e)
    if not _in_range(size):
        raise ValueError(
            f"{what}: the solution's largest entry is about 2**{size:.0f}, outside the float64 "
            "range; rescale the tokens or queries (W_mm(c X) = W_mm(X) / c**2 for "
            "self-attention)")
    W, value = np.ldexp(W, -e), float(np.ldexp(value, -e))
    shift = -2 * e if norm == "fro" else -e
    if _in_range(_scale_exponent(dual, shift)):
        return W, value, np.ldexp(dual, shift), 0
    warnings.warn(f"{what}: the multipliers lie outside the float64 range; .dual holds them "
                  f"times 2**{-shift} (dual_exponent = {shift})", RuntimeWarning, stacklevel=4)
    return W, value, dual, shift


def is_feasible(problem, selection=None, rows=None, *, tol=1e-8) -> bool:
    """Whether the W-SVM constraints of ``selection`` can all hold (margin 1).

    Parameters
    ----------
    problem : AttentionProblem
    selection : array_like of int, optional
        Selected token of every sequence, or of every sequence in ``rows`` when
        ``rows`` is given (default: the optimal tokens).
    rows : array_like of int, optional
        Restrict the constraints to these sequences (e.g. a prefix in a search).
    tol : float, default 1e-8
        Tolerance of the exact solver when it is needed.

    Returns
    -------
    bool
        True when some ``W`` has margin at least 1 on every constraint.

    Raises
    ------
    TypeError, ValueError
        Bad ``problem``, ``selection``, ``rows`` or ``tol``.

    Examples
    --------
    >>> import numpy as np
    >>> from theory import AttentionProblem
    >>> X = np.array([[[1., 0.], [-1., 0.]], [[-1., 0.], [1., 0.]]])
    >>> p = AttentionProblem(X, [1, 1], [1., 0.], z=[[1., 0.], [1., 0.]])
    >>> is_feasible(p, [0, 0]), is_feasible(p, [0, 1]), is_feasible(p, [0], rows=[0])
    (False, True, True)
    """
    check_problem(problem)
    _check_tol(tol)
    if rows is not None:
        rows = np.asarray(rows)
        if rows.dtype.kind not in "iu" or rows.ndim != 1 or rows.size == 0:
            raise ValueError(f"rows must be a nonempty 1-D array of sequence indices, got {rows!r}")
        if rows.min() < 0 or rows.max() >= problem.n:
            raise ValueError(f"rows must lie in [0, {problem.n}), got {rows.tolist()}")
    sel = problem.check_selection(selection, rows)
    C = _wsvm_constraints(problem, sel, rows)
    i, t = np.nonzero(C.valid)
    G = C.gram(i, t)
    L, info = _potrf(G, lower=1)
    if info == 0 and np.min(np.diag(L)) ** 2 > _PIVOT_RTOL * np.max(np.diag(G)):
        return True  # independent constraint matrices: G a = 1 gives margins exactly 1
    try:
        _solve_active_set(C, tol, "W-SVM")
    except InfeasibleError:
        return False
    return True


def solve_wsvm(problem, selection=None, norm="fro", method="auto", tol=1e-8) -> MarginSolution:
    """Max-margin token-selection matrix ``W_mm(selection)`` (docs/theory.md §2).

    Parameters
    ----------
    problem : AttentionProblem
        Tokens ``X``, labels, decoder and queries.
    selection : array_like of int, shape (n,), optional
        Token selected in every sequence; default ``problem.opt`` (the global
        W-SVM). Any selection is allowed (locally optimal analysis).
    norm : {"fro", "nuc"}, default "fro"
        Frobenius or nuclear norm.
    method : {"auto", "active-set", "cvxpy"}, default "auto"
        Solver (see the module docstring).
    tol : float, default 1e-8
        The solution is reported ``"optimal"`` when its KKT residual is at most
        ``tol``; the active-set loop adds constraints until none has margin
        below ``1 - tol / 100``.

    Returns
    -------
    MarginSolution

    Raises
    ------
    InfeasibleError
        No ``W`` satisfies the constraints; ``.sequences`` lists a small set of
        sequences whose constraints conflict.
    TieError
        ``selection`` is None and some sequence has a tied optimal token
        (raised by ``problem.opt``).
    TypeError
        ``problem`` is not an AttentionProblem, ``tol`` not a real number, or
        ``selection`` not integers.
    ValueError
        Bad ``selection``, ``norm``, ``method`` or ``tol``; a solution outside
        the float64 range.
    SolverError
        The solver returned an inaccurate solution that violates a constraint.

    Examples
    --------
    One sequence pair whose second sequence is the first scaled by 2: only the
    first constraint is active and ``W = A / ||A||^2``.

    >>> import numpy as np
    >>> from theory import AttentionProblem, solve_wsvm
    >>> X1 = np.array([[1., 0.], [0., 1.]])
    >>> p = AttentionProblem(np.stack([X1, 2 * X1]), [1, 1], [1., 0.])
    >>> sol = solve_wsvm(p)
    >>> sol.W.round(6)
    array([[ 0.5,  0. ],
           [-0.5,  0. ]])
    >>> sol.support_tokens(), sol.status, round(sol.margin, 6)
    ([[1], []], 'optimal', 1.414214)
    """
    check_problem(problem)
    _check_tol(tol)
    sel = problem.check_selection(selection)
    C = _wsvm_constraints(problem, sel)
    return _run(MarginSolution, C, sel, norm, method, tol,
                f"W-SVM ({norm}) of selection {_short(sel)}")


def solve_decoder_svm(problem, selection=None, method="auto", tol=1e-8) -> DecoderSolution:
    """Hard-margin decoder ``u_mm = argmin ||u|| s.t. y_i u^T x_{i,sel_i} >= 1``.

    See docs/theory.md §2.

    Parameters
    ----------
    problem : AttentionProblem
    selection : array_like of int, shape (n,), optional
        Token of every sequence; default ``problem.opt``.
    method : {"auto", "active-set", "cvxpy"}, default "auto"
        As in :func:`solve_wsvm` (``"auto"`` is the active-set solver).
    tol : float, default 1e-8
        KKT tolerance for ``status == "optimal"``.

    Returns
    -------
    DecoderSolution

    Raises
    ------
    InfeasibleError
        The points ``y_i x_{i,sel_i}`` cannot be separated from the origin
        through a homogeneous hyperplane; ``.sequences`` names a conflicting set.
    TieError
        ``selection`` is None and ``problem.opt`` has a tie.
    TypeError, ValueError, SolverError
        As :func:`solve_wsvm`.

    Examples
    --------
    >>> import numpy as np
    >>> from theory import AttentionProblem, solve_decoder_svm
    >>> X = np.array([[[2., 0.], [0., 0.]], [[0., -1.], [0., 0.]]])
    >>> sol = solve_decoder_svm(AttentionProblem(X, [1, -1], [1., 1.]))
    >>> sol.u.round(6), sol.dual.round(6), sol.status
    (array([0.5, 1. ]), array([0.25, 1.  ]), 'optimal')
    """
    check_problem(problem)
    _check_tol(tol)
    sel = problem.check_selection(selection)
    C = _decoder_constraints(problem, sel)
    return _run(DecoderSolution, C, sel, "fro", method, tol,
                f"decoder SVM of selection {_short(sel)}")


def solve_joint_wsvm(problem, decoder=None, norm="fro", method="auto", tol=1e-8) -> MarginSolution:
    """W-SVM of joint (u, W) training, relaxed as in docs/theory.md §2 (a reconstruction).

    When the decoder is trained too, ``u_t / ||u_t||`` tends to the decoder SVM
    direction ``u_mm``, and the tokens are ranked by the scores it induces,
    ``y_i u_mm^T x_{i,t}``. Following Tarzanagh et al. (NeurIPS 2023), only the
    sequences that are support vectors of the decoder SVM keep margin 1; the
    constraints of the other sequences relax to ``>= 0``::

        minimise ||W||  s.t.  (x_{i,opt_i} - x_{i,t})^T W z_i >= b_i  for t != opt_i,
        b_i = 1 if sequence i is a support vector of the decoder SVM, else 0,

    with ``opt`` the argmax of the induced scores. Whether the paper's joint
    setting uses exactly this relaxation is not stated; this is the documented
    reconstruction, and :func:`solve_wsvm` of the problem with ``u = u_mm`` is the
    unrelaxed alternative.

    Parameters
    ----------
    problem : AttentionProblem
        Its own decoder ``u`` is ignored; the tokens, labels and queries are used.
    decoder : DecoderSolution, optional
        Limiting decoder direction and its support; default
        :func:`solve_decoder_svm` of ``problem`` (tokens selected by ``problem.opt``).
    norm : {"fro", "nuc"}, default "fro"
    method : {"auto", "active-set", "cvxpy"}, default "auto"
        As in :func:`solve_wsvm`: the active-set solver for the Frobenius norm,
        cvxpy for the nuclear norm.
    tol : float, default 1e-8
        KKT tolerance for ``status == "optimal"``.

    Returns
    -------
    MarginSolution
        ``selection`` is the argmax of the induced scores; ``margins``, ``support``
        and the KKT certificate refer to the relaxed constraints (a relaxed
        constraint is a support constraint when its margin is at most
        ``SUPPORT_RTOL``).

    Raises
    ------
    TieError
        The induced scores tie in some sequence.
    InfeasibleError
        The relaxed constraints cannot all hold.
    TypeError
        ``decoder`` is not a DecoderSolution (and as :func:`solve_wsvm`).
    ValueError
        ``decoder`` belongs to a problem of another size (and as :func:`solve_wsvm`).

    Examples
    --------
    >>> import numpy as np
    >>> from theory import AttentionProblem, solve_joint_wsvm
    >>> X = np.array([[[1., 0.], [0., 1.]], [[0., 2.], [3., 0.]]])
    >>> sol = solve_joint_wsvm(AttentionProblem(X, [1, 1], [1., 0.]))
    >>> sol.selection.tolist(), sol.status
    ([0, 1], 'optimal')
    """
    check_problem(problem)
    _check_tol(tol)
    if decoder is None:
        dec = solve_decoder_svm(problem)
    elif not isinstance(decoder, DecoderSolution):
        raise TypeError(f"decoder must be a DecoderSolution, got {type(decoder).__name__}")
    elif decoder.u.shape != (problem.d,) or decoder.support.shape != (problem.n,):
        raise ValueError(f"decoder has u of shape {decoder.u.shape} and {decoder.support.size} "
                         f"sequences; the problem has d = {problem.d} and n = {problem.n}")
    else:
        dec = decoder
    induced = AttentionProblem(problem.X, problem.y, dec.u, problem.z, tie_rtol=problem.tie_rtol)
    sel = induced.opt
    rhs = np.repeat(np.where(dec.support, 1.0, 0.0)[:, None], problem.T, axis=1)
    C = _wsvm_constraints(induced, sel, rhs=rhs)
    return _run(MarginSolution, C, sel, norm, method, tol,
                f"relaxed joint W-SVM ({norm}) of selection {_short(sel)}")


def _short(sel):
    s = np.asarray(sel).tolist()
    return str(s) if len(s) <= 12 else f"[{', '.join(map(str, s[:12]))}, ...] (n={len(s)})"
