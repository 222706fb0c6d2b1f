"""The rates suite: every asymptotic of docs/theory.md §6 asserted with a fitted rate.

Each check fits a parametric law (``theory.fit_rate``) to a simulated trajectory
over a late window and compares the fitted parameter with the law that
``theory.predicted_rates`` derives from ``W_mm`` (or ``u_mm``), passed as
``**pred.<curve>``. Every tolerance is a few times (2-4x) the largest deviation
measured over the seeds used, and both numbers are stated next to it. Run with
``pytest -m rates``.

Settings (the instances are the docs/theory.md §7 families at their default sizes):

* equal-score ``(n, T, d) = (6, 8, 10)``, seeds 0-3, ``W_0 = 0``, logistic loss;
* NGD ``lr = 0.1`` for 3000 steps, window ``[1500, 3000]``: ``c_t = lr t / ||W_mm||``
  reaches ~75-90 e-folds there, deep in the aligned regime;
* GD ``lr = 10`` for 3000 steps, window ``[300, 3000]``: GD's asymptotics hold
  once ``log(lr t)`` dominates the bounded offset of ``c_t``; with ``lr = 1`` the
  fitted excess exponent is still -1.15..-1.23 at t = 3000 (pre-asymptotic);
* Polyak (multiplier 1) for 1000 steps, every step recorded, window ``[100, 200]``.
"""

import functools

import numpy as np
import pytest

from sims import record_schedule, run
from sims.data import equal_score, gaussian_joint, general_random
from theory import (assert_rate, fit_rate, is_locally_optimal, predicted_rates,
                    solve_decoder_svm, solve_wsvm)

pytestmark = pytest.mark.rates

SEEDS = (0, 1, 2, 3)
NGD_LR, NGD_STEPS, NGD_WINDOW = 0.1, 3000, (1500, 3000)
GD_LR, GD_STEPS, GD_WINDOW = 10.0, 3000, (300, 3000)
PS_STEPS, PS_WINDOW = 1000, (100, 200)
BUDGET = 1000  # fixed budget of the ordering check (item 7)
RECORD = np.union1d(record_schedule("log", 3000, 200), [BUDGET])


@functools.lru_cache(maxsize=None)
def _equal(seed):
    p = equal_score(6, 8, 10, seed=seed)
    return p, solve_wsvm(p)


@functools.lru_cache(maxsize=None)
def _fixed(seed, method):
    """One fixed-decoder run from W_0 = 0 (shared by the checks that read it)."""
    p, svm = _equal(seed)
    if method == "ngd":
        tr = run(p, "ngd", NGD_STEPS, lr=NGD_LR, reference=svm.W, record=RECORD)
    elif method == "gd":
        tr = run(p, "gd", GD_STEPS, lr=GD_LR, reference=svm.W, record=RECORD)
    else:
        tr = run(p, "polyak", PS_STEPS, reference=svm.W, record="all")
    return tr, predicted_rates(p, method, tr.lr, svm=svm)


def _late(tr, window):
    return (tr.t >= window[0]) & (tr.t <= window[1])


# ------------------------------------------------------------------ 1. NGD
@pytest.mark.parametrize("seed", SEEDS)
def test_ngd_norm_grows_like_lr_t(seed):
    tr, pred = _fixed(seed, "ngd")
    late = _late(tr, NGD_WINDOW)
    ratio = tr.norm[late] / (pred.norm.slope * tr.t[late])
    # Every step has length lr from W_0 = 0, so ||W_t|| <= lr t exactly; once the
    # steps align with W_mm the ratio tends to 1 (the deficit is the early turn).
    # measured min ratio 0.9905 (deficit 9.5e-3) over seeds 0-3; tol deficit 0.02
    assert ratio.min() > 0.98, ratio.min()
    assert ratio.max() <= 1 + 1e-12
    # ||W_t|| ~ lr t: measured max |rel err| of the fitted slope 5.3e-4; tol 2e-3
    assert_rate(tr.t, tr.norm, **pred.norm, tol=0.0, rtol=2e-3, window=NGD_WINDOW)


@pytest.mark.parametrize("seed", SEEDS)
def test_ngd_log_excess_slope(seed):
    tr, pred = _fixed(seed, "ngd")
    # L - L* ~ exp(-lr t / ||W_mm||): measured max |rel err| 2.4e-4 over seeds 0-3; tol 7e-4
    # (measured 1 - R^2 <= 2.9e-9; required <= 1e-8)
    assert_rate(tr.t, tr.log_excess, **pred.excess, tol=0.0, rtol=7e-4, window=NGD_WINDOW,
                min_r2=1 - 1e-8)


