"""Compiled dynamics (sims): stable gradients against numpy, torch, finite differences and
high precision; exact update rules; long-run stability; recording semantics; files; errors."""

import math
import os

import numpy as np
import pytest

import sims
from sims.data import equal_score, gaussian_joint, general_random
from theory import AttentionProblem, solve_wsvm

LOSS_NAMES = ("logistic", "exp")


# ----------------------------------------------------------------------------------------
# A plain numpy implementation of the stable formulas (docs/theory.md §8), independent of
# the kernels.
def softplus(x):
    return np.logaddexp(0.0, x)


def numpy_reference(problem, W, u=None, loss="logistic"):
    """Loss, log excess, gradients and attention metrics, vectorised over sequences."""
    X, y, Z = problem.X, problem.y, problem.queries
    n, T, _ = X.shape
    rows = np.arange(n)
    gam = problem.scores if u is None else y[:, None] * (X @ u)
    a = np.einsum("itd,de,ie->it", X, W, Z)
    p = a.argmax(axis=1)
    M = a[rows, p]
    off = np.ones((n, T), bool)
    off[rows, p] = False
    a_off = np.where(off, a, -np.inf)
    amax2 = a_off.max(axis=1)
    e = np.exp(a_off - amax2[:, None])  # 0 at the pivot
    gp = gam[rows, p]
    dt = np.sum(e * (gp[:, None] - gam), axis=1)
    gap = amax2 - M
    rest = np.exp(gap) * e.sum(axis=1)
    lse_off = np.log1p(rest)
    ls = gap - lse_off
    delta = np.exp(ls) * dt
    m = gp - delta
    sp = 1.0 / (1.0 + rest)
    w = e * (gam - gp[:, None] + delta[:, None])
    w[rows, p] = sp * dt
    r = np.einsum("it,itd->id", w, X)
    log_dl = -softplus(m) if loss == "logistic" else -m  # log |l'(m)|
    cW = log_dl + ls
    LW = cW.max()
    G = -np.einsum("i,id,ie->de", np.exp(cW - LW), r, Z)
    out = {"grad_W_unit": G / np.linalg.norm(G), "log_grad_W": LW - np.log(n) + np.log(np.linalg.norm(G))}
    out["grad_W"] = np.exp(LW - np.log(n)) * G
    lvals = softplus(-m) if loss == "logistic" else np.exp(-m)
    out["loss"] = lvals.mean()
    if u is None:
        o = problem.opt
        go = gam[rows, o]
        log_a = -softplus(go) if loss == "logistic" else -go
        with np.errstate(divide="ignore", invalid="ignore"):
            # attention on opt: log1p(A expm1(delta)) (or A expm1(delta)), in logs for tiny delta
            log_delta = ls + np.log(dt)
            em = np.expm1(delta)
            exact = np.log(np.log1p(np.exp(log_a) * em)) if loss == "logistic" else log_a + np.log(em)
            on_opt = np.where(log_delta < np.log(1e-17), log_a + log_delta, exact)
            # attention elsewhere: an order-one difference
            elsewhere = np.log(lvals - (softplus(-go) if loss == "logistic" else np.exp(-go)))
        log_exc_i = np.where(p == o, on_opt, elsewhere)
        lmax = log_exc_i.max()
        out["log_excess"] = lmax + np.log(np.mean(np.exp(log_exc_i - lmax)))
    else:
        out["grad_u"] = -np.einsum("i,i,it,itd->d", np.exp(log_dl - np.log(n)), y,
                                   np.exp(a - (M + lse_off)[:, None]), X)
    o = problem.opt
    lse = M + lse_off
    out["s_opt"] = np.exp(a[rows, o] - lse)
    a_no = np.where(np.arange(T)[None, :] == o[:, None], -np.inf, a)
    hi = a_no.max(axis=1)
    on_opt = hi + np.log(np.exp(a_no - hi[:, None]).sum(axis=1)) - lse
    with np.errstate(divide="ignore"):  # the unused branch where s_opt rounds to 1
        out["log_one_minus_s_opt"] = np.where(p == o, on_opt, np.log1p(-out["s_opt"]))
    out["argmax"] = p
    return out


