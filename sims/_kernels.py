"""Compiled float64 kernels of the attention dynamics (SPEC sections 1, 3, 5 and 8).

Everything here is numba ``njit`` with ``cache=True`` and without ``fastmath``
(results must be reproducible and exact to rounding). The public wrappers live in
:mod:`sims.dynamics`; this module only knows flat arrays and integer codes.

Stable form of the gradient (SPEC 8). For one sequence with logits
``a = X W z``, attention ``s = softmax(a)`` and scores ``gamma``, let ``p`` be the
most attended token (the pivot) and ``q`` the best of the others. Writing
``e_t = exp(a_t - a_q)`` for ``t != p`` and ``ls = log s_q`` (the log of the largest
non-pivot weight, computed from log-softmax terms), every non-pivot weight is
``s_t = e^{ls} e_t`` and

* ``delta = gamma_p - s^T gamma = e^{ls} dt``, ``dt = sum_{t != p} e_t (gamma_p - gamma_t)``,
* ``(diag(s) - s s^T) gamma = e^{ls} w``, ``w_t = e_t (gamma_t - gamma_p + delta)`` for
  ``t != p`` and ``w_p = s_p dt``,

so no difference of nearly equal numbers is formed, and the per-sequence scale
``e^{ls}`` (which underflows once attention is sparse) is carried as a logarithm.
The full gradient is ``g = e^{L} G`` with ``G`` of order one and ``L`` a log-scale,
so ``g / ||g||`` stays exact even when ``||g||`` is far below 1e-300.

The excess loss of a sequence attending mostly to its optimal token (``p = opt``) is
``l(gamma_o - delta) - l(gamma_o) = log1p(A expm1(delta))`` with ``A = sigmoid(-gamma_o)``
(logistic) or ``A expm1(delta)`` with ``A = e^{-gamma_o}`` (exponential), kept as
``log A + ls + log dt`` once ``delta < 1e-17``; sequences are combined by a log-sum-exp.
``log(1 - s_opt) = logsumexp_{t != opt} a_t - logsumexp_t a_t`` from the same terms
(``log1p(-s_opt)`` when attention sits elsewhere, where ``s_opt <= 1/2``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

# method, parametrisation, loss and normalisation codes
GD, NGD, POLYAK = 0, 1, 2
P_W, P_KQ, P_JOINT = 0, 1, 2
LOGISTIC, EXP = 0, 1
GLOBAL, BLOCK = 0, 1

# per-sequence scratch columns
S_LOGC, S_LOGSC, S_LOGV, S_LOSS, S_LOG1M, S_SOPT, S_PIV = range(7)
NSQ = 7

# recorded scalar columns
(C_LOSS, C_LOG_LOSS, C_LOG_EXC, C_NORM, C_CORR, C_DIST, C_SMIN, C_SMEAN,
 C_LOG_STEP, C_LOG_GNORM, C_UNORM, C_UCORR, C_UDIST) = range(13)
NCOL = 13

# Below this delta, log1p(A * expm1(delta)) equals A * delta to double precision
# (the next term is relatively O(delta)), so the excess loss is formed in logs.
_LOG_TINY = math.log(1e-17)
_NEG_INF = -np.inf
_BLAS_MIN = 1 << 18
_EXP_UNDERFLOW = -746.0  # exp(x) rounds to 0 below about -745.13


@njit(cache=True, inline="always")
def _exp(x):
    """exp(x), with underflow to 0 decided here: libm's underflow path (errno) is slow."""
    if x < _EXP_UNDERFLOW:
        return 0.0
    return math.exp(x)


@njit(cache=True, inline="always")
def _softplus(x):
    """log(1 + e^x) without overflow."""
    if x > 0.0:
        return x + math.log1p(_exp(-x))
    return math.log1p(_exp(x))


@njit(cache=True, inline="always")
def _loss(m, loss):
    if loss == LOGISTIC:
        return _softplus(-m)
    return _exp(-m)


@njit(cache=True, inline="always")
def _log_loss(m, loss):
    """log l(m), finite for every finite m (the loss itself underflows past m ~ 745)."""
    if loss == EXP:
        return -m
    if m > 30.0:
        # log(log1p(x)) = log(x) + log1p(-x/2) + O(x^2) with x = e^{-m} < 1e-13
        return -m + math.log1p(-0.5 * _exp(-m))
    return math.log(_softplus(-m))