@pytest.mark.parametrize("seed", SEEDS)
def test_ngd_log_one_minus_s_opt_slopes(seed):
    tr, pred = _fixed(seed, "ngd")
    assert pred.support_sequences.any()
    # 1 - s_{i,opt} ~ exp(-lr m_i t / ||W_mm||): the excess rate for sequences with a
    # support token (m_i = 1), faster for the others.
    for i, law in enumerate(pred.s_opt):
        if pred.support_sequences[i]:
            np.testing.assert_allclose(law.rate, pred.excess.rate, rtol=1e-6)
            # measured max |rel err| 3.5e-4 over the 22 support sequences of seeds 0-3; tol 1e-3
            rtol = 1e-3
        else:
            # measured max |rel err| 1.4e-3 over the 2 others (their margin m_i > 1 is
            # reached later); tol 4e-3
            rtol = 4e-3
        assert_rate(tr.t, tr.log_one_minus_s_opt[:, i], **law, tol=0.0, rtol=rtol,
                    window=NGD_WINDOW)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("factor", [0.99, 1.01])
def test_ngd_rates_one_percent_off_fail(seed, factor):
    tr, pred = _fixed(seed, "ngd")
    # With the tolerances above, a 1 % error in ||W_mm|| (hence in every rate) is caught.
    with pytest.raises(AssertionError, match="fitted rate = .* is off the expected"):
        assert_rate(tr.t, tr.log_excess, **{**pred.excess, "rate": factor * pred.excess.rate},
                    tol=0.0, rtol=7e-4, window=NGD_WINDOW)
    with pytest.raises(AssertionError, match="fitted slope = .* is off the expected"):
        assert_rate(tr.t, tr.norm, **{**pred.norm, "slope": factor * pred.norm.slope},
                    tol=0.0, rtol=2e-3, window=NGD_WINDOW)
    slow = pred.s_opt_slowest
    i = next(i for i, law in enumerate(pred.s_opt) if law is slow)
    with pytest.raises(AssertionError, match="fitted rate = .* is off the expected"):
        assert_rate(tr.t, tr.log_one_minus_s_opt[:, i], **{**slow, "rate": factor * slow.rate},
                    tol=0.0, rtol=1e-3, window=NGD_WINDOW)


@pytest.mark.parametrize("seed", SEEDS)
def test_ngd_one_minus_corr_at_least_t_inverse(seed):
    tr, pred = _fixed(seed, "ngd")
    # 1 - corr = O(t^-1): the fitted exponent is at most -1 ...
    fit = assert_rate(tr.t, 1 - tr.corr, **pred.one_minus_corr, tol=0.0, window=NGD_WINDOW)
    # ... and tends to -2 when the direction correction converges: measured -1.59 .. -1.96
    # over seeds 0-3 (spread 0.37); asserted band [-2.2, -1.4]
    assert -2.2 <= fit.exponent <= -1.4, fit.summary()


# ------------------------------------------------------------------ 2. GD
@pytest.mark.parametrize("seed", SEEDS)
def test_gd_norm_slope_per_log_t(seed):
    tr, pred = _fixed(seed, "gd")
    # ||W_t|| ~ ||W_mm|| log t + O(1): measured rel err of the slope -2.1 .. -2.8 % over
    # seeds 0-3 (pre-asymptotic, one-sided); tol 7 %
    assert_rate(tr.t, tr.norm, **pred.norm, tol=0.0, rtol=0.07, window=GD_WINDOW)


@pytest.mark.parametrize("seed", SEEDS)
def test_gd_excess_power_law(seed):
    tr, pred = _fixed(seed, "gd")
    # L - L* = Theta(1/t): measured exponent -1.011 .. -1.020 over seeds 0-3 (max |dev|
    # 0.020); tol 0.05
    assert_rate(tr.t, tr.log_excess, **pred.excess, tol=0.05, window=GD_WINDOW)


