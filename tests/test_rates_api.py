"""Tests of the rate-fitting API (theory.fitting, theory.predictions): exact and noisy curves,
drops, errors, assert_rate messages, RateLaw objects, and predicted_rates on the hand-built
instances of conftest.py, whose W_mm is known in closed form.

Exact curves are fitted to rounding error: the tolerances below are a few times the largest
deviation measured over each test's parameters (stated next to each).
"""

import numpy as np
import pytest

import theory.rates
from theory import (RateFit, RateLaw, RatePredictions, assert_rate, fit_rate, predicted_rates,
                    solve_wsvm)

T_POW = np.geomspace(1.0, 1e4, 60)
T_LIN = np.arange(0.0, 400.0)


def _curve(model, t, C=2.0, p=None, r=None, a=None, q=None):
    if model == "power":
        return C * t**p
    if model == "exp":
        return C * np.exp(-r * t)
    if model == "log":
        return a * np.log(t) + C
    if model == "linear":
        return a * t + C
    if model == "logpower":
        return C * np.log(t) ** p
    return C * np.exp(-r * t**q)


# ------------------------------------------------------------------ exact curves
@pytest.mark.parametrize("p", [-2.0, -1.0, -0.37, 1.3])
@pytest.mark.parametrize("C", [0.01, 5.0])
def test_power_exact(p, C):
    fit = fit_rate(T_POW, _curve("power", T_POW, C, p=p), "power")
    # measured max |err| 2.2e-16 (exponent), 1.3e-15 relative (const), 0 (1 - R^2)
    np.testing.assert_allclose(fit.exponent, p, rtol=0, atol=1e-15)
    np.testing.assert_allclose(fit.const, C, rtol=5e-15)
    np.testing.assert_allclose(fit.r2, 1.0, rtol=0, atol=1e-15)
    assert (fit.n_points, fit.n_dropped, fit.window) == (60, 0, (1.0, 1e4))


@pytest.mark.parametrize("r", [0.004, 0.05, 1.7])
def test_exp_exact_linear_and_log_values(r):
    v = _curve("exp", T_LIN, 3.0, r=r)
    lin = fit_rate(T_LIN, v, "exp")
    logv = fit_rate(T_LIN, np.log(3.0) - r * T_LIN, "exp", log_values=True)
    # Past t ~ 708 / r the linear values underflow; the log form keeps every point.
    assert logv.n_points == T_LIN.size and logv.n_dropped == 0
    for fit in (lin, logv):
        # measured max 2.2e-16 relative (rate), 2.4e-15 absolute (log C)
        np.testing.assert_allclose(fit.rate, r, rtol=1e-15)
        np.testing.assert_allclose(fit.log_const, np.log(3.0), rtol=0, atol=1e-14)


@pytest.mark.parametrize("a, b", [(2.0, 1.0), (-0.7, 30.0)])
def test_log_exact(a, b):
    fit = fit_rate(T_POW, _curve("log", T_POW, b, a=a), "log")
    # measured max |err| 1.1e-16 (slope), 3.6e-15 (const)
    np.testing.assert_allclose([fit.slope, fit.const], [a, b], rtol=0, atol=1e-14)
    assert fit.log_const is None


@pytest.mark.parametrize("a, b", [(0.1, -3.0), (-2.5, 40.0)])
def test_linear_exact_including_t_zero_and_negative(a, b):
    t = np.arange(-50.0, 400.0)
    fit = fit_rate(t, _curve("linear", t, b, a=a), "linear")
    # t <= 0 is kept; measured max |err| 0 (slope), 3.6e-15 (const)
    assert fit.n_points == t.size and fit.n_dropped == 0 and fit.log_const is None
    np.testing.assert_allclose([fit.slope, fit.const], [a, b], rtol=0, atol=1e-14)


