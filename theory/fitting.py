"""Fit and assert parametric convergence laws on measured curves (docs/theory.md §6).

Three tools:

* :func:`fit_rate` fits one of six parametric laws to a measured curve by least
  squares and returns a :class:`RateFit` with the fitted parameter under a fixed
  name, its standard error, the R^2 and the window used;
* :func:`assert_rate` fits and raises :class:`AssertionError` with a readable
  message (fitted against expected, R^2, window) when the parameter is off; it is
  meant to be called directly inside tests;
* :class:`RateLaw` is the expected side: a model with its parameter, usable as the
  keyword arguments of :func:`assert_rate` (``assert_rate(t, v, **law, tol=...)``)
  and as a curve to draw (:meth:`RateLaw.curve`).

Models (``t`` is the iteration counter, ``v`` the measured values):

================  ================================  ======================
model             law                               fitted parameters
================  ================================  ======================
``"power"``       ``v = C t^p``                     ``exponent = p``
``"exp"``         ``v = C exp(-r t)``               ``rate = r``
``"log"``         ``v = a log t + b``               ``slope = a``
``"linear"``      ``v = a t + b``                   ``slope = a``
``"logpower"``    ``v = C (log t)^p``               ``exponent = p``
``"stretched"``   ``v = C exp(-r t^q)``             ``rate = r``, ``power = q``
================  ================================  ======================

Every model but ``"log"`` and ``"linear"`` is fitted in log space (``log v``
against ``log t``, ``t``, ``log log t`` or ``t^q``), where the asymptotic laws are
linear and where curves spanning hundreds of decades weigh every decade alike.
Values that cannot be logged (zero, negative, subnormal, NaN or infinite) are
dropped and counted per reason in :attr:`RateFit.dropped`, never silently. Curves
known only through their logarithm (``log(1 - s_opt)`` far below the float64
range) are passed with ``log_values=True``: they are fitted exactly, with no trip
through linear space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["MODELS", "RateFit", "RateLaw", "fit_rate", "assert_rate"]

MODELS = ("power", "exp", "log", "linear", "logpower", "stretched")

# Name of the fitted parameter(s) of every model, in the order reported.
_PARAMS = {
    "power": ("exponent",),
    "exp": ("rate",),
    "log": ("slope",),
    "linear": ("slope",),
    "logpower": ("exponent",),
    "stretched": ("rate", "power"),
}
# Models fitted to the values themselves, not to their logarithm.
_LINEAR_SPACE = ("log", "linear")

# Default search interval of the stretched exponent q when it is fitted.
_POWER_BOUNDS = (0.02, 4.0)


@dataclass(frozen=True)
class RateFit:
    """Result of :func:`fit_rate`.

    Attributes
    ----------
    model : str
        One of :data:`MODELS`.
    exponent, rate, slope, power : float or None
        The fitted parameter(s) of ``model`` (see the module table); the others
        are ``None``. For ``"stretched"`` with a given ``power`` the field holds
        that value and ``power_fixed`` is True.
    const : float
        ``C`` of the power, exp, logpower and stretched laws (may under- or
        overflow; see ``log_const``), ``b`` of the log and linear laws.
    log_const : float or None
        ``log C`` (exact even where ``C`` is not representable); ``None`` for
        ``"log"`` and ``"linear"``.
    stderr : dict
        Standard error of every fitted parameter, keyed by name (and
        ``"log_const"`` or ``"const"``). Zero for an exact fit.
    r2 : float
        Coefficient of determination in the space of the fit (log space except
        for ``"log"`` and ``"linear"``).
    window : tuple of float
        ``(t_min, t_max)`` of the points actually fitted.
    n_points : int
        Number of points fitted.
    n_dropped : int
        Points inside the requested window that were dropped.
    dropped : dict
        ``{reason: count}`` of the dropped points.
    dof : int
        Residual degrees of freedom (``n_points`` minus fitted parameters).
    power_fixed : bool
        Whether ``power`` was given rather than fitted (stretched model only).
    """

    model: str
    const: float
    log_const: float | None
    stderr: dict
    r2: float
    window: tuple
    n_points: int
    n_dropped: int
    dropped: dict = field(default_factory=dict)
    dof: int = 0
    exponent: float | None = None
    rate: float | None = None
    slope: float | None = None
    power: float | None = None
    power_fixed: bool = False

    @property
    def params(self) -> dict:
        """The fitted parameter(s) of the model, ``{name: value}``."""
        names = _PARAMS[self.model]
        if self.power_fixed:
            names = ("rate",)
        return {k: getattr(self, k) for k in names}

    def conf_int(self, name: str, level: float = 0.95) -> tuple:
        """Student-t confidence interval of a fitted parameter.

        Parameters
        ----------
        name : str
            A key of :attr:`stderr` (e.g. ``"rate"``).
        level : float, default 0.95
            Coverage of the interval.

        Returns
        -------
        tuple of float
            ``(low, high)``.

        Raises
        ------
        KeyError
            If ``name`` is not a fitted parameter of this fit.
        """
        from scipy import stats

        if name not in self.stderr:
            raise KeyError(f"{name!r} is not a fitted parameter; have {sorted(self.stderr)}")
        value = self.const if name == "const" else (
            self.log_const if name == "log_const" else getattr(self, name)
        )
        half = stats.t.ppf(0.5 + level / 2, max(self.dof, 1)) * self.stderr[name]
        return (value - half, value + half)

    def summary(self) -> str:
        """One line: parameters with standard errors, R^2, window, points, drops."""
        pars = ", ".join(
            f"{k} = {v:.6g} (stderr {self.stderr[k]:.2g})" for k, v in self.params.items()
        )
        if self.power_fixed:
            pars += f", power = {self.power:.6g} (fixed)"
        drops = ""
        if self.n_dropped:
            drops = " (" + ", ".join(f"{c} {r}" for r, c in self.dropped.items()) + ")"
        return (
            f"{self.model} fit: {pars}; R^2 = {self.r2:.6f}; window t in "
            f"[{self.window[0]:.6g}, {self.window[1]:.6g}], {self.n_points} points, "
            f"{self.n_dropped} dropped{drops}"
        )


def _as_1d(name, a):
    arr = np.asarray(a)
    if arr.dtype.kind == "O":
        for x in arr.flat:
            if not _is_real(x):
                raise TypeError(f"{name} must hold real numbers, got {type(x).__name__} {x!r}")
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers (int or float), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    return arr.astype(np.float64, copy=False)


def _is_real(x):
    return not isinstance(x, (bool, np.bool_)) and isinstance(x, (int, float, np.integer,
                                                                  np.floating))


def _real(name, x):
    """``x`` as a float, with a :class:`TypeError` naming ``name`` for anything else."""
    if not _is_real(x):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    return float(x)


def _select_window(t, window):
    """Boolean mask of ``lo <= t <= hi`` (``None`` bounds are open)."""
    if window is None:
        return np.ones(t.shape, dtype=bool)
    try:
        lo, hi = window
    except (TypeError, ValueError):
        raise ValueError(f"window must be None or a pair (t_lo, t_hi), got {window!r}") from None
    lo = -np.inf if lo is None else _real("window bound", lo)
    hi = np.inf if hi is None else _real("window bound", hi)
    if np.isnan(lo) or np.isnan(hi) or lo > hi:
        raise ValueError(f"window ({lo}, {hi}) is empty: need t_lo <= t_hi")
    mask = (t >= lo) & (t <= hi)
    if not mask.any():
        finite = t[np.isfinite(t)]
        span = f"[{finite.min():.6g}, {finite.max():.6g}]" if finite.size else "no finite t"
        raise ValueError(
            f"window ({lo:.6g}, {hi:.6g}) contains none of the {t.size} points (t spans {span})"
        )
    return mask


def _usable(t, v, model, log_values):
    """Mask of usable points and ``{reason: count}`` of the others."""
    reasons = {}

    def drop(mask, reason, keep):
        bad = keep & mask
        if bad.any():
            reasons[reason] = reasons.get(reason, 0) + int(bad.sum())
        return keep & ~mask

    keep = np.ones(t.shape, dtype=bool)
    keep = drop(~np.isfinite(t), "non-finite t", keep)
    if model == "logpower":
        keep = drop(~(t > 1), "t <= 1 (log t <= 0)", keep)
    elif model not in ("exp", "linear"):
        # log t (power, log) or t^q with a fitted q (stretched) needs t > 0.
        keep = drop(~(t > 0), "t <= 0", keep)
    if model in _LINEAR_SPACE or log_values:
        if log_values:
            keep = drop(v == -np.inf, "zero value (log = -inf)", keep)
        keep = drop(~np.isfinite(v), "non-finite value", keep)
    else:
        keep = drop(~np.isfinite(v), "non-finite value", keep)
        keep = drop(v < 0, "negative value", keep)
        keep = drop(v == 0, "zero value (underflow)", keep)
        # Subnormal floats carry few significant bits: their log is not the log
        # of the true value, so they bias a log-space fit.
        keep = drop(v < np.finfo(np.float64).tiny, "subnormal value (underflow)", keep)
    return keep, reasons


# Centred data whose largest magnitude lies in [2^-450, 2^450] are used as they are;
# outside, they are scaled by a power of two so that sums of squares cannot overflow.
_SAFE_EXP = 450


def _pow2_scaled(a):
    """``(a / 2^k, k)``: ``k = 0`` in the safe range, else ``max|a| / 2^k`` in [0.5, 1).

    Scaling by a power of two is exact, so the fit is the same in either case.
    """
    top = max(float(a.max()), -float(a.min())) if a.size else 0.0
    k = int(np.frexp(top)[1]) if top > 0 else 0
    if abs(k) <= _SAFE_EXP:
        return a, 0
    return np.ldexp(a, -k), k


def _ldexp(x, k):
    """``x 2^k`` exactly, ``+-inf`` where it leaves the float64 range."""
    try:
        return math.ldexp(x, k)
    except OverflowError:
        return math.copysign(math.inf, x)


def _ols(x, y):
    """Least squares ``y = a + b x`` on centred ``x``.

    Returns ``(b, a, se_b, se_a, rss, r2)``. Abscissae or values near the ends of
    the float64 range (``t`` of 1e200, log values of -1e300) are scaled exactly
    (:func:`_pow2_scaled`), so they neither overflow nor lose digits.
    """
    n = x.size
    xm, ym = x.mean(), y.mean()
    ux, kx = _pow2_scaled(x - xm)
    uy, ky = _pow2_scaled(y - ym)
    suu = float(ux @ ux)
    if not suu > 0:
        raise ValueError("all usable points share one abscissa; the rate is not identifiable")
    bs = float(ux @ uy) / suu
    b = _ldexp(bs, ky - kx)
    a = ym - b * xm
    resid = uy - bs * ux
    rss_s, tss_s = float(resid @ resid), float(uy @ uy)
    s2 = rss_s / (n - 2)
    xms = math.ldexp(xm, -kx)
    se_b = _ldexp(math.sqrt(s2 / suu), ky - kx)
    se_a = _ldexp(math.sqrt(s2 * (1.0 / n + xms * xms / suu)), ky)
    # R^2 from the scaled sums: the same ratio, free of overflow.
    r2 = 1.0 - rss_s / tss_s if tss_s > 0 else (1.0 if rss_s == 0 else 0.0)
    # rss itself is inf only for residuals beyond 1e154 (R^2 and the errors are not).
    return b, a, se_b, se_a, _ldexp(rss_s, 2 * ky), r2


def _fit_stretched_power(t, y, bounds):
    """Profile least squares over the stretched exponent ``q``.

    For fixed ``q`` the law ``log v = log C - r t^q`` is linear, so the residual
    sum of squares ``RSS(q)`` is one OLS; a log-spaced grid over ``bounds``
    locates the global minimum and a bounded scalar search refines it.
    """
    from scipy import optimize

    logt = np.log(t)

    def rss(q):
        return _ols(np.exp(q * logt), y)[4]

    grid = np.geomspace(bounds[0], bounds[1], 61)
    vals = np.array([rss(q) for q in grid])
    k = int(np.argmin(vals))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    res = optimize.minimize_scalar(rss, bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-12 * max(1.0, hi)})
    return float(res.x) if res.fun <= vals[k] else float(grid[k])


def fit_rate(t, values, model, window=None, *, power=None, log_values=False,
             power_bounds=_POWER_BOUNDS):
    """Fit a parametric convergence law to a measured curve.

    Parameters
    ----------
    t : array_like, shape (k,)
        Iteration counters (or times).
    values : array_like, shape (k,)
        Measured values, or their natural logarithm if ``log_values``.
    model : {"power", "exp", "log", "linear", "logpower", "stretched"}
        ``C t^p``, ``C exp(-r t)``, ``a log t + b``, ``a t + b``, ``C (log t)^p``
        or ``C exp(-r t^q)``.
    window : (float or None, float or None), optional
        Fit only the points with ``t_lo <= t <= t_hi``; ``None`` bounds are open.
        Default: every point.
    power : float, optional
        Stretched model only: the exponent ``q``, held fixed. By default ``q`` is
        fitted too, by profile least squares (for each ``q`` the law is linear in
        ``(log C, r)``; the residual is minimised over ``q`` on a log grid over
        ``power_bounds``, then refined), and its standard error comes from the
        Jacobian of the full three-parameter model at the optimum. A fitted ``q``
        equal to a bound of ``power_bounds`` means the optimum lies outside.
    log_values : bool, default False
        ``values`` are ``log v``. Exact where ``v`` underflows in float64 (the
        simulators report ``log(1 - s_opt)`` this way). Not valid for ``"log"``
        and ``"linear"``, which are fitted to the values themselves.
    power_bounds : (float, float), default (0.02, 4.0)
        Search interval of a fitted stretched exponent.

    Returns
    -------
    RateFit

    Raises
    ------
    TypeError
        ``t`` or ``values`` not real numbers (complex, bool, strings), or a
        window bound, ``power`` or ``power_bounds`` that is not a real number.
    ValueError
        Unknown model, mismatched shapes, an empty window, ``power`` given for a
        model other than ``"stretched"``, or fewer usable points than the model
        needs (3, or 4 for a fitted stretched exponent) once unusable ones are
        dropped. The message gives the counts.

    Notes
    -----
    Points dropped (counted per reason in ``RateFit.dropped``): non-finite ``t``;
    ``t <= 0`` except for ``"exp"`` and ``"linear"``; ``t <= 1`` for
    ``"logpower"``; non-finite values; for linear values of the log-space models
    also values ``<= 0`` and subnormal values (below ``numpy.finfo(float).tiny``,
    i.e. underflowed).

    Examples
    --------
    >>> t = np.arange(1.0, 101.0)
    >>> fit = fit_rate(t, 3.0 * t ** -1.5, "power")
    >>> round(fit.exponent, 9), round(fit.const, 9), fit.n_points
    (-1.5, 3.0, 100)
    >>> v = np.exp(-0.25 * np.arange(0.0, 4000.0))   # underflows to 0 near t = 2980
    >>> fit = fit_rate(np.arange(0.0, 4000.0), v, "exp")
    >>> round(fit.rate, 9), fit.n_dropped, fit.dropped
    (0.25, 1166, {'zero value (underflow)': 1019, 'subnormal value (underflow)': 147})
    >>> fit = fit_rate(np.arange(0.0, 4000.0), -0.25 * np.arange(0.0, 4000.0), "exp",
    ...                log_values=True)
    >>> round(fit.rate, 9), fit.n_dropped
    (0.25, 0)
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
    if power is not None and model != "stretched":
        raise ValueError(f"power= fixes the exponent of the 'stretched' model, not {model!r}")
    if log_values and model in _LINEAR_SPACE:
        raise ValueError(f"log_values=True does not apply to the {model!r} model, which is "
                         "fitted to the values themselves")
    t = _as_1d("t", t)
    v = _as_1d("values", values)
    if t.shape != v.shape:
        raise ValueError(f"t and values must have the same shape, got {t.shape} and {v.shape}")
    if t.size == 0:
        raise ValueError("t and values are empty")
    if power is not None and not (np.isfinite(_real("power", power)) and power > 0):
        raise ValueError(f"power must be a finite positive number, got {power}")
    try:
        lo_q, hi_q = (_real("power_bounds", q) for q in power_bounds)
    except (TypeError, ValueError):
        raise TypeError(f"power_bounds must be a pair of real numbers, got {power_bounds!r}"
                        ) from None
    if not 0 < lo_q < hi_q < np.inf:
        raise ValueError(f"power_bounds must satisfy 0 < low < high, got {power_bounds}")

    in_window = _select_window(t, window)
    keep, dropped = _usable(t[in_window], v[in_window], model, log_values)
    t_ok, v_ok = t[in_window][keep], v[in_window][keep]
    n_drop = int(in_window.sum() - keep.sum())
    fit_q = model == "stretched" and power is None
    need = 4 if fit_q else 3
    if t_ok.size < need:
        why = "; dropped: " + ", ".join(f"{c} {r}" for r, c in dropped.items()) if dropped else ""
        raise ValueError(
            f"{model} fit needs at least {need} usable points, got {t_ok.size} of "
            f"{int(in_window.sum())} in the window{why}"
        )

    y = v_ok if (log_values or model in _LINEAR_SPACE) else np.log(v_ok)
    common = dict(
        model=model,
        window=(float(t_ok.min()), float(t_ok.max())),
        n_points=int(t_ok.size),
        n_dropped=n_drop,
        dropped=dropped,
    )
    if model in _LINEAR_SPACE:
        b, a, se_b, se_a, rss, r2 = _ols(np.log(t_ok) if model == "log" else t_ok, y)
        return RateFit(const=a, log_const=None, slope=b, stderr={"slope": se_b, "const": se_a},
                       r2=r2, dof=t_ok.size - 2, **common)
    if model in ("power", "logpower"):
        x = np.log(t_ok) if model == "power" else np.log(np.log(t_ok))
        b, a, se_b, se_a, rss, r2 = _ols(x, y)
        return RateFit(const=float(np.exp(a)), log_const=a, exponent=b,
                       stderr={"exponent": se_b, "log_const": se_a},
                       r2=r2, dof=t_ok.size - 2, **common)
    if model == "exp":
        b, a, se_b, se_a, rss, r2 = _ols(t_ok, y)
        return RateFit(const=float(np.exp(a)), log_const=a, rate=-b,
                       stderr={"rate": se_b, "log_const": se_a},
                       r2=r2, dof=t_ok.size - 2, **common)

    # stretched
    q = float(power) if power is not None else _fit_stretched_power(t_ok, y, (lo_q, hi_q))
    tq = np.exp(q * np.log(t_ok))
    b, a, se_b, se_a, rss, r2 = _ols(tq, y)
    stderr = {"rate": se_b, "log_const": se_a}
    dof = t_ok.size - 2
    if power is None:
        # Gauss-Newton covariance of (log C, r, q) for log v = log C - r t^q.
        dof = t_ok.size - 3
        J = np.column_stack([np.ones_like(tq), -tq, b * tq * np.log(t_ok)])
        scale = np.linalg.norm(J, axis=0)
        scale[scale == 0] = 1.0
        cov = np.linalg.pinv((J / scale).T @ (J / scale)) / np.outer(scale, scale)
        se = np.sqrt(np.clip(np.diag(cov) * rss / dof, 0.0, None))
        stderr = {"rate": float(se[1]), "power": float(se[2]), "log_const": float(se[0])}
    return RateFit(const=float(np.exp(a)), log_const=a, rate=-b, power=q, stderr=stderr,
                   r2=r2, dof=dof, power_fixed=power is not None, **common)