@pytest.mark.parametrize("seed", SEEDS)
def test_gd_one_minus_s_opt_power_laws(seed):
    tr, pred = _fixed(seed, "gd")
    # 1 - s_{i,opt} ~ t^{-m_i}: single sequences carry more log-t drift than the excess;
    # measured max |dev| 0.085 over the 24 sequences of seeds 0-3; tol 0.2
    for i, law in enumerate(pred.s_opt):
        assert_rate(tr.t, tr.log_one_minus_s_opt[:, i], **law, tol=0.2, window=GD_WINDOW)


# ------------------------------------------------------------------ 3. Polyak
def _polyak_window(seed):
    """Run, prediction, per-step log ratios of the excess in the window and the steps
    that made them."""
    tr, pred = _fixed(seed, "polyak")
    late = _late(tr, PS_WINDOW)[:-1]
    return tr, pred, np.diff(tr.log_excess)[late], tr.step_length[:-1][late]


@pytest.mark.parametrize("seed", SEEDS)
def test_polyak_excess_ratio_follows_the_step_length(seed):
    tr, pred, log_ratio, steps = _polyak_window(seed)
    # Never faster than exp(-lr) per step: by Jensen's inequality on the excess, a
    # positive sum of exp(-<A_k, W>) terms (measured min margin 4.3e-8; exact bound).
    assert log_ratio.min() >= -pred.excess.rate - 1e-9, log_ratio.min()
    assert_rate(tr.t, tr.log_excess, **pred.excess, tol=1e-6, window=PS_WINDOW)
    # The ratio actually reached depends on the step: once W_t is aligned, -<g, W_mm> ~
    # E (the excess), so a step s = lr E / ||g|| moves W_t by s^2 / lr along W_mm / ||W_mm||
    # and log(E_{t+1} / E_t) = -lr (s / (lr ||W_mm||))^2: 1/e when s reaches ||W_mm||.
    # measured max rel err of the window mean 7.2e-4 over seeds 0-3; tol 2e-3
    predicted = -tr.lr * (steps / (tr.lr * pred.W_mm_norm)) ** 2
    np.testing.assert_allclose(log_ratio.mean(), predicted.mean(), rtol=2e-3)


def test_polyak_reaches_one_over_e_on_three_of_four_seeds():
    # Measured: on seeds 0, 1, 3 the step reaches ||W_mm|| (s / ||W_mm|| > 0.9998) and the
    # mean log ratio is -1 within 1.0e-6; on seed 2 the iterates oscillate with
    # s / ||W_mm|| = 0.821 and ratio 0.509 up to t = 1000. tol 3e-6 on the aligned seeds.
    aligned = []
    for seed in SEEDS:
        tr, pred, log_ratio, steps = _polyak_window(seed)
        if steps.mean() / pred.step_length > 0.999:
            aligned.append(seed)
            np.testing.assert_allclose(log_ratio.mean(), -tr.lr, rtol=0, atol=3e-6)
    assert aligned == [0, 1, 3]


@pytest.mark.parametrize("seed", SEEDS)
def test_polyak_step_length_at_most_wmm(seed):
    tr, pred = _fixed(seed, "polyak")
    steps = tr.step_length[_late(tr, PS_WINDOW)]
    # step = E / ||g|| <= E ||W_mm|| / (-<g, W_mm>) <= ||W_mm|| (margins >= 1), up to
    # O(1 - s_opt) corrections; measured 0.82 .. 0.99995 ||W_mm|| (exact bound).
    assert steps.max() <= pred.step_length * (1 + 1e-9), steps.max() / pred.step_length


@pytest.mark.parametrize("seed", SEEDS)
def test_polyak_reaches_corr_first(seed):
    ps, _ = _fixed(seed, "polyak")
    target = 1 - 1e-2
    ps_hit = ps.t[np.argmax(ps.corr >= target)]  # every step recorded: exact
    assert ps.corr.max() >= target
    for method in ("ngd", "gd"):
        tr, _ = _fixed(seed, method)
        # With log-spaced records, the other method crosses after its last record below.
        below = tr.t[tr.corr < target]
        first_possible = below.max() + 1 if below.size else 0
        assert ps_hit < first_possible, (method, ps_hit, first_possible)


# ------------------------------------------------------------------ 4. global convergence
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [1.0, 3.0, 10.0])
@pytest.mark.parametrize("method, start", [("ngd", "random"), ("ngd", "opposite"),
                                           ("polyak", "random")])