@pytest.mark.parametrize("p", [-2.0, -0.5, 1.5])
def test_logpower_exact_drops_t_at_most_one(p):
    t = np.concatenate([[0.0, 0.5, 1.0], np.geomspace(2.0, 1e6, 50)])
    v = np.where(t > 1, 7.0 * np.log(np.where(t > 1, t, 2.0)) ** p, 1.0)
    fit = fit_rate(t, v, "logpower")
    assert fit.dropped == {"t <= 1 (log t <= 0)": 3} and fit.n_points == 50
    # measured max |err| 2.2e-16 (exponent), 1.0e-15 relative (const)
    np.testing.assert_allclose(fit.exponent, p, rtol=0, atol=1e-15)
    np.testing.assert_allclose(fit.const, 7.0, rtol=4e-15)


@pytest.mark.parametrize("q", [1 / 3, 0.5, 1.0, 1.7])
def test_stretched_exact_fitted_and_fixed_power(q):
    t = np.geomspace(1.0, 2000.0, 80)
    r = 0.5 / 2000.0**q * 60  # the curve falls by ~60 e-folds over the range
    y = np.log(4.0) - r * t**q
    free = fit_rate(t, y, "stretched", log_values=True)
    # q is found by a bounded scalar search: measured max rel err 5.9e-9 (q), 7.4e-8 (r)
    np.testing.assert_allclose([free.power, free.rate], [q, r], rtol=3e-7)
    assert not free.power_fixed and set(free.stderr) == {"rate", "power", "log_const"}
    fixed = fit_rate(t, y, "stretched", power=q, log_values=True)
    # one least-squares solve: measured 2.2e-16 relative
    np.testing.assert_allclose(fixed.rate, r, rtol=1e-15)
    assert fixed.power_fixed and fixed.power == q and "power" not in fixed.stderr


# ------------------------------------------------------------------ noisy curves
def _ols_sd(x, sigma):
    """Standard deviation of an OLS slope with i.i.d. N(0, sigma^2) residuals."""
    return sigma / np.sqrt(np.sum((x - x.mean()) ** 2))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("model", ["power", "exp", "log"])