@njit(cache=True, inline="always")
def _log_abs_dloss(m, loss):
    """log |l'(m)|: logistic l' = -sigmoid(-m), exponential l' = -e^{-m}."""
    if loss == LOGISTIC:
        return -_softplus(m)
    return -m


@njit(cache=True, inline="always")
def _dot(x, y):
    # four independent accumulators: a fixed summation order that still pipelines
    n = x.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    k = 0
    while k + 4 <= n:
        s0 += x[k] * y[k]
        s1 += x[k + 1] * y[k + 1]
        s2 += x[k + 2] * y[k + 2]
        s3 += x[k + 3] * y[k + 3]
        k += 4
    s = (s0 + s1) + (s2 + s3)
    while k < n:
        s += x[k] * y[k]
        k += 1
    return s


@njit(cache=True, inline="always")
def _axpy(c, x, out):
    for k in range(out.shape[0]):
        out[k] += c * x[k]


@njit(cache=True)
def _fro(A):
    s = 0.0
    for v in A.ravel():
        s += v * v
    return math.sqrt(s)


@njit(cache=True)
def _log_norm(A):
    nrm = _fro(A)
    return math.log(nrm) if nrm > 0.0 else _NEG_INF


@njit(cache=True, inline="always")
def _logaddexp(x, y):
    if x == _NEG_INF:
        return y
    if y == _NEG_INF:
        return x
    hi = max(x, y)
    return hi + math.log1p(_exp(-abs(x - y)))


@njit(cache=True)
def _seq_eval(i, X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas, qs, a, e, gs, rt, ut, sq):
    """Forward and stable backward pass of sequence ``i`` (see the module docstring).

    Writes ``rt[i] = X_i^T w`` (the W-gradient is ``-e^{S_LOGC + S_LOGSC} rt[i] z_i^T``),
    for joint training ``ut[i] = y_i X_i^T s_i`` (the u-gradient is ``-e^{S_LOGC} ut[i]``),
    and the gradient scales into ``sq[i]``; with ``full`` also the loss terms and the
    attention metrics.
    """
    T = X.shape[1]
    d = X.shape[2]
    Xi = X[i]
    zi = Z[i]
    q = qs[i]
    if not blas:  # otherwise qs = Z W^T came from one BLAS call
        q[:] = 0.0
        for k in range(d):
            if zi[k] != 0.0:
                _axpy(zi[k], WT[k], q)  # q = W z_i
    ai = a[i]
    for t in range(T):
        ai[t] = _dot(Xi[t], q)
    if joint:
        g = gs[i]
        for t in range(T):
            g[t] = y[i] * _dot(Xi[t], u)
    else:
        g = gam_f[i]

    p = 0
    M = ai[0]
    for t in range(1, T):
        if ai[t] > M:
            M = ai[t]
            p = t
    amax2 = _NEG_INF
    for t in range(T):
        if t != p and ai[t] > amax2:
            amax2 = ai[t]
    o = opt[i]
    ei = e[i]
    se = 0.0  # sum_{t != p} e_t
    dt = 0.0
    for t in range(T):
        if t != p:
            et = _exp(ai[t] - amax2)
            ei[t] = et
            se += et
            dt += et * (g[p] - g[t])
    gap = amax2 - M
    egap = _exp(gap)
    rest = egap * se  # sum_{t != p} e^{a_t - a_p}
    lse_off = math.log1p(rest)  # logsumexp(a) - a_p
    ls = gap - lse_off
    sp = 1.0 / (1.0 + rest)
    scale = egap * sp  # e^{ls}, possibly underflowed (only ls enters the scales)
    delta = scale * dt
    m = g[p] - delta

    r = rt[i]
    r[:] = 0.0
    for t in range(T):
        if t != p:
            _axpy(ei[t] * ((g[t] - g[p]) + delta), Xi[t], r)
    _axpy(sp * dt, Xi[p], r)
    if joint:
        v = ut[i]
        v[:] = 0.0
        for t in range(T):
            if t != p:
                _axpy(y[i] * (scale * ei[t]), Xi[t], v)
        _axpy(y[i] * sp, Xi[p], v)

    row = sq[i]
    row[S_LOGC] = _log_abs_dloss(m, loss)
    row[S_LOGSC] = ls
    row[S_PIV] = p
    if not full:
        return
    row[S_LOSS] = _loss(m, loss)
    if joint:
        row[S_LOGV] = _log_loss(m, loss)
    elif p == o:
        # excess l(gamma_o - delta) - l(gamma_o) = log1p(A expm1(delta)) (logistic,
        # A = sigmoid(-gamma_o)) or A expm1(delta) (exponential, A = e^{-gamma_o});
        # dt > 0 because opt is the unique best score
        log_a = -_softplus(g[o]) if loss == LOGISTIC else -g[o]
        log_delta = ls + math.log(dt)
        if log_delta < _LOG_TINY:
            row[S_LOGV] = log_a + log_delta
        else:
            em = math.expm1(delta)
            x = _exp(log_a) * em
            if loss == EXP or x < 1e-17:
                row[S_LOGV] = log_a + math.log(em)
            else:
                row[S_LOGV] = math.log(math.log1p(x))
    else:
        # attention sits on another token: the excess is of order one, no cancellation
        exc = _loss(m, loss) - _loss(g[o], loss)
        row[S_LOGV] = math.log(exc) if exc > 0.0 else _NEG_INF
    s_o = _exp(ai[o] - M - lse_off)
    row[S_SOPT] = s_o
    if p == o:
        # 1 - s_o = sum of the other weights, never formed as a difference
        row[S_LOG1M] = gap + math.log(se) - lse_off
    else:
        row[S_LOG1M] = math.log1p(-s_o)  # s_o <= 1/2: well conditioned