def test_global_convergence_from_any_start(seed, scale, method, start):
    p, svm = _equal(seed)
    direction = np.random.default_rng(seed).standard_normal((p.d, p.d))
    if start == "opposite":
        direction = -svm.W
    W0 = scale * direction / np.linalg.norm(direction)
    steps, lr = (1000, 0.5) if method == "ngd" else (300, None)
    tr = run(p, method, steps, lr=lr, W0=W0, reference=svm.W)
    # Equal-score data: the only limit direction is W_mm (a random start has corr
    # ~ N(0, 1/d^2); measured crossing of corr 0.99 after <= 435 NGD / <= 51 Polyak steps).
    # measured max 1 - corr at the end 5.0e-4 over the 36 runs; tol 1.5e-3
    assert 1 - tr.corr[-1] < 1.5e-3, (tr.corr[0], tr.corr[-1])
    np.testing.assert_array_equal(tr.attn_argmax_final, p.opt)


# ------------------------------------------------------------------ 5. local convergence
LOCAL_SEEDS = range(6)
LOCAL_SCALES = (0.5, 2.0, 5.0)


@functools.lru_cache(maxsize=None)
def _local(seed, scale):
    p = general_random(6, 8, 10, seed=seed)
    rng = np.random.default_rng(100 * seed + int(10 * scale))
    G = rng.standard_normal((p.d, p.d))
    W0 = scale * G / np.linalg.norm(G)
    first = run(p, "ngd", 2000, lr=0.5, W0=W0, record=10)
    sel = first.attn_argmax_final
    sol = solve_wsvm(p, sel)
    # The same run measured against W_mm(selection) (the dynamics do not depend on it).
    tr = run(p, "ngd", 2000, lr=0.5, W0=W0, reference=sol.W)
    return p, sel, sol, tr


@pytest.mark.parametrize("seed", LOCAL_SEEDS)
@pytest.mark.parametrize("scale", LOCAL_SCALES)
def test_local_convergence_to_selection_svm(seed, scale):
    p, sel, sol, tr = _local(seed, scale)
    np.testing.assert_array_equal(tr.attn_argmax_final, sel)
    # The settled selection must be locally optimal (docs/theory.md §2) ...
    assert is_locally_optimal(p, sel, sol)
    # ... and W_t converges in direction to W_mm(selection): measured max 1 - corr at
    # t = 2000 8.4e-5 over the 18 runs; tol 3e-4 ...
    assert 1 - tr.corr[-1] < 3e-4, 1 - tr.corr[-1]
    # ... with the NGD law 1 - corr = O(t^-1) (measured exponents -1.76 .. -2.02).
    law = predicted_rates(p, "ngd", 0.5, selection=sel, svm=sol).one_minus_corr
    assert_rate(tr.t, 1 - tr.corr, **law, tol=0.0, window=(1000, 2000))


def test_local_optima_are_reached_on_the_general_family():
    # docs/theory.md §7: on this family the dynamics can settle away from opt; without
    # such runs the local-convergence checks above would only test global convergence.
    # Measured: 10 of 18 runs settle on a selection != opt; asserted 8 .. 17 (some reach opt).
    off = sum(not np.array_equal(_local(s, c)[1], _local(s, c)[0].opt)
              for s in LOCAL_SEEDS for c in LOCAL_SCALES)
    assert 8 <= off < 18, off


# ------------------------------------------------------------------ 6. joint training
JOINT_SEEDS = (0, 1, 2)
JOINT_LR, JOINT_STEPS, JOINT_WINDOW = 0.1, 2000, (200, 2000)


@functools.lru_cache(maxsize=None)
def _joint(seed):
    p = gaussian_joint(seed=seed)
    dec = solve_decoder_svm(p)
    tr = run(p, "ngd", JOINT_STEPS, lr=JOINT_LR, param="joint", reference_u=dec.u)
    return tr, predicted_rates(p, "ngd", JOINT_LR, param="joint", svm=dec)


@pytest.mark.parametrize("seed", JOINT_SEEDS)
def test_joint_decoder_converges_in_direction(seed):
    tr, pred = _joint(seed)
    # measured max 1 - corr(u_t, u_mm) at t = 2000 2.4e-4 over seeds 0-2; tol 7e-4
    assert 1 - tr.u_corr[-1] < 7e-4, tr.u_corr[-1]
    # u_t = lr t u_mm/||u_mm|| + lower order: 1 - corr = O(t^-1) (measured -1.8 .. -2.2).
    assert_rate(tr.t, 1 - tr.u_corr, **pred.u_one_minus_corr, tol=0.0, window=JOINT_WINDOW)


