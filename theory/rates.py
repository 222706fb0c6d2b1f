"""Fit and assert the parametric convergence rates of the theory (SPEC section 6).

Three tools:

* :func:`fit_rate` fits one of four parametric laws to a measured curve by least
  squares and returns a :class:`RateFit` with the fitted parameter under a fixed
  name, its standard error, the R^2 and the window used;
* :func:`assert_rate` fits and raises :class:`AssertionError` with a readable
  message (fitted against expected, R^2, window) when the parameter is off; it is
  meant to be called directly inside tests;
* :func:`predicted_rates` turns the asymptotics of SPEC section 6 into numbers for
  one instance, from its max-margin solution ``W_mm``.

Models (``t`` is the iteration counter, ``v`` the measured values):

============  ================================  ======================
model         law                               fitted parameters
============  ================================  ======================
``"power"``   ``v = C t^p``                     ``exponent = p``
``"exp"``     ``v = C exp(-r t)``               ``rate = r``
``"log"``     ``v = a log t + b``               ``slope = a``
``"stretched"`` ``v = C exp(-r t^q)``           ``rate = r``, ``power = q``
============  ================================  ======================

Every model but ``"log"`` is fitted in log space (``log v`` against ``log t``,
``t`` or ``t^q``), where the asymptotic laws are linear and where curves spanning
hundreds of decades weigh every decade alike. Values that cannot be logged
(zero, negative, subnormal, NaN or infinite) are dropped and counted per reason in
:attr:`RateFit.dropped`, never silently. Curves known only through their logarithm
(``log(1 - s_opt)`` far below the float64 range) are passed with
``log_values=True``: they are fitted exactly, with no trip through linear space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["MODELS", "RateFit", "RatePredictions", "fit_rate", "assert_rate", "predicted_rates"]

MODELS = ("power", "exp", "log", "stretched")

# Name of the fitted parameter(s) of every model, in the order reported.
_PARAMS = {
    "power": ("exponent",),
    "exp": ("rate",),
    "log": ("slope",),
    "stretched": ("rate", "power"),
}

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
        ``C`` of the power, exp and stretched laws (may under- or overflow; see
        ``log_const``), ``b`` of the log law.
    log_const : float or None
        ``log C`` (exact even where ``C`` is not representable); ``None`` for
        ``"log"``.
    stderr : dict
        Standard error of every fitted parameter, keyed by name (and
        ``"log_const"`` or ``"const"``). Zero for an exact fit.
    r2 : float
        Coefficient of determination in the space of the fit (log space except
        for ``"log"``).
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
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real numeric array: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    return arr


def _select_window(t, window):
    """Boolean mask of ``lo <= t <= hi`` (``None`` bounds are open)."""
    if window is None:
        return np.ones(t.shape, dtype=bool)
    try:
        lo, hi = window
    except (TypeError, ValueError):
        raise ValueError(f"window must be None or a pair (t_lo, t_hi), got {window!r}") from None
    lo = -np.inf if lo is None else float(lo)
    hi = np.inf if hi is None else float(hi)
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
    if model != "exp":
        # log t (power, log) or t^q with a fitted q (stretched) needs t > 0.
        keep = drop(~(t > 0), "t <= 0", keep)
    if model == "log" or log_values:
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


def _ols(x, y):
    """Least squares ``y = a + b x`` on centred ``x``.

    Returns ``(b, a, se_b, se_a, rss, tss)``.
    """
    n = x.size
    xm, ym = x.mean(), y.mean()
    dx, dy = x - xm, y - ym
    sxx = float(dx @ dx)
    if not sxx > 0:
        raise ValueError("all usable points share one abscissa; the rate is not identifiable")
    b = float(dx @ dy) / sxx
    a = ym - b * xm
    resid = dy - b * dx
    rss = float(resid @ resid)
    tss = float(dy @ dy)
    s2 = rss / (n - 2)
    se_b = np.sqrt(s2 / sxx)
    se_a = np.sqrt(s2 * (1.0 / n + xm * xm / sxx))
    return b, a, se_b, se_a, rss, tss


def _r2(rss, tss):
    if tss > 0:
        return 1.0 - rss / tss
    return 1.0 if rss == 0 else 0.0


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
    model : {"power", "exp", "log", "stretched"}
        ``C t^p``, ``C exp(-r t)``, ``a log t + b`` or ``C exp(-r t^q)``.
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
        simulators report ``log(1 - s_opt)`` this way). Not valid for ``"log"``.
    power_bounds : (float, float), default (0.02, 4.0)
        Search interval of a fitted stretched exponent.

    Returns
    -------
    RateFit

    Raises
    ------
    ValueError
        Unknown model, mismatched shapes, an empty window, ``power`` given for a
        model other than ``"stretched"``, or fewer usable points than the model
        needs (3, or 4 for a fitted stretched exponent) once unusable ones are
        dropped. The message gives the counts.

    Notes
    -----
    Points dropped (counted per reason in ``RateFit.dropped``): non-finite ``t``;
    ``t <= 0`` except for ``"exp"``; non-finite values; for linear values of the
    log-space models also values ``<= 0`` and subnormal values (below
    ``numpy.finfo(float).tiny``, i.e. underflowed).

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
    if log_values and model == "log":
        raise ValueError("log_values=True does not apply to the 'log' model (v = a log t + b)")
    t = _as_1d("t", t)
    v = _as_1d("values", values)
    if t.shape != v.shape:
        raise ValueError(f"t and values must have the same shape, got {t.shape} and {v.shape}")
    if t.size == 0:
        raise ValueError("t and values are empty")
    if power is not None and not (np.isfinite(power) and power > 0):
        raise ValueError(f"power must be a finite positive number, got {power}")
    lo_q, hi_q = map(float, power_bounds)
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

    y = v_ok if (log_values or model == "log") else np.log(v_ok)
    common = dict(
        model=model,
        window=(float(t_ok.min()), float(t_ok.max())),
        n_points=int(t_ok.size),
        n_dropped=n_drop,
        dropped=dropped,
    )
    if model == "log":
        b, a, se_b, se_a, rss, tss = _ols(np.log(t_ok), y)
        return RateFit(const=a, log_const=None, slope=b, stderr={"slope": se_b, "const": se_a},
                       r2=_r2(rss, tss), dof=t_ok.size - 2, **common)
    if model == "power":
        b, a, se_b, se_a, rss, tss = _ols(np.log(t_ok), y)
        return RateFit(const=float(np.exp(a)), log_const=a, exponent=b,
                       stderr={"exponent": se_b, "log_const": se_a},
                       r2=_r2(rss, tss), dof=t_ok.size - 2, **common)
    if model == "exp":
        b, a, se_b, se_a, rss, tss = _ols(t_ok, y)
        return RateFit(const=float(np.exp(a)), log_const=a, rate=-b,
                       stderr={"rate": se_b, "log_const": se_a},
                       r2=_r2(rss, tss), dof=t_ok.size - 2, **common)

    # stretched
    q = float(power) if power is not None else _fit_stretched_power(t_ok, y, (lo_q, hi_q))
    tq = np.exp(q * np.log(t_ok))
    b, a, se_b, se_a, rss, tss = _ols(tq, y)
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
                   r2=_r2(rss, tss), dof=dof, power_fixed=power is not None, **common)


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
    ValueError
        Bad arguments (no expected parameter, one that the model lacks, a
        negative tolerance) or anything :func:`fit_rate` rejects.

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


# --------------------------------------------------------------------------- predictions
_METHODS = {"gd": "gd", "ngd": "ngd", "polyak": "polyak", "ps": "polyak"}


@dataclass(frozen=True, eq=False)
class RatePredictions:
    """The asymptotic rates of SPEC section 6 as numbers for one instance.

    Rates are per step (``t`` counts updates). Fields that do not apply to the
    method or parametrisation are ``None``. See :func:`predicted_rates` for the
    derivations.

    Attributes
    ----------
    method : {"gd", "ngd", "polyak"}
    lr : float
        Step size (the multiplier of the Polyak step for ``"polyak"``).
    loss : str
        Loss function (the rates do not depend on it).
    param : {"W", "joint"}
        Fixed decoder (``W`` trained) or joint ``(u, W)`` training.
    W_mm_norm : float or None
        ``||W_mm||_F`` of the selection (fixed decoder).
    min_margins : ndarray, shape (n,), or None
        ``m_i = min_{t != sel_i} (x_{i,sel_i} - x_{i,t})^T W_mm z_i`` (1 for
        sequences with a support token, larger otherwise).
    support_sequences : ndarray of bool, shape (n,), or None
        Sequences that have a support token.
    norm_model : {"linear", "log"}
        ``||W_t|| ~ norm_slope * t`` or ``~ norm_slope * log t``.
    norm_slope : float or None
        Slope of ``||W_t||`` against ``t`` (linear) or ``log t`` (log). For
        Polyak it is an upper bound (attained when the gradient aligns with
        ``W_mm``); ``None`` where only the model is known (joint ``W``).
    excess_model : {"exp", "power"}
        ``L - L* ~ C exp(-excess_rate t)`` or ``~ C t^excess_exponent``.
    excess_rate, excess_exponent : float or None
        The parameter of ``excess_model``. For Polyak ``excess_rate`` is an upper
        bound (per-step ratio at least ``exp(-excess_rate)``).
    s_opt_model : {"exp", "power"} or None
        Law of ``1 - s_{i,opt}`` for every sequence.
    s_opt_rate, s_opt_exponent : ndarray, shape (n,), or None
        Per-sequence parameter of ``s_opt_model``.
    step_length : float or None
        Limit of the update length (GD: 0, decaying like ``||W_mm|| / t``;
        Polyak: an upper bound).
    corr_model : {"power", "log"}
        ``1 - corr = O(t^corr_exponent)`` (a bound: the fitted exponent is at
        most this) or ``~ C (log t)^corr_exponent``.
    corr_exponent : float
        The exponent of ``corr_model``.
    u_mm_norm : float or None
        Joint training: ``||u_mm||`` of the decoder SVM.
    u_norm_slope : float or None
        Joint training: ``||u_t|| ~ u_norm_slope * t``.
    """

    method: str
    lr: float
    loss: str
    param: str
    W_mm_norm: float | None
    min_margins: np.ndarray | None
    support_sequences: np.ndarray | None
    norm_model: str
    norm_slope: float | None
    excess_model: str
    excess_rate: float | None
    excess_exponent: float | None
    s_opt_model: str | None
    s_opt_rate: np.ndarray | None
    s_opt_exponent: np.ndarray | None
    step_length: float | None
    corr_model: str
    corr_exponent: float
    u_mm_norm: float | None = None
    u_norm_slope: float | None = None


def predicted_rates(problem, method, lr=None, loss="logistic", *, selection=None, param="W",
                    svm=None):
    """SPEC section 6 predictions, as numbers, for one instance.

    Derivation (fixed decoder). Once ``W_t`` is aligned with ``W = W_mm`` of
    norm ``w``, write ``W_t = c_t W + D_t`` with ``c_t ~ ||W_t|| / w`` and a
    bounded correction ``D_t``. The logit gap of token ``t`` in sequence ``i`` is
    ``c_t h_it`` with ``h_it = (x_{i,opt} - x_{i,t})^T W z_i >= 1``, so
    ``1 - s_{i,opt} ~ exp(-c_t m_i)``, ``m_i = min_t h_it``, and the excess loss
    ``L - L* ~ (1/n) sum_i l'(gamma_opt) sum_t s_t (gamma_opt - gamma_t)`` is
    dominated by the slowest terms, ``exp(-c_t)`` (``min_i m_i = 1``). Along
    ``W`` the gradient is ``-<g, W> / w ~ E / w`` (``E`` the excess), because
    ``h >= 1`` with equality on the support tokens.

    * NGD: every step has length ``lr`` and, once aligned, adds ``lr`` to
      ``||W_t||``: ``||W_t|| ~ lr t``, ``c_t ~ lr t / w``, hence
      ``L - L* ~ exp(-(lr / w) t)`` and ``1 - s_{i,opt} ~ exp(-(lr m_i / w) t)``.
      The direction error is a bounded correction over a norm growing like
      ``t``, so ``1 - corr = O(t^-1)`` (a bound; ``t^-2`` when the correction
      converges).
    * GD: ``d||W_t||/dt = lr ||g|| ~ lr K exp(-c_t)``, i.e.
      ``d(e^{c_t})/dt = lr K / w``: ``c_t ~ log t``, so ``||W_t|| ~ w log t``,
      ``L - L* ~ exp(-c_t) ~ 1/t`` (exponent -1), ``1 - s_{i,opt} ~ t^{-m_i}``,
      step length ``~ w / t -> 0``; the bounded correction over ``w log t``
      gives ``1 - corr ~ C / log(t)^2``.
    * Polyak (multiplier ``lr``, default 1): the step is
      ``lr E / ||g|| <= lr E w / (-<g, W>) <= lr w``, so the step length tends
      to at most ``lr w`` and ``||W_t||`` grows at most like ``lr w t``. With
      ``E`` a positive sum of ``exp(-<A_k, W_t>)`` terms, Jensen's inequality
      gives a per-step ratio ``E_{t+1} / E_t >= exp(-lr)``, with equality when
      the gradient is aligned with ``W``; so the excess decays geometrically at
      rate at most ``lr`` (ratio ``exp(-lr)``, ``1/e`` for the plain Polyak step),
      and ``1 - s_{i,opt}`` at rate at most ``lr m_i``.

    Joint training (``param="joint"``, NGD with global normalisation). The
    ``W`` block of the gradient carries a factor ``1 - s_opt``, so ``u`` takes
    almost the whole step: ``||u_t|| ~ lr t``, while ``||W_t||`` grows only
    logarithmically; the margins tend to ``||u_t|| / ||u_mm||`` (decoder SVM
    ``u_mm``), so the loss (``L* = 0``) decays like ``exp(-(lr / ||u_mm||) t)``.
    This is faster than the ``exp(-t^{1/3})`` upper bound of SPEC 6.

    The rates are the same for the logistic and the exponential loss (both
    behave like ``exp(-x)`` in the tail); ``loss`` is only recorded.

    Parameters
    ----------
    problem : AttentionProblem
    method : {"gd", "ngd", "polyak"} (``"ps"`` is an alias of ``"polyak"``)
    lr : float, optional
        Step size; required for GD and NGD, default 1 for Polyak (multiplier).
    loss : {"logistic", "exp"}, default "logistic"
    selection : array_like of int, shape (n,), optional
        Predict for the direction ``W_mm(selection)`` (local convergence);
        default the optimal tokens.
    param : {"W", "joint"}, default "W"
        Fixed decoder or joint ``(u, W)`` training (NGD only).
    svm : MarginSolution or DecoderSolution, optional
        A solution already computed (``theory.solve_wsvm``; for joint,
        ``theory.solve_decoder_svm``), to skip the solve.

    Returns
    -------
    RatePredictions

    Raises
    ------
    ValueError
        Unknown method, loss or param; missing or nonpositive ``lr``; joint
        training with a method other than NGD; ``svm`` solved for another selection.
    InfeasibleError
        The max-margin problem has no solution (from the SVM solver).

    Examples
    --------
    Two sequences whose tokens lie on ``e_1``; their constraints read
    ``4 W_11 >= 1`` and ``2 W_11 >= 1``, so ``W_mm = 0.5 e_1 e_1^T`` and the
    margins are 2 (no support token) and 1:

    >>> from theory import AttentionProblem
    >>> X = np.array([[[2., 0.], [0., 0.]], [[-1., 0.], [1., 0.]]])
    >>> pred = predicted_rates(AttentionProblem(X, [1, -1], [1., 0.]), "ngd", lr=0.1)
    >>> round(pred.W_mm_norm, 6), pred.min_margins.round(6).tolist()
    (0.5, [2.0, 1.0])
    >>> round(pred.excess_rate, 6), pred.s_opt_rate.round(6).tolist()
    (0.2, [0.4, 0.2])
    """
    from .problem import LOSSES

    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(_METHODS)}")
    method = _METHODS[method]
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
    if param not in ("W", "joint"):
        raise ValueError(f"param must be 'W' or 'joint', got {param!r}")
    if lr is None:
        if method != "polyak":
            raise ValueError(f"{method} needs a step size lr")
        lr = 1.0
    lr = float(lr)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite positive number, got {lr}")

    if svm is not None and selection is not None and not np.array_equal(
            np.asarray(svm.selection), problem.check_selection(selection)):
        raise ValueError(f"svm was solved for selection {np.asarray(svm.selection).tolist()}, "
                         f"not the requested {np.asarray(selection).tolist()}")
    if param == "joint":
        if method != "ngd":
            raise ValueError(f"joint-training predictions are derived for NGD only, not {method!r}")
        if svm is None:
            from .svm import solve_decoder_svm

            svm = solve_decoder_svm(problem, selection)
        un = float(svm.norm_value)
        return RatePredictions(
            method=method, lr=lr, loss=loss, param=param, W_mm_norm=None, min_margins=None,
            support_sequences=None, norm_model="log", norm_slope=None, excess_model="exp",
            excess_rate=lr / un, excess_exponent=None, s_opt_model=None, s_opt_rate=None,
            s_opt_exponent=None, step_length=lr, corr_model="power", corr_exponent=-1.0,
            u_mm_norm=un, u_norm_slope=lr,
        )

    if svm is None:
        from .svm import solve_wsvm

        svm = solve_wsvm(problem, selection)
    w = float(svm.norm_value)
    m = np.nanmin(svm.margins, axis=1)
    # A sequence has a support token when its smallest margin is 1 (solver tolerance).
    support = np.asarray(svm.support).any(axis=1)
    common = dict(method=method, lr=lr, loss=loss, param=param, W_mm_norm=w, min_margins=m,
                  support_sequences=support)
    if method == "ngd":
        return RatePredictions(
            **common, norm_model="linear", norm_slope=lr, excess_model="exp", excess_rate=lr / w,
            excess_exponent=None, s_opt_model="exp", s_opt_rate=lr * m / w, s_opt_exponent=None,
            step_length=lr, corr_model="power", corr_exponent=-1.0,
        )
    if method == "gd":
        return RatePredictions(
            **common, norm_model="log", norm_slope=w, excess_model="power", excess_rate=None,
            excess_exponent=-1.0, s_opt_model="power", s_opt_rate=None, s_opt_exponent=-m,
            step_length=0.0, corr_model="log", corr_exponent=-2.0,
        )
    return RatePredictions(
        **common, norm_model="linear", norm_slope=lr * w, excess_model="exp", excess_rate=lr,
        excess_exponent=None, s_opt_model="exp", s_opt_rate=lr * m, s_opt_exponent=None,
        step_length=lr * w, corr_model="power", corr_exponent=-1.0,
    )