@njit(cache=True)
def _coefs(Z, joint, ut, sq, cw, Ut):
    """Per-sequence W-gradient weights relative to the largest, and the u-gradient.

    Returns the log-scales ``LW``, ``Lu`` of the W and u gradients: ``g_W = e^{LW} G``
    with ``G = sum_i cw_i rt_i z_i^T`` and ``g_u = e^{Lu} Ut``.
    """
    n = Z.shape[0]
    LW = _NEG_INF
    for i in range(n):
        LW = max(LW, sq[i, S_LOGC] + sq[i, S_LOGSC])
    for i in range(n):
        cw[i] = -_exp(sq[i, S_LOGC] + sq[i, S_LOGSC] - LW)
    Lu = _NEG_INF
    if joint:
        for i in range(n):
            Lu = max(Lu, sq[i, S_LOGC])
        Ut[:] = 0.0
        for i in range(n):
            _axpy(-_exp(sq[i, S_LOGC] - Lu), ut[i], Ut)
    # the 1/n of the mean loss
    log_n = math.log(n)
    return LW - log_n, Lu - log_n


@njit(cache=True)
def _gw_block(Z, rt, cw, Gt):
    """``G = sum_i cw_i rt_i z_i^T`` by rows (sequence-outer for cache reuse)."""
    n, d = Z.shape
    Gt[:, :] = 0.0
    for i in range(n):
        zi = Z[i]
        for j in range(d):
            c = cw[i] * rt[i, j]
            if c != 0.0:
                _axpy(c, zi, Gt[j])


@njit(cache=True)
def _gw_blas(Z, rt, cw, rtT, Gt):
    """``G = sum_i cw_i rt_i z_i^T`` as one GEMM (same C x C layouts as ``Z W^T``)."""
    for i in range(Z.shape[0]):
        for j in range(rt.shape[1]):
            rtT[j, i] = cw[i] * rt[i, j]
    Gt[:, :] = np.dot(rtT, Z)


@njit(cache=True, parallel=True)
def _seqs_par(X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas, qs, a, e, gs, rt, ut, sq):
    for i in prange(X.shape[0]):
        # int64 index: a uint64 one would make numba compile _seq_eval twice
        _seq_eval(np.int64(i), X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas,
                  qs, a, e, gs, rt, ut, sq)


@njit(cache=True)
def _seqs_ser(X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas, qs, a, e, gs, rt, ut, sq):
    for i in range(X.shape[0]):
        _seq_eval(i, X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas, qs, a, e, gs, rt, ut, sq)


def _seqs(par, X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas, qs, a, e, gs, rt, ut, sq):
    """Evaluate every sequence; ``par`` must be a compile-time constant (see below)."""


