"""Tests of the rate-fitting API (theory.rates): exact and noisy curves, drops, errors,
assert_rate messages and predicted_rates on instances with a closed-form W_mm."""

import numpy as np
import pytest

from theory import AttentionProblem, assert_rate, fit_rate, predicted_rates

T_POW = np.geomspace(1.0, 1e4, 60)
T_LIN = np.arange(0.0, 400.0)


def _curve(model, t, C=2.0, p=None, r=None, a=None, q=None):
    if model == "power":
        return C * t**p
    if model == "exp":
        return C * np.exp(-r * t)
    if model == "log":
        return a * np.log(t) + C
    return C * np.exp(-r * t**q)


# ------------------------------------------------------------------ exact curves
@pytest.mark.parametrize("p", [-2.0, -1.0, -0.37, 1.3])
@pytest.mark.parametrize("C", [0.01, 5.0])
def test_power_exact(p, C):
    fit = fit_rate(T_POW, _curve("power", T_POW, C, p=p), "power")
    np.testing.assert_allclose(fit.exponent, p, atol=1e-6)
    np.testing.assert_allclose(fit.const, C, rtol=1e-6)
    np.testing.assert_allclose(fit.r2, 1.0, atol=1e-9)
    assert (fit.n_points, fit.n_dropped, fit.window) == (60, 0, (1.0, 1e4))


@pytest.mark.parametrize("r", [0.004, 0.05, 1.7])
def test_exp_exact_linear_and_log_values(r):
    v = _curve("exp", T_LIN, 3.0, r=r)
    lin = fit_rate(T_LIN, v, "exp")
    logv = fit_rate(T_LIN, np.log(3.0) - r * T_LIN, "exp", log_values=True)
    # Past t ~ 708 / r the linear values underflow; the log form keeps every point.
    assert logv.n_points == T_LIN.size and logv.n_dropped == 0
    for fit in (lin, logv):
        np.testing.assert_allclose(fit.rate, r, atol=1e-6)
        np.testing.assert_allclose(fit.log_const, np.log(3.0), atol=1e-6)


@pytest.mark.parametrize("a, b", [(2.0, 1.0), (-0.7, 30.0)])
def test_log_exact(a, b):
    fit = fit_rate(T_POW, _curve("log", T_POW, b, a=a), "log")
    np.testing.assert_allclose([fit.slope, fit.const], [a, b], atol=1e-6)
    assert fit.log_const is None


@pytest.mark.parametrize("q", [1 / 3, 0.5, 1.0, 1.7])
def test_stretched_exact_fitted_and_fixed_power(q):
    t = np.geomspace(1.0, 2000.0, 80)
    r = 0.5 / 2000.0**q * 60  # the curve falls by ~60 e-folds over the range
    y = np.log(4.0) - r * t**q
    free = fit_rate(t, y, "stretched", log_values=True)
    np.testing.assert_allclose([free.power, free.rate], [q, r], rtol=1e-6)
    assert not free.power_fixed and set(free.stderr) == {"rate", "power", "log_const"}
    fixed = fit_rate(t, y, "stretched", power=q, log_values=True)
    np.testing.assert_allclose(fixed.rate, r, rtol=1e-9)
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
    # 5 standard deviations of the least-squares estimator: fails by chance w.p. < 1e-6.
    assert abs(got - true) <= 5 * sd
    # The reported standard error estimates sd from the residuals: with >= 60
    # points its relative error is ~ 1/sqrt(2 dof) < 0.1, so 0.6..1.4 is > 4 sigma.
    name = next(iter(fit.params))
    assert 0.6 * sd <= fit.stderr[name] <= 1.4 * sd
    lo, hi = fit.conf_int(name, 0.999999)
    assert lo <= true <= hi


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
    assert abs(fit.rate - r) <= 5 * sd[1]
    assert abs(fit.power - q) <= 5 * sd[2]
    np.testing.assert_allclose(fit.stderr["power"], sd[2], rtol=0.4)


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
    np.testing.assert_allclose(fit.rate, 0.1, atol=1e-9)
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
    np.testing.assert_allclose(fit.rate, 0.5, atol=1e-12)


def test_window_selects_points_without_counting_them_as_dropped():
    t = np.arange(1.0, 101.0)
    # Two regimes: only the late one follows t^-2.
    v = np.where(t < 50, 1.0 / t, 50.0 / t**2)
    fit = fit_rate(t, v, "power", window=(50, None))
    np.testing.assert_allclose(fit.exponent, -2.0, atol=1e-9)
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
    ],
)
def test_fit_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_rate(*args, **kwargs)


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
    # With q held at 1/3 the fitted rate is still positive, but the law fits poorly.
    fit = assert_rate(t, y, "stretched", rate=0.0, tol=0.0, bound="lower", fixed_power=1 / 3,
                      log_values=True)
    assert fit.power_fixed and fit.rate > 0 and fit.r2 < 0.99
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


def test_assert_rate_power_fixed_and_checked_is_an_error():
    with pytest.raises(ValueError, match="both held fixed"):
        assert_rate(T_POW, np.exp(-T_POW), "stretched", power=1.0, fixed_power=1.0, tol=0.1)


