"""Compiled float64 kernels of the attention dynamics (docs/theory.md §1, §3, §5 and §8).

Everything here is numba ``njit`` with ``cache=True`` and without ``fastmath``
(results must be reproducible and exact to rounding). The public wrappers live in
:mod:`sims.dynamics`; this module only knows arrays, integer codes and the records below.

Records (numba-compatible named tuples, built by :mod:`sims.dynamics`):

* :class:`Problem` one problem's arrays; :class:`Data` the stacked problems of a sweep, the
  problem index of every run and the unit reference directions;
* :class:`Config` per-run method codes, step sizes and momentum, and the shared settings;
* :class:`State` the parameters of every run and the state of stateful update rules;
* :class:`Records` the outputs (recorded metrics, stored iterates, failures);
* :class:`Scratch` the work arrays of one trajectory; :class:`Step` what an update rule sees.

Update rules are the entries of :data:`RULES` (method code = position), dispatched by
:func:`_rule`. Each rule function takes ``(block, step, apply)``, with ``block = (theta_b, G_b, v_b)``
(parameter block, its gradient ``g_b = e^{step.L} G_b`` and its rule state), returns the log
of the displacement ``||delta theta_b||`` and applies the update only when ``apply``.
A stateless rule is one function here plus one :class:`Rule` entry in :data:`RULES`
(``sims.METHODS`` and ``sims.DEFAULT_LR`` are read from it); a stateful one also keeps its
state in :class:`State` (as the momentum buffers ``V*``, allocated for ``stateful`` rules).

Stable gradient (docs/theory.md §8): per sequence, with pivot ``p`` (most attended token),
``e_t = exp(a_t - a_q)`` (``q`` the best other token) and ``ls = log s_q``,
``delta = e^{ls} dt`` with ``dt = sum_{t != p} e_t (gamma_p - gamma_t)`` and
``(diag(s) - s s^T) gamma = e^{ls} w`` with ``w_t = e_t (gamma_t - gamma_p + delta)``
(``t != p``), ``w_p = s_p dt``; the gradient is ``g = e^{L} G`` with a tracked log-scale ``L``.
Excess loss of a sequence attending to its optimal token: ``log1p(A expm1(delta))``
(logistic, ``A = sigmoid(-gamma_o)``) or ``A expm1(delta)`` (exponential, ``A = e^{-gamma_o}``),
kept as ``log A + ls + log dt`` once ``delta < 1e-17``.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange, types
from numba.extending import overload, register_jitable

# parametrisation, loss and normalisation codes (a method's code is its position in RULES)
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

#: one problem: tokens (n, T, d), queries (n, d), labels (n,), scores (n, T), optimal tokens (n,)
Problem = namedtuple("Problem", "X Z y gam opt")
#: stacked problems of one shape, problem index of every run, unit references (W and u)
Data = namedtuple("Data", "X Z Y GAM OPT prob RW RU")
#: per run: method code, step size, momentum, whether the rule needs L - L* at every step;
#: shared: parametrisation, loss, normalisation, recorded iterations, whether to store iterates
Config = namedtuple("Config", "meth lrs beta needs_exc param loss normalize rec_t store")
#: parameters (W, K, Q, u) of every run and the rule state of each block (momentum buffers)
State = namedtuple("State", "W K Q U VW VK VQ VU")
#: outputs: recorded metrics, log(1 - s_opt), stored iterates, final pivots, next record
#: row and first failing iteration (-1: none) of every run
Records = namedtuple("Records", "recs L1M WS US piv jstate fail")
#: work arrays of one trajectory
Scratch = namedtuple("Scratch", "WT qs a e gs rt ut sq cw rtT Gt Ut GK GQ")
#: what an update rule sees for one block: log step size, momentum, normalisation code,
#: log(L - L*), log-norm of the whole gradient, the block's log-scale and log-norm
Step = namedtuple("Step", "log_lr beta normalize log_exc lgn L ln")

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
    if s < np.inf:
        return math.sqrt(s)
    # the squares overflow (or A is not finite): scale by the largest entry
    peak = 0.0
    for v in A.ravel():
        peak = max(peak, abs(v))
    if not (peak > 0.0 and peak < np.inf):  # NaN or infinite entries
        return s
    s = 0.0
    for v in A.ravel():
        x = v / peak
        s += x * x
    return peak * math.sqrt(s)


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
def _seq_eval(i, pb, WT, u, mode, sc):
    """Forward and stable backward pass of sequence ``i`` of problem ``pb``.

    ``mode = (loss, joint, full, blas)``. Writes ``sc.rt[i] = X_i^T w`` (the W-gradient is
    ``-e^{S_LOGC + S_LOGSC} rt[i] z_i^T``), for joint training ``sc.ut[i] = y_i X_i^T s_i``
    (the u-gradient is ``-e^{S_LOGC} ut[i]``), and the gradient scales into ``sc.sq[i]``;
    with ``full`` also the loss terms and the attention metrics.
    """
    loss, joint, full, blas = mode
    X = pb.X
    y = pb.y
    T = X.shape[1]
    d = X.shape[2]
    Xi = X[i]
    zi = pb.Z[i]
    q = sc.qs[i]
    if not blas:  # otherwise qs = Z W^T came from one BLAS call
        q[:] = 0.0
        for k in range(d):
            if zi[k] != 0.0:
                _axpy(zi[k], WT[k], q)  # q = W z_i
    ai = sc.a[i]
    for t in range(T):
        ai[t] = _dot(Xi[t], q)
    if joint:
        g = sc.gs[i]
        for t in range(T):
            g[t] = y[i] * _dot(Xi[t], u)
    else:
        g = pb.gam[i]

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
    o = pb.opt[i]
    ei = sc.e[i]
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

    r = sc.rt[i]
    r[:] = 0.0
    for t in range(T):
        if t != p:
            _axpy(ei[t] * ((g[t] - g[p]) + delta), Xi[t], r)
    _axpy(sp * dt, Xi[p], r)
    if joint:
        v = sc.ut[i]
        v[:] = 0.0
        for t in range(T):
            if t != p:
                _axpy(y[i] * (scale * ei[t]), Xi[t], v)
        _axpy(y[i] * sp, Xi[p], v)

    row = sc.sq[i]
    row[S_LOGC] = _log_abs_dloss(m, loss)
    row[S_LOGSC] = ls
    row[S_PIV] = p
    if not full:
        return
    row[S_LOSS] = _loss(m, loss)
    if joint:
        row[S_LOGV] = _log_loss(m, loss)
    elif p == o:
        # excess log1p(A expm1(delta)) or A expm1(delta); dt > 0 because opt is the
        # unique best score
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
def _coefs(Z, joint, sc):
    """Per-sequence W-gradient weights relative to the largest, and the u-gradient.

    Returns the log-scales ``LW``, ``Lu`` of the W and u gradients: ``g_W = e^{LW} G``
    with ``G = sum_i cw_i rt_i z_i^T`` and ``g_u = e^{Lu} Ut``.
    """
    sq = sc.sq
    cw = sc.cw
    n = Z.shape[0]
    LW = _NEG_INF
    for i in range(n):
        LW = max(LW, sq[i, S_LOGC] + sq[i, S_LOGSC])
    for i in range(n):
        cw[i] = -_exp(sq[i, S_LOGC] + sq[i, S_LOGSC] - LW)
    Lu = _NEG_INF
    if joint:
        Ut = sc.Ut
        for i in range(n):
            Lu = max(Lu, sq[i, S_LOGC])
        Ut[:] = 0.0
        for i in range(n):
            _axpy(-_exp(sq[i, S_LOGC] - Lu), sc.ut[i], Ut)
    # the 1/n of the mean loss
    log_n = math.log(n)
    return LW - log_n, Lu - log_n


@njit(cache=True)
def _gw_block(Z, sc):
    """``G = sum_i cw_i rt_i z_i^T`` by rows (sequence-outer for cache reuse)."""
    n, d = Z.shape
    rt = sc.rt
    cw = sc.cw
    Gt = sc.Gt
    Gt[:, :] = 0.0
    for i in range(n):
        zi = Z[i]
        for j in range(d):
            c = cw[i] * rt[i, j]
            if c != 0.0:
                _axpy(c, zi, Gt[j])


@njit(cache=True)
def _gw_blas(Z, sc):
    """``G = sum_i cw_i rt_i z_i^T`` as one GEMM (same C x C layouts as ``Z W^T``)."""
    rt = sc.rt
    rtT = sc.rtT
    for i in range(Z.shape[0]):
        for j in range(rt.shape[1]):
            rtT[j, i] = sc.cw[i] * rt[i, j]
    sc.Gt[:, :] = np.dot(rtT, Z)


@njit(cache=True, parallel=True)
def _seqs_par(pb, WT, u, mode, sc):
    for i in prange(pb.X.shape[0]):
        # int64 index: a uint64 one would make numba compile _seq_eval twice
        _seq_eval(np.int64(i), pb, WT, u, mode, sc)


@njit(cache=True)
def _seqs_ser(pb, WT, u, mode, sc):
    for i in range(pb.X.shape[0]):
        _seq_eval(i, pb, WT, u, mode, sc)


def _seqs(par, pb, WT, u, mode, sc):
    """Evaluate every sequence; ``par`` must be a compile-time constant (see below)."""


@overload(_seqs, prefer_literal=True)
def _seqs_impl(par, pb, WT, u, mode, sc):
    # Chosen while typing, so the sweep kernel (par=False) never compiles the parallel
    # loop: a parallel region inside its prange would nest, and cost compile time.
    if isinstance(par, types.BooleanLiteral) and par.literal_value:
        return lambda par, pb, WT, u, mode, sc: _seqs_par(pb, WT, u, mode, sc)
    return lambda par, pb, WT, u, mode, sc: _seqs_ser(pb, WT, u, mode, sc)


@njit(cache=True)
def _eval_all(par, pb, WT, u, mode, sc):
    """Every sequence, then the gradient scales and the W-gradient ``G`` (see _coefs).

    ``mode = (loss, joint, full)``.
    """
    loss, joint, full = mode
    n, T, d = pb.X.shape
    # the two n x d x d products go to BLAS once they dominate the call overhead
    blas = n * d * d >= _BLAS_MIN
    if blas:
        sc.qs[:, :] = np.dot(pb.Z, WT)
    _seqs(par, pb, WT, u, (loss, joint, full, blas), sc)
    LW, Lu = _coefs(pb.Z, joint, sc)
    if blas:
        _gw_blas(pb.Z, sc)
    else:
        _gw_block(pb.Z, sc)
    return LW, Lu


@njit(cache=True)
def _kq_product(K, Q, W):
    for i in range(K.shape[0]):
        for j in range(Q.shape[0]):
            W[i, j] = _dot(K[i], Q[j])


@njit(cache=True)
def _kq_grads(sc, K, Q):
    """``GK = G Q`` and ``GQ = G^T K`` (chain rule through W = K Q^T)."""
    Gt = sc.Gt
    GK = sc.GK
    GQ = sc.GQ
    d = Gt.shape[0]
    GK[:, :] = 0.0
    GQ[:, :] = 0.0
    for i in range(d):
        for j in range(d):
            c = Gt[i, j]
            if c != 0.0:
                _axpy(c, Q[j], GK[i])
                _axpy(c, K[i], GQ[j])


# ------------------------------------------------------------------ update rules
@njit(cache=True)
def _sub_scaled(theta, lc, G):
    c = _exp(lc)
    if c != 0.0:
        ft = theta.ravel()
        fg = G.ravel()
        for k in range(ft.shape[0]):
            ft[k] -= c * fg[k]


@njit(cache=True, inline="always")
def _scaled_step(blk, lc, st, apply):
    """``theta_b -= e^{lc} G_b``; returns ``log ||e^{lc} G_b|| = lc + ln - L``."""
    if apply:
        _sub_scaled(blk[0], lc, blk[1])
    return lc + st.ln - st.L


@njit(cache=True, inline="always")
def _log_norm_used(st):
    """log of the gradient norm NGD and Polyak divide by (the block's or the whole one)."""
    return st.ln if st.normalize == BLOCK else st.lgn


@njit(cache=True)
def _rule_gd(blk, st, apply):
    """GD: ``theta_b -= lr g_b``."""
    return _scaled_step(blk, st.log_lr + st.L, st, apply)


@njit(cache=True)
def _rule_ngd(blk, st, apply):
    """NGD: ``theta_b -= lr g_b / N`` (``N``: whole or block gradient norm)."""
    return _scaled_step(blk, st.log_lr + st.L - _log_norm_used(st), st, apply)


@njit(cache=True)
def _rule_polyak(blk, st, apply):
    """Polyak: ``theta_b -= lr (L - L*) g_b / N^2``."""
    return _scaled_step(blk, st.log_lr + st.log_exc + st.L - 2.0 * _log_norm_used(st), st,
                        apply)


@njit(cache=True)
def _rule_ngd_momentum(blk, st, apply):
    """Heavy-ball NGD: ``v_b <- beta v_b + g_b / N``, ``theta_b -= lr v_b`` (``v_b``: state)."""
    theta, G, v = blk
    c = _exp(st.L - _log_norm_used(st))
    lr = _exp(st.log_lr)
    ft = theta.ravel()
    fg = G.ravel()
    fv = v.ravel()
    ss = 0.0
    for k in range(ft.shape[0]):
        vk = st.beta * fv[k] + c * fg[k]
        ss += vk * vk
        if apply:
            fv[k] = vk
            ft[k] -= lr * vk
    return st.log_lr + 0.5 * math.log(ss) if ss > 0.0 else _NEG_INF


#: an update rule: kernel function, default step size (None: a multiplier of the rule's own
#: step, default 1), whether it needs L - L* at every step, whether it keeps state in State.V*
Rule = namedtuple("Rule", "function default_lr needs_excess stateful")

#: the update rules by method name; a method's code is its position
RULES = {
    "gd": Rule(_rule_gd, 1.0, False, False),
    "ngd": Rule(_rule_ngd, 0.1, False, False),
    "polyak": Rule(_rule_polyak, None, True, False),
    "ngd_momentum": Rule(_rule_ngd_momentum, 0.1, False, True),
}
_RULE_FUNCTIONS = tuple(rule.function for rule in RULES.values())


def _rule_chain(k):
    """Compiled ``if code == k: rule k else`` chain over the rules from position k on."""
    rule = _RULE_FUNCTIONS[k]
    if k == len(_RULE_FUNCTIONS) - 1:
        return register_jitable(lambda code, blk, st, apply: rule(blk, st, apply))
    rest = _rule_chain(k + 1)

    def node(code, blk, st, apply):
        if code == k:
            return rule(blk, st, apply)
        return rest(code, blk, st, apply)

    return register_jitable(node)


def _rule(code, blk, st, apply):
    """Apply the update rule of method code ``code`` to ``blk`` (see _rule_impl)."""


@overload(_rule)
def _rule_impl(code, blk, st, apply):
    # A branch per rule, built from RULES while typing: calling the rules directly (not
    # through first-class function values) keeps them inlinable and the kernels cacheable.
    return _rule_chain(0)


# ------------------------------------------------------------------ evaluation
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
def _point_eval(par, full, pb, param, loss, theta, sc):
    """Loss terms and block gradients at the parameters ``theta = (W, K, Q, u)``.

    The gradient of block b is ``e^{Lb} Gb`` (blocks: (W); (K, Q); (u, W)) and
    ``lnb = log ||e^{Lb} Gb||``; ``lgn`` is the log-norm of the whole gradient.
    ``log_exc`` (log of L - L*, joint: of L) and ``loss_val`` are NaN unless ``full``.
    """
    W, Kf, Qf, u = theta
    sq = sc.sq
    WT = sc.WT
    n = pb.X.shape[0]
    d = pb.X.shape[2]
    joint = param == P_JOINT
    if param == P_KQ:
        _kq_product(Kf, Qf, W)
    for k1 in range(d):
        for k2 in range(d):
            WT[k1, k2] = W[k2, k1]
    LW, Lu = _eval_all(par, pb, WT, u, (loss, joint, full), sc)
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
        _kq_grads(sc, Kf, Qf)
        ln1 = LW + _log_norm(sc.GK)
        ln2 = LW + _log_norm(sc.GQ)
        L1 = LW
    elif joint:
        ln1 = Lu + _log_norm(sc.Ut)
        ln2 = LW + _log_norm(sc.Gt)
        L1 = Lu
    else:
        ln1 = _NEG_INF
        ln2 = LW + _log_norm(sc.Gt)
        L1 = _NEG_INF
    lgn = 0.5 * _logaddexp(2.0 * ln1, 2.0 * ln2)
    return LW, Lu, log_exc, loss_val, L1, LW, ln1, ln2, lgn


@njit(cache=True)
def _scratch(n, T, d, rank):
    return Scratch(np.empty((d, d)), np.empty((n, d)), np.empty((n, T)), np.empty((n, T)),
                   np.empty((n, T)), np.empty((n, d)), np.empty((n, d)), np.empty((n, NSQ)),
                   np.empty(n), np.empty((d, n)), np.empty((d, d)), np.zeros(d),
                   np.empty((d, rank)), np.empty((d, rank)))


@njit(cache=True)
def _evaluate(full, pb, param, loss, theta):
    """One evaluation at ``theta = (W, K, Q, u)``; returns the _point_eval tuple and the scratch."""
    n, T, d = pb.X.shape
    sc = _scratch(n, T, d, theta[1].shape[1])
    res = _point_eval(False, full, pb, param, loss, theta, sc)
    return res, sc


# ------------------------------------------------------------------ trajectories
@njit(cache=True)
def _record(r, j, data, cfg, state, out, sc, metrics):
    """Write the metrics of run ``r`` at its current parameters to record row ``j``.

    ``metrics = (log_exc, loss_val, log_step, lgn)``. Returns False (nothing written) when
    a parameter norm has left the float64 range.
    """
    log_exc, loss_val, log_step, lgn = metrics
    joint = cfg.param == P_JOINT
    Wr = state.W[r]
    ur = state.U[r]
    nw, cr, ds = _direction_stats(Wr, data.RW[r])
    nu, cu, du = _direction_stats(ur, data.RU[r])
    if not (nw < np.inf and nu < np.inf):
        return False
    rec = out.recs[r, j]
    rec[C_LOSS] = _exp(log_exc) if joint else loss_val
    rec[C_LOG_LOSS] = log_exc if joint else math.log(loss_val)
    rec[C_LOG_EXC] = log_exc
    rec[C_NORM] = nw
    rec[C_CORR] = cr
    rec[C_DIST] = ds
    sq = sc.sq
    n = sq.shape[0]
    smin = np.inf
    ssum = 0.0
    for i in range(n):
        smin = min(smin, sq[i, S_SOPT])
        ssum += sq[i, S_SOPT]
        out.L1M[r, j, i] = sq[i, S_LOG1M]
    rec[C_SMIN] = smin
    rec[C_SMEAN] = ssum / n
    rec[C_LOG_STEP] = log_step
    rec[C_LOG_GNORM] = lgn
    if joint:
        rec[C_UNORM] = nu
        rec[C_UCORR] = cu
        rec[C_UDIST] = du
    if cfg.store:
        out.WS[r, j] = Wr
        out.US[r, j] = ur
    return True


@njit(cache=True)
def _traj_run(r, par, data, cfg, state, out, t_start, t_end):
    """Run (or continue) trajectory ``r`` from iteration ``t_start`` to ``t_end``.

    ``state`` rows ``r`` hold the parameters and rule state and are updated in place.
    At every iteration ``t`` with ``t == cfg.rec_t[out.jstate[r]]`` the metrics of the
    current parameters go to that row of ``out``; the update is applied after.
    ``out.fail[r]`` is set to the first iteration with a non-finite loss, gradient or
    parameter norm.
    """
    pi = data.prob[r]
    pb = Problem(data.X[pi], data.Z[pi], data.Y[pi], data.GAM[pi], data.OPT[pi])
    n, T, d = pb.X.shape
    param = cfg.param
    Wr = state.W[r]
    Kr = state.K[r]
    Qr = state.Q[r]
    ur = state.U[r]
    theta = (Wr, Kr, Qr, ur)
    method = cfg.meth[r]
    log_lr = math.log(cfg.lrs[r])
    beta = cfg.beta[r]
    needs_exc = cfg.needs_exc[r]

    sc = _scratch(n, T, d, Kr.shape[1])
    # the blocks (views, updated in place): (K, Q) for kq, (u, W) for joint, (-, W) for W
    if param == P_KQ:
        blk1 = (Kr, sc.GK, state.VK[r])
        blk2 = (Qr, sc.GQ, state.VQ[r])
    else:
        vu = state.VU[r]  # (1,) unless a stateful rule runs
        blk1 = (ur.reshape((1, d)), sc.Ut.reshape((1, d)), vu.reshape((1, vu.shape[0])))
        blk2 = (Wr, sc.Gt, state.VW[r])
    j = out.jstate[r]
    nrec = cfg.rec_t.shape[0]

    for t in range(t_start, t_end + 1):
        recording = j < nrec and t == cfg.rec_t[j]
        full = recording or needs_exc
        (LW, Lu, log_exc, loss_val, L1, L2, ln1, ln2, lgn) = _point_eval(
            par, full, pb, param, cfg.loss, theta, sc)
        if not lgn < np.inf or (full and (math.isnan(log_exc) or not math.isfinite(loss_val))):
            out.fail[r] = t
            break
        st1 = Step(log_lr, beta, cfg.normalize, log_exc, lgn, L1, ln1)
        st2 = Step(log_lr, beta, cfg.normalize, log_exc, lgn, L2, ln2)
        if recording:
            # log of the displacement of each block; a block with a zero gradient stays put
            ld1 = _rule(method, blk1, st1, False) if ln1 > _NEG_INF else _NEG_INF
            ld2 = _rule(method, blk2, st2, False) if ln2 > _NEG_INF else _NEG_INF
            log_step = 0.5 * _logaddexp(2.0 * ld1, 2.0 * ld2)
            if not _record(r, j, data, cfg, state, out, sc, (log_exc, loss_val, log_step, lgn)):
                out.fail[r] = t
                break
            j += 1
        if t == t_end:
            break
        if ln1 > _NEG_INF:
            _rule(method, blk1, st1, True)
        if ln2 > _NEG_INF:
            _rule(method, blk2, st2, True)

    out.jstate[r] = j
    if param == P_KQ:
        _kq_product(Kr, Qr, Wr)
    for i in range(n):
        out.piv[r, i] = int(sc.sq[i, S_PIV])


@njit(cache=True, parallel=True)
def _sweep(data, cfg, state, out, t_start, t_end):
    """Many trajectories at once: one whole trajectory per prange iteration."""
    for r in prange(data.prob.shape[0]):
        if out.fail[r] < 0:
            # int64 index: a uint64 one would make numba compile _traj_run twice
            _traj_run(np.int64(r), False, data, cfg, state, out, t_start, t_end)


@njit(cache=True)
def _traj_single(data, cfg, state, out, t_start, t_end):
    """One trajectory of a large problem, each step parallel over sequences."""
    if out.fail[0] < 0:
        _traj_run(0, True, data, cfg, state, out, t_start, t_end)