@overload(_seqs, prefer_literal=True)
def _seqs_impl(par, X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas, qs, a, e, gs, rt, ut,
               sq):
    # Chosen while typing, so the sweep kernel (par=False) never compiles the parallel
    # loop: a parallel region inside its prange would nest, and cost compile time.
    if isinstance(par, types.BooleanLiteral) and par.literal_value:
        return (lambda par, X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas, qs, a, e, gs,
                rt, ut, sq: _seqs_par(X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas,
                                      qs, a, e, gs, rt, ut, sq))
    return (lambda par, X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas, qs, a, e, gs,
            rt, ut, sq: _seqs_ser(X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas,
                                  qs, a, e, gs, rt, ut, sq))


@njit(cache=True)
def _eval_all(par, X, Z, WT, u, y, gam_f, opt, loss, joint, full, qs, a, e, gs, rt, ut, sq, cw,
              rtT, Gt, Ut):
    """Every sequence, then the gradient scales and the W-gradient ``G`` (see _coefs)."""
    n, T, d = X.shape
    # the two n x d x d products go to BLAS once they dominate the call overhead
    blas = n * d * d >= _BLAS_MIN
    if blas:
        qs[:, :] = np.dot(Z, WT)
    _seqs(par, X, Z, WT, u, y, gam_f, opt, loss, joint, full, blas, qs, a, e, gs, rt, ut, sq)
    LW, Lu = _coefs(Z, joint, ut, sq, cw, Ut)
    if blas:
        _gw_blas(Z, rt, cw, rtT, Gt)
    else:
        _gw_block(Z, rt, cw, Gt)
    return LW, Lu


@njit(cache=True)
def _kq_product(K, Q, W):
    for i in range(K.shape[0]):
        for j in range(Q.shape[0]):
            W[i, j] = _dot(K[i], Q[j])


@njit(cache=True)
def _kq_grads(Gt, K, Q, GK, GQ):
    """``GK = G Q`` and ``GQ = G^T K`` (chain rule through W = K Q^T)."""
    d = Gt.shape[0]
    GK[:, :] = 0.0
    GQ[:, :] = 0.0
    for i in range(d):
        for j in range(d):
            c = Gt[i, j]
            if c != 0.0:
                _axpy(c, Q[j], GK[i])
                _axpy(c, K[i], GQ[j])


@njit(cache=True)
def _block_coef(method, normalize, log_lr, log_exc, lgn, Lb, lnb):
    """log of the multiplier c_b of the update theta_b -= c_b G_b (G_b = e^{-Lb} g_b)."""
    if method == GD:
        return log_lr + Lb
    if method == NGD:
        return log_lr + Lb - (lnb if normalize == BLOCK else lgn)
    return log_lr + log_exc + Lb - 2.0 * (lnb if normalize == BLOCK else lgn)


@njit(cache=True)
def _sub_scaled(theta, lc, G):
    c = _exp(lc)
    if c != 0.0:
        ft = theta.ravel()
        fg = G.ravel()
        for k in range(ft.shape[0]):
            ft[k] -= c * fg[k]


@njit(cache=True)
def _direction_stats(W, R):
    """norm, correlation and directional distance of W against the unit-norm R."""
    nw = _fro(W)
    if nw == 0.0:
        return 0.0, 0.0, math.sqrt(2.0)
    fw = W.ravel()
    fr = R.ravel()
    ip = 0.0
    dd = 0.0
    for k in range(fw.shape[0]):
        ip += fw[k] * fr[k]
        diff = fw[k] / nw - fr[k]
        dd += diff * diff
    return nw, ip / nw, math.sqrt(dd)


