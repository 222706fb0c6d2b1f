"""What the figures read off trajectories and predictions, in the figures' log10 units.

Each function is one conversion the figure scripts share, so that each has exactly
one definition (docs/theory.md §5 defines the metrics, §6 the laws):

* :func:`log10_of` -- the log10 values every log axis carries;
* :func:`u_one_minus_corr` -- ``1 - corr`` of a joint run's decoder over the run
  (:class:`sims.Trajectory` gives ``one_minus_corr`` for ``W`` only);
* :func:`law_log10` -- a predicted :class:`theory.RateLaw` drawn in log10 units
  through a measured point.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LN10", "law_log10", "log10_of", "u_one_minus_corr"]

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


def u_one_minus_corr(traj):
    """``1 - corr(u_t, reference_u)`` of a joint run, exact near 1: ``u_dist^2 / 2``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> u_one_minus_corr(SimpleNamespace(u_dist=np.array([2 ** 0.5, 1e-9])))
    array([1.e+00, 5.e-19])
    """
    return 0.5 * np.square(traj.u_dist)


def law_log10(law, t, anchor):
    """``log10`` of a predicted law at ``t``, through a measured point given in log10.

    Parameters
    ----------
    law : theory.RateLaw
        The law, with its parameter.
    t : ndarray
        Iterations, in the law's domain (``> 1`` for laws in ``log t``).
    anchor : (float, float)
        ``(t_a, y_a)``: the curve passes through ``log10 y = y_a`` at ``t = t_a``.

    Returns
    -------
    ndarray
        ``log10`` of the law; NaN where an additive law (``"linear"``, ``"log"``) has
        reached 0. Laws on log values are evaluated in the log domain, so they stay
        exact far below the float64 range.

    Examples
    --------
    >>> from theory import RateLaw
    >>> law_log10(RateLaw("power", exponent=-1.0), np.array([10.0, 100.0]), (10.0, -2.0))
    array([-2., -3.])
    >>> law_log10(RateLaw("exp", rate=LN10, log_values=True), np.array([3.0]), (1.0, -400.0))
    array([-402.])
    """
    ta, ya = anchor
    if law.log_values:
        return law.curve(t, anchor=(ta, ya * LN10)) / LN10
    lin = law.curve(t, anchor=(ta, 10.0 ** ya))
    return log10_of(np.where(lin > 0, lin, 0.0))
