"""Locally optimal token selections (docs/theory.md §2).

A selection ``alpha`` (one token per sequence) is *locally optimal* when its
W-SVM is feasible and, for every sequence ``i``, the selected token scores
strictly higher than every support token of ``W_mm(alpha)`` in that sequence:
``gamma_{i,alpha_i} > gamma_{i,t}``. The global selection ``opt`` is locally
optimal whenever its W-SVM is feasible. Gradient descent from a poor start can
converge in direction to ``W_mm(alpha)`` of a locally optimal ``alpha``.
"""

from __future__ import annotations

import numbers

import numpy as np
from tqdm.auto import tqdm

from .errors import InfeasibleError
from .problem import check_problem
from .svm import MarginSolution, is_feasible, solve_wsvm

__all__ = ["is_locally_optimal", "locally_optimal_selections", "SELECTION_LIMIT"]

#: :func:`locally_optimal_selections` refuses problems with more than this many selections ``T^n``.
SELECTION_LIMIT = 300_000


def _strictly_above(problem, sel, support):
    """True when every support token scores strictly below the selected token of its sequence."""
    g = problem.scores
    top = g[np.arange(problem.n), sel]
    margin = problem.tie_rtol * np.maximum(1.0, np.abs(top))
    return bool(np.all(~support | (g < (top - margin)[:, None])))


def is_locally_optimal(problem, selection, solution=None, *, tol=1e-8) -> bool:
    """Whether ``selection`` is a locally optimal token selection.

    Parameters
    ----------
    problem : AttentionProblem
    selection : array_like of int, shape (n,)
        Token selected in every sequence.
    solution : MarginSolution, optional
        ``solve_wsvm(problem, selection)`` if already computed (Frobenius norm).
    tol : float, default 1e-8
        Passed to :func:`~theory.svm.solve_wsvm` when ``solution`` is not given.

    Returns
    -------
    bool
        True when, for every sequence ``i``, every support token ``t`` of
        ``W_mm(selection)`` has ``gamma_{i,t} < gamma_{i,selection_i}`` (strictly:
        by more than ``problem.tie_rtol * max(1, |gamma_{i,selection_i}|)``).
        An *infeasible* selection (its W-SVM raises
        :class:`~theory.errors.InfeasibleError`) returns False: there is no
        ``W_mm(selection)`` for gradient descent to converge to.

    Raises
    ------
    TypeError
        ``problem`` is not an AttentionProblem or ``solution`` not a MarginSolution.
    ValueError
        Bad selection, or ``solution`` belongs to another selection or norm.

    Examples
    --------
    Two sequences, queries ``e_1``: selecting the low-score token of the second
    sequence is locally optimal because that sequence has no support token.

    >>> import numpy as np
    >>> from theory import AttentionProblem, is_locally_optimal
    >>> X = np.array([[[1., 1.], [-1., 0.]], [[4., 0.], [0., 1.]]])
    >>> p = AttentionProblem(X, [1, 1], [0., 1.], z=[[1., 0.], [1., 0.]])
    >>> p.opt
    array([0, 1])
    >>> [is_locally_optimal(p, s) for s in ([0, 1], [0, 0], [1, 0], [1, 1])]
    [True, True, False, False]
    """
    check_problem(problem)
    sel = problem.check_selection(selection)
    if solution is not None and not isinstance(solution, MarginSolution):
        raise TypeError(f"solution must be a MarginSolution, got {type(solution).__name__}")
    if solution is None:
        try:
            solution = solve_wsvm(problem, sel, tol=tol)
        except InfeasibleError:
            return False
    elif not (np.array_equal(solution.selection, sel) and solution.norm == "fro"):
        raise ValueError("solution must be the Frobenius W-SVM of the same selection")
    return _strictly_above(problem, sel, solution.support)


def _count(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return int(value)


def locally_optimal_selections(problem, max_count=None, *, limit=SELECTION_LIMIT, tol=1e-8,
                               progress=None) -> np.ndarray:
    """All locally optimal selections, by exhaustive search with pruning.

    Depth-first over sequences, trying the tokens of every sequence in order of
    decreasing score (so ``opt`` comes first when it is feasible). Pruning is
    exact, it never drops a locally optimal selection:

    * a token can be selected only if its own sequence's constraints are
      feasible, i.e. the query is nonzero and the token lies outside the convex
      hull of the other tokens of its sequence (checked once per token);
    * adding sequences only adds constraints, so once the W-SVM of the chosen
      prefix of sequences is infeasible, every completion is infeasible and the
      subtree is skipped.

    Parameters
    ----------
    problem : AttentionProblem
    max_count : int, optional
        Stop after this many locally optimal selections (default: find all).
    limit : int, default SELECTION_LIMIT
        Refuse problems with more than ``limit`` selections ``T^n``.
    tol : float, default 1e-8
        Passed to the W-SVM solver and the feasibility checks.
    progress : bool, optional
        Show a progress bar over the selections; default: when ``T^n > 5000``.

    Returns
    -------
    ndarray of int, shape (k, n)
        The locally optimal selections in search order.

    Raises
    ------
    ValueError
        ``T^n > limit``, or ``max_count`` or ``limit`` not a positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> from theory import AttentionProblem, locally_optimal_selections
    >>> X = np.array([[[1., 1.], [-1., 0.]], [[4., 0.], [0., 1.]]])
    >>> p = AttentionProblem(X, [1, 1], [0., 1.], z=[[1., 0.], [1., 0.]])
    >>> locally_optimal_selections(p)
    array([[0, 1],
           [0, 0]])
    """
    check_problem(problem)
    max_count = _count("max_count", max_count, allow_none=True)
    limit = _count("limit", limit)
    n, T = problem.n, problem.T
    total = T ** n
    if total > limit:
        raise ValueError(
            f"exhaustive search over T^n = {T}^{n} = {total:,} selections exceeds limit={limit:,}; "
            "use a smaller instance, raise `limit`, or test candidate selections with "
            "is_locally_optimal"
        )
    order = np.argsort(-problem.scores, axis=1, kind="stable")
    allowed = [
        [int(t) for t in order[i] if is_feasible(problem, [t], [i], tol=tol)] for i in range(n)
    ]
    found = []
    sel = np.zeros(n, dtype=np.int64)
    bar = tqdm(total=total, disable=(total <= 5000) if progress is None else not progress,
               desc="selections", unit="sel")

    def visit(depth):
        if depth == n:
            bar.update(1)
            if is_locally_optimal(problem, sel, tol=tol):
                found.append(sel.copy())
            return max_count is not None and len(found) >= max_count
        below = T ** (n - depth - 1)
        bar.update(below * (T - len(allowed[depth])))
        for t in allowed[depth]:
            sel[depth] = t
            if 0 < depth < n - 1 and not is_feasible(problem, sel[: depth + 1],
                                                     np.arange(depth + 1), tol=tol):
                bar.update(below)
                continue
            if visit(depth + 1):
                return True
        return False

    try:
        visit(0)
    finally:
        bar.close()
    return np.array(found, dtype=np.int64).reshape(-1, n)