@njit(cache=True)
def _point_eval(par, full, X, Z, y, gam_f, opt, param, loss, W, Kf, Qf, u,
                WT, qs, a, e, gs, rt, ut, sq, cw, rtT, Gt, Ut, GK, GQ):
    """Loss terms and block gradients at the current parameters.

    The gradient of block b is ``e^{Lb} Gb`` (blocks: (W); (K, Q); (u, W)) and
    ``lnb = log ||e^{Lb} Gb||``; ``lgn`` is the log-norm of the whole gradient.
    ``log_exc`` (log of L - L*, joint: of L) and ``loss_val`` are NaN unless ``full``.
    """
    n = X.shape[0]
    d = X.shape[2]
    joint = param == P_JOINT
    if param == P_KQ:
        _kq_product(Kf, Qf, W)
    for k1 in range(d):
        for k2 in range(d):
            WT[k1, k2] = W[k2, k1]
    LW, Lu = _eval_all(par, X, Z, WT, u, y, gam_f, opt, loss, joint, full,
                       qs, a, e, gs, rt, ut, sq, cw, rtT, Gt, Ut)
    log_exc = np.nan
    loss_val = np.nan
    if full:
        # log of the mean over sequences, in the log domain
        lmax = _NEG_INF
        for i in range(n):
            lmax = max(lmax, sq[i, S_LOGV])
        if lmax == _NEG_INF:
            log_exc = _NEG_INF
        else:
            acc = 0.0
            for i in range(n):
                acc += _exp(sq[i, S_LOGV] - lmax)
            log_exc = lmax + math.log(acc) - math.log(n)
        loss_sum = 0.0
        for i in range(n):
            loss_sum += sq[i, S_LOSS]
        loss_val = loss_sum / n
    if param == P_KQ:
        _kq_grads(Gt, Kf, Qf, GK, GQ)
        ln1 = LW + _log_norm(GK)
        ln2 = LW + _log_norm(GQ)
        L1 = LW
    elif joint:
        ln1 = Lu + _log_norm(Ut)
        ln2 = LW + _log_norm(Gt)
        L1 = Lu
    else:
        ln1 = _NEG_INF
        ln2 = LW + _log_norm(Gt)
        L1 = _NEG_INF
    lgn = 0.5 * _logaddexp(2.0 * ln1, 2.0 * ln2)
    return LW, Lu, log_exc, loss_val, L1, LW, ln1, ln2, lgn


@njit(cache=True)
def _scratch(n, T, d, rank):
    return (np.empty((d, d)), np.empty((n, d)), np.empty((n, T)), np.empty((n, T)),
            np.empty((n, T)), np.empty((n, d)), np.empty((n, d)), np.empty((n, NSQ)),
            np.empty(n), np.empty((d, n)), np.empty((d, d)), np.zeros(d), np.empty((d, rank)),
            np.empty((d, rank)))


@njit(cache=True)
def _evaluate(full, X, Z, y, gam_f, opt, param, loss, W, Kf, Qf, u):
    """One evaluation; returns the _point_eval tuple, Gt, Ut, GK, GQ and sq."""
    n, T, d = X.shape
    WT, qs, a, e, gs, rt, ut, sq, cw, rtT, Gt, Ut, GK, GQ = _scratch(n, T, d, Kf.shape[1])
    res = _point_eval(False, full, X, Z, y, gam_f, opt, param, loss, W, Kf, Qf, u,
                      WT, qs, a, e, gs, rt, ut, sq, cw, rtT, Gt, Ut, GK, GQ)
    return res, Gt, Ut, GK, GQ, sq