@pytest.mark.parametrize("seed", JOINT_SEEDS)
def test_joint_loss_rate(seed):
    tr, pred = _joint(seed)
    envelope = np.minimum.accumulate(tr.log_loss)
    # docs/theory.md §6 bounds the loss by O(exp(-r t^{1/3})), but the constant-step
    # dynamics decay faster, exponentially: ||u_t|| ~ lr t and the margins tend to
    # ||u_t|| / ||u_mm||, so log L ~ -(lr / ||u_mm||) t. A free stretched fit gives
    # q = 1: measured 0.998 .. 1.013 over seeds 0-2 (max |dev| 0.013); tol 0.04 ...
    assert_rate(tr.t, envelope, "stretched", power=1.0, tol=0.04, window=JOINT_WINDOW,
                log_values=True)
    # ... the exponential law with rate lr / ||u_mm|| fits: measured max |rel err| 2.5e-3
    # over seeds 0-2, tol 7e-3 (so a 1 % error fails); measured 1 - R^2 <= 3.0e-5,
    # required <= 1e-4 ...
    assert_rate(tr.t, envelope, **pred.excess, tol=0.0, rtol=7e-3, window=JOINT_WINDOW,
                min_r2=1 - 1e-4)
    for factor in (0.99, 1.01):
        with pytest.raises(AssertionError, match="fitted rate = .* is off the expected"):
            assert_rate(tr.t, envelope, **{**pred.excess, "rate": factor * pred.excess.rate},
                        tol=0.0, rtol=7e-3, window=JOINT_WINDOW)
    # ... where the q = 1/3 law does not (measured R^2 0.963 .. 0.965; required < 0.98).
    cube_root = fit_rate(tr.t, envelope, "stretched", JOINT_WINDOW, power=1 / 3,
                         log_values=True)
    assert cube_root.r2 < 0.98, cube_root.summary()


@pytest.mark.parametrize("seed", JOINT_SEEDS)
def test_joint_W_grows_slower_than_u(seed):
    tr, pred = _joint(seed)
    late = _late(tr, JOINT_WINDOW)
    # Global normalisation: u takes almost the whole step of length lr, so
    # ||u_t|| <= lr t exactly, and ||u_t|| ~ lr t: the W block and the early turn of u
    # take the rest (measured ratio 0.962 .. 0.988 at t = 2000).
    ratio = tr.u_norm[late] / (pred.u_norm.slope * tr.t[late])
    assert ratio.max() <= 1 + 1e-12, ratio.max()
    # measured max |rel err| of the fitted slope 8.7e-3 over seeds 0-2; tol 0.025
    assert_rate(tr.t, tr.u_norm, **pred.u_norm, tol=0.0, rtol=0.025, window=JOINT_WINDOW)
    # The W block carries a factor 1 - s_opt: ||W_t|| grows like log t. Its local
    # power-law exponent (~1 / log t) stays well below 1/2 (measured 0.19 .. 0.32) ...
    assert pred.norm.model == "log"
    assert_rate(tr.t, tr.norm, "power", exponent=0.5, tol=0.0, bound="upper",
                window=JOINT_WINDOW)
    # ... so ||W_t|| / ||u_t|| decreases throughout the window.
    assert np.all(np.diff(tr.norm[late] / tr.u_norm[late]) < 0)


# ------------------------------------------------------------------ 7. ordering
@pytest.mark.parametrize("seed", SEEDS)
def test_adaptive_steps_beat_gd_at_fixed_budget(seed):
    gd, _ = _fixed(seed, "gd")
    k_gd = np.flatnonzero(gd.t == BUDGET)[0]
    # At t = 1000: NGD log-excess ~ -lr t / ||W_mm|| ~ -50 and Polyak ~ -1000 against
    # GD's ~ -log(t) - const ~ -8; the attention and the direction follow.
    for method in ("ngd", "polyak"):
        tr, _ = _fixed(seed, method)
        k = np.flatnonzero(tr.t == BUDGET)[0]
        assert tr.log_excess[k] < gd.log_excess[k_gd], method
        assert tr.corr[k] > gd.corr[k_gd], method
        # worst sequence's 1 - s_opt, in logs (s_opt itself rounds to 1)
        assert tr.log_one_minus_s_opt[k].max() < gd.log_one_minus_s_opt[k_gd].max(), method