def torch_grads(problem, loss, W=None, u=None, K=None, Q=None):
    """Loss and autograd gradients of the textbook model (docs/theory.md §1) in float64."""
    torch = pytest.importorskip("torch")
    t = lambda x, g=False: torch.tensor(np.asarray(x), dtype=torch.float64, requires_grad=g)  # noqa: E731
    X, y, Z = t(problem.X), t(problem.y), t(problem.queries)
    if K is not None:
        Kt, Qt = t(K, True), t(Q, True)
        Wt, params = Kt @ Qt.T, [Kt, Qt]
    else:
        Wt = t(W, True)
        params = [Wt]
    ut = t(problem.u if u is None else u, u is not None)
    if u is not None:
        params = [ut, Wt]
    s = torch.softmax(torch.einsum("itd,de,ie->it", X, Wt, Z), dim=1)
    m = y * torch.einsum("it,itd,d->i", s, X, ut)
    L = torch.nn.functional.softplus(-m).mean() if loss == "logistic" else torch.exp(-m).mean()
    L.backward()
    return L.item(), [q.grad.numpy() for q in params]


def rel_err(a, b):
    return np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b))


def random_instance(seed, n=5, T=6, d=7):
    return general_random(n, T, d, seed=seed)


# ------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("seed", range(3))
def test_kernels_match_numpy_reference(seed, loss):
    p = random_instance(seed)
    rng = np.random.default_rng(seed)
    for scale in (0.3, 3.0, 30.0):
        W = scale * rng.standard_normal((p.d, p.d))
        ev = sims.evaluate(p, W, loss=loss)
        ref = numpy_reference(p, W, loss=loss)
        np.testing.assert_allclose(ev.loss, ref["loss"], rtol=1e-10)
        np.testing.assert_allclose(ev.log_excess, ref["log_excess"], rtol=1e-10)
        np.testing.assert_allclose(ev.grad_W, ref["grad_W"], rtol=1e-10, atol=1e-10 * np.abs(ref["grad_W"]).max())
        np.testing.assert_allclose(ev.direction["W"], ref["grad_W_unit"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(ev.log_grad_norm, ref["log_grad_W"], rtol=1e-10)
        np.testing.assert_allclose(ev.s_opt, ref["s_opt"], rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(ev.log_one_minus_s_opt, ref["log_one_minus_s_opt"], rtol=1e-10)
        np.testing.assert_array_equal(ev.attn_argmax, ref["argmax"])
        u = rng.standard_normal(p.d)
        evj = sims.evaluate(p, W, u=u, loss=loss)
        refj = numpy_reference(p, W, u=u, loss=loss)
        np.testing.assert_allclose(evj.grad_u, refj["grad_u"], rtol=1e-10)
        np.testing.assert_allclose(evj.grad_W, refj["grad_W"], rtol=1e-10, atol=1e-10 * np.abs(refj["grad_W"]).max())


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("param", ["W", "kq", "joint"])
def test_gradients_match_torch_autograd(param, loss):
    p = general_random(6, 8, 10, seed=3)
    rng = np.random.default_rng(7)
    W = rng.standard_normal((10, 10))
    if param == "W":
        ev = sims.evaluate(p, W, loss=loss)
        L, (gW,) = torch_grads(p, loss, W=W)
        pairs = [(ev.grad_W, gW)]
    elif param == "joint":
        u = rng.standard_normal(10)
        ev = sims.evaluate(p, W, u=u, loss=loss)
        L, (gu, gW) = torch_grads(p, loss, W=W, u=u)
        pairs = [(ev.grad_u, gu), (ev.grad_W, gW)]
    else:
        K, Q = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
        ev = sims.evaluate(p, K=K, Q=Q, loss=loss)
        L, (gK, gQ) = torch_grads(p, loss, K=K, Q=Q)
        pairs = [(ev.grad_K, gK), (ev.grad_Q, gQ)]
    np.testing.assert_allclose(ev.loss, L, rtol=1e-12)
    for ours, theirs in pairs:
        assert rel_err(ours, theirs) < 1e-6
    total = math.sqrt(sum(np.sum(t**2) for _, t in pairs))
    np.testing.assert_allclose(ev.grad_norm, total, rtol=1e-6)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("param", ["W", "kq", "joint"])
def test_gradients_match_central_differences(param, loss):
    p = general_random(4, 5, 6, seed=1)
    rng = np.random.default_rng(11)
    W, u = rng.standard_normal((6, 6)), rng.standard_normal(6)
    K, Q = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    h = 1e-6

    def value(dW=0.0, du=0.0, dK=0.0, dQ=0.0):
        if param == "kq":
            return sims.evaluate(p, K=K + dK, Q=Q + dQ, loss=loss).loss
        if param == "joint":
            return sims.evaluate(p, W + dW, u=u + du, loss=loss).loss
        return sims.evaluate(p, W + dW, loss=loss).loss

    ev = (sims.evaluate(p, K=K, Q=Q, loss=loss) if param == "kq" else
          sims.evaluate(p, W, u=u if param == "joint" else None, loss=loss))
    for _ in range(4):  # random directions of the whole parameter
        V = {"dW": rng.standard_normal((6, 6)), "du": rng.standard_normal(6),
             "dK": rng.standard_normal((6, 3)), "dQ": rng.standard_normal((6, 3))}
        if param == "kq":
            keys, grads = ("dK", "dQ"), (ev.grad_K, ev.grad_Q)
        elif param == "joint":
            keys, grads = ("dW", "du"), (ev.grad_W, ev.grad_u)
        else:
            keys, grads = ("dW",), (ev.grad_W,)
        plus = value(**{k: h * V[k] for k in keys})
        minus = value(**{k: -h * V[k] for k in keys})
        fd = (plus - minus) / (2 * h)
        exact = sum(np.sum(g * V[k]) for k, g in zip(keys, grads))
        np.testing.assert_allclose(fd, exact, rtol=1e-6, atol=1e-9)


def test_log_domain_quantities_exact_beyond_underflow():
    """Far along W_mm the excess and the gradient underflow: compare with 800-digit arithmetic."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 800  # the excess is a difference of O(1) numbers that agree to ~700 digits
    p = equal_score(3, 4, 5, seed=2)
    Wmm = solve_wsvm(p).W
    rng = np.random.default_rng(0)
    W = 5000.0 * Wmm / np.linalg.norm(Wmm) + rng.standard_normal((5, 5))
    ev = sims.evaluate(p, W)
    assert ev.excess == 0.0 and ev.grad_norm == 0.0  # both underflow in float64
    X, Z, gam = p.X, p.queries, p.scores
    G = [[mp.mpf(0)] * 5 for _ in range(5)]
    exc = mp.mpf(0)
    for i in range(p.n):
        a = [mp.fsum(mp.mpf(X[i, t, j]) * mp.mpf(W[j, k]) * mp.mpf(Z[i, k])
                     for j in range(5) for k in range(5)) for t in range(p.T)]
        top = max(a)
        ex = [mp.exp(v - top) for v in a]
        s = [v / mp.fsum(ex) for v in ex]
        m = mp.fsum(s[t] * mp.mpf(gam[i, t]) for t in range(p.T))
        go = mp.mpf(gam[i, p.opt[i]])
        exc += mp.log1p(mp.exp(-m)) - mp.log1p(mp.exp(-go))
        dl = -1 / (1 + mp.exp(m))
        v = [s[t] * (mp.mpf(gam[i, t]) - m) for t in range(p.T)]
        r = [mp.fsum(v[t] * mp.mpf(X[i, t, j]) for t in range(p.T)) for j in range(5)]
        for j in range(5):
            for k in range(5):
                G[j][k] += dl * r[j] * mp.mpf(Z[i, k]) / p.n
    gnorm = mp.sqrt(mp.fsum(G[j][k] ** 2 for j in range(5) for k in range(5)))
    assert ev.log_excess < -745
    np.testing.assert_allclose(ev.log_excess, float(mp.log(exc / p.n)), rtol=1e-12)
    np.testing.assert_allclose(ev.log_grad_norm, float(mp.log(gnorm)), rtol=1e-12)
    unit = np.array([[float(G[j][k] / gnorm) for k in range(5)] for j in range(5)])
    np.testing.assert_allclose(ev.direction["W"], unit, rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- update rules
def displacement(tr, k):
    """Norm of the whole-parameter step from record k to record k + 1 (record='all')."""
    dW = tr.W_hist[k + 1] - tr.W_hist[k]
    sq = np.sum(dW**2)
    if tr.u_hist is not None:
        sq += np.sum((tr.u_hist[k + 1] - tr.u_hist[k]) ** 2)
    return math.sqrt(sq)


@pytest.mark.parametrize("param", ["W", "joint"])
@pytest.mark.parametrize("lr", [0.05, 0.7])
def test_ngd_moves_exactly_lr(param, lr):
    p = gaussian_joint(8, 4, 6, seed=1) if param == "joint" else equal_score(6, 8, 10, seed=1)
    ref_u = np.ones(p.d) if param == "joint" else None
    tr = sims.run(p, "ngd", 60, lr=lr, reference=np.eye(p.d), reference_u=ref_u, record="all",
                  param=param, store_params=True)
    steps = [displacement(tr, k) for k in range(60)]
    np.testing.assert_allclose(steps, lr, rtol=1e-12)
    np.testing.assert_allclose(tr.step_length, lr, rtol=1e-12)


def test_ngd_kq_moves_exactly_lr_in_K_and_Q():
    p = equal_score(5, 6, 7, seed=0)
    rng = np.random.default_rng(1)
    K, Q = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    for _ in range(5):  # one-step runs continue from the final factors
        tr = sims.run(p, "ngd", 1, lr=0.3, K0=K, Q0=Q, reference=np.eye(7), param="kq")
        step = math.sqrt(np.sum((tr.K_final - K) ** 2) + np.sum((tr.Q_final - Q) ** 2))
        np.testing.assert_allclose(step, 0.3, rtol=1e-12)
        np.testing.assert_allclose(tr.W_final, tr.K_final @ tr.Q_final.T, rtol=1e-12)
        K, Q = tr.K_final, tr.Q_final


def test_block_normalisation_moves_each_block_lr():
    p = gaussian_joint(8, 4, 6, seed=2)
    rng = np.random.default_rng(0)
    tr = sims.run(p, "ngd", 30, lr=0.2, W0=rng.standard_normal((6, 6)), u0=rng.standard_normal(6),
                  reference=np.eye(6), reference_u=np.ones(6), param="joint", normalize="block",
                  record="all", store_params=True)
    np.testing.assert_allclose(np.linalg.norm(np.diff(tr.W_hist, axis=0), axis=(1, 2)), 0.2, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(np.diff(tr.u_hist, axis=0), axis=1), 0.2, rtol=1e-12)


@pytest.mark.parametrize("param", ["W", "joint"])
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_polyak_and_gd_steps_against_independent_gradient(param, loss):
    p = gaussian_joint(8, 4, 6, seed=3) if param == "joint" else general_random(5, 6, 7, seed=4)
    d = p.d
    ref_u = np.ones(d) if param == "joint" else None
    u0 = np.full(d, 0.1) if param == "joint" else None
    for method in ("polyak", "gd"):
        tr = sims.run(p, method, 25, lr=None if method == "polyak" else 0.5, reference=np.eye(d),
                      reference_u=ref_u, u0=u0, record="all", param=param, loss=loss,
                      store_params=True)
        lstar = 0.0 if param == "joint" else p.loss_inf_for(loss)
        np.testing.assert_allclose(tr.loss_star, lstar, rtol=1e-15)
        for k in range(25):
            u = tr.u_hist[k] if param == "joint" else None
            ev = sims.evaluate(p, tr.W_hist[k], u=u, loss=loss)
            # L - L* formed by subtraction is only accurate to a few ulps of L
            np.testing.assert_allclose(ev.loss - lstar, tr.excess[k], rtol=1e-9, atol=1e-15 * ev.loss)
            np.testing.assert_allclose(ev.excess, tr.excess[k], rtol=1e-12)
            coef = ev.excess / ev.grad_norm**2 if method == "polyak" else 0.5
            np.testing.assert_allclose(tr.W_hist[k + 1] - tr.W_hist[k], -coef * ev.grad_W,
                                       rtol=1e-9, atol=1e-12 * np.abs(tr.W_hist[k]).max())
            if param == "joint":
                np.testing.assert_allclose(tr.u_hist[k + 1] - tr.u_hist[k], -coef * ev.grad_u,
                                           rtol=1e-9, atol=1e-15)
        if method == "polyak":
            np.testing.assert_allclose(tr.step_length, tr.excess / tr.grad_norm, rtol=1e-12)


# ------------------------------------------------------------------------------ stability
def naive_gradient(problem, W):
    """Textbook gradient (docs/theory.md §1), as the predecessor computed it (for contrast)."""
    X, Z, g = problem.X, problem.queries, problem.scores
    a = np.einsum("itd,de,ie->it", X, W, Z)
    s = np.exp(a - a.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    m = np.sum(s * g, axis=1)
    v = s * (g - m[:, None])
    dl = -1.0 / (1.0 + np.exp(m))
    return np.einsum("i,it,itd,ie->de", dl, v, X, Z) / problem.n


def test_ngd_long_run_is_finite_and_keeps_aligning():
    p = equal_score(6, 8, 10, seed=0)
    Wmm = solve_wsvm(p).W
    tr = sims.run(p, "ngd", 100_000, lr=0.1, reference=Wmm)
    for name in ("loss", "log_loss", "log_excess", "norm", "corr", "dist", "s_opt_min",
                 "s_opt_mean", "log_one_minus_s_opt", "step_length", "log_step_length",
                 "log_grad_norm"):
        assert np.all(np.isfinite(getattr(tr, name))), name
    assert np.all(np.isfinite(tr.W_final))
    late = tr.t >= 2000
    assert np.all(np.diff(tr.corr[late]) >= -1e-15)
    assert tr.corr[-1] > 0.99999
    assert tr.log_excess[-1] < -1000  # far below the float64 range: the log domain carried it
    np.testing.assert_allclose(tr.norm[-1], 0.1 * 100_000, rtol=1e-3)
    # the textbook gradient has vanished here, so naive NGD would have stopped (0/0)
    assert np.linalg.norm(naive_gradient(p, tr.W_final)) == 0.0
    np.testing.assert_array_equal(tr.attn_argmax_final, p.opt)


def test_polyak_long_run_is_finite_and_aligns():
    p = equal_score(6, 8, 10, seed=1)
    Wmm = solve_wsvm(p).W
    tr = sims.run(p, "polyak", 20_000, reference=Wmm)
    assert np.all(np.isfinite(tr.log_excess)) and np.all(np.isfinite(tr.log_grad_norm))
    assert tr.log_excess[-1] < -1000
    assert 1 - tr.corr[-1] < 1e-6


def test_attention_argmax_is_the_final_attention_maximiser():
    p = general_random(6, 8, 10, seed=2)
    tr = sims.run(p, "gd", 500, lr=2.0, reference=np.eye(10))
    a = np.einsum("itd,de,ie->it", p.X, tr.W_final, p.queries)
    np.testing.assert_array_equal(tr.attn_argmax_final, a.argmax(axis=1))


def test_sequence_parallel_steps_match_the_serial_kernel():
    p = general_random(40, 6, 8, seed=9)
    for method, param in (("ngd", "W"), ("polyak", "joint")):
        kw = dict(reference=np.eye(8), param=param, record=25,
                  reference_u=np.ones(8) if param == "joint" else None)
        a = sims.run(p, method, 300, parallel=True, **kw)
        b = sims.run(p, method, 300, parallel=False, **kw)
        for name in ("log_excess", "log_grad_norm", "corr", "log_one_minus_s_opt", "W_final"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# ------------------------------------------------------------------------------ recording
def test_record_entry_k_is_the_state_after_t_k_updates():
    p = general_random(5, 6, 7, seed=5)
    R = np.eye(7)
    sched = np.array([0, 1, 7, 30, 31, 64])
    tr = sims.run(p, "ngd", 64, lr=0.3, reference=R, record=sched, store_params=True)
    np.testing.assert_array_equal(tr.t, sched)
    for k, t in enumerate(sched):
        short = sims.run(p, "ngd", int(t), lr=0.3, reference=R, record="all")
        np.testing.assert_allclose(short.W_final, tr.W_hist[k], rtol=1e-13, atol=1e-15)
        for name in ("loss", "excess", "norm", "corr", "grad_norm", "step_length", "s_opt_min"):
            np.testing.assert_allclose(getattr(short, name)[-1], getattr(tr, name)[k], rtol=1e-13,
                                       err_msg=name)


def test_progress_chunks_give_the_same_trajectory():
    p = equal_score(6, 8, 10, seed=3)
    a = sims.run(p, "polyak", 3000, reference=np.eye(10))
    b = sims.run(p, "polyak", 3000, reference=np.eye(10), progress=True)
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_array_equal(a.log_excess, b.log_excess)
    np.testing.assert_array_equal(a.W_final, b.W_final)


@pytest.mark.parametrize("steps", [0, 1, 5, 1000, 123_457])
def test_record_schedules(steps):
    for rec in ("log", "all", 3, np.array([0, steps // 2])):
        if isinstance(rec, str) and rec == "all" and steps > 2000:
            continue
        ts = sims.record_schedule(rec, steps, num_records=50)
        assert ts[0] == 0 and ts[-1] == steps
        assert np.all(np.diff(ts) > 0)
    log = sims.record_schedule("log", steps, num_records=50)
    assert len(log) <= 51
    if steps >= 100_000:
        assert len(log) >= 40  # about num_records once the early integers are past
    np.testing.assert_array_equal(sims.record_schedule(3, 10), [0, 3, 6, 9, 10])


# ---------------------------------------------------------------------------------- files
@pytest.mark.parametrize("suffix", [".npz", ".csv"])
@pytest.mark.parametrize("param", ["W", "joint"])
def test_save_load_round_trip(tmp_path, suffix, param):
    p = gaussian_joint(6, 4, 5, seed=0) if param == "joint" else equal_score(4, 5, 6, seed=0)
    tr = sims.run(p, "ngd", 200, reference=np.eye(p.d), reference_u=np.ones(p.d) if param == "joint" else None,
                  param=param, store_params=True)
    path = tmp_path / f"traj{suffix}"
    tr.save(path)
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary left behind
    back = sims.Trajectory.load(path)
    for fld in tr.__dataclass_fields__:
        a, b = getattr(tr, fld), getattr(back, fld)
        if a is None:
            assert b is None, fld
        elif isinstance(a, np.ndarray):
            assert a.shape == b.shape, fld
            np.testing.assert_array_equal(a, b, err_msg=fld)
        else:
            assert a == b, fld
    if suffix == ".csv":
        header = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")][0]
        assert header.split(",")[-1] == f"log_one_minus_s_opt_{p.n - 1}"


def test_save_rejects_unknown_suffix(tmp_path):
    tr = sims.run(equal_score(3, 4, 5), "gd", 2, reference=np.eye(5))
    with pytest.raises(ValueError, match=r"\.npz or \.csv"):
        tr.save(tmp_path / "traj.txt")


# --------------------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def small():
    return equal_score(3, 4, 5, seed=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="adam"), r"unknown method 'adam'"),
    (dict(lr=0.0), r"lr must be a finite positive number, got 0.0"),
    (dict(lr=-1.0), r"lr must be a finite positive number"),
    (dict(lr=float("nan")), r"lr must be a finite positive number"),
    (dict(W0=np.zeros((4, 5))), r"W0 must have shape \(5, 5\), got \(4, 5\)"),
    (dict(W0=np.full((5, 5), np.nan)), r"W0 contains 25 NaN or infinite entries"),
    (dict(steps=-1), r"steps must be an integer >= 0, got -1"),
    (dict(param="QK"), r"unknown param 'QK'"),
    (dict(loss="hinge"), r"unknown loss 'hinge'"),
    (dict(normalize="layer"), r"unknown normalize 'layer'"),
    (dict(record="sometimes"), r"record must be 'log', 'all', an int or an array"),
    (dict(record=0), r"k >= 1"),
    (dict(record=np.array([0, 99])), r"record iterations must lie in \[0, 10\]"),
    (dict(reference=np.zeros((5, 5))), r"reference must be nonzero"),
    (dict(reference=np.ones(5)), r"reference must have shape \(5, 5\)"),
    (dict(param="kq", W0=np.zeros((5, 5))), r"W0 must be None"),
    (dict(param="kq", K0=np.zeros((5, 2))), r"give both K0 and Q0"),
    (dict(param="kq", K0=np.zeros((5, 2)), Q0=np.zeros((5, 3))), r"Q0 must have shape \(5, 2\)"),
    (dict(u0=np.zeros(5)), r"only used with param='joint'"),
    (dict(param="joint", u0=np.zeros(4), reference_u=np.ones(5)), r"u0 must have shape \(5,\)"),
])
def test_bad_input_is_rejected_with_a_clear_message(small, kwargs, match):
    args = dict(method="ngd", steps=10, reference=np.eye(5))
    args.update(kwargs)
    method, steps = args.pop("method"), args.pop("steps")
    with pytest.raises(ValueError, match=match):
        sims.run(small, method, steps, **args)


def test_parameters_beyond_float64_range_raise(small):
    # the log-domain steps themselves never overflow (even lr=1e308 stays finite) ...
    tr = sims.run(small, "gd", 20, lr=1e308, W0=np.eye(5), reference=np.eye(5))
    assert np.all(np.isfinite(tr.W_final)) and np.all(np.isfinite(tr.log_grad_norm))
    # ... but logits beyond the float64 range are reported, not turned into NaN
    with pytest.raises(FloatingPointError, match=r"iteration 0: the parameters left the float64"):
        sims.run(small, "gd", 20, W0=np.full((5, 5), 1e308), reference=np.eye(5))
    with pytest.raises(FloatingPointError, match=r"polyak \(lr=1\) reached a non-finite"):
        sims.run(equal_score(6, 8, 10, seed=0), "polyak", 50, param="kq", reference=np.eye(10))


def test_tied_scores_are_rejected():
    X = np.zeros((2, 3, 2))
    X[:, :2, 0] = 1.0  # two tokens with the same score in each sequence
    p = AttentionProblem(X, [1, 1], [1.0, 0.0])
    with pytest.raises(ValueError, match="tied optimal token"):
        sims.run(p, "ngd", 5, reference=np.eye(2))


# ------------------------------------------------------------------- momentum NGD
def numpy_momentum_ngd(p, steps, lr, beta, param, normalize, W0, u0=None):
    """Heavy-ball NGD on the numpy gradients: v <- beta v + g / N, theta <- theta - lr v."""
    W, u = W0.copy(), None if u0 is None else u0.copy()
    vW, vu = np.zeros_like(W), None if u0 is None else np.zeros_like(u0)
    Ws = [W.copy()]
    for _ in range(steps):
        ref = numpy_reference(p, W, u)
        gW = ref["grad_W"]
        gu = ref.get("grad_u")
        if param == "joint" and normalize == "block":
            nW, nu = np.linalg.norm(gW), np.linalg.norm(gu)
        else:
            nW = nu = math.sqrt(np.sum(gW**2) + (0.0 if gu is None else np.sum(gu**2)))
        vW = beta * vW + gW / nW
        W = W - lr * vW
        if gu is not None:
            vu = beta * vu + gu / nu
            u = u - lr * vu
        Ws.append(W.copy())
    return np.array(Ws)


@pytest.mark.parametrize("param, normalize", [("W", "global"), ("joint", "global"),
                                              ("joint", "block")])
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_momentum_ngd_against_numpy(param, normalize, beta):
    p = gaussian_joint(8, 4, 6, seed=1) if param == "joint" else general_random(5, 6, 7, seed=2)
    d = p.d
    rng = np.random.default_rng(0)
    W0 = rng.standard_normal((d, d)) * 0.1
    u0 = rng.standard_normal(d) * 0.1 if param == "joint" else None
    tr = sims.run(p, "ngd_momentum", 40, lr=0.2, beta=beta, W0=W0, u0=u0, param=param,
                  normalize=normalize, reference=np.eye(d),
                  reference_u=np.ones(d) if param == "joint" else None, record="all",
                  store_params=True)
    want = numpy_momentum_ngd(p, 40, 0.2, beta, param, normalize, W0, u0)
    # measured max deviation 4e-15 (entries of order 1): rounding only
    np.testing.assert_allclose(tr.W_hist, want, rtol=0, atol=1e-13)
    assert tr.beta == beta
    if beta == 0.0:  # no momentum: NGD up to rounding, each step exactly lr (per block)
        blocks = 2 if normalize == "block" else 1
        np.testing.assert_allclose(tr.step_length, 0.2 * math.sqrt(blocks), rtol=1e-13)


def test_momentum_ngd_step_grows_to_lr_over_one_minus_beta():
    # for a nearly constant direction the step tends to lr / (1 - beta)
    p = equal_score(6, 8, 10, seed=0)
    tr = sims.run(p, "ngd_momentum", 400, lr=0.01, beta=0.8, reference=np.eye(10), record="all")
    np.testing.assert_allclose(tr.step_length[0], 0.01, rtol=1e-14)
    np.testing.assert_allclose(tr.step_length[-1], 0.05, rtol=2e-3)


# --------------------------------------------------------------- options and API shape
def test_options_object_equals_keywords():
    p = general_random(5, 6, 7, seed=1)
    opts = sims.RunOptions("gd", lr=0.5, param="kq", loss="exp", normalize="block", record=7,
                           seed=3, store_params=True)
    a = sims.run(p, opts, 40, reference=np.eye(7))
    b = sims.run(p, "gd", 40, lr=0.5, param="kq", loss="exp", normalize="block", record=7, seed=3,
                 store_params=True, reference=np.eye(7))
    for name in ("corr", "log_excess", "W_final", "K_final", "W_hist", "log_step_length"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_run_many_takes_options_and_mixes_settings():
    ps = [equal_score(4, 5, 6, seed=s) for s in range(2)]
    opts = [sims.RunOptions("gd", lr=0.5, record=5), sims.RunOptions("ngd", loss="exp", record=10),
            sims.RunOptions("ngd_momentum", beta=0.5, record=5)]
    out = sims.run_many(ps, opts, steps=30, references=[np.eye(6)] * 2)
    assert [tr.method for tr in out] == ["gd", "ngd", "ngd_momentum"] * 2
    for k, tr in enumerate(out):
        one = sims.run(ps[k // 3], opts[k % 3], 30, reference=np.eye(6))
        np.testing.assert_array_equal(tr.log_excess, one.log_excess)
        np.testing.assert_array_equal(tr.W_final, one.W_final)


def test_run_many_returns_failures_in_place():
    # from W0 = 1e150 I, Polyak blows up on seed 0 (attention stuck off opt, where the
    # gradient vanishes far from L*) and converges on seed 1
    ps = [equal_score(3, 4, 5, seed=s) for s in range(2)]
    W0s = [np.eye(5) * 1e150] * 2
    opts = [sims.RunOptions("polyak"), sims.RunOptions("gd", lr=0.5)]
    kw = dict(steps=20, references=[np.eye(5)] * 2, W0s=W0s)
    out = sims.run_many(ps, opts, on_error="return", **kw)
    assert [type(x).__name__ for x in out] == ["RunFailure", "Trajectory", "Trajectory",
                                              "Trajectory"]
    fail = out[0]
    assert (fail.problem_index, fail.method, fail.lr) == (0, "polyak", None)
    assert isinstance(fail.error, FloatingPointError)
    assert "at iteration 1" in str(fail.error)
    for k in (1, 2, 3):
        want = sims.run(ps[k // 2], opts[k % 2], 20, reference=np.eye(5), W0=W0s[k // 2])
        np.testing.assert_array_equal(out[k].W_final, want.W_final)
    with pytest.raises(FloatingPointError, match=r"polyak \(lr=1\) reached"):
        sims.run_many(ps, opts, **kw)


def test_compiled_functions_take_at_most_eight_arguments():
    import inspect

    from numba.core.registry import CPUDispatcher

    from sims import _kernels

    counts = {name: len(inspect.signature(obj.py_func).parameters)
              for name, obj in vars(_kernels).items() if isinstance(obj, CPUDispatcher)}
    assert "_traj_run" in counts and "_sweep" in counts
    assert max(counts.values()) <= 8, {k: v for k, v in counts.items() if v > 8}


def test_methods_come_from_the_one_rule_registry():
    from sims import _kernels as kern
    from sims.dynamics import _METHOD_CODE

    assert sims.METHODS == tuple(kern.RULES) == ("gd", "ngd", "polyak", "ngd_momentum")
    assert [_METHOD_CODE[m] for m in sims.METHODS] == list(range(len(kern.RULES)))
    assert sims.DEFAULT_LR == {"gd": 1.0, "ngd": 0.1, "polyak": None, "ngd_momentum": 0.1}


# --------------------------------------------------------------- metrics after the fact
@pytest.mark.parametrize("param", ["W", "kq", "joint"])
def test_metrics_against_any_reference_after_the_fact(param):
    p = gaussian_joint(8, 4, 6, seed=0) if param == "joint" else general_random(5, 6, 6, seed=0)
    R = np.random.default_rng(1).standard_normal((6, 6))
    kw = dict(reference_u=np.ones(6)) if param == "joint" else {}
    tr = sims.run(p, "ngd", 60, param=param, reference=np.eye(6), record=6, **kw)
    assert tr.W_hist is not None  # small: kept by default
    other = sims.run(p, "ngd", 60, param=param, reference=R, record=6, **kw)
    # measured max deviation 2e-16 (different summation order from the kernel)
    np.testing.assert_allclose(tr.corr_with(R), other.corr, rtol=0, atol=2e-15)
    np.testing.assert_allclose(tr.dist_with(R), other.dist, rtol=0, atol=2e-15)
    np.testing.assert_allclose(tr.corr_with(np.eye(6)), tr.corr, rtol=0, atol=2e-15)
    if param == "joint":
        np.testing.assert_allclose(tr.corr_with(np.ones(6)), tr.u_corr, rtol=0, atol=2e-15)


def test_one_minus_corr_is_exact_near_one():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    p = equal_score(4, 5, 6, seed=0)
    tr = sims.run(p, "ngd", 50, reference=np.eye(6), record=50, store_params=True)
    W = tr.W_final
    E = np.zeros((6, 6))
    E[0, 1] = 1e-9 * np.abs(W).max()  # 1 - corr about 1e-19: 1 - corr in floats is 0
    R = W + E
    got = tr.one_minus_corr_with(R)[-1]
    a = [mp.mpf(float(x)) for x in W.ravel()]
    b = [mp.mpf(float(x)) for x in R.ravel()]
    dot = mp.fsum(x * y for x, y in zip(a, b))
    exact = 1 - dot / (mp.sqrt(mp.fsum(x * x for x in a)) * mp.sqrt(mp.fsum(y * y for y in b)))
    # 1 - corr formed in floats is rounding noise there (measured 1.1e-16 against 2.1e-19)
    naive = 1.0 - tr.corr_with(R)[-1]
    assert abs(naive - float(exact)) > 100 * float(exact)
    # measured relative error 8e-8: the unit vectors differ by 1e-10, each exact to 1e-16
    np.testing.assert_allclose(got, float(exact), rtol=3e-7)
    np.testing.assert_allclose(tr.one_minus_corr, 0.5 * tr.dist**2, rtol=0, atol=0)


def test_iterates_are_not_kept_when_large():
    p = equal_score(3, 4, 40, seed=0)
    tr = sims.run(p, "ngd", 300, reference=np.eye(40), record="all")  # 301 x 40 x 40 x 8 B > 1 MiB
    assert tr.W_hist is None
    assert sims.run(p, "ngd", 5, reference=np.eye(40), record="all").W_hist.shape == (6, 40, 40)