@njit(cache=True)
def _traj_run(r, par, X, Z, Y, GAM, OPT, prob, meth, lrs, param, loss, normalize,
              W, K, Q, U, RW, RU, rec_t, t_start, t_end, jstate, fail,
              recs, L1M, store, WS, US, piv):
    """Run (or continue) trajectory ``r`` from iteration ``t_start`` to ``t_end``.

    ``W[r]``, ``K[r]``, ``Q[r]``, ``U[r]`` hold the state and are updated in place.
    At every iteration ``t`` with ``t == rec_t[jstate[r]]`` the metrics of the current
    parameters go to row ``jstate[r]`` of the outputs; the update is applied after.
    ``fail[r]`` is set to the first iteration with a non-finite loss or gradient.
    """
    pi = prob[r]
    Xp = X[pi]
    Zp = Z[pi]
    y = Y[pi]
    gam_f = GAM[pi]
    opt = OPT[pi]
    n, T, d = Xp.shape
    Wr = W[r]
    Kr = K[r]
    Qr = Q[r]
    ur = U[r]
    joint = param == P_JOINT
    method = meth[r]
    log_lr = math.log(lrs[r])

    WT, qs, a, e, gs, rt, ut, sq, cw, rtT, Gt, Ut, GK, GQ = _scratch(n, T, d, Kr.shape[1])
    j = jstate[r]
    nrec = rec_t.shape[0]

    for t in range(t_start, t_end + 1):
        recording = j < nrec and t == rec_t[j]
        full = recording or method == POLYAK
        (LW, Lu, log_exc, loss_val, L1, L2, ln1, ln2, lgn) = _point_eval(
            par, full, Xp, Zp, y, gam_f, opt, param, loss, Wr, Kr, Qr, ur,
            WT, qs, a, e, gs, rt, ut, sq, cw, rtT, Gt, Ut, GK, GQ)
        if not lgn < np.inf or (full and (math.isnan(log_exc) or not math.isfinite(loss_val))):
            fail[r] = t
            break
        lc1 = _NEG_INF
        lc2 = _NEG_INF
        if ln1 > _NEG_INF:
            lc1 = _block_coef(method, normalize, log_lr, log_exc, lgn, L1, ln1)
        if ln2 > _NEG_INF:
            lc2 = _block_coef(method, normalize, log_lr, log_exc, lgn, L2, ln2)
        # log of the displacement: ||c_b G_b|| = e^{lc_b + ln_b - L_b}
        ld1 = lc1 + ln1 - L1 if ln1 > _NEG_INF else _NEG_INF
        ld2 = lc2 + ln2 - L2 if ln2 > _NEG_INF else _NEG_INF
        log_step = 0.5 * _logaddexp(2.0 * ld1, 2.0 * ld2)

        if recording:
            rec = recs[r, j]
            rec[C_LOSS] = _exp(log_exc) if joint else loss_val
            rec[C_LOG_LOSS] = log_exc if joint else math.log(loss_val)
            rec[C_LOG_EXC] = log_exc
            nw, cr, ds = _direction_stats(Wr, RW[r])
            rec[C_NORM] = nw
            rec[C_CORR] = cr
            rec[C_DIST] = ds
            smin = np.inf
            ssum = 0.0
            for i in range(n):
                smin = min(smin, sq[i, S_SOPT])
                ssum += sq[i, S_SOPT]
                L1M[r, j, i] = sq[i, S_LOG1M]
            rec[C_SMIN] = smin
            rec[C_SMEAN] = ssum / n
            rec[C_LOG_STEP] = log_step
            rec[C_LOG_GNORM] = lgn
            if joint:
                nu, cu, du = _direction_stats(ur, RU[r])
                rec[C_UNORM] = nu
                rec[C_UCORR] = cu
                rec[C_UDIST] = du
            if store:
                WS[r, j] = Wr
                US[r, j] = ur
            j += 1
        if t == t_end:
            break

        # Gt, Ut hold the unnormalised gradients (relative to e^{LW}, e^{Lu})
        if param == P_KQ:
            if ln1 > _NEG_INF:
                _sub_scaled(Kr, lc1, GK)
            if ln2 > _NEG_INF:
                _sub_scaled(Qr, lc2, GQ)
        else:
            if joint and ln1 > _NEG_INF:
                _sub_scaled(ur, lc1, Ut)
            if ln2 > _NEG_INF:
                _sub_scaled(Wr, lc2, Gt)

    jstate[r] = j
    if param == P_KQ:
        _kq_product(Kr, Qr, Wr)
    for i in range(n):
        piv[r, i] = int(sq[i, S_PIV])


@njit(cache=True, parallel=True)
def _sweep(X, Z, Y, GAM, OPT, prob, meth, lrs, param, loss, normalize,
           W, K, Q, U, RW, RU, rec_t, t_start, t_end, jstate, fail,
           recs, L1M, store, WS, US, piv):
    """Many trajectories at once: one whole trajectory per prange iteration."""
    for r in prange(prob.shape[0]):
        if fail[r] < 0:
            # int64 index: a uint64 one would make numba compile _traj_run twice
            _traj_run(np.int64(r), False, X, Z, Y, GAM, OPT, prob, meth, lrs, param, loss, normalize,
                      W, K, Q, U, RW, RU, rec_t, t_start, t_end, jstate, fail,
                      recs, L1M, store, WS, US, piv)


@njit(cache=True)
def _traj_single(X, Z, Y, GAM, OPT, prob, meth, lrs, param, loss, normalize,
                 W, K, Q, U, RW, RU, rec_t, t_start, t_end, jstate, fail,
                 recs, L1M, store, WS, US, piv):
    """One trajectory of a large problem, each step parallel over sequences."""
    if fail[0] < 0:
        _traj_run(0, True, X, Z, Y, GAM, OPT, prob, meth, lrs, param, loss, normalize,
                  W, K, Q, U, RW, RU, rec_t, t_start, t_end, jstate, fail,
                  recs, L1M, store, WS, US, piv)
