"""What the figures read off trajectories, and the few quantities they derive by hand.

Each function is one measurement the figure scripts share, so that each has exactly
one definition (docs/theory.md §5 defines the metrics):

* :func:`log10_of` -- the log10 values every log axis carries;
* :func:`one_minus_corr`, :func:`u_one_minus_corr` -- ``1 - corr`` over a run, from the
  recorded distance;
* :func:`final_one_minus_corr` -- ``1 - corr`` of a run's final iterate with a second
  reference, without running it again;
* :func:`law_curve` -- a predicted asymptotic law (docs/theory.md §6) drawn through a
  measured point;
* :func:`run_each` -- a sweep that returns a diverging run as its exception instead of
  failing the whole sweep.
"""

from __future__ import annotations

import numpy as np

import sims

__all__ = ["LN10", "final_one_minus_corr", "law_curve", "log10_of", "one_minus_corr",
           "one_minus_corr_between", "run_each", "u_one_minus_corr"]

LN10 = np.log(10.0)


def log10_of(values):
    """``log10`` of nonnegative values, with exact zeros (underflow) mapped to NaN.

    Examples
    --------
    >>> log10_of([100.0, 0.0])
    array([ 2., nan])
    """
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = np.log10(v)
    return np.where(np.isfinite(out), out, np.nan)


def one_minus_corr(traj):
    """``1 - corr(W_t, reference)`` at every recorded iteration of ``traj``.

    Computed as ``dist^2 / 2`` (``dist = ||W/|W| - R/|R|||``), which is exact where
    ``1 - corr`` itself cancels to 0 near alignment.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> one_minus_corr(SimpleNamespace(dist=np.array([2 ** 0.5, 1e-9])))
    array([1.e+00, 5.e-19])
    """
    return 0.5 * traj.dist ** 2


def u_one_minus_corr(traj):
    """``1 - corr(u_t, reference_u)`` of a joint run, as :func:`one_minus_corr` for ``u``."""
    return 0.5 * traj.u_dist ** 2


def one_minus_corr_between(A, B):
    """``1 - corr(A, B)`` of two nonzero matrices, as ``||A/|A| - B/|B|||^2 / 2``.

    The squared distance has no cancellation near ``corr = 1``.

    Examples
    --------
    >>> A, B = np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 2.0]])
    >>> [one_minus_corr_between(A, R) for R in (-3 * A, B, 3 * A)]
    [2.0, 1.0, 0.0]
    """
    return float(0.5 * np.sum((A / np.linalg.norm(A) - B / np.linalg.norm(B)) ** 2))


def final_one_minus_corr(traj, reference):
    """``1 - corr`` of the final iterate ``traj.W_final`` with another ``reference``."""
    return one_minus_corr_between(traj.W_final, reference)


def law_curve(kind, par, t, ta, ya):
    """``log10`` of a predicted law at ``t``, through the anchor ``(ta, ya)`` (``ya`` in log10).

    Parameters
    ----------
    kind : {"exp", "power", "logpow", "linear", "log"}
        ``y ~ exp(-par t)``, ``y ~ t^par``, ``y ~ (log t)^par``, ``y`` linear in ``t``
        with slope ``par``, ``y`` linear in ``log t`` with slope ``par``.
    par : float
        The law's rate, exponent or slope.
    t : ndarray
        Iterations (``> 1`` for the laws in ``log t``).
    ta, ya : float
        Anchor: the curve passes through ``log10 y = ya`` at ``t = ta``.

    Returns
    -------
    ndarray
        ``log10`` of the law; NaN where a linear law has reached 0.

    Examples
    --------
    >>> law_curve("power", -1.0, np.array([10.0, 100.0]), 10.0, -2.0)
    array([-2., -3.])
    """
    if kind == "exp":
        return ya - par * (t - ta) / LN10
    if kind == "power":
        return ya + par * np.log10(t / ta)
    if kind == "logpow":
        return ya + par * np.log10(np.log(t) / np.log(ta))
    lin = 10.0 ** ya + (par * (t - ta) if kind == "linear" else par * np.log(t / ta))
    return log10_of(np.where(lin > 0, lin, 0.0))


_PER_PROBLEM = ("W0s", "references", "K0s", "Q0s", "u0s", "references_u")


def run_each(problems, method, lr, steps, **kwargs):
    """``sims.run_many`` over ``problems`` for one method and step size, diverging runs kept.

    A run whose loss leaves the float64 range raises ``FloatingPointError`` inside
    ``sims.run_many`` and would sink the whole sweep; here the sweep is then redone
    problem by problem and such a run comes back as its exception, for the figure
    to report.

    Returns
    -------
    list of sims.Trajectory or FloatingPointError
        One entry per problem, in order.
    """
    try:
        return sims.run_many(problems, [method], [lr], steps, **kwargs)
    except FloatingPointError:
        per = {k: kwargs.pop(k) for k in list(kwargs) if k in _PER_PROBLEM and kwargs[k]}
        out = []
        for i, p in enumerate(problems):
            try:
                out.extend(sims.run_many([p], [method], [lr], steps, **kwargs,
                                         **{k: [v[i]] for k, v in per.items()}))
            except FloatingPointError as exc:
                out.append(exc)
        return out