def test_noisy_within_noise_derived_tolerance(model, seed):
    rng = np.random.default_rng(seed)
    sigma = 0.05
    if model == "power":
        t, x, true = T_POW, np.log(T_POW), -1.2
        v = _curve("power", t, 2.0, p=true) * np.exp(sigma * rng.standard_normal(t.size))
    elif model == "exp":
        t, x, true = T_LIN, T_LIN, 0.03
        v = _curve("exp", t, 2.0, r=true) * np.exp(sigma * rng.standard_normal(t.size))
    else:
        t, x, true = T_POW, np.log(T_POW), 1.5
        v = _curve("log", t, 1.0, a=true) + sigma * rng.standard_normal(t.size)
    fit = fit_rate(t, v, model)
    got = fit.params[{"power": "exponent", "exp": "rate", "log": "slope"}[model]]
    sd = _ols_sd(x, sigma)
    # measured max |err| 1.24 sd of the least-squares estimator over the 15 cases; tol 4 sd
    assert abs(got - true) <= 4 * sd, (got - true) / sd
    # The reported standard error estimates sd from the residuals (relative error
    # ~ 1/sqrt(2 dof)): measured max |stderr / sd - 1| 0.125; tol 0.3.
    name = next(iter(fit.params))
    np.testing.assert_allclose(fit.stderr[name], sd, rtol=0.3)
    # The 99.99 % interval is got +- 3.9 stderr (t quantile at >= 58 dof): it holds the
    # truth, and its half-width is that quantile times the stderr exactly.
    from scipy import stats

    lo, hi = fit.conf_int(name, 0.9999)
    assert lo <= true <= hi
    np.testing.assert_allclose(hi - got, stats.t.ppf(0.99995, fit.dof) * fit.stderr[name],
                               rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_noisy_stretched_power_within_jacobian_tolerance(seed):
    rng = np.random.default_rng(seed)
    t = np.geomspace(1.0, 5000.0, 200)
    q, r, sigma = 1 / 3, 2.0, 0.02
    y = 1.0 - r * t**q + sigma * rng.standard_normal(t.size)
    fit = fit_rate(t, y, "stretched", log_values=True)
    # Gauss-Newton covariance at the true parameters: sigma^2 (J^T J)^-1.
    J = np.column_stack([np.ones_like(t), -t**q, -r * t**q * np.log(t)])
    sd = sigma * np.sqrt(np.diag(np.linalg.inv(J.T @ J)))
    # measured max |err| 0.41 sd (rate) and 0.37 sd (q) over seeds 0-2; tol 1.5 sd
    assert abs(fit.rate - r) <= 1.5 * sd[1], (fit.rate - r) / sd[1]
    assert abs(fit.power - q) <= 1.5 * sd[2], (fit.power - q) / sd[2]
    # measured max |stderr / sd - 1| 0.069; tol 0.2
    np.testing.assert_allclose(fit.stderr["power"], sd[2], rtol=0.2)


# ------------------------------------------------------------------ dropped points
def test_dropped_points_are_counted_per_reason():
    t = np.arange(0.0, 40.0)
    v = 5.0 * np.exp(-0.1 * t)
    v[3], v[5], v[7], v[9], v[11], v[13] = 0.0, -1.0, np.nan, np.inf, 1e-310, 0.0
    t = t.copy()
    t[15] = np.nan
    fit = fit_rate(t, v, "exp")
    assert fit.dropped == {
        "non-finite t": 1,
        "non-finite value": 2,
        "negative value": 1,
        "zero value (underflow)": 2,
        "subnormal value (underflow)": 1,
    }
    assert fit.n_dropped == 7 and fit.n_points == 33
    np.testing.assert_allclose(fit.rate, 0.1, rtol=1e-15)  # measured 1.1e-16 relative
    assert "7 dropped" in fit.summary() and "1 subnormal value (underflow)" in fit.summary()


def test_t_zero_dropped_for_power_but_kept_for_exp():
    t = np.arange(0.0, 20.0)
    power = fit_rate(t, np.where(t > 0, t, 1.0) ** -1.0, "power")
    assert power.dropped == {"t <= 0": 1} and power.n_points == 19
    assert fit_rate(t, np.exp(-t), "exp").n_dropped == 0


def test_log_values_minus_inf_counted_as_zero():
    t = np.arange(1.0, 30.0)
    y = -0.5 * t
    y[[2, 4]] = -np.inf
    y[6] = np.nan
    fit = fit_rate(t, y, "exp", log_values=True)
    assert fit.dropped == {"zero value (log = -inf)": 2, "non-finite value": 1}
    np.testing.assert_allclose(fit.rate, 0.5, rtol=1e-15)  # measured 0 (exact)


def test_window_selects_points_without_counting_them_as_dropped():
    t = np.arange(1.0, 101.0)
    # Two regimes: only the late one follows t^-2.
    v = np.where(t < 50, 1.0 / t, 50.0 / t**2)
    fit = fit_rate(t, v, "power", window=(50, None))
    np.testing.assert_allclose(fit.exponent, -2.0, rtol=1e-15)  # measured 0 (exact)
    assert fit.window == (50.0, 100.0) and fit.n_points == 51 and fit.n_dropped == 0


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.arange(5.0), np.ones(4), "exp"), {}, r"same shape, got \(5,\) and \(4,\)"),
        ((np.arange(5.0), np.ones((5, 1)), "exp"), {}, "values must be 1-dimensional"),
        ((np.arange(5.0), np.ones(5), "cubic"), {}, "unknown model 'cubic'"),
        ((np.arange(5.0), np.ones(5), "exp"), {"window": (3, 1)}, "is empty"),
        ((np.arange(5.0), np.ones(5), "exp"), {"window": (10, 20)}, "contains none of the 5"),
        ((np.arange(5.0), np.ones(5), "exp"), {"window": 3}, "pair"),
        ((np.arange(5.0), np.ones(5), "exp"), {"power": 0.5}, "stretched"),
        ((np.arange(1.0, 6), np.ones(5), "log"), {"log_values": True}, "does not apply"),
        ((np.arange(5.0), [1, 0, 0, 0, 1.0], "exp"), {}, r"at least 3 usable points, got 2 "
         r"of 5 in the window; dropped: 3 zero value \(underflow\)"),
        ((np.arange(1.0, 4.0), np.ones(3), "stretched"), {}, "at least 4 usable points"),
        ((np.ones(4), np.ones(4), "exp"), {}, "share one abscissa"),
        ((np.arange(5.0), np.ones(5), "linear"), {"log_values": True}, "does not apply"),
        ((np.arange(4.0), np.ones(4), "logpower"), {}, r"got 2 of 4 in the window; dropped: 2 t <= 1"),
    ],
)
def test_fit_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_rate(*args, **kwargs)