# ------------------------------------------------------------------ predicted_rates
def _two_sequence_problem(a):
    """Sequence 0: tokens (a e1, 0), label +1; sequence 1: (-e1, e1), label -1; u = e1.

    Self-attention constraints: a^2 W11 >= 1 and 2 W11 >= 1, so
    W_mm = max(1/a^2, 1/2) e1 e1^T with margins (a^2 W11, 2 W11).
    """
    X = np.array([[[a, 0.0], [0.0, 0.0]], [[-1.0, 0.0], [1.0, 0.0]]])
    return AttentionProblem(X, [1, -1], [1.0, 0.0])


@pytest.mark.parametrize("a", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("lr", [0.1, 0.7])
def test_predicted_rates_closed_form(a, lr):
    p = _two_sequence_problem(a)
    w11 = max(1 / a**2, 0.5)
    m = np.array([a**2 * w11, 2 * w11])
    ngd = predicted_rates(p, "ngd", lr)
    np.testing.assert_allclose(ngd.W_mm_norm, w11, rtol=1e-7)
    np.testing.assert_allclose(ngd.min_margins, m, rtol=1e-7)
    np.testing.assert_array_equal(ngd.support_sequences, np.isclose(m, 1.0))
    np.testing.assert_allclose(ngd.excess_rate, lr / w11, rtol=1e-7)
    np.testing.assert_allclose(ngd.s_opt_rate, lr * m / w11, rtol=1e-7)
    assert (ngd.norm_model, ngd.norm_slope, ngd.step_length) == ("linear", lr, lr)
    assert (ngd.excess_model, ngd.corr_model, ngd.corr_exponent) == ("exp", "power", -1.0)

    gd = predicted_rates(p, "gd", lr)
    assert (gd.norm_model, gd.excess_model, gd.excess_exponent) == ("log", "power", -1.0)
    np.testing.assert_allclose(gd.norm_slope, w11, rtol=1e-7)
    np.testing.assert_allclose(gd.s_opt_exponent, -m, rtol=1e-7)
    assert gd.step_length == 0.0 and gd.corr_model == "log"

    ps = predicted_rates(p, "ps")
    assert ps.method == "polyak" and ps.lr == 1.0 and ps.excess_rate == 1.0
    np.testing.assert_allclose([ps.norm_slope, ps.step_length], [w11, w11], rtol=1e-7)
    np.testing.assert_allclose(ps.s_opt_rate, m, rtol=1e-7)
    np.testing.assert_allclose(predicted_rates(p, "polyak", lr).excess_rate, lr)


def _orthogonal_problem(a, b):
    """Sequence 0 lives on e1, sequence 1 on e2 (labels +1, u = e1 + e2).

    Constraints a^2 W11 >= 1 and b^2 W22 >= 1: W_mm = diag(1/a^2, 1/b^2, 0), both
    margins 1. Selecting token 1 of sequence 0 flips its constraint to -a^2 W11 >= 1.
    """
    X = np.zeros((2, 2, 3))
    X[0, 0, 0], X[1, 0, 1] = a, b
    return AttentionProblem(X, [1, 1], [1.0, 1.0, 0.0])


@pytest.mark.parametrize("a, b", [(1.0, 1.0), (0.5, 2.0), (3.0, 1.5)])
def test_predicted_rates_orthogonal_sequences_and_selection(a, b):
    p = _orthogonal_problem(a, b)
    w = np.hypot(a**-2, b**-2)
    for selection in (None, [1, 0]):
        pred = predicted_rates(p, "ngd", 0.2, selection=selection)
        np.testing.assert_allclose([pred.W_mm_norm, pred.excess_rate], [w, 0.2 / w], rtol=1e-7)
        np.testing.assert_allclose(pred.min_margins, [1.0, 1.0], rtol=1e-7)
        assert pred.support_sequences.all()


def test_predicted_rates_rejects_svm_of_another_selection():
    from theory import solve_wsvm

    p = _orthogonal_problem(1.0, 2.0)
    with pytest.raises(ValueError, match=r"solved for selection \[0, 0\], not the requested"):
        predicted_rates(p, "ngd", 0.1, selection=[1, 0], svm=solve_wsvm(p))


def test_predicted_rates_joint():
    # Decoder SVM of the two-sequence problem: 2 u1 >= 1 and u1 >= 1, so u_mm = e1.
    joint = predicted_rates(_two_sequence_problem(2.0), "ngd", 0.3, param="joint")
    np.testing.assert_allclose([joint.u_mm_norm, joint.excess_rate, joint.u_norm_slope],
                               [1.0, 0.3, 0.3], rtol=1e-7)
    assert joint.norm_model == "log" and joint.W_mm_norm is None


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("adam", 0.1), {}, "unknown method 'adam'"),
        (("gd",), {}, "gd needs a step size"),
        (("ngd", -1.0), {}, "finite positive"),
        (("ngd", 0.1), {"loss": "hinge"}, "unknown loss"),
        (("ngd", 0.1), {"param": "kq"}, "param must be"),
        (("gd", 0.1), {"param": "joint"}, "NGD only"),
    ],
)
def test_predicted_rates_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predicted_rates(_two_sequence_problem(1.0), *args, **kwargs)