def assert_rate(t, values, model, *, exponent=None, rate=None, slope=None, power=None,
                tol, rtol=0.0, bound=None, window=None, log_values=False, fixed_power=None,
                min_r2=None):
    """Assert that a curve follows a parametric law with the expected parameter.

    Fits with :func:`fit_rate` and compares every expected parameter given
    (by the same names as :class:`RateFit`) with the fitted one.

    Parameters
    ----------
    t, values, model, window, log_values
        As in :func:`fit_rate`.
    exponent, rate, slope, power : float, optional
        Expected parameter(s); at least one, and only those of ``model``.
        ``power`` is the expected *fitted* stretched exponent.
    tol : float
        Absolute tolerance on the parameter.
    rtol : float, default 0
        Relative tolerance; the allowed deviation is ``tol + rtol * |expected|``.
    bound : {None, "upper", "lower"}, default None
        ``None``: two-sided check. ``"upper"``: the expected value is an upper
        bound (pass if ``fitted <= expected + allowed``); ``"lower"``: a lower
        bound (pass if ``fitted >= expected - allowed``).
    fixed_power : float, optional
        Stretched model: hold ``q`` at this value in the fit (passed to
        :func:`fit_rate` as ``power``) and check ``rate`` only.
    min_r2 : float, optional
        Also require the fit's R^2 to be at least this.

    Returns
    -------
    RateFit
        The fit, for further checks.

    Raises
    ------
    AssertionError
        If a parameter is off (or R^2 too low); the message shows fitted and
        expected values, the deviation, the tolerance, R^2 and the window.
    TypeError
        An expected parameter, ``tol``, ``rtol`` or ``min_r2`` that is not a real
        number, or anything :func:`fit_rate` rejects with a TypeError.
    ValueError
        Bad arguments (no expected parameter, one that the model lacks, a
        non-finite expected value, a negative tolerance) or anything
        :func:`fit_rate` rejects.

    Examples
    --------
    >>> t = np.arange(1.0, 51.0)
    >>> fit = assert_rate(t, 2.0 / t, "power", exponent=-1.0, tol=1e-9)
    >>> assert_rate(t, 2.0 / t, "power", exponent=-0.9, tol=0.01)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    AssertionError: fitted exponent = -1 is off the expected -0.9 by 0.1 > allowed 0.01 (tol 0.01, rtol 0); power fit: exponent = -1 (stderr ...), R^2 = 1.000000; window t in [1, 50], 50 points, 0 dropped
    """
    expected = {k: v for k, v in (("exponent", exponent), ("rate", rate), ("slope", slope),
                                  ("power", power)) if v is not None}
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
    if not expected:
        raise ValueError(f"give the expected {' and/or '.join(_PARAMS[model])} to check")
    extra = sorted(set(expected) - set(_PARAMS[model]))
    if extra:
        raise ValueError(f"model {model!r} has no parameter {extra}; it fits {_PARAMS[model]}")
    if fixed_power is not None and "power" in expected:
        raise ValueError("power cannot be both held fixed (fixed_power) and checked (power)")
    if fixed_power is not None and model != "stretched":
        raise ValueError(f"fixed_power applies to the 'stretched' model, not {model!r}")
    expected = {k: _real(k, v) for k, v in expected.items()}
    bad = [k for k, v in expected.items() if not np.isfinite(v)]
    if bad:
        raise ValueError(f"expected {bad[0]} must be finite, got {expected[bad[0]]}")
    tol, rtol = _real("tol", tol), _real("rtol", rtol)
    if min_r2 is not None:
        min_r2 = _real("min_r2", min_r2)
    if not (np.isfinite(tol) and tol >= 0 and np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"tol and rtol must be finite and nonnegative, got {tol}, {rtol}")
    if bound not in (None, "upper", "lower"):
        raise ValueError(f"bound must be None, 'upper' or 'lower', got {bound!r}")

    fit = fit_rate(t, values, model, window, power=fixed_power, log_values=log_values)
    failures = []
    for name, want in expected.items():
        got = getattr(fit, name)
        allowed = tol + rtol * abs(want)
        dev = got - want
        ok = {None: abs(dev) <= allowed, "upper": dev <= allowed, "lower": -dev <= allowed}[bound]
        if not ok:
            rel = {None: "is off the expected", "upper": "exceeds the upper bound",
                   "lower": "is below the lower bound"}[bound]
            failures.append(
                f"fitted {name} = {got:.6g} {rel} {want:.6g} by {abs(dev):.3g} > allowed "
                f"{allowed:.3g} (tol {tol:g}, rtol {rtol:g})"
            )
    if min_r2 is not None and not fit.r2 >= min_r2:
        failures.append(f"R^2 = {fit.r2:.6f} is below the required {min_r2:g}")
    if failures:
        raise AssertionError("; ".join(failures) + "; " + _short(fit))
    return fit