T5 = np.arange(1.0, 6.0)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((T5, T5 + 1j, "exp"), {}, "values must hold real numbers.*complex128"),
        ((T5 + 0j, T5, "exp"), {}, "t must hold real numbers.*complex128"),
        ((T5, np.ones(5, bool), "exp"), {}, "values must hold real numbers.*bool"),
        ((T5, ["1", "2", "3", "4", "5"], "exp"), {}, "values must hold real numbers.*<U1"),
        ((T5, np.array([1.0, None, 2, 3, 4], object), "exp"), {}, "values must hold real "
         "numbers, got NoneType None"),
        ((T5, T5, "exp"), {"window": ("a", None)}, "window bound must be a real number, got "
         "str 'a'"),
        ((T5, T5, "stretched"), {"power": "1"}, "power must be a real number"),
        ((T5, T5, "stretched"), {"power_bounds": (0.1, None)}, "power_bounds must be a pair"),
    ],
)
def test_fit_type_errors(args, kwargs, match):
    with pytest.raises(TypeError, match=match):
        fit_rate(*args, **kwargs)


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-100, 1e100, 1e200, 1e300])
def test_extreme_scales_are_fitted_exactly(scale):
    # The least squares scale the centred data by powers of two, which is exact: t of
    # 1e200 neither overflows the sums of squares nor loses the rate.
    t = scale * np.arange(1.0, 201.0)
    # measured max rel err 4.4e-16 (exp rate), 5.6e-16 (linear slope), 0 (1 - R^2),
    # 2.2e-16 (rate of log values of size 1e+-300) over the six scales; tol 2e-15
    exp = fit_rate(t, -3.0 * t / scale, "exp", log_values=True)
    np.testing.assert_allclose(exp.rate * scale, 3.0, rtol=2e-15)
    lin = fit_rate(t, 5.0 * t, "linear")
    np.testing.assert_allclose([lin.slope, lin.r2], [5.0, 1.0], rtol=2e-15)
    # Log values far outside the float64 range of the values themselves.
    logv = fit_rate(np.arange(1.0, 201.0), -scale * np.arange(1.0, 201.0), "exp",
                    log_values=True)
    np.testing.assert_allclose(logv.rate, scale, rtol=2e-15)


# ------------------------------------------------------------------ assert_rate
def test_assert_rate_passes_and_returns_fit():
    fit = assert_rate(T_LIN, np.exp(-0.02 * T_LIN), "exp", rate=0.0201, tol=0, rtol=0.01)
    np.testing.assert_allclose(fit.rate, 0.02, atol=1e-12)


def test_assert_rate_failure_message_shows_fitted_expected_r2_window():
    with pytest.raises(AssertionError) as info:
        assert_rate(T_LIN, np.exp(-0.02 * T_LIN), "exp", rate=0.025, tol=1e-3,
                    window=(100, 300))
    msg = str(info.value)
    assert "fitted rate = 0.02 is off the expected 0.025 by 0.005 > allowed 0.001" in msg
    assert "R^2 = 1.000000" in msg and "window t in [100, 300], 201 points" in msg


def test_assert_rate_bounds_and_rtol():
    t, v = T_POW, T_POW**-1.5
    assert_rate(t, v, "power", exponent=-1.0, tol=0.0, bound="upper")
    with pytest.raises(AssertionError, match="exceeds the upper bound -2"):
        assert_rate(t, v, "power", exponent=-2.0, tol=0.1, bound="upper")
    assert_rate(t, v, "power", exponent=-2.0, tol=0.0, bound="lower")
    with pytest.raises(AssertionError, match="is below the lower bound -1"):
        assert_rate(t, v, "power", exponent=-1.0, tol=0.4, bound="lower")
    assert_rate(t, v, "power", exponent=-1.6, tol=0.0, rtol=0.07)
    with pytest.raises(AssertionError, match=r"allowed 0.048 \(tol 0, rtol 0.03\)"):
        assert_rate(t, v, "power", exponent=-1.6, tol=0.0, rtol=0.03)