def _short(fit):
    # The summary with its parameters listed once (the failure text already names them).
    return fit.summary().replace("; R^2", ", R^2")



@dataclass(frozen=True)
class RateLaw(Mapping):
    """A parametric law that a measured curve should follow.

    A law is the expected side of :func:`assert_rate`: it behaves as the mapping
    of that function's keyword arguments (``model``, the parameter, ``log_values``
    and, where set, ``bound`` and ``fixed_power``), so
    ``assert_rate(t, values, **law, tol=...)`` checks a curve against it, and
    :meth:`curve` draws it through a measured point.

    Attributes
    ----------
    model : str
        One of :data:`MODELS`.
    exponent, rate, slope : float or None
        The parameter of ``model`` (see the module table); ``None`` where only
        the model is known (such a law cannot be asserted or drawn).
    power : float or None
        ``"stretched"`` only: the exponent ``q``, held fixed in the fit.
    log_values : bool, default False
        The law applies to ``log v`` (``assert_rate``'s ``log_values``).
    bound : {None, "upper", "lower"}, default None
        The parameter is a bound rather than a value (see :func:`assert_rate`).

    Raises
    ------
    ValueError
        An unknown model, a parameter that the model lacks, a non-finite
        parameter, ``log_values`` for a model fitted to the values themselves, or
        a bad ``bound``.
    TypeError
        A parameter that is not a real number.

    Examples
    --------
    >>> law = RateLaw("exp", rate=0.5, log_values=True)
    >>> dict(law)
    {'model': 'exp', 'rate': 0.5, 'log_values': True}
    >>> t = np.arange(10.0)
    >>> fit = assert_rate(t, 3.0 - 0.5 * t, **law, tol=1e-12)
    >>> law.curve([2.0, 4.0], anchor=(0.0, 3.0)).tolist()
    [2.0, 1.0]
    """

    model: str
    exponent: float | None = None
    rate: float | None = None
    slope: float | None = None
    power: float | None = None
    log_values: bool = False
    bound: str | None = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {MODELS}")
        name = _PARAMS[self.model][0]
        for other in ("exponent", "rate", "slope"):
            value = getattr(self, other)
            if value is None:
                continue
            if other != name:
                raise ValueError(f"model {self.model!r} has no parameter {other!r}; "
                                 f"its parameter is {name!r}")
            value = _real(other, value)
            if not np.isfinite(value):
                raise ValueError(f"{other} must be finite, got {value}")
            object.__setattr__(self, other, value)
        if self.power is not None:
            if self.model != "stretched":
                raise ValueError(f"power fixes the exponent of the 'stretched' model, "
                                 f"not {self.model!r}")
            q = _real("power", self.power)
            if not (np.isfinite(q) and q > 0):
                raise ValueError(f"power must be a finite positive number, got {q}")
            object.__setattr__(self, "power", q)
        elif self.model == "stretched":
            raise ValueError("a 'stretched' law needs its exponent: give power=q")
        if not isinstance(self.log_values, (bool, np.bool_)):
            raise TypeError(f"log_values must be a bool, got {self.log_values!r}")
        if self.log_values and self.model in _LINEAR_SPACE:
            raise ValueError(f"log_values=True does not apply to the {self.model!r} model")
        if self.bound not in (None, "upper", "lower"):
            raise ValueError(f"bound must be None, 'upper' or 'lower', got {self.bound!r}")

    @property
    def name(self) -> str:
        """Name of the parameter (``"exponent"``, ``"rate"`` or ``"slope"``)."""
        return _PARAMS[self.model][0]

    @property
    def value(self) -> float | None:
        """The parameter, ``None`` where the law gives no number."""
        return getattr(self, self.name)

    def _kwargs(self):
        kw = {"model": self.model}
        if self.value is not None:
            kw[self.name] = self.value
        if self.power is not None:
            kw["fixed_power"] = self.power
        kw["log_values"] = self.log_values
        if self.bound is not None:
            kw["bound"] = self.bound
        return kw

    def __getitem__(self, key):
        return self._kwargs()[key]

    def __iter__(self):
        return iter(self._kwargs())

    def __len__(self):
        return len(self._kwargs())

    def curve(self, t, anchor):
        """The law through a measured point, at ``t``.

        Parameters
        ----------
        t : array_like
            Where to evaluate (``t > 0`` for power, log and stretched laws,
            ``t > 1`` for ``"logpower"``).
        anchor : (float, float)
            A point ``(t_a, v_a)`` the curve passes through, which fixes the
            constant the law leaves free; ``v_a`` is a log value when
            ``log_values`` is set.

        Returns
        -------
        ndarray
            The law's values at ``t``, in the space of ``v_a`` (log values when
            ``log_values``): exact far below the float64 range.

        Raises
        ------
        ValueError
            The law gives no parameter, or ``t`` / ``t_a`` are outside the
            domain of the model.
        TypeError
            The anchor is not a pair of real numbers.

        Examples
        --------
        >>> law = RateLaw("power", exponent=-1.0)
        >>> law.curve([1.0, 10.0], anchor=(100.0, 0.5)).round(9).tolist()
        [50.0, 5.0]
        >>> RateLaw("log", slope=2.0).curve([np.e], anchor=(1.0, 3.0)).tolist()
        [5.0]
        """
        if self.value is None:
            raise ValueError(f"this {self.model} law gives no {self.name}: nothing to draw")
        try:
            ta, va = anchor
        except (TypeError, ValueError):
            raise TypeError(f"anchor must be a pair (t_a, v_a), got {anchor!r}") from None
        ta, va = _real("anchor t", ta), _real("anchor value", va)
        t = _as_1d("t", np.atleast_1d(t))
        low = 1.0 if self.model == "logpower" else 0.0
        if self.model not in ("exp", "linear") and (ta <= low or np.any(t <= low)):
            raise ValueError(f"a {self.model} law is defined for t > {low:g} only")
        p = self.value
        if self.model == "linear":
            return va + p * (t - ta)
        if self.model == "log":
            return va + p * np.log(t / ta)
        # Log-space models: the change of log v from the anchor.
        if self.model == "exp":
            step = -p * (t - ta)
        elif self.model == "power":
            step = p * np.log(t / ta)
        elif self.model == "logpower":
            step = p * np.log(np.log(t) / np.log(ta))
        else:
            step = -p * (t ** self.power - ta ** self.power)
        return va + step if self.log_values else va * np.exp(step)

    @classmethod
    def mean(cls, laws):
        """One law with the mean parameter of several laws of the same kind.

        Parameters
        ----------
        laws : iterable of RateLaw
            Laws sharing model, ``power``, ``log_values`` and ``bound`` (e.g. one
            prediction per seed's instance).

        Returns
        -------
        RateLaw

        Raises
        ------
        ValueError
            No laws, laws of different kinds, or one that gives no parameter.

        Examples
        --------
        >>> RateLaw.mean([RateLaw("exp", rate=0.1), RateLaw("exp", rate=0.3)]).rate
        0.2
        """
        laws = list(laws)
        if not laws:
            raise ValueError("no laws to average")
        first = laws[0]
        kind = (first.model, first.power, first.log_values, first.bound)
        for law in laws:
            if not isinstance(law, cls):
                raise TypeError(f"expected RateLaw objects, got {type(law).__name__}")
            if (law.model, law.power, law.log_values, law.bound) != kind:
                raise ValueError(f"cannot average laws of different kinds: {first} and {law}")
            if law.value is None:
                raise ValueError(f"cannot average a law that gives no {law.name}: {law}")
        return replace(first, **{first.name: float(np.mean([law.value for law in laws]))})

    def __str__(self):
        value = "unknown" if self.value is None else f"{self.value:.6g}"
        text = f"{self.model} law, {self.name} {value}"
        if self.bound is not None:
            text += f" ({self.bound} bound)"
        if self.power is not None:
            text += f", power {self.power:.6g}"
        return text + (", on log values" if self.log_values else "")