def test_assert_rate_stretched_fixed_power_and_min_r2():
    t = np.geomspace(1.0, 1e4, 100)
    y = -0.3 * t  # log of an exponential
    assert_rate(t, y, "stretched", power=1.0, tol=1e-6, log_values=True)
    # With q held at 1/3 the fit is the least-squares line of y against t^(1/3) ...
    fit = assert_rate(t, y, "stretched", rate=0.0, tol=0.0, bound="lower", fixed_power=1 / 3,
                      log_values=True)
    (slope, icpt), rss, *_ = np.polyfit(t ** (1 / 3), y, 1, full=True)
    # ... which fits an exponential poorly (R^2 0.81); measured relative deviations from
    # numpy's least squares 0 (rate, log C) and 2.2e-16 (R^2); tol 1e-13
    assert fit.power_fixed and fit.power == 1 / 3
    np.testing.assert_allclose([fit.rate, fit.log_const, fit.r2],
                               [-slope, icpt, 1 - rss[0] / np.sum((y - y.mean()) ** 2)],
                               rtol=1e-13)
    with pytest.raises(AssertionError, match=r"R\^2 = 0\.\d+ is below the required 0.99"):
        assert_rate(t, y, "stretched", rate=0.0, tol=0.0, bound="lower", fixed_power=1 / 3,
                    log_values=True, min_r2=0.99)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tol": 0.1}, "give the expected rate"),
        ({"exponent": -1.0, "tol": 0.1}, r"no parameter \['exponent'\]"),
        ({"rate": 1.0, "tol": -1.0}, "nonnegative"),
        ({"rate": 1.0, "tol": 0.1, "bound": "both"}, "bound must be"),
        ({"rate": 1.0, "tol": 0.1, "fixed_power": 0.5}, "applies to the 'stretched' model"),
    ],
)
def test_assert_rate_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        assert_rate(T_LIN, np.exp(-T_LIN / 100), "exp", **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rate": "0.01", "tol": 0.1}, "rate must be a real number, got str '0.01'"),
        ({"rate": 0.01, "tol": None}, "tol must be a real number, got NoneType"),
        ({"rate": 0.01, "tol": 0.1, "rtol": True}, "rtol must be a real number, got bool"),
        ({"rate": 0.01, "tol": 0.1, "min_r2": "high"}, "min_r2 must be a real number"),
    ],
)
def test_assert_rate_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        assert_rate(T_LIN, np.exp(-T_LIN / 100), "exp", **kwargs)


def test_assert_rate_rejects_a_non_finite_expectation():
    with pytest.raises(ValueError, match="expected rate must be finite, got nan"):
        assert_rate(T_LIN, np.exp(-T_LIN / 100), "exp", rate=np.nan, tol=0.1)


def test_assert_rate_power_fixed_and_checked_is_an_error():
    with pytest.raises(ValueError, match="both held fixed"):
        assert_rate(T_POW, np.exp(-T_POW), "stretched", power=1.0, fixed_power=1.0, tol=0.1)


# ------------------------------------------------------------------ RateLaw
LAW_CASES = [  # (law, t, log values or values of an exact curve following it)
    (RateLaw("exp", rate=0.03, log_values=True), T_LIN, 2.0 - 0.03 * T_LIN),
    (RateLaw("exp", rate=0.03), T_LIN, 5.0 * np.exp(-0.03 * T_LIN)),
    (RateLaw("power", exponent=-1.5, log_values=True), T_POW, 1.0 - 1.5 * np.log(T_POW)),
    (RateLaw("power", exponent=-1.5), T_POW, 3.0 * T_POW**-1.5),
    (RateLaw("log", slope=0.8), T_POW, 0.8 * np.log(T_POW) + 4.0),
    (RateLaw("linear", slope=0.1), T_LIN, 0.1 * T_LIN - 7.0),
    (RateLaw("logpower", exponent=-2.0), T_POW[1:], 0.5 * np.log(T_POW[1:]) ** -2.0),
    (RateLaw("stretched", rate=0.4, power=1 / 3, log_values=True), T_POW, -0.4 * T_POW ** (1 / 3)),
]


@pytest.mark.parametrize("law, t, v", LAW_CASES, ids=lambda c: getattr(c, "model", ""))
def test_law_is_the_assert_rate_arguments(law, t, v):
    expected = {"model": law.model, law.name: law.value, "log_values": law.log_values}
    if law.power is not None:
        expected["fixed_power"] = law.power
    assert dict(law) == expected and len(law) == len(expected) and set(law) == set(expected)
    fit = assert_rate(t, v, **law, tol=0.0, rtol=1e-15)  # measured max rel err 2.2e-16
    assert isinstance(fit, RateFit) and fit.model == law.model


@pytest.mark.parametrize("law, t, v", LAW_CASES, ids=lambda c: getattr(c, "model", ""))
@pytest.mark.parametrize("factor", [0.99, 1.01])
def test_a_one_percent_error_in_the_law_fails(law, t, v, factor):
    # Exact curves are fitted to 2.2e-16 (above), so a tolerance of 0.1 % of the
    # parameter passes the true law and rejects one off by 1 %.
    assert_rate(t, v, **law, tol=0.0, rtol=1e-3)
    wrong = {**law, law.name: factor * law.value}
    with pytest.raises(AssertionError, match=f"fitted {law.name} = .* is off the expected"):
        assert_rate(t, v, **wrong, tol=0.0, rtol=1e-3)


@pytest.mark.parametrize("law, t, v", LAW_CASES, ids=lambda c: getattr(c, "model", ""))
def test_law_curve_through_an_anchor_reproduces_the_curve(law, t, v):
    k = t.size // 2
    curve = law.curve(t, anchor=(t[k], v[k]))
    # measured max relative deviation 4.4e-14 (exp of a log-space step); tol 1e-13
    np.testing.assert_allclose(curve, v, rtol=1e-13, atol=1e-13)


def test_law_bounds_pass_through_to_assert_rate():
    t, v = T_POW, T_POW**-1.5
    upper = RateLaw("power", exponent=-1.0, bound="upper")
    assert dict(upper)["bound"] == "upper"
    assert_rate(t, v, **upper, tol=0.0)  # -1.5 <= -1
    with pytest.raises(AssertionError, match="exceeds the upper bound -2"):
        assert_rate(t, v, **RateLaw("power", exponent=-2.0, bound="upper"), tol=0.0)


def test_law_mean_and_text():
    laws = [RateLaw("exp", rate=r, log_values=True, bound="upper") for r in (0.1, 0.2, 0.6)]
    mean = RateLaw.mean(laws)
    assert mean == RateLaw("exp", rate=0.3, log_values=True, bound="upper")
    assert str(mean) == "exp law, rate 0.3 (upper bound), on log values"
    with pytest.raises(ValueError, match="cannot average laws of different kinds"):
        RateLaw.mean([laws[0], RateLaw("exp", rate=0.1)])
    with pytest.raises(ValueError, match="cannot average a law that gives no slope"):
        RateLaw.mean([RateLaw("log")])
    with pytest.raises(ValueError, match="no laws to average"):
        RateLaw.mean([])


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (("cubic",), {}, ValueError, "unknown model 'cubic'"),
        (("exp",), {"slope": 1.0}, ValueError, "has no parameter 'slope'; its parameter is 'rate'"),
        (("exp",), {"rate": np.inf}, ValueError, "rate must be finite, got inf"),
        (("exp",), {"rate": "0.1"}, TypeError, "rate must be a real number, got str"),
        (("log",), {"slope": 1.0, "log_values": True}, ValueError, "does not apply"),
        (("exp",), {"rate": 1.0, "log_values": 1}, TypeError, "log_values must be a bool"),
        (("exp",), {"rate": 1.0, "bound": "both"}, ValueError, "bound must be"),
        (("stretched",), {"rate": 1.0}, ValueError, "needs its exponent: give power=q"),
        (("exp",), {"rate": 1.0, "power": 0.5}, ValueError, "'stretched' model, not 'exp'"),
        (("stretched",), {"rate": 1.0, "power": -1.0}, ValueError, "finite positive"),
    ],
)
def test_law_construction_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        RateLaw(*args, **kwargs)


@pytest.mark.parametrize(
    "law, t, anchor, error, match",
    [
        (RateLaw("log"), T_POW, (1.0, 0.0), ValueError, "gives no slope: nothing to draw"),
        (RateLaw("power", exponent=-1.0), T_LIN, (1.0, 1.0), ValueError, "for t > 0 only"),
        (RateLaw("logpower", exponent=-1.0), T_POW, (2.0, 1.0), ValueError, "for t > 1 only"),
        (RateLaw("exp", rate=1.0), T_LIN, 3.0, TypeError, "anchor must be a pair"),
        (RateLaw("exp", rate=1.0), T_LIN, (1.0, "a"), TypeError, "anchor value must be a real"),
        (RateLaw("exp", rate=1.0), T_LIN + 1j, (1.0, 1.0), TypeError, "t must hold real"),
    ],
)
def test_law_curve_errors(law, t, anchor, error, match):
    with pytest.raises(error, match=match):
        law.curve(t, anchor=anchor)


# ------------------------------------------------------------------ predicted_rates
@pytest.mark.parametrize("a", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("lr", [0.1, 0.7])
def test_predicted_rates_closed_form(two_sequence_problem, a, lr):
    p = two_sequence_problem(a)
    w11 = max(1 / a**2, 0.5)
    m = np.array([a**2 * w11, 2 * w11])
    # The SVM is solved to ~1e-12 on this instance; the laws are formulas in it.
    rt = 1e-10
    ngd = predicted_rates(p, "ngd", lr)
    np.testing.assert_allclose(ngd.W_mm_norm, w11, rtol=rt)
    np.testing.assert_allclose(ngd.min_margins, m, rtol=rt)
    np.testing.assert_array_equal(ngd.support_sequences, np.isclose(m, 1.0))
    assert ngd.excess == RateLaw("exp", rate=ngd.excess.rate, log_values=True)
    np.testing.assert_allclose(ngd.excess.rate, lr / w11, rtol=rt)
    np.testing.assert_allclose([law.rate for law in ngd.s_opt], lr * m / w11, rtol=rt)
    assert all(law.log_values and law.bound is None for law in ngd.s_opt)
    assert ngd.norm == RateLaw("linear", slope=lr) and ngd.step_length == lr
    assert ngd.one_minus_corr == RateLaw("power", exponent=-1.0, bound="upper")
    # the slowest sequence is a support sequence: the excess rate
    np.testing.assert_allclose(ngd.s_opt_slowest.rate, lr / w11, rtol=rt)

    gd = predicted_rates(p, "gd", lr)
    assert gd.excess == RateLaw("power", exponent=-1.0, log_values=True)
    assert gd.norm.model == "log" and gd.one_minus_corr == RateLaw("logpower", exponent=-2.0)
    np.testing.assert_allclose(gd.norm.slope, w11, rtol=rt)
    np.testing.assert_allclose([law.exponent for law in gd.s_opt], -m, rtol=rt)
    np.testing.assert_allclose(gd.s_opt_slowest.exponent, -1.0, rtol=rt)
    assert gd.step_length == 0.0

    ps = predicted_rates(p, "ps")
    assert ps.method == "polyak" and ps.lr == 1.0
    assert ps.excess == RateLaw("exp", rate=1.0, log_values=True, bound="upper")
    assert ps.norm.bound == "upper" and all(law.bound == "upper" for law in ps.s_opt)
    np.testing.assert_allclose([ps.norm.slope, ps.step_length], [w11, w11], rtol=rt)
    np.testing.assert_allclose([law.rate for law in ps.s_opt], m, rtol=rt)
    np.testing.assert_allclose(predicted_rates(p, "polyak", lr).excess.rate, lr, rtol=0)


@pytest.mark.parametrize("method, lr", [("ngd", 0.3), ("gd", 2.0), ("polyak", 0.5)])
def test_flat_attributes_are_read_from_the_laws(two_sequence_problem, method, lr):
    pred = predicted_rates(two_sequence_problem(2.0), method, lr)
    assert pred.excess_model == pred.excess.model and pred.norm_model == pred.norm.model
    assert (pred.excess_rate, pred.excess_exponent) == (pred.excess.rate, pred.excess.exponent)
    assert pred.norm_slope == pred.norm.slope and pred.s_opt_model == pred.s_opt[0].model
    per_seq = pred.s_opt_rate if method != "gd" else pred.s_opt_exponent
    np.testing.assert_array_equal(per_seq, [law.value for law in pred.s_opt])
    assert (pred.s_opt_rate is None) == (method == "gd")
    assert pred.corr_model == {"gd": "log"}.get(method, "power")
    assert pred.corr_exponent == pred.one_minus_corr.exponent


def test_rates_module_reexports_fitting_and_predictions():
    assert theory.rates.fit_rate is fit_rate and theory.rates.assert_rate is assert_rate
    assert theory.rates.predicted_rates is predicted_rates
    assert theory.rates.RatePredictions is RatePredictions and theory.rates.RateLaw is RateLaw


@pytest.mark.parametrize("a, b", [(1.0, 1.0), (0.5, 2.0), (3.0, 1.5)])
def test_predicted_rates_orthogonal_sequences_and_selection(orthogonal_problem, a, b):
    p = orthogonal_problem(a, b)
    w = np.hypot(a**-2, b**-2)
    for selection in (None, [1, 0]):
        pred = predicted_rates(p, "ngd", 0.2, selection=selection)
        np.testing.assert_allclose([pred.W_mm_norm, pred.excess.rate], [w, 0.2 / w], rtol=1e-10)
        np.testing.assert_allclose(pred.min_margins, [1.0, 1.0], rtol=1e-10)
        assert pred.support_sequences.all()


def test_predicted_rates_rejects_svm_of_another_selection(orthogonal_problem):
    p = orthogonal_problem(1.0, 2.0)
    with pytest.raises(ValueError, match=r"solved for selection \[0, 0\], not the requested"):
        predicted_rates(p, "ngd", 0.1, selection=[1, 0], svm=solve_wsvm(p))


def test_predicted_rates_joint(two_sequence_problem):
    # Decoder SVM of the two-sequence problem: 2 u1 >= 1 and u1 >= 1, so u_mm = e1.
    joint = predicted_rates(two_sequence_problem(2.0), "ngd", 0.3, param="joint")
    np.testing.assert_allclose([joint.u_mm_norm, joint.excess.rate, joint.u_norm.slope],
                               [1.0, 0.3, 0.3], rtol=1e-10)
    assert joint.u_norm == RateLaw("linear", slope=0.3) and joint.u_norm_slope == 0.3
    assert joint.u_one_minus_corr == RateLaw("power", exponent=-1.0, bound="upper")
    # ||W_t|| grows like log t with no predicted slope; no W direction or s_opt law
    assert joint.norm == RateLaw("log") and joint.norm_slope is None
    assert joint.one_minus_corr is None and joint.s_opt is None and joint.s_opt_slowest is None
    assert joint.W_mm_norm is None and joint.corr_model == "power"


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (("adam", 0.1), {}, ValueError, "unknown method 'adam'"),
        ((["ngd"], 0.1), {}, ValueError, r"unknown method \['ngd'\]"),
        (("gd",), {}, ValueError, "gd needs a step size"),
        (("ngd", -1.0), {}, ValueError, "finite positive"),
        (("ngd", "0.1"), {}, TypeError, "lr must be a real number, got str"),
        (("ngd", True), {}, TypeError, "lr must be a real number, got bool"),
        (("ngd", 0.1), {"loss": "hinge"}, ValueError, "unknown loss"),
        (("ngd", 0.1), {"param": "kq"}, ValueError, "param must be"),
        (("gd", 0.1), {"param": "joint"}, ValueError, "NGD only"),
    ],
)
def test_predicted_rates_errors(two_sequence_problem, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        predicted_rates(two_sequence_problem(1.0), *args, **kwargs)
